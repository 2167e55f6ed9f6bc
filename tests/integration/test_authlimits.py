"""Failed-login limits per IP and per account, the fail2ban line,
temporary failures that never count, SASL ANONYMOUS, and auth.store_plain."""
import re
import sqlite3
import time

import pytest

import parleytest
from parleytest import (HOST, NS_SASL, OTHER, RawClient, find_lines, login, logout, q, srcdir, tostr,
                        unique)

FAULTY = str(srcdir() / 'tests' / 'integration' / 'extauth_faulty.py')


def plain(srv, user, password, host=HOST):
    c = RawClient(srv.port, host=host, timeout=10)
    try:
        c.open()
        c.starttls()
        el = c.auth_plain(user, password)
    finally:
        c.close()
    if el.tag == q(NS_SASL, 'success'):
        return 'success'
    return [parleytest.local(ch.tag) for ch in el if parleytest.local(ch.tag) != 'text'][0]


@pytest.fixture(scope='module')
def limited(tmp_path_factory):
    """test.local: internal, 3 failures per account, 8 per IP;
    other.local: an external program that hangs on 'slow'."""
    d = tmp_path_factory.mktemp('limits')
    users = d / 'ext-users.txt'
    users.write_text('slow@%s:slow-secret\nfast@%s:fast-secret\n' % (OTHER, OTHER))
    srv = parleytest.Parleyd(
        d, users={k: v for k, v in parleytest.USERS.items() if k[1] == HOST},
        global_auth='  max_failures_per_user: 3\n  max_failures_per_ip: 8\n  failure_window: 1h\n',
        other_auth='{ methods: [external], max_failures_per_ip: 2, external: { program: "%s", '
                   'args: ["%s", "hang-on", "slow"], instances: 2, timeout: 700ms } }'
                   % (FAULTY, users))
    srv.start_with_users()
    yield srv
    srv.finish()


def test_limits_per_account_then_per_ip(limited):
    srv = limited
    # alice: three wrong passwords, then even the right one is refused
    for _ in range(3):
        assert plain(srv, 'alice', 'wrong') == 'not-authorized'
    assert plain(srv, 'alice', srv.password('alice')) == 'not-authorized'
    log = srv.log()
    assert len(find_lines(r'auth failed: ip=127\.0\.0\.1 user=alice@test\.local reason=bad-password$',
                          log)) == 3, log[-3000:]
    assert find_lines(r'auth failed: ip=127\.0\.0\.1 user=alice@test\.local reason=rate-limited$', log)
    # bob is not affected by alice's lock
    assert plain(srv, 'bob', srv.password('bob')) == 'success'
    # unknown users count per IP too: 3 (alice) + 4 = 7 failures
    for _ in range(4):
        assert plain(srv, unique('ghost'), 'x') == 'not-authorized'
    assert find_lines(r'auth failed: ip=127\.0\.0\.1 user=ghost\w+@test\.local reason=unknown-user$',
                      srv.log())
    assert plain(srv, 'carol', srv.password('carol')) == 'success'
    # the 8th failure locks the address: erin's right password is refused
    assert plain(srv, 'bob', 'wrong') == 'not-authorized'
    assert plain(srv, 'erin', srv.password('erin')) == 'not-authorized'
    assert find_lines(r'auth failed: ip=127\.0\.0\.1 user=erin@test\.local reason=rate-limited$', srv.log())


def test_temporary_failures_never_count(limited):
    """other.local allows 2 failures per IP; three timeouts later a good
    login still works, and none of them was logged as a failed login."""
    srv = limited
    for _ in range(3):
        assert plain(srv, 'slow', 'slow-secret', host=OTHER) == 'temporary-auth-failure'
    assert plain(srv, 'fast', 'fast-secret', host=OTHER) == 'success'
    assert not find_lines(r'auth failed: .*user=slow@', srv.log())
    # real failures do count on that host: 2, then refused
    assert plain(srv, 'fast', 'bad', host=OTHER) == 'not-authorized'
    assert plain(srv, 'fast', 'bad', host=OTHER) == 'not-authorized'
    assert plain(srv, 'fast', 'fast-secret', host=OTHER) == 'not-authorized'
    assert find_lines(r'auth failed: ip=127\.0\.0\.1 user=fast@other\.local reason=rate-limited$',
                      srv.log())


