"""auth.scram_cache_ttl with the external method (doc/examples/extauth.py):
a PLAIN login the program accepted leaves SCRAM-SHA-1/256/512 keys in the
host's storage (table scram_cache, never the password) for the lifetime,
so the host offers SCRAM-SHA-256 (and -PLUS) before PLAIN; a user without
kept keys fails that one mechanism and falls back to PLAIN, which fills
them.  The keys go when they expire, when the program refuses the password
or does not know the user, and on parleyctl passwd and unregister.  Without
the option nothing changes (test_extauth.py: PLAIN only)."""
import asyncio
import re
import time

import pytest

import parleytest
from parleytest import NS_SASL, OTHER, find_lines, q, tostr, unique
from scramclient import Client, scram, tls_exporter
from test_extauth import EXTAUTH_PY, ext_server
from test_scram_sha512 import _wait_log

TTL = 4  # seconds: auth.scram_cache_ttl of the hosts here


def kept_rows(srv, user):
    return srv.db_query('SELECT expires_at, sha1_salt, sha256_salt, sha512_salt FROM scram_cache '
                        'WHERE server_host = ? AND username = ?', (OTHER, user), host=OTHER)


def _server(tmp_path_factory, name, reveal=False, program_cache='0', ttl=TTL, start=True):
    """other.local: doc/examples/extauth.py with auth.scram_cache_ttl ttl
    (none when 0); the limits of an office behind one address."""
    return ext_server(tmp_path_factory, name, EXTAUTH_PY, [], instances=1,
                      extra=', cache_ttl: %s' % program_cache,
                      auth_extra='scram_cache_ttl: %ds, ' % ttl if ttl else '', start=start,
                      global_auth='  max_failures_per_ip: 20\n  failure_window: 10m\n'
                      + ('  reveal_missing_scram_keys: true\n' if reveal else ''))


@pytest.fixture(scope='module')
def ext(tmp_path_factory):
    srv = _server(tmp_path_factory, 'ext-scramcache')
    yield srv
    srv.finish()


def new_user(srv, password=None):
    user = unique('sc')
    password = password or unique('pw-')
    r = srv.ctl('register', user, OTHER, password)
    assert r.returncode == 0, r.stderr
    srv.passwords[(user, OTHER)] = password
    return user, password


def client(srv):
    c = Client(srv.port, host=OTHER)
    c.open()
    c.starttls()
    return c


def plain(srv, user, password):
    c = client(srv)
    try:
        el = c.auth_plain(user, password)
        return 'success' if el.tag == q(NS_SASL, 'success') else \
            [parleytest.local(ch.tag) for ch in el if parleytest.local(ch.tag) != 'text'][0]
    finally:
        c.close()


def scram_login(srv, user, password, mech='SCRAM-SHA-256', sasl2=False):
    c = client(srv)
    try:
        if mech.endswith('-PLUS'):
            return scram(c, user, password, mech, 'p=tls-exporter,,', cbdata=tls_exporter(c.sock),
                         sasl2=sasl2)
        return scram(c, user, password, mech, 'n,,', sasl2=sasl2)
    finally:
        c.close()


def slixmpp_login(srv, run, user, password, host=OTHER):
    """slixmpp choosing its mechanisms itself: (mechanism that worked, the
    ones that failed before it in order, seconds taken)."""
    async def go():
        c = parleytest.make_client('%s@%s' % (user, host), password)
        done = asyncio.get_running_loop().create_future()
        tried = []

        def finish(result=None, exc=None):
            if not done.done():
                done.set_exception(exc) if exc is not None else done.set_result(result)
        c.add_event_handler('session_start', lambda e: finish(True))
        c.add_event_handler('failed_auth', lambda e: tried.append(c['feature_mechanisms'].mech.name))
        c.add_event_handler('failed_all_auth', lambda e: finish(exc=AssertionError('all failed: %s' % tried)))
        c.add_event_handler('disconnected', lambda e: finish(exc=AssertionError('disconnected: %s' % tried)))
        t0 = time.monotonic()
        c.connect(address=('127.0.0.1', srv.port), force_starttls=True)
        try:
            await asyncio.wait_for(done, 20)
            return c['feature_mechanisms'].mech.name, tried, time.monotonic() - t0
        finally:
            c.abort()
    return run(go())


def _kept_line(user):
    return r'host %s: %s: SCRAM keys kept for %d s from the password the external method accepted' % (
        re.escape(OTHER), user, TTL)


def test_mechanisms_scram_sha256_before_plain(ext):
    c = client(ext)
    try:
        assert c.mechanisms() == ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN'], tostr(c.features)
    finally:
        c.close()


