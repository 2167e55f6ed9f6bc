"""The ldap auth method against real slapd servers started here
(tests/ldap/slapd.sh): passwords, unknown and disabled users, filter
injection, StartTLS, failover between two servers, outages reported as
temporary failures, recovery, a chain [ldap, internal], parleyctl status.

Hosts of the parleyd used here (besides test.local with internal accounts):
  ldap.local     methods [ldap]; two servers, uids [uid, mail], a filter that
                 leaves out employeeType=disabled
  chain.local    methods [ldap, internal]; in-band registration open
  tls.local      methods [ldap]; StartTLS required, the test CA
  badtls.local   methods [ldap]; StartTLS required, the system's CAs (which do
                 not sign the test certificate): every check fails
  compare.local  methods [ldap]; method compare
  vcard.local    methods [ldap]; vCards from the directory (cache_ttl 3s)
"""
import os
import shutil
import subprocess
import time

import pytest

import parleytest
from parleytest import (HOST, NS_REGISTER, NS_SASL, RawClient, free_port, login, logout, q,
                        register_in_band, stanza_error, tostr, unique)

SLAPD_SH = str(parleytest.srcdir() / 'tests' / 'ldap' / 'slapd.sh')
SUFFIX = 'dc=parley,dc=test'


def ldap_built():
    mk = parleytest.builddir() / 'Makefile'
    try:
        return 'HAVE_BACKEND_LDAP=1' in mk.read_text()
    except FileNotFoundError:
        return True


pytestmark = pytest.mark.skipif(not ldap_built(), reason='parleyd built --without-ldap')


class Slapd:
    def __init__(self, path):
        self.dir = str(path)
        self.port = free_port()

    def sh(self, *args):
        r = subprocess.run(['bash', SLAPD_SH] + list(args), capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError('slapd.sh %s: %s%s' % (' '.join(args), r.stdout, r.stderr))

    def start(self):
        self.sh('start', self.dir, str(self.port))

    def stop(self):
        self.sh('stop', self.dir)

    def kill(self):
        self.sh('kill', self.dir)

    def restart(self):
        self.sh('restart', self.dir)

    @property
    def uri(self):
        return 'ldap://127.0.0.1:%d' % self.port


def ldap_block(servers, extra=''):
    return ("{ servers: [%s], base: 'ou=people,%s', uids: [uid, mail], "
            "filter: '(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))', "
            "bind_dn: 'cn=parley,ou=services,%s', password_file: ldap-service.pw, "
            "network_timeout: 2s, timeout: 3s, retry_interval: 1s, pool_size: 2%s }"
            % (', '.join(servers), SUFFIX, SUFFIX, extra))


def start_slapd(tmp_path_factory, name, stop_first=()):
    """A slapd of its own, started (the servers in stop_first are stopped
    when it cannot start); fails the test when slapd is not installed."""
    if shutil.which('slapd') is None and not os.path.exists('/usr/sbin/slapd'):
        pytest.fail('slapd is not installed (scripts/deps.sh test installs slapd and ldap-utils)')
    s = Slapd(tmp_path_factory.mktemp(name))
    try:
        s.start()
    except Exception:
        for other in stop_first:
            other.stop()
        raise
    return s


def serve_with_slapd(tmp_path_factory, name, hosts, slapds, setup=None):
    """The body of a module fixture (yield from it): parleyd with the extra
    hosts and the service account's password file, started, then setup(srv)
    when given; srv.slapd is the slapd (or the tuple of them).  The slapd
    servers are stopped with parleyd, or at once when the start fails."""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp(name), extra_hosts=hosts)
    (srv.dir / 'ldap-service.pw').write_text('parley-secret\n')
    try:
        srv.start()
        if setup is not None:
            setup(srv)
    except Exception:
        srv.stop()
        for s in slapds:
            s.stop()
        raise
    srv.slapd = slapds[0] if len(slapds) == 1 else tuple(slapds)
    try:
        yield srv
    finally:
        try:
            srv.finish()
        finally:
            for s in slapds:
                s.stop()


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    s1 = start_slapd(tmp_path_factory, 'slapd1')
    s2 = start_slapd(tmp_path_factory, 'slapd2', stop_first=(s1,))
    both = [s1.uri, s2.uri]
    hosts = f"""\
  ldap.local:
    auth: {{ methods: [ldap], ldap: {ldap_block(both, ", allow_password_change: true")} }}
  chain.local:
    auth: {{ methods: [ldap, internal], ldap: {ldap_block(both)} }}
    modules:
      register: {{ open: true, throttle: 0 }}
  tls.local:
    auth: {{ methods: [ldap], ldap: {ldap_block([s1.uri], ", starttls: required, tls_ca_file: '%s/ca.pem'" % s1.dir)} }}
  badtls.local:
    auth: {{ methods: [ldap], ldap: {ldap_block([s1.uri], ", starttls: required")} }}
  compare.local:
    auth: {{ methods: [ldap], ldap: {ldap_block([s1.uri], ', method: compare')} }}
  vcard.local:
    auth: {{ methods: [ldap], ldap: {ldap_block(both)} }}
    modules:
      vcard: {{ source: ldap, cache_ttl: 3s, ldap_nickname: displayName }}
"""

    def setup(srv):
        srv.create_users()
        srv.register('ivy', 'chain.local', 'ivy-secret')
    yield from serve_with_slapd(tmp_path_factory, 'parley-ldap', hosts, (s1, s2), setup)


