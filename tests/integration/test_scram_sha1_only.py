"""Accounts that have SCRAM-SHA-1 credentials only (every account imported
from ejabberd's SCRAM store or from Prosody): a SCRAM-SHA-256 or -512
login for them is <not-authorized/> after a challenge, like an unknown
user, logged as reason=no-credentials-for-mechanism; the limits count it
like an unknown user's failure (test_scram_declined_limits.py) and take
it back when the client falls back and logs in; SCRAM-SHA-1 and PLAIN
work on the same stream, and a PLAIN login adds the missing SHA-256 and
SHA-512 credentials."""
import base64
import hashlib

import pytest

import parleytest
from parleytest import HOST, NS_SASL, find_lines, q, tostr, unique
from scramclient import scram, tls_exporter
from test_scram_cb import client  # noqa: F401  (the fixture: a client after STARTTLS)
from test_scram_sha512 import _wait_log


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """The example configuration's limits: 20 failures per address and 10
    per account in 10 minutes."""
    srv = parleytest.Parleyd(
        tmp_path_factory.mktemp('sha1only'),
        global_auth='  max_failures_per_ip: 20\n  max_failures_per_user: 10\n  failure_window: 10m\n')
    srv.start_with_users()
    yield srv
    srv.finish()


def _sha1_only(server):
    """A fresh account left with its SCRAM-SHA-1 credentials only, as an
    import from ejabberd or Prosody stores it."""
    user = unique('imp')
    server.register(user, HOST, 'pencil-' + user)
    server.db_query('UPDATE users SET sha256_salt = NULL, sha256_iterations = NULL, '
                    'sha256_stored_key = NULL, sha256_server_key = NULL, sha512_salt = NULL, '
                    'sha512_iterations = NULL, sha512_stored_key = NULL, sha512_server_key = NULL '
                    'WHERE server_host = ? AND username = ?', (HOST, user))
    return user


def _creds(server, user):
    """(SHA-1 StoredKey, then the length of the SHA-256 and SHA-512 stored
    keys and their iteration counts, 0 where NULL: each database client
    prints NULL its own way)."""
    return server.db_query(
        'SELECT sha1_stored_key, COALESCE(LENGTH(sha256_stored_key), 0), '
        'COALESCE(LENGTH(sha512_stored_key), 0), COALESCE(sha256_iterations, 0), '
        'COALESCE(sha512_iterations, 0) FROM users WHERE server_host = ? AND username = ?',
        (HOST, user))[0]


def _declined(user, mech):
    return (r'auth declined: ip=127\.0\.0\.1 user=%s@%s mechanism=%s '
            r'reason=no-credentials-for-mechanism$' % (user, HOST.replace('.', r'\.'), mech))


@pytest.mark.parametrize('sasl2', [False, True])
@pytest.mark.parametrize('mech', ['SCRAM-SHA-256', 'SCRAM-SHA-512'])
def test_missing_hash_is_not_authorized_then_sha1_works(server, client, mech, sasl2):
    user = _sha1_only(server)
    pw = server.password(user)
    c = client()
    r = scram(c, user, pw, mech, 'n,,', sasl2=sasl2)
    # answered like an unknown user: a challenge, then <not-authorized/>
    assert r.server_first, 'no challenge: the answer tells the account apart from an unknown user'
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
    assert _wait_log(server, _declined(user, mech)), server.log()[-3000:]
    log = server.log()
    assert not find_lines(r'auth failed: .*user=%s@' % user, log), log[-3000:]
    assert not find_lines(r'reason=unknown-user', log), log[-3000:]
    # the same stream goes on with SCRAM-SHA-1
    r = scram(c, user, pw, 'SCRAM-SHA-1', 'n,,', sasl2=sasl2)
    assert r.ok, tostr(r.el)


def test_plus_variant_and_plain_on_the_same_stream(server, client):
    user = _sha1_only(server)
    pw = server.password(user)
    c = client()
    r = scram(c, user, pw, 'SCRAM-SHA-256-PLUS', 'p=tls-exporter,,', tls_exporter(c.sock))
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
    assert _wait_log(server, _declined(user, 'SCRAM-SHA-256-PLUS'))
    el = c.auth_plain(user, pw)
    assert el.tag == q(NS_SASL, 'success'), tostr(el)


def test_unknown_user_still_counts(server, client):
    """The same exchange for a user that does not exist is a failed login
    as before (the distinction is the server's alone)."""
    ghost = unique('ghost')
    c = client()
    r = scram(c, ghost, 'whatever', 'SCRAM-SHA-256', 'n,,')
    assert r.server_first and not r.ok and r.condition == ['not-authorized'], tostr(r.el)
    assert _wait_log(server, r'auth failed: ip=127\.0\.0\.1 user=%s@\S+ reason=unknown-user$' % ghost)