def test_plain_fills_then_scram_works(ext):
    user, pw = new_user(ext)
    r = scram_login(ext, user, pw)
    assert r.server_first and r.condition == ['not-authorized'], tostr(r.el)
    assert _wait_log(ext, r'auth declined: ip=127\.0\.0\.1 user=%s@%s mechanism=SCRAM-SHA-256 '
                     r'reason=no-credentials-for-mechanism' % (user, re.escape(OTHER)))
    assert kept_rows(ext, user) == []
    assert plain(ext, user, pw) == 'success'
    assert _wait_log(ext, _kept_line(user))
    rows = kept_rows(ext, user)
    assert len(rows) == 1 and all(rows[0][1:]), rows
    assert time.time() < rows[0][0] <= time.time() + TTL + 1, rows
    # never the password
    assert pw not in repr(ext.db_query('SELECT * FROM scram_cache', host=OTHER))
    for mech in ('SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'):
        for sasl2 in (False, True):
            r = scram_login(ext, user, pw, mech, sasl2=sasl2)
            assert r.ok, (mech, sasl2, tostr(r.el))
    r = scram_login(ext, user, 'wrong-' + pw)
    assert r.condition == ['not-authorized']
    # not offered: refused even though the keys would serve it
    r = scram_login(ext, user, pw, 'SCRAM-SHA-1')
    assert not r.ok


def test_slixmpp_falls_back_to_plain_then_uses_scram(ext, run):
    """The measurement the admin guide quotes: slixmpp 1.8.3 tries
    SCRAM-SHA-256-PLUS (tls-unique, refused at once on TLS 1.3),
    SCRAM-SHA-256 (no keys: the exchange of an unknown user, then
    <not-authorized/> after auth_failure_delay), then PLAIN on the same
    stream; the next login is SCRAM-SHA-256."""
    user, pw = new_user(ext)
    mech, tried, took1 = slixmpp_login(ext, run, user, pw)
    assert mech == 'PLAIN', (mech, tried)
    assert tried == ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], tried
    assert _wait_log(ext, _kept_line(user))
    mech, tried2, took2 = slixmpp_login(ext, run, user, pw)
    assert mech == 'SCRAM-SHA-256' and tried2 == ['SCRAM-SHA-256-PLUS'], (mech, tried2)
    print('slixmpp without kept keys: %.3f s (PLAIN after %s); with them: %.3f s' % (took1, tried, took2))
    # the declined attempt was forgiven: nothing left on the address's count
    assert not find_lines(r'reason=rate-limited', ext.log())


def test_why_one_hash(ext, run):
    """Why such a host offers SCRAM-SHA-256 alone: were all three hashes
    offered, slixmpp would try SCRAM-SHA-512, -256 and -1 in turn; a user
    without keys fails each, and the third failure reaches
    limits.auth_attempts (3), which closes the stream before PLAIN.  Shown
    on an internal account that has a clear password and no SCRAM keys at
    all, which answers every hash as a user without kept keys would."""
    user = unique('nokeys')
    ext.register(user, parleytest.HOST, 'clear-pw')
    ext.db_query('UPDATE users SET sha1_salt = NULL, sha256_salt = NULL, sha512_salt = NULL, '
                 'password = ? WHERE server_host = ? AND username = ?', ('clear-pw', parleytest.HOST, user))
    ext.passwords[(user, parleytest.HOST)] = 'clear-pw'
    with pytest.raises(AssertionError) as e:
        slixmpp_login(ext, run, user, 'clear-pw', host=parleytest.HOST)
    assert 'disconnected' in str(e.value), str(e.value)
    for mech in ('SCRAM-SHA-512', 'SCRAM-SHA-256', 'SCRAM-SHA-1'):
        assert _wait_log(ext, r'auth declined: .*user=%s@\S+ mechanism=%s ' % (user, mech)), mech
    assert not find_lines(r'%s@\S+ authenticated' % user, ext.log())


def test_keys_expire(ext):
    user, pw = new_user(ext)
    assert plain(ext, user, pw) == 'success'
    assert _wait_log(ext, _kept_line(user))
    assert scram_login(ext, user, pw).ok
    time.sleep(TTL + 1.2)
    r = scram_login(ext, user, pw)
    assert r.server_first and r.condition == ['not-authorized'], tostr(r.el)
    assert kept_rows(ext, user) == [], 'expired keys left in the table'


