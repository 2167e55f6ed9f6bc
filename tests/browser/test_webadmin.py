"""The web administration (/admin/) in Debian's headless Chromium: an admin
logs in over HTTPS, creates a user, sees them online after a slixmpp
login, kicks them and changes their password (the old one then fails, the
new one works); a non-admin and a wrong password are refused; a forged or
missing CSRF token is refused with 403 and changes nothing; the pages keep
to their Content-Security-Policy and fit a phone-sized screen.  Without a
browser: the headers and cookie flags over plain HTTP and TLS, failed web
logins counted with the c2s counters, and a temporary auth failure that is
not a wrong password.  Screenshots go to the build dir
(tests/browser/artifacts)."""
import http.client
import re
import ssl
import urllib.parse

import pytest

import parleytest
from conftest import Browser
from parleytest import HOST, NS_SASL, OTHER, LoginFailed, RawClient, find_lines, login, logout, q, srcdir

FAULTY = str(srcdir() / 'tests' / 'integration' / 'extauth_faulty.py')


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    """parleyd with a plain and a TLS http listener and admin_web on for
    test.local (admin alice) and other.local (external auth that hangs on
    'slow'); 3 failures per account lock it."""
    d = tmp_path_factory.mktemp('webadmin')
    users = d / 'ext-users.txt'
    users.write_text('slow@%s:slow-secret\n' % OTHER)
    s = parleytest.Parleyd(
        d, users={k: v for k, v in parleytest.USERS.items() if k[1] == HOST},
        global_auth='  max_failures_per_user: 3\n  max_failures_per_ip: 50\n  failure_window: 1h\n',
        other_auth='{ methods: [external], external: { program: "%s", args: ["%s", "hang-on", "slow"], '
                   'instances: 1, timeout: 700ms } }' % (FAULTY, users))
    s.http_port = parleytest.free_port()
    s.https_port = parleytest.free_port()
    while s.https_port == s.http_port:
        s.https_port = parleytest.free_port()
    text = s.config.read_text().replace(
        '\nlisten:\n',
        '\nadmin_web:\n  enabled: true\n  hosts: [%s, %s]\n  session_timeout: 10m\n'
        'listen:\n  - { port: %d, address: 127.0.0.1, module: http, starttls: off }\n'
        '  - { port: %d, address: 127.0.0.1, module: http, direct_tls: true }\n'
        % (HOST, OTHER, s.http_port, s.https_port), 1)
    s.config.write_text(text)
    s.env['PARLEY_WEB_DIR'] = str(srcdir() / 'share' / 'web')
    s.env['PARLEY_LOCALE_DIR'] = str(parleytest.builddir() / 'po')
    s.start_with_users()
    yield s
    s.finish()


@pytest.fixture(scope='module')
def browser(srv):
    b = Browser('webadmin')
    yield b
    b.close()


def base(srv):
    return 'https://127.0.0.1:%d' % srv.https_port


def browser_login(browser, srv, jid, password):
    """Open the login page, log in; the answer of the form's POST."""
    r = browser.call('open', url=base(srv) + '/admin/')
    assert r['status'] == 200
    browser.call('fill', sel='#jid', value=jid)
    browser.call('fill', sel='#password', value=password)
    return browser.call('submit', sel='#login')


def test_non_admin_refused(srv, browser):
    r = browser_login(browser, srv, 'bob@' + HOST, srv.password('bob'))
    assert r['status'] == 403
    assert 'may not administer' in browser.text('#message')
    browser.call('screenshot', name='01-non-admin-refused')
    # no session: the pages still ask for a login
    browser.call('open', url=base(srv) + '/admin/users')
    assert browser.call('count', sel='#login')['n'] == 1


def test_wrong_password_refused(srv, browser):
    r = browser_login(browser, srv, 'alice@' + HOST, 'not-her-password')
    assert r['status'] == 403
    assert 'Wrong JID or password' in browser.text('#message')
    assert browser.call('count', sel='#logout')['n'] == 0