def test_an_office_behind_one_address_is_not_locked_out(server, client):
    """25 clients from one address (more than the 20 failures per address
    the limits allow), each for its own SHA-1-only account, try
    SCRAM-SHA-256 first and fall back to SCRAM-SHA-1 on the same stream:
    every declined attempt is counted and taken back at the login, so all
    of them and a login to another account afterwards get in."""
    users = [_sha1_only(server) for _ in range(25)]
    for i, user in enumerate(users):
        c = client()
        pw = server.password(user)
        r = scram(c, user, pw, 'SCRAM-SHA-256', 'n,,', sasl2=i % 2 == 1)
        assert r.server_first and not r.ok and r.condition == ['not-authorized'], (i, tostr(r.el))
        r = scram(c, user, pw, 'SCRAM-SHA-1', 'n,,', sasl2=i % 2 == 1)
        assert r.ok, (i, tostr(r.el))
        c.close()
    assert len(find_lines(r'reason=no-credentials-for-mechanism$', server.log())) >= 25
    log = server.log()
    assert not find_lines(r'reason=rate-limited', log), log[-3000:]
    c2 = client()
    el = c2.auth_plain('alice', server.password('alice'))
    assert el.tag == q(NS_SASL, 'success'), tostr(el)


def test_plain_login_adds_the_missing_credentials(server, client):
    user = _sha1_only(server)
    pw = server.password(user)
    before = _creds(server, user)
    assert before[1:] == (0, 0, 0, 0), before
    c = client()
    el = c.auth_plain(user, pw)
    assert el.tag == q(NS_SASL, 'success'), tostr(el)
    after = _creds(server, user)
    assert after[0] == before[0], 'the SHA-1 credentials changed'
    assert after[1] == 44 and after[2] == 88, after   # base64 of 32 and of 64 bytes
    assert after[3] == 4096 and after[4] == 4096, after              # auth.scram_iterations
    assert _wait_log(server, r'%s: the SCRAM credentials the account lacked were added' % user)
    for mech, sasl2 in (('SCRAM-SHA-256', False), ('SCRAM-SHA-512', True)):
        c = client()
        r = scram(c, user, pw, mech, 'n,,', sasl2=sasl2)
        assert r.ok, (mech, tostr(r.el))


def test_wrong_plain_password_adds_nothing(server, client):
    user = _sha1_only(server)
    c = client()
    el = c.auth_plain(user, 'not-' + server.password(user))
    assert el.tag == q(NS_SASL, 'failure'), tostr(el)
    after = _creds(server, user)
    assert after[1:] == (0, 0, 0, 0), after


def test_a_password_set_meanwhile_is_kept(server, client):
    """Credentials are added only where the account has none: an account
    whose password was set again keeps the new keys."""
    user = _sha1_only(server)
    r = server.ctl('passwd', user, HOST, 'pencil-new')
    assert r.returncode == 0, r.stderr
    keys = _creds(server, user)
    c = client()
    el = c.auth_plain(user, 'pencil-new')
    assert el.tag == q(NS_SASL, 'success'), tostr(el)
    assert _creds(server, user) == keys


# ---------------------------------------------------------------------------
# SASL upgrade tasks (XEP-0480) in SASL2
# ---------------------------------------------------------------------------

NS_SASL2 = 'urn:xmpp:sasl:2'
NS_UPGRADE = 'urn:xmpp:sasl:upgrade:0'
NS_SCRAM_UPGRADE = 'urn:xmpp:scram-upgrade:0'
ASK_BOTH = ("<upgrade xmlns='%s'>UPGR-SCRAM-SHA-256</upgrade>"
            "<upgrade xmlns='%s'>UPGR-SCRAM-SHA-512</upgrade>" % (NS_UPGRADE, NS_UPGRADE))


def _task(el):
    assert el.tag == q(NS_SASL2, 'continue'), tostr(el)
    return [t.text for t in el.find(q(NS_SASL2, 'tasks')).findall(q(NS_SASL2, 'task'))]