def test_program_refusal_drops_keys(ext):
    """The password changed in the program's own store: the old one still
    works over SCRAM until the program refuses it once (or the keys
    expire), exactly as a cached PLAIN answer would."""
    user, pw = new_user(ext)
    assert plain(ext, user, pw) == 'success'
    assert _wait_log(ext, _kept_line(user))
    text = ext.users_file.read_text()
    ext.users_file.write_text(text.replace('%s@%s:%s\n' % (user, OTHER, pw), '%s@%s:new-%s\n' % (user, OTHER, pw)))
    assert scram_login(ext, user, pw).ok, 'kept keys outlived the change before any refusal'
    # a wrong password, which anyone can send, leaves them
    assert plain(ext, user, 'wrong-' + pw) == 'not-authorized'
    time.sleep(0.3)
    assert len(kept_rows(ext, user)) == 1
    assert not find_lines(r'%s: kept SCRAM keys dropped' % user, ext.log())
    # the password they were made from, refused: they go
    assert plain(ext, user, pw) == 'not-authorized'
    assert _wait_log(ext, r'%s: kept SCRAM keys dropped \(the method refused the password they were '
                     r'made from\)' % user)
    assert kept_rows(ext, user) == []
    assert not scram_login(ext, user, pw).ok
    # the new password fills them again
    assert plain(ext, user, 'new-' + pw) == 'success'
    assert _wait_log(ext, _kept_line(user))
    assert scram_login(ext, user, 'new-' + pw).ok


def test_unknown_user_drops_keys(ext):
    user, pw = new_user(ext)
    assert plain(ext, user, pw) == 'success'
    assert _wait_log(ext, _kept_line(user))
    text = ext.users_file.read_text()
    ext.users_file.write_text(text.replace('%s@%s:%s\n' % (user, OTHER, pw), ''))
    assert plain(ext, user, pw) == 'not-authorized'
    assert _wait_log(ext, r'%s: kept SCRAM keys dropped' % user)
    assert kept_rows(ext, user) == []


@pytest.mark.parametrize('command', ['passwd', 'unregister'])
def test_parleyctl_drops_keys(ext, command):
    user, pw = new_user(ext)
    assert plain(ext, user, pw) == 'success'
    assert _wait_log(ext, _kept_line(user))
    args = [command, user, OTHER] + (['changed-pw'] if command == 'passwd' else [])
    r = ext.ctl(*args)
    assert r.returncode == 0, r.stderr
    why = 'the password was set' if command == 'passwd' else 'the user was removed'
    assert _wait_log(ext, r'%s: kept SCRAM keys dropped \(%s\)' % (user, why))
    assert kept_rows(ext, user) == []
    assert not scram_login(ext, user, pw).ok


def test_option_off_offers_plain_only_and_keeps_nothing(tmp_path_factory):
    srv = _server(tmp_path_factory, 'ext-scramcache-off', ttl=0)
    try:
        c = client(srv)
        try:
            assert c.mechanisms() == ['PLAIN'], tostr(c.features)
        finally:
            c.close()
        assert plain(srv, 'xena', 'xena-secret') == 'success'
        time.sleep(0.3)
        assert srv.db_query('SELECT COUNT(*) FROM scram_cache', host=OTHER) == [(0,)]
    finally:
        srv.finish()


def test_reveal_answers_invalid_mechanism_at_once(tmp_path_factory, run):
    """With auth.reveal_missing_scram_keys a user without kept keys gets
    <invalid-mechanism/> at once (no delay, not counted), and slixmpp
    reaches PLAIN without waiting; one with keys gets the exchange."""
    srv = _server(tmp_path_factory, 'ext-scramcache-reveal', reveal=True)
    try:
        user, pw = new_user(srv)
        r = scram_login(srv, user, pw)
        assert not r.server_first and r.condition == ['invalid-mechanism'], tostr(r.el)
        assert r.elapsed < 0.15, r.elapsed
        mech, tried, took = slixmpp_login(srv, run, user, pw)
        assert mech == 'PLAIN' and tried == ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], (mech, tried)
        print('slixmpp without kept keys, reveal on: %.3f s' % took)
        assert _wait_log(srv, _kept_line(user))
        assert scram_login(srv, user, pw).ok
    finally:
        srv.finish()


def test_lifetime_longer_than_program_cache_refused(tmp_path_factory):
    """Kept keys may not let a password in longer than the program's own
    cache of answers does: refused with the file, line and key."""
    srv = _server(tmp_path_factory, 'ext-scramcache-bad', program_cache='2s', ttl=3600, start=False)
    srv.write_cert()
    srv.write_config()
    r = srv.ctl('config-check', str(srv.config))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert 'scram_cache_ttl' in out and 'longer than external.cache_ttl' in out, out