def test_admin_manages_a_user(srv, browser, run):
    r = browser_login(browser, srv, 'alice@' + HOST, srv.password('alice'))
    assert r['status'] == 200 and r['url'].endswith('/admin/'), r
    hosts = browser.text('#hosts')
    assert HOST in hosts and OTHER in hosts
    assert 'status: running' in browser.text('main')
    browser.call('screenshot', name='02-dashboard')
    cookies = {c['name']: c for c in browser.call('cookies')['cookies']}
    session = cookies['parley_admin']
    assert session['httpOnly'] and session['secure'] and session['sameSite'] == 'Strict'
    assert session['path'] == '/admin/'

    # create dave
    users_url = base(srv) + '/admin/users?host=' + HOST
    browser.call('open', url=users_url)
    form = 'form[data-cmd="register"]'
    browser.call('fill', sel=form + ' input[name="a1"]', value='dave')
    browser.call('fill', sel=form + ' input[name="a3"]', value='dave-pw1')
    r = browser.call('submit', sel='#create')
    assert r['status'] == 200
    assert browser.call('count', sel='#result[data-code="0"]')['n'] == 1, browser.text('main')
    assert 'dave@%s registered' % HOST in browser.text('#result')
    assert 'dave-pw1' not in browser.text('main')
    browser.call('screenshot', name='03-user-created')
    assert srv.ctl('user-exists', 'dave', HOST).returncode == 0

    # dave logs in with slixmpp and shows up online
    c = run(login(srv, 'dave', password='dave-pw1', resource='web'))
    gone = run_coroutine_future(c)
    row = 'tr[data-user="dave@%s"]' % HOST
    sessions = browser.wait_text(users_url + '&q=dave', row + ' .sessions',
                                 lambda t: t is not None and 'dave@%s/web' % HOST in t)
    assert 'dave@%s/web' % HOST in sessions
    assert browser.call('count', sel='tr[data-user]')['n'] == 1  # the search keeps dave only
    browser.call('screenshot', name='04-user-online')
    online = browser.wait_text(base(srv) + '/admin/', '#hosts', lambda t: t is not None)
    assert re.search(r'%s\s+5\s+1' % re.escape(HOST), online), online

    # kick the session: the client is disconnected
    browser.call('open', url=users_url + '&q=dave')
    r = browser.call('submit', sel=row + ' form[data-cmd="kick-session"] button')
    assert r['status'] == 200
    assert browser.call('count', sel='#result[data-code="0"]')['n'] == 1, browser.text('main')
    run(gone, timeout=15)
    sessions = browser.wait_text(users_url + '&q=dave', row + ' .sessions',
                                 lambda t: t is not None and 'dave@' not in t)
    assert 'dave@' not in sessions
    browser.call('screenshot', name='05-user-kicked')

    # a new password: the old one fails, the new one works
    browser.call('fill', sel=row + ' form[data-cmd="passwd"] input[name="a3"]', value='dave-pw2')
    r = browser.call('submit', sel=row + ' form[data-cmd="passwd"] button')
    assert r['status'] == 200
    assert browser.call('count', sel='#result[data-code="0"]')['n'] == 1, browser.text('main')
    assert 'dave-pw2' not in browser.text('main')
    browser.call('screenshot', name='06-password-changed')
    with pytest.raises(LoginFailed):
        run(login(srv, 'dave', password='dave-pw1', timeout=10))
    c = run(login(srv, 'dave', password='dave-pw2'))
    run(logout(c))

    assert browser.call('violations')['messages'] == []


def run_coroutine_future(client):
    """A future done when the slixmpp client is disconnected."""
    import asyncio
    fut = asyncio.get_event_loop().create_future()
    client.add_event_handler('disconnected', lambda e: fut.done() or fut.set_result(True))
    return fut