def plain(server, user, password, host='ldap.local'):
    """SASL PLAIN over STARTTLS with a raw client; returns ('success', None)
    or ('failure', condition)."""
    c = RawClient(server.port, host=host, timeout=15)
    try:
        c.open()
        c.starttls()
        assert 'PLAIN' in c.mechanisms(), tostr(c.features)
        el = c.auth_plain(user, password)
        if el.tag == q(NS_SASL, 'success'):
            return ('success', None)
        cond = [parleytest.local(ch.tag) for ch in el if parleytest.local(ch.tag) != 'text']
        return ('failure', cond[0] if cond else None)
    finally:
        c.close()


def wait_plain(server, user, password, want, host='ldap.local', timeout=20):
    """Retry until PLAIN gives want (servers come back, intervals pass)."""
    deadline = time.monotonic() + timeout
    while True:
        got = plain(server, user, password, host)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def test_mechanisms_offer_plain_not_scram(env):
    c = RawClient(env.port, host='ldap.local')
    try:
        c.open()
        assert c.mechanisms() == [], 'SASL offered before TLS: %s' % tostr(c.features)
        c.starttls()
        assert c.mechanisms() == ['PLAIN'], tostr(c.features)
    finally:
        c.close()


def test_good_password(env, run):
    assert plain(env, 'ann', 'ann-secret') == ('success', None)

    async def go():
        c = await login(env, 'ben', host='ldap.local', password='ben-secret', mech='PLAIN')
        assert c.boundjid.bare == 'ben@ldap.local'
        await logout(c)
    run(go())


def test_second_uid_attribute(env):
    """uids: [uid, mail]: ben's mail value 'benny' names him too."""
    assert plain(env, 'benny', 'ben-secret') == ('success', None)
    assert plain(env, 'benny', 'ann-secret') == ('failure', 'not-authorized')


@pytest.mark.parametrize('user,password', [
    ('ann', 'wrong'),
    ('ann', 'ben-secret'),
    ('ann', 'ann-secret '),
    ('ann', 'ann-secre'),
])
def test_bad_password(env, user, password):
    assert plain(env, user, password) == ('failure', 'not-authorized')


def test_empty_password_never_binds(env):
    """A simple bind with a DN and no password is an unauthenticated bind,
    which the test slapd accepts (allow bind_anon_dn): it must never be a
    login, on any host, in the chain too."""
    unauth = subprocess.run(['ldapwhoami', '-x', '-H', env.slapd[0].uri, '-D',
                             'uid=ann,ou=people,' + SUFFIX, '-w', ''],
                            capture_output=True, text=True, timeout=30)
    assert unauth.returncode == 0, 'the test slapd should accept unauthenticated binds'
    for host in ('ldap.local', 'chain.local', 'compare.local', 'tls.local'):
        assert plain(env, 'ann', '', host=host) == ('failure', 'not-authorized'), host