def test_failed_scram_logins_are_logged(server, run):
    """SCRAM failures get the same line (the proof fails, no password seen)."""
    from parleytest import LoginFailed

    async def go():
        with pytest.raises(LoginFailed):
            await login(server, 'bob', password='not-bob', mech='SCRAM-SHA-256', timeout=10)
    run(go())
    assert find_lines(r'auth failed: ip=127\.0\.0\.1 user=bob@test\.local reason=bad-password$',
                      server.log())


# ---- SASL ANONYMOUS --------------------------------------------------------------------

@pytest.fixture(scope='module')
def anon(tmp_path_factory):
    """other.local: anonymous only; test.local: internal with store_plain."""
    d = tmp_path_factory.mktemp('anon')
    srv = parleytest.Parleyd(d, other_auth='{ methods: [anonymous] }', host_auth='{ store_plain: true }',
                             users={k: v for k, v in parleytest.USERS.items() if k[1] == HOST})
    srv.start_with_users()
    yield srv
    srv.finish()


def anon_login(srv, trace=''):
    c = RawClient(srv.port, host=OTHER)
    c.open()
    c.starttls()
    assert c.mechanisms() == ['ANONYMOUS'], c.mechanisms()
    import base64
    token = base64.b64encode(trace.encode()).decode() if trace else '='
    c.send("<auth xmlns='%s' mechanism='ANONYMOUS'>%s</auth>" % (NS_SASL, token))
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL, 'success'), q(NS_SASL, 'failure')))
    assert el.tag == q(NS_SASL, 'success'), tostr(el)
    c.open()
    jid = c.bind()
    return c, jid


def test_anonymous_login_gets_a_random_address(anon):
    a, ja = anon_login(anon, trace='guest@example.org')
    b, jb = anon_login(anon)
    assert re.match(r'^anon-[a-z0-9]{16}@other\.local/', ja), ja
    assert ja.split('/')[0] != jb.split('/')[0]
    # two anonymous users talk to each other
    body = unique('hi-')
    a.send("<message to='%s' type='chat'><body>%s</body></message>" % (jb, body))
    got = b.wait_message(body)
    assert got.get('from') == ja
    a.close()
    b.close()


def test_anonymous_is_not_offered_elsewhere(anon):
    c = RawClient(anon.port, host=HOST)
    c.open()
    c.starttls()
    assert 'ANONYMOUS' not in c.mechanisms(), c.mechanisms()
    c.send("<auth xmlns='%s' mechanism='ANONYMOUS'>=</auth>" % NS_SASL)
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL, 'success'), q(NS_SASL, 'failure')))
    assert el.find(q(NS_SASL, 'invalid-mechanism')) is not None, tostr(el)
    c.close()


def test_anonymous_data_is_not_kept(anon):
    """A roster item stored by an anonymous user is gone after it leaves."""
    c, jid = anon_login(anon)
    user = jid.split('@')[0]
    r = c.iq('set', "<query xmlns='jabber:iq:roster'><item jid='alice@%s'/></query>" % HOST)
    assert r.get('type') == 'result', tostr(r)
    assert anon.db_rows('roster_items', user, host=OTHER) == 1
    c.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and anon.db_rows('roster_items', user, host=OTHER) != 0:
        time.sleep(0.1)
    assert anon.db_rows('roster_items', user, host=OTHER) == 0


def test_store_plain_keeps_clear_passwords(anon):
    assert find_lines(r'auth\.store_plain is on', anon.log())
    user = unique('legacy')
    r = anon.ctl('register', user, HOST, 'legacy-pw')
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(str(anon.dir / 'parley.db'))
    try:
        cols = [row[1] for row in db.execute('PRAGMA table_info(users)')]
        plain_col = [c for c in cols if 'plain' in c or c == 'password']
        assert plain_col, cols
        val = db.execute('SELECT %s FROM users WHERE server_host = ? AND username = ?'
                         % plain_col[0], (HOST, user)).fetchone()
    finally:
        db.close()
    assert val is not None and val[0] == 'legacy-pw', val
    assert plain(anon, user, 'legacy-pw') == 'success'