def test_forged_csrf_refused(srv, browser):
    users_url = base(srv) + '/admin/users?host=' + HOST
    for i, token in enumerate(('0' * 32, '')):
        browser.call('open', url=users_url)
        assert browser.call('count', sel='#logout')['n'] == 1  # still logged in
        form = 'form[data-cmd="register"]'
        browser.call('setvalue', sel=form + ' input[name="csrf"]', value=token)
        browser.call('fill', sel=form + ' input[name="a1"]', value='mallory')
        browser.call('fill', sel=form + ' input[name="a3"]', value='mallory-pw')
        r = browser.call('submit', sel='#create')
        assert r['status'] == 403
        assert 'security token' in browser.text('#message')
        browser.call('screenshot', name='07-forged-csrf-%d' % i)
    assert srv.ctl('user-exists', 'mallory', HOST).returncode != 0
    assert find_lines(r'web admin: POST /admin/run by alice@%s from 127\.0\.0\.1 with a missing or '
                      r'wrong CSRF token; refused' % re.escape(HOST), srv.log())


def test_phone_sized_screen(srv, browser):
    browser.call('viewport', width=390, height=844)
    try:
        for page in ('/admin/', '/admin/users?host=' + HOST, '/admin/announce'):
            browser.call('open', url=base(srv) + page)
            assert browser.call('count', sel='#logout')['n'] == 1
            lay = browser.call('layout')
            assert lay['scrollWidth'] <= lay['innerWidth'], (page, lay)
        browser.call('screenshot', name='08-phone-announce')
    finally:
        browser.call('viewport', width=1280, height=800)


def test_roster_and_offline_queue_pages(srv, browser):
    # bob's roster, set by a real client, and a message waiting for him
    with RawClient(srv.port) as c:
        c.login('bob', srv.password('bob'))
        r = c.iq('set', "<query xmlns='jabber:iq:roster'><item jid='erin@%s' name='Erin E.'>"
                        "<group>Team</group></item></query>" % HOST)
        assert r.get('type') == 'result'
    r = srv.ctl('send-message', 'alice@' + HOST, 'bob@' + HOST, 'waiting for <bob>')
    assert r.returncode == 0, r.stderr
    browser.call('open', url=base(srv) + '/admin/users?host=' + HOST)
    r = browser.call('submit', sel='tr[data-user="bob@%s"] a.user' % HOST)
    assert r['status'] == 200 and '/admin/user?jid=bob%40' + HOST in r['url'], r
    roster = browser.text('#roster')
    assert 'erin@' + HOST in roster and 'Erin E.' in roster and 'Team' in roster, roster
    offline = browser.text('#offline')
    assert 'waiting for <bob>' in offline and 'alice@' + HOST in offline, offline
    browser.call('screenshot', name='09-roster-and-offline')
    # an account with neither
    browser.call('open', url=base(srv) + '/admin/user?jid=erin%40' + HOST)
    assert browser.call('count', sel='#roster-empty')['n'] == 1
    assert browser.call('count', sel='#offline-empty')['n'] == 1
    # and one that does not exist: the command's error, nothing else
    browser.call('open', url=base(srv) + '/admin/user?jid=nobody%40' + HOST)
    assert 'no such user nobody@' + HOST in browser.text('main')
    assert browser.call('violations')['messages'] == []


def test_users_are_listed_by_pages(srv, browser):
    for i in range(101):
        srv.register('pg%03d' % i, HOST, 'pw')
    url = base(srv) + '/admin/users?host=' + HOST
    browser.call('open', url=url)
    first = browser.call('count', sel='tr[data-user]')['n']
    assert first == 100
    r = browser.call('submit', sel='#next-page')
    assert r['status'] == 200
    rest = browser.call('count', sel='tr[data-user]')['n']
    total = int(srv.ctl('registered-users-count', HOST).stdout)
    assert first + rest == total and browser.call('count', sel='#next-page')['n'] == 0
    assert browser.call('count', sel='#first-page')['n'] == 1
    # the search looks through every account, not the page shown
    browser.call('open', url=url)
    browser.call('fill', sel='#search', value='pg10')
    browser.call('press', sel='#search', key='Enter')
    rows = browser.wait_text(url + '&q=pg10', '#users', lambda t: t is not None)
    assert browser.call('count', sel='tr[data-user]')['n'] == 1 and 'pg100@' + HOST in rows, rows