def _do_task(c, task, password, hashname):
    """<next/>, the salt, SaltedPassword back; returns the server's next
    element (<continue/> or <success/>)."""
    c.send("<next xmlns='%s' task='%s'/>" % (NS_SASL2, task))
    td = c.wait_for(lambda e: e.tag in (q(NS_SASL2, 'task-data'), q(NS_SASL2, 'failure')),
                    what='task data')
    salt = td.find(q(NS_SCRAM_UPGRADE, 'salt'))
    assert salt is not None, tostr(td)
    salted = hashlib.pbkdf2_hmac(hashname, password.encode(), base64.b64decode(salt.text),
                                 int(salt.get('iterations')))
    c.send("<task-data xmlns='%s'><hash xmlns='%s'>%s</hash></task-data>"
           % (NS_SASL2, NS_SCRAM_UPGRADE, base64.b64encode(salted).decode()))
    return c.wait_for(lambda e: e.tag in (q(NS_SASL2, 'continue'), q(NS_SASL2, 'success'),
                                          q(NS_SASL2, 'failure')), what='after the task')


def _login_asking(server, client, extra=ASK_BOTH):
    """A SASL2 SCRAM-SHA-1 login of a new SHA-1-only account that asks for
    upgrade tasks: (user, password, client, the tasks of <continue/>)."""
    user = _sha1_only(server)
    pw = server.password(user)
    c = client()
    r = scram(c, user, pw, 'SCRAM-SHA-1', 'n,,', sasl2=True, extra=extra)
    return user, pw, c, _task(r.el)


def test_upgrade_tasks_are_offered(client):
    c = client()
    a = c.features.find(q(NS_SASL2, 'authentication'))
    assert sorted(u.text for u in a.findall(q(NS_UPGRADE, 'upgrade'))) == \
        ['UPGR-SCRAM-SHA-256', 'UPGR-SCRAM-SHA-512'], tostr(a)


def test_upgrade_tasks_add_sha256_and_sha512(server, client):
    user, pw, c, tasks = _login_asking(server, client)
    assert tasks == ['UPGR-SCRAM-SHA-256']
    el = _do_task(c, 'UPGR-SCRAM-SHA-256', pw, 'sha256')
    assert _task(el) == ['UPGR-SCRAM-SHA-512']
    el = _do_task(c, 'UPGR-SCRAM-SHA-512', pw, 'sha512')
    assert el.tag == q(NS_SASL2, 'success'), tostr(el)
    assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == '%s@%s' % (user, HOST)
    assert _wait_log(server, r'%s: SCRAM-SHA-512 credentials added by the client' % user)
    after = _creds(server, user)
    assert after[1] == 44 and after[2] == 88, after
    for mech in ('SCRAM-SHA-256', 'SCRAM-SHA-512'):
        r = scram(client(), user, pw, mech, 'n,,', sasl2=True)
        assert r.ok, (mech, tostr(r.el))


def test_no_task_for_an_account_that_has_the_keys(server, client):
    c = client()
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-256', 'n,,', sasl2=True, extra=ASK_BOTH)
    assert r.ok, tostr(r.el)


def test_only_missing_hashes_become_tasks(server, client):
    user, pw, c, tasks = _login_asking(
        server, client, "<upgrade xmlns='%s'>UPGR-SCRAM-SHA-512</upgrade>" % NS_UPGRADE)
    assert tasks == ['UPGR-SCRAM-SHA-512']
    el = _do_task(c, 'UPGR-SCRAM-SHA-512', pw, 'sha512')
    assert el.tag == q(NS_SASL2, 'success'), tostr(el)
    after = _creds(server, user)
    assert after[1] == 0 and after[2] == 88, after


def test_malformed_task_data_fails_the_login(server, client):
    user, pw, c, tasks = _login_asking(server, client)
    assert tasks == ['UPGR-SCRAM-SHA-256']
    c.send("<next xmlns='%s' task='UPGR-SCRAM-SHA-256'/>" % NS_SASL2)
    c.wait_for(lambda e: e.tag == q(NS_SASL2, 'task-data'), what='task data')
    c.send("<task-data xmlns='%s'><hash xmlns='%s'>%s</hash></task-data>"
           % (NS_SASL2, NS_SCRAM_UPGRADE, base64.b64encode(b'short').decode()))
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL2, 'failure'), q(NS_SASL2, 'success')))
    assert el.tag == q(NS_SASL2, 'failure') and el.find(q(NS_SASL, 'malformed-request')) is not None, \
        tostr(el)
    assert _creds(server, user)[1] == 0
    # the stream may log in again, without tasks
    r = scram(c, user, pw, 'SCRAM-SHA-1', 'n,,', sasl2=True)
    assert r.ok, tostr(r.el)