def test_client_gone_while_keys_are_made(ext):
    """Clients that send a good PLAIN login and close at once, while the
    program checks it or the keys are derived and stored: the work is
    cancelled with the stream (no answer to a freed stream, no crash), and
    later logins work."""
    import base64
    users = [new_user(ext) for _ in range(3)]
    for i in range(24):
        user, pw = users[i % 3]
        c = client(ext)
        token = base64.b64encode(('\0%s\0%s' % (user, pw)).encode()).decode()
        c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
        if i % 2:
            time.sleep(0.01 * (i % 5))
        c.close()
    time.sleep(1.0)
    assert ext.running()
    user, pw = users[0]
    assert plain(ext, user, pw) == 'success'
    assert _wait_log(ext, _kept_line(user))
    assert scram_login(ext, user, pw).ok


def test_set_kept_under_longer_lifetime_expires(ext):
    """A set whose expiry lies beyond now + scram_cache_ttl was kept under
    a longer lifetime (the option was lowered since): it counts as expired
    and is deleted at the lookup."""
    user, pw = new_user(ext)
    assert plain(ext, user, pw) == 'success'
    assert _wait_log(ext, _kept_line(user))
    ext.db_query('UPDATE scram_cache SET expires_at = ? WHERE server_host = ? AND username = ?',
                 (int(time.time()) + 3600, OTHER, user), host=OTHER)
    r = scram_login(ext, user, pw)
    assert r.server_first and r.condition == ['not-authorized'], tostr(r.el)
    assert kept_rows(ext, user) == [], 'a set from a longer lifetime left in the table'


def test_option_off_deletes_kept_sets_at_start(tmp_path_factory):
    """Started again with scram_cache_ttl off, a host deletes the sets it
    kept before (else they would stay forever: no lookup, no sweep)."""
    srv = _server(tmp_path_factory, 'ext-scramcache-lowered', ttl=3600)
    try:
        assert plain(srv, 'xena', 'xena-secret') == 'success'
        assert _wait_log(srv, r'xena: SCRAM keys kept for 3600 s')
        assert len(kept_rows(srv, 'xena')) == 1
        assert srv.stop() == 0
        srv.other_auth = srv.other_auth.replace('scram_cache_ttl: 3600s, ', '')
        srv.write_config()
        srv.start()
        deadline = time.time() + 5
        while kept_rows(srv, 'xena') and time.time() < deadline:
            time.sleep(0.1)
        assert kept_rows(srv, 'xena') == []
    finally:
        srv.finish()


def test_user_removed_from_program_fails_scram_at_once(ext):
    """A good proof with kept keys is followed by asking the method whether
    the user still exists (as after a FAST token): a user removed from the
    program's store fails at once, and the keys go."""
    user, pw = new_user(ext)
    assert plain(ext, user, pw) == 'success'
    assert _wait_log(ext, _kept_line(user))
    assert scram_login(ext, user, pw).ok
    text = ext.users_file.read_text()
    ext.users_file.write_text(text.replace('%s@%s:%s\n' % (user, OTHER, pw), ''))
    r = scram_login(ext, user, pw)
    assert r.server_first and r.condition == ['not-authorized'], tostr(r.el)
    assert _wait_log(ext, r'%s: kept SCRAM keys dropped \(the method does not know the user\)' % user)
    assert kept_rows(ext, user) == []
    assert not scram_login(ext, user, pw).ok


def test_password_set_while_keys_are_derived(tmp_path_factory):
    """parleyctl passwd while the keys of a PLAIN login with the old
    password are still being derived (many iterations make that slow):
    the change drops the keys first, and the fill that ends afterwards
    must not store keys from the old password."""
    import base64
    srv = _server(tmp_path_factory, 'ext-scramcache-race', start=False)
    srv.other_auth = srv.other_auth.replace('scram_cache_ttl: ', 'scram_iterations: 3000000, scram_cache_ttl: ')
    srv.write_config()
    srv.start_with_users()
    try:
        user, pw = new_user(srv)
        c = client(srv)
        try:
            t0 = time.monotonic()
            token = base64.b64encode(('\0%s\0%s' % (user, pw)).encode()).decode()
            c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
            time.sleep(0.3)
            r = srv.ctl('passwd', user, OTHER, 'changed-' + pw)
            assert r.returncode == 0, r.stderr
            el = c.wait_for(lambda e: e.tag in (q(NS_SASL, 'success'), q(NS_SASL, 'failure')),
                            what='SASL result', timeout=60)
            took = time.monotonic() - t0
            assert el.tag == q(NS_SASL, 'success'), tostr(el)
        finally:
            c.close()
        assert not find_lines(r'%s: SCRAM keys kept' % user, srv.log()), \
            'keys from the old password kept (or derived before the change: %.2f s)' % took
        assert _wait_log(srv, r'%s: no SCRAM keys kept: they were dropped while the password was checked'
                         % user)
        assert kept_rows(srv, user) == []
        assert not scram_login(srv, user, pw).ok
    finally:
        srv.finish()