def test_page_in_the_browsers_language(srv, browser):
    browser.call('headers', headers={'Accept-Language': 'de-DE,de;q=0.9,en;q=0.5'})
    try:
        browser.call('open', url=base(srv) + '/admin/')
        assert browser.call('count', sel='html[lang="de"]')['n'] == 1
        nav = browser.text('nav')
        assert 'Übersicht' in nav and 'Benutzer' in nav and 'Abmelden' in nav, nav
        assert 'Registriert' in browser.text('#hosts')
        browser.call('open', url=base(srv) + '/admin/user?jid=bob%40' + HOST)
        assert 'Kontaktliste' in browser.text('main') and 'Offline-Nachrichten' in browser.text('main')
        browser.call('screenshot', name='10-german')
        browser.call('headers', headers={'Accept-Language': 'fr, en;q=0.8'})
        browser.call('open', url=base(srv) + '/admin/')
        assert browser.call('count', sel='html[lang="en"]')['n'] == 1
        assert 'Dashboard' in browser.text('nav')
    finally:
        browser.call('headers', headers={})


def test_logout_ends_the_session(srv, browser):
    browser.call('open', url=base(srv) + '/admin/')
    r = browser.call('submit', sel='#logout')
    assert r['status'] == 200
    assert browser.call('count', sel='#login')['n'] == 1
    browser.call('open', url=base(srv) + '/admin/users')
    assert browser.call('count', sel='#login')['n'] == 1
    assert browser.call('violations')['messages'] == []


# ---- without a browser ---------------------------------------------------------------

def request(srv, method, path, form=None, cookie=None, tls=False, headers=None):
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection('127.0.0.1', srv.https_port, timeout=30, context=ctx)
    else:
        conn = http.client.HTTPConnection('127.0.0.1', srv.http_port, timeout=30)
    h = {'Connection': 'close'}
    h.update(headers or {})
    body = None
    if cookie:
        h['Cookie'] = cookie
    if form is not None:
        body = urllib.parse.urlencode(form)
        h['Content-Type'] = 'application/x-www-form-urlencoded'
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read().decode()
    finally:
        conn.close()


def login_form(srv, tls=False):
    """(cookie, token) of a fresh login page."""
    status, headers, body = request(srv, 'GET', '/admin/', tls=tls)
    assert status == 200
    cookie = [v for k, v in headers if k.lower() == 'set-cookie'][0]
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', body).group(1)
    return cookie, token


def web_login(srv, jid, password):
    cookie, token = login_form(srv)
    status, headers, body = request(srv, 'POST', '/admin/login',
                                    {'csrf': token, 'jid': jid, 'password': password},
                                    cookie=cookie.split(';')[0])
    return status, body


def test_headers_and_cookies(srv):
    status, headers, body = request(srv, 'GET', '/admin/')
    h = {k.lower(): v for k, v in headers}
    assert "default-src 'self'" in h['content-security-policy']
    assert 'frame-ancestors' in h['content-security-policy']
    assert h['cache-control'] == 'no-store'
    assert '<script' not in body and 'style=' not in body
    assert 'name="viewport"' in body
    cookie = h['set-cookie']
    assert 'HttpOnly' in cookie and 'SameSite=Strict' in cookie and 'Secure' not in cookie
    _, headers, _ = request(srv, 'GET', '/admin/', tls=True)
    cookie = [v for k, v in headers if k.lower() == 'set-cookie'][0]
    assert 'Secure' in cookie and 'HttpOnly' in cookie
    status, headers, body = request(srv, 'GET', '/admin/static/admin.css')
    assert status == 200 and 'text/css' in dict(headers)['Content-Type'] and '@media' in body
    # changes without a session, or a login without its form token: 403
    status, _, _ = request(srv, 'POST', '/admin/run', {'cmd': 'unregister', 'a1': 'bob', 'a2': HOST,
                                                       'back': '/admin/'})
    assert status == 403
    status, _, _ = request(srv, 'POST', '/admin/login', {'jid': 'alice@' + HOST,
                                                         'password': srv.password('alice')})
    assert status == 403
    assert srv.ctl('user-exists', 'bob', HOST).returncode == 0
    # a GET of a page without a session goes to the login
    status, headers, _ = request(srv, 'GET', '/admin/muc')
    assert status == 303 and dict(headers)['Location'] == '/admin/'