def test_no_tasks_after_a_fast_token_login(server, client):
    """A FAST token (XEP-0484) proves no password: a token login that asks
    for upgrade tasks gets none, and no credentials are added."""
    from test_fast import NS_FAST, _ht, _request, _ua
    user = _sha1_only(server)
    pw = server.password(user)
    c = client()
    r = scram(c, user, pw, 'SCRAM-SHA-1', 'n,,', sasl2=True, extra=_ua('ua-' + user) + _request())
    assert r.ok, tostr(r.el)
    token = r.el.find(q(NS_FAST, 'token')).get('token')
    el = _ht(client(), user, token, extra=_ua('ua-' + user) + ASK_BOTH)
    assert el.tag == q(NS_SASL2, 'success'), tostr(el)
    after = _creds(server, user)
    assert after[1:] == (0, 0, 0, 0), after


def test_tasks_then_inline_resumption(server):
    """Upgrade tasks before a resumption inline in the same <authenticate/>
    (XEP-0198 in SASL2): <success/> after the last task carries <resumed/>,
    and the resumed session works."""
    from parleytest import NS_PING
    from test_sasl2_sm import NS_BIND2, Sasl2Client, resume_el
    from test_sm import NS_SM, sm_tag
    user = _sha1_only(server)
    pw = server.password(user)
    a = Sasl2Client(server)
    try:
        el = a.start().authenticate(
            user, "<bind xmlns='%s'><tag>phone</tag><enable xmlns='%s' resume='true'/></bind>"
            % (NS_BIND2, NS_SM), password=pw, mech='SCRAM-SHA-1')
        enabled = el.find('%s/%s' % (q(NS_BIND2, 'bound'), sm_tag('enabled')))
        assert enabled is not None, tostr(el)
        with Sasl2Client(server) as c:
            c.start()
            r = scram(c, user, pw, 'SCRAM-SHA-1', 'n,,', check_ssdp=False, sasl2=True,
                      extra=resume_el(enabled.get('id'), 0) + ASK_BOTH)
            assert _task(r.el) == ['UPGR-SCRAM-SHA-256']
            assert _task(_do_task(c, 'UPGR-SCRAM-SHA-256', pw, 'sha256')) == ['UPGR-SCRAM-SHA-512']
            el = _do_task(c, 'UPGR-SCRAM-SHA-512', pw, 'sha512')
            assert el.tag == q(NS_SASL2, 'success'), tostr(el)
            assert el.find(sm_tag('resumed')) is not None, tostr(el)
            assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == a.jid
            assert a.stream_error() == 'conflict'
            assert c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST).get('type') == 'result'
    finally:
        a.close()
    assert _creds(server, user)[1:3] == (44, 88)


def slixmpp_login(server, run, user):
    """Log in to user with slixmpp choosing its mechanisms itself; returns
    the mechanism that worked and the ones that failed before it, in
    order (slixmpp goes on to its next mechanism after a failure)."""
    import asyncio

    async def go():
        c = parleytest.make_client('%s@%s' % (user, HOST), server.password(user))
        done = asyncio.get_running_loop().create_future()
        tried = []

        def finish(result=None, exc=None):
            if not done.done():
                done.set_exception(exc) if exc is not None else done.set_result(result)
        c.add_event_handler('session_start', lambda e: finish(True))
        c.add_event_handler('failed_auth', lambda e: tried.append(c['feature_mechanisms'].mech.name))
        c.add_event_handler('failed_all_auth', lambda e: finish(exc=AssertionError('all failed: %s' % tried)))
        c.add_event_handler('disconnected', lambda e: finish(exc=AssertionError('disconnected: %s' % tried)))
        c.connect(address=('127.0.0.1', server.port), force_starttls=True)
        try:
            await asyncio.wait_for(done, 20)
            assert c.boundjid.bare == '%s@%s' % (user, HOST)
            return c['feature_mechanisms'].mech.name, tried
        finally:
            c.abort()
    return run(go())


def test_slixmpp_falls_back_to_sha1(server, run):
    """slixmpp (on TLS 1.3: the -PLUS variants are refused for want of
    tls-exporter support) tries SCRAM-SHA-512 and SCRAM-SHA-256, which are
    declined, and logs in with SCRAM-SHA-1; the two declined attempts are
    not left on the address's count."""
    user = _sha1_only(server)
    mech, tried = slixmpp_login(server, run, user)
    assert mech == 'SCRAM-SHA-1', (mech, tried)
    assert [m for m in tried if not m.endswith('-PLUS')] == ['SCRAM-SHA-512', 'SCRAM-SHA-256'], tried
    assert _wait_log(server, _declined(user, 'SCRAM-SHA-256'))