def test_parleyctl_user_exists_and_check_password(env):
    """The control commands go through the same auth chain."""
    assert env.ctl('user-exists', 'ann', 'ldap.local').returncode == 0
    assert env.ctl('user-exists', 'k+r,o(o)*', 'ldap.local').returncode == 0
    assert env.ctl('user-exists', 'nobody', 'ldap.local').returncode == 1
    assert env.ctl('user-exists', 'dan', 'ldap.local').returncode == 1      # filtered out
    assert env.ctl('user-exists', '*', 'ldap.local').returncode == 1
    assert env.ctl('check-password', 'ann', 'ldap.local', input='ann-secret\n').returncode == 0
    assert env.ctl('check-password', 'ann', 'ldap.local', input='wrong\n').returncode == 1


def test_unknown_user(env):
    assert plain(env, 'nobody', 'whatever') == ('failure', 'not-authorized')


def test_disabled_user_refused(env):
    """dan's password is right, but the filter leaves disabled users out."""
    assert plain(env, 'dan', 'dan-secret') == ('failure', 'not-authorized')


def test_name_with_filter_and_dn_specials(env):
    """uid 'k+r,o(o)*': escaped in the filter (RFC 4515), its DN taken as the
    server wrote it (RFC 4514)."""
    assert plain(env, 'k+r,o(o)*', 'odd-secret') == ('success', None)
    assert plain(env, 'k+r,o(o)*', 'wrong') == ('failure', 'not-authorized')


@pytest.mark.parametrize('user', ['*', 'a*', 'a)(uid=*', '*)(uid=*))(|(uid=*', '\\2a', 'ann)(|(uid=*',
                                  'k+r,o(o)\\2a', 'ann\\00'])
def test_filter_injection_fails(env, user):
    """Names that would widen an unescaped filter; with the password of a
    real user they must not log in."""
    for pw in ('ann-secret', 'ben-secret', 'odd-secret'):
        assert plain(env, user, pw) != ('success', None), (user, pw)


def test_ambiguous_name_refused_and_logged(env):
    """'twin' is the uid of one entry and the mail of another: an error of
    the directory (AUTH_ERROR, answered like any server-side error), never a
    login and never "wrong password"."""
    assert plain(env, 'twin', 'twin-secret') == ('failure', 'temporary-auth-failure')
    assert 'more than one entry' in env.log()


def test_starttls_to_ldap(env):
    assert plain(env, 'ann', 'ann-secret', host='tls.local') == ('success', None)
    assert plain(env, 'ann', 'nope', host='tls.local') == ('failure', 'not-authorized')


def test_starttls_unverified_is_temporary_failure(env):
    """A server certificate that cannot be verified: no check at all, and
    never 'bad password'."""
    assert plain(env, 'ann', 'ann-secret', host='badtls.local') == \
        ('failure', 'temporary-auth-failure')
    assert plain(env, 'ann', 'wrong', host='badtls.local') == \
        ('failure', 'temporary-auth-failure')


def test_compare_method(env):
    """compare works where userPassword is kept as written (cleo); a hashed
    value never compares equal (ann): the documented limit."""
    assert plain(env, 'cleo', 'cleo-secret', host='compare.local') == ('success', None)
    assert plain(env, 'cleo', 'wrong', host='compare.local') == ('failure', 'not-authorized')
    assert plain(env, 'ann', 'ann-secret', host='compare.local') == ('failure', 'not-authorized')


def test_chain_ldap_then_internal(env, run):
    assert plain(env, 'ann', 'ann-secret', host='chain.local') == ('success', None)
    assert plain(env, 'ivy', 'ivy-secret', host='chain.local') == ('success', None)
    assert plain(env, 'ivy', 'wrong', host='chain.local') == ('failure', 'not-authorized')
    assert plain(env, 'ann', 'wrong', host='chain.local') == ('failure', 'not-authorized')

    async def go():
        c = await login(env, 'ivy', host='chain.local', password='ivy-secret', mech='SCRAM-SHA-256')
        await logout(c)
    run(go())