def session_of(srv, jid, password):
    """(cookie, csrf token) of a new session of jid over plain HTTP."""
    cookie, token = login_form(srv)
    status, headers, _ = request(srv, 'POST', '/admin/login', {'csrf': token, 'jid': jid, 'password': password},
                                 cookie=cookie.split(';')[0])
    assert status == 303
    session = [v for k, v in headers if k.lower() == 'set-cookie' and v.startswith('parley_admin=')][0]
    session = session.split(';')[0]
    status, _, body = request(srv, 'GET', '/admin/announce', cookie=session)
    assert status == 200
    return session, re.search(r'name="csrf" value="([0-9a-f]{32})"', body).group(1)


def admin_session(srv):
    """(cookie, csrf token) of a new session of alice over plain HTTP."""
    return session_of(srv, 'alice@' + HOST, srv.password('alice'))


def test_bad_forms_change_nothing(srv):
    session, csrf = admin_session(srv)
    # a command the pages do not offer (stop) is refused, parleyd runs on
    status, _, body = request(srv, 'POST', '/admin/run', {'csrf': csrf, 'cmd': 'stop', 'back': '/admin/'},
                              cookie=session)
    assert status == 400 and 'do not offer' in body
    assert find_lines(r'web admin: alice@%s from 127\.0\.0\.1 posted a form for a command the pages '
                      r'do not offer; refused' % re.escape(HOST), srv.log())
    # a page to go back to outside /admin/
    status, _, _ = request(srv, 'POST', '/admin/run', {'csrf': csrf, 'cmd': 'unregister', 'a1': 'bob',
                                                       'a2': HOST, 'back': 'https://evil.example/'},
                           cookie=session)
    assert status == 400
    # a token with bad percent-encoding is no token
    conn = http.client.HTTPConnection('127.0.0.1', srv.http_port, timeout=30)
    conn.request('POST', '/admin/run', body='csrf=%s%%zz&cmd=unregister&a1=bob&a2=%s&back=/admin/'
                 % (csrf, HOST), headers={'Cookie': session, 'Connection': 'close',
                                          'Content-Type': 'application/x-www-form-urlencoded'})
    assert conn.getresponse().status == 403
    conn.close()
    assert srv.ctl('user-exists', 'bob', HOST).returncode == 0
    # the command's own usage check answers a missing argument
    status, _, body = request(srv, 'POST', '/admin/run', {'csrf': csrf, 'cmd': 'passwd', 'a1': 'bob',
                                                          'back': '/admin/'}, cookie=session)
    assert status == 200 and 'data-code="2"' in body
    assert srv.running()
    # unknown pages, other methods
    status, _, _ = request(srv, 'GET', '/admin/nothing', cookie=session)
    assert status == 404
    status, _, _ = request(srv, 'DELETE', '/admin/', cookie=session)
    assert status == 405
    request(srv, 'POST', '/admin/logout', {'csrf': csrf}, cookie=session)
    status, _, _ = request(srv, 'GET', '/admin/users', cookie=session)
    assert status == 303


def plain_login(srv, user, password):
    c = RawClient(srv.port, host=HOST, timeout=10)
    try:
        c.open()
        c.starttls()
        el = c.auth_plain(user, password)
    finally:
        c.close()
    return el.tag == q(NS_SASL, 'success')


def test_failed_logins_share_the_c2s_counters(srv):
    for _ in range(3):
        status, body = web_login(srv, 'carol@' + HOST, 'wrong')
        assert status == 403 and 'Wrong JID or password' in body
    lines = find_lines(r'auth failed: ip=127\.0\.0\.1 user=carol@%s reason=bad-password$' % re.escape(HOST),
                       srv.log())
    assert len(lines) == 3
    # locked: the web login and a client login with the right password
    status, body = web_login(srv, 'carol@' + HOST, srv.password('carol'))
    assert status == 429 and 'Too many failed logins' in body
    assert not plain_login(srv, 'carol', srv.password('carol'))