def change_password(server, host, user, password, new):
    """A logged-in user's XEP-0077 password change; the answer."""
    c = RawClient(server.port, host=host, timeout=15)
    try:
        c.login(user, password, presence=False)
        return c.iq('set', "<query xmlns='%s'><username>%s</username><password>%s</password></query>"
                    % (NS_REGISTER, user, new))
    finally:
        c.close()


def test_chain_registration_of_a_directory_name_is_a_conflict(env):
    """The name of a directory user is taken on the chain: registering it
    (in-band or parleyctl) would make an internal account whose password
    opens the directory user's JID."""
    el = register_in_band(env, 'ann', 'mallory-pw', 'chain.local')
    assert stanza_error(el) == 'conflict', tostr(el)
    r = env.ctl('register', 'ann', 'chain.local', 'mallory-pw')
    assert r.returncode == 1 and 'exists' in r.stderr, (r.returncode, r.stderr)
    # benny is ben's second uid (mail)
    assert stanza_error(register_in_band(env, 'benny', 'mallory-pw', 'chain.local')) == 'conflict'
    assert plain(env, 'ann', 'mallory-pw', host='chain.local') == ('failure', 'not-authorized')
    assert plain(env, 'benny', 'mallory-pw', host='chain.local') == ('failure', 'not-authorized')
    assert plain(env, 'ann', 'ann-secret', host='chain.local') == ('success', None)
    # a name nobody has still becomes an internal account
    user = unique('newbie')
    el = register_in_band(env, user, 'newbie-pw', 'chain.local')
    assert el.get('type') == 'result', tostr(el)
    assert plain(env, user, 'newbie-pw', host='chain.local') == ('success', None)
    assert stanza_error(register_in_band(env, user, 'other-pw', 'chain.local')) == 'conflict'


def test_chain_password_change(env):
    """Without allow_password_change, a directory user is refused as on an
    ldap-only host (<not-allowed/>), not told that the account does not
    exist; an internal user's change goes to the internal method."""
    el = change_password(env, 'chain.local', 'ann', 'ann-secret', 'ann-new-secret')
    assert stanza_error(el) == 'not-allowed', tostr(el)
    assert plain(env, 'ann', 'ann-secret', host='chain.local') == ('success', None)
    r = env.ctl('passwd', 'ann', 'chain.local', 'ann-new-secret')
    assert r.returncode == 1 and 'not supported' in r.stderr, (r.returncode, r.stderr)
    user = unique('pw')
    env.register(user, 'chain.local', 'first-pw')
    el = change_password(env, 'chain.local', user, 'first-pw', 'second-pw')
    assert el.get('type') == 'result', tostr(el)
    assert plain(env, user, 'second-pw', host='chain.local') == ('success', None)
    assert plain(env, user, 'first-pw', host='chain.local') == ('failure', 'not-authorized')


def test_status_shows_servers(env):
    r = env.ctl('status')
    assert r.returncode == 0, r.stderr
    s1, s2 = env.slapd
    assert 'ldap auth ldap.local' in r.stdout, r.stdout
    assert '%s: up' % s1.uri in r.stdout, r.stdout


def test_failover_to_second_server(env):
    s1, s2 = env.slapd
    s1.stop()
    try:
        assert wait_plain(env, 'ann', 'ann-secret', ('success', None)) == ('success', None)
        assert plain(env, 'ann', 'wrong') == ('failure', 'not-authorized')
        out = env.ctl('status').stdout
        assert '%s: down' % s1.uri in out, out
        assert '%s: up' % s2.uri in out, out
    finally:
        s1.restart()
    # back on the first server once its retry interval has passed
    assert wait_plain(env, 'ben', 'ben-secret', ('success', None)) == ('success', None)


def test_hung_server_times_out_and_fails_over(env):
    """The first server stops answering (SIGSTOP: connections stay open,
    nothing comes back): after the operation timeout (3 s) the connection
    goes to the second server; no login waits much longer than that."""
    import signal
    s1, s2 = env.slapd
    pid = int(open(os.path.join(s1.dir, 'slapd.pid')).read())
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        got = wait_plain(env, 'ann', 'ann-secret', ('success', None), timeout=30)
        took = time.monotonic() - t0
        assert got == ('success', None)
        assert took < 15, took
        out = env.ctl('status').stdout
        assert '%s: down' % s1.uri in out, out
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_plain(env, 'ben', 'ben-secret', ('success', None)) == ('success', None)


def test_outage_is_temporary_failure_and_recovers(env, run):
    """Both servers killed (SIGKILL, connections cut)."""
    s1, s2 = env.slapd
    newbie = unique('newbie')
    s1.kill()
    s2.kill()
    try:
        for pw in ('ann-secret', 'wrong'):
            assert plain(env, 'ann', pw) == ('failure', 'temporary-auth-failure'), pw
        # the chain says "temporary" for a directory user it cannot check...
        assert plain(env, 'ann', 'ann-secret', host='chain.local') == \
            ('failure', 'temporary-auth-failure')
        # ...and still lets internal users in
        assert plain(env, 'ivy', 'ivy-secret', host='chain.local') == ('success', None)
        # no account is made while the directory cannot say whether it
        # has the name; a name another method has is taken all the same
        # (ivy, an internal account)
        el = register_in_band(env, newbie, 'newbie-pw', 'chain.local')
        assert stanza_error(el) == 'resource-constraint', tostr(el)
        r = env.ctl('register', newbie, 'chain.local', 'newbie-pw')
        assert r.returncode == 4, (r.returncode, r.stderr)
        assert stanza_error(register_in_band(env, 'ivy', 'other-pw', 'chain.local')) == 'conflict'

        # users of an internal host do not notice
        async def go():
            c = await login(env, 'alice', mech='SCRAM-SHA-256')
            assert c.boundjid.bare == 'alice@' + HOST
            await logout(c)
        run(go())
        out = env.ctl('status').stdout
        assert 'down' in out and 'last error' in out, out
    finally:
        s1.restart()
        s2.restart()
    assert wait_plain(env, 'ann', 'ann-secret', ('success', None)) == ('success', None)
    assert plain(env, 'ann', 'wrong') == ('failure', 'not-authorized')
    assert env.ctl('user-exists', newbie, 'chain.local').returncode == 1


def test_password_change(env, run):
    """allow_password_change: jabber:iq:register password change goes to the
    directory (RFC 3062 Password Modify)."""
    from parleytest import iq

    async def go():
        c = await login(env, 'ben', host='ldap.local', password='ben-secret', mech='PLAIN')
        try:
            el = await iq(c, 'set', 'ldap.local',
                          "<query xmlns='jabber:iq:register'><username>ben</username>"
                          "<password>ben-new-secret</password></query>")
            return el
        finally:
            await logout(c)
    el = run(go())
    assert el.get('type') == 'result', tostr(el)
    assert plain(env, 'ben', 'ben-new-secret') == ('success', None)
    assert plain(env, 'ben', 'ben-secret') == ('failure', 'not-authorized')


# ---- vCards from the directory ----------------------------------------------------

NS_VCARD = 'vcard-temp'


def vq(tag):
    return q(NS_VCARD, tag)


def ldif_photo(slapd):
    """The bytes of ann's jpegPhoto, as slapd.sh loaded them."""
    import base64
    text = open(os.path.join(slapd.dir, 'data.ldif')).read()
    for line in text.splitlines():
        if line.startswith('jpegPhoto:: '):
            return base64.b64decode(line.split(' ', 1)[1])
    raise AssertionError('no jpegPhoto in data.ldif')