def test_unknown_user_is_logged_as_for_clients(srv):
    status, body = web_login(srv, 'nobody@' + HOST, 'whatever')
    assert status == 403 and 'Wrong JID or password' in body
    assert find_lines(r'auth failed: ip=127\.0\.0\.1 user=nobody@%s reason=unknown-user$' % re.escape(HOST),
                      srv.log())


def test_login_page_language(srv):
    status, headers, body = request(srv, 'GET', '/admin/', headers={'Accept-Language': 'de'})
    h = {k.lower(): v for k, v in headers}
    assert status == 200 and h['content-language'] == 'de' and 'Accept-Language' in h['vary']
    assert '<html lang="de">' in body and 'Anmelden' in body and 'Passwort' in body
    status, headers, body = request(srv, 'GET', '/admin/', headers={'Accept-Language': 'xx;q=0.9, *'})
    assert status == 200 and '<html lang="en">' in body and 'Log in' in body
    status, headers, body = request(srv, 'GET', '/admin/')
    assert '<html lang="en">' in body and 'Password' in body


def test_temporary_failure_is_not_a_wrong_password(srv):
    status, body = web_login(srv, 'slow@' + OTHER, 'slow-secret')
    assert status == 503 and 'cannot answer now' in body
    assert not find_lines(r'auth failed: .*user=slow@', srv.log())


def test_sessions_end_with_the_admin(srv):
    """A session is only as good as its admin: dropped from the host's
    admins (and reloaded), or its account removed, the session ends."""
    assert srv.ctl('register', 'frank', HOST, 'frank-secret').returncode == 0
    text = srv.config.read_text()
    admins = 'admins: [alice@%s]' % HOST
    assert admins in text
    with_frank = text.replace(admins, 'admins: [alice@%s, frank@%s]' % (HOST, HOST), 1)

    def run(session, csrf, *args):
        form = {'csrf': csrf, 'back': '/admin/users'}
        form['cmd'] = args[0]
        form.update({'a%d' % i: a for i, a in enumerate(args[1:], 1)})
        status, _, _ = request(srv, 'POST', '/admin/run', form, cookie=session)
        return status

    try:
        srv.config.write_text(with_frank)
        assert srv.ctl('reload').returncode == 0
        session, csrf = session_of(srv, 'frank@' + HOST, 'frank-secret')
        assert run(session, csrf, 'register', 'grace', HOST, 'grace-secret') == 200
        assert srv.ctl('user-exists', 'grace', HOST).returncode == 0
        # no longer an admin: the next request finds the session gone
        srv.config.write_text(text)
        assert srv.ctl('reload').returncode == 0
        assert run(session, csrf, 'unregister', 'grace', HOST) == 403
        assert srv.ctl('user-exists', 'grace', HOST).returncode == 0
        status, headers, _ = request(srv, 'GET', '/admin/users', cookie=session)
        assert status == 303 and dict(headers)['Location'] == '/admin/'
        assert find_lines(r'web admin: session of frank@%s ended \(no longer an admin of %s\)'
                          % (re.escape(HOST), re.escape(HOST)), srv.log())
        # an admin whose account is removed: its sessions end with it
        srv.config.write_text(with_frank)
        assert srv.ctl('reload').returncode == 0
        session, csrf = session_of(srv, 'frank@' + HOST, 'frank-secret')
        assert srv.ctl('unregister', 'frank', HOST).returncode == 0
        assert run(session, csrf, 'unregister', 'grace', HOST) == 403
        assert srv.ctl('user-exists', 'grace', HOST).returncode == 0
        assert find_lines(r'web admin: session of frank@%s ended \(account removed\)' % re.escape(HOST),
                          srv.log())
    finally:
        srv.config.write_text(text)
        srv.ctl('reload')
        srv.ctl('unregister', 'grace', HOST)