def ldap_modify(slapd, ldif):
    r = subprocess.run(['ldapmodify', '-x', '-H', slapd.uri, '-D', 'cn=admin,' + SUFFIX,
                        '-w', 'admin-secret'], input=ldif, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr


def get_vcard(env, run, user):
    from parleytest import iq

    async def go():
        c = await login(env, 'ann', host='vcard.local', password='ann-secret', mech='PLAIN')
        try:
            return await iq(c, 'get', user + '@vcard.local', "<vCard xmlns='vcard-temp'/>")
        finally:
            await logout(c)
    return run(go())


def test_vcard_from_directory(env, run):
    import base64
    el = get_vcard(env, run, 'ann')
    assert el.get('type') == 'result', tostr(el)
    vc = el.find(vq('vCard'))
    assert vc is not None, tostr(el)
    assert vc.findtext(vq('FN')) == 'Ann Example'
    assert vc.findtext('%s/%s' % (vq('N'), vq('FAMILY'))) == 'Example'
    assert vc.findtext('%s/%s' % (vq('N'), vq('GIVEN'))) == 'Ann'
    assert vc.findtext(vq('NICKNAME')) == 'Annie'
    assert vc.findtext('%s/%s' % (vq('EMAIL'), vq('USERID'))) == 'ann@parley.test'
    assert vc.findtext('%s/%s' % (vq('TEL'), vq('NUMBER'))) == '+1 555 0100'
    assert vc.findtext('%s/%s' % (vq('ORG'), vq('ORGNAME'))) == 'Parley Test'
    assert vc.findtext('%s/%s' % (vq('ORG'), vq('ORGUNIT'))) == 'Engineering'
    assert vc.findtext(vq('TITLE')) == 'Directory Keeper'
    photo = vc.find(vq('PHOTO'))
    assert photo is not None, tostr(el)
    assert photo.findtext(vq('TYPE')) == 'image/jpeg'
    assert base64.b64decode(photo.findtext(vq('BINVAL'))) == ldif_photo(env.slapd[0])


def test_vcard_without_some_fields(env, run):
    """ben has no givenName, title or photo: those fields are left out."""
    el = get_vcard(env, run, 'ben')
    vc = el.find(vq('vCard'))
    assert vc is not None, tostr(el)
    assert vc.findtext(vq('FN')) == 'Ben Example'
    assert vc.find(vq('PHOTO')) is None and vc.find(vq('TITLE')) is None
    assert vc.find('%s/%s' % (vq('N'), vq('GIVEN'))) is None
    emails = [e.findtext(vq('USERID')) for e in vc.findall(vq('EMAIL'))]
    assert sorted(emails) == ['ben@parley.test', 'benny'], tostr(el)


def test_vcard_values_that_are_not_xml_text_are_left_out(env, run):
    """A displayName with U+FFFE (valid UTF-8, not an XML character) and a
    title with a control character: those two fields are left out, the
    rest of twin2's vCard is answered; a line names the entry and the
    attribute."""
    import base64

    def b64(text):
        return base64.b64encode(text.encode()).decode()
    dn = 'uid=twin2,ou=people,%s' % SUFFIX
    for s in env.slapd:
        ldap_modify(s, 'dn: %s\nchangetype: modify\nadd: displayName\ndisplayName:: %s\n-\n'
                       'add: title\ntitle:: %s\n' % (dn, b64('Twin \ufffe Two'), b64('Boss\x1b[31m')))
    try:
        el = get_vcard(env, run, 'twin2')
    finally:
        for s in env.slapd:
            ldap_modify(s, 'dn: %s\nchangetype: modify\ndelete: displayName\n-\ndelete: title\n' % dn)
    vc = el.find(vq('vCard'))
    assert vc is not None and vc.findtext(vq('FN')) == 'Twin Two', tostr(el)
    assert vc.find(vq('NICKNAME')) is None and vc.find(vq('TITLE')) is None, tostr(el)
    assert vc.findtext('%s/%s' % (vq('EMAIL'), vq('USERID'))) == 'twin', tostr(el)
    log = env.log()
    assert 'ldap: %s: a value of displayName is left out' % dn in log, log[-3000:]
    assert 'ldap: %s: a value of title is left out' % dn in log, log[-3000:]


def test_vcard_unknown_user_is_service_unavailable(env, run):
    """No such account in the directory: <service-unavailable/> (RFC 6121
    §8.5.1), not an empty vCard."""
    el = get_vcard(env, run, 'nobody')
    assert el.get('type') == 'error', tostr(el)
    assert el.find('.//' + q(parleytest.NS_STANZA_ERR, 'service-unavailable')) is not None, tostr(el)


def test_vcard_set_not_allowed(env, run):
    from parleytest import iq

    async def go():
        c = await login(env, 'ann', host='vcard.local', password='ann-secret', mech='PLAIN')
        try:
            return await iq(c, 'set', None, "<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>")
        finally:
            await logout(c)
    el = run(go())
    assert el.get('type') == 'error', tostr(el)
    assert el.find('.//' + q(parleytest.NS_STANZA_ERR, 'not-allowed')) is not None, tostr(el)
    assert get_vcard(env, run, 'ben').find(vq('vCard')).findtext(vq('FN')) == 'Ben Example'


def test_vcard_cache_and_outage(env, run):
    """Answers are reused for cache_ttl; a change in the directory shows
    after it; with the directory down, a cached vCard is still served and an
    uncached one is a temporary error (resource-constraint, wait)."""
    s1, s2 = env.slapd
    first = get_vcard(env, run, 'k+r,o(o)*').find(vq('vCard'))
    assert first.findtext(vq('FN')) == 'Odd Name'
    ldap_modify(s1, 'dn: uid=k\\+r\\,o(o)*,ou=people,%s\nchangetype: modify\nreplace: cn\n'
                    'cn: Renamed\n' % SUFFIX)
    ldap_modify(s2, 'dn: uid=k\\+r\\,o(o)*,ou=people,%s\nchangetype: modify\nreplace: cn\n'
                    'cn: Renamed\n' % SUFFIX)
    assert get_vcard(env, run, 'k+r,o(o)*').find(vq('vCard')).findtext(vq('FN')) == 'Odd Name'
    time.sleep(3.5)
    again = get_vcard(env, run, 'k+r,o(o)*').find(vq('vCard'))
    assert again.findtext(vq('FN')) == 'Renamed'
    # the cache lasts 3 s: make it fresh just before the outage
    # alice (an internal account of test.local) asks, so that no login
    # needs the directory while it is away
    from parleytest import iq

    async def go():
        c = await login(env, 'alice', mech='SCRAM-SHA-256')
        try:
            await iq(c, 'get', 'k+r,o(o)*@vcard.local', "<vCard xmlns='vcard-temp'/>")
            s1.kill()
            s2.kill()
            cached = await iq(c, 'get', 'k+r,o(o)*@vcard.local', "<vCard xmlns='vcard-temp'/>")
            uncached = await iq(c, 'get', 'cleo@vcard.local', "<vCard xmlns='vcard-temp'/>")
            return cached, uncached
        finally:
            await logout(c)
    try:
        cached, uncached = run(go())
    finally:
        s1.restart()
        s2.restart()
    assert cached.find(vq('vCard')).findtext(vq('FN')) == 'Renamed', tostr(cached)
    assert uncached.get('type') == 'error', tostr(uncached)
    err = uncached.find(q(parleytest.NS_CLIENT, 'error'))
    assert err is not None and err.get('type') == 'wait', tostr(uncached)
    assert err.find(q(parleytest.NS_STANZA_ERR, 'resource-constraint')) is not None, tostr(uncached)
    # and back (the auth chain, which asked the directory whether the
    # accounts exist during the outage, may still count it down: the
    # login is retried too)
    deadline = time.monotonic() + 20
    while True:
        try:
            el = get_vcard(env, run, 'cleo')
        except parleytest.LoginFailed:
            el = None
            assert time.monotonic() < deadline, 'no login since the directory came back'
        if el is not None and (el.get('type') == 'result' or time.monotonic() > deadline):
            break
        time.sleep(0.5)
    assert el.find(vq('vCard')).findtext(vq('FN')) == 'Cleo Clear', tostr(el)
