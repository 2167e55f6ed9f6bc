"""The external auth method: a real program speaking the port protocol
(doc/examples/extauth.py, doc/examples/extauth.sh, and
tests/integration/extauth_faulty.py for the programs that hang, die, write
garbage or cannot start), next to a host with internal accounts, and in
chains with the internal method."""
import os
import re
import subprocess
import time

import pytest

import parleytest
from parleytest import (HOST, NS_REGISTER, NS_SASL, OTHER, RawClient, ServerError, find_lines,
                        login, logout, q, register_in_band, srcdir, tostr, unique)

EXTAUTH_PY = str(srcdir() / 'doc' / 'examples' / 'extauth.py')
EXTAUTH_SH = str(srcdir() / 'doc' / 'examples' / 'extauth.sh')
FAULTY = str(srcdir() / 'tests' / 'integration' / 'extauth_faulty.py')

# internal accounts on HOST only; OTHER's accounts live in the program's file
INTERNAL_USERS = {k: v for k, v in parleytest.USERS.items() if k[1] == HOST}
EXT_USERS = {
    'xena': 'xena-secret',
    'yuri': 'pass:with:colons',
    'zoe': 'zoe-secret',
}


def ext_server(tmp_path_factory, name, program, args, instances=2, timeout='2s', extra='',
               global_auth='', register_open=True, auth_extra='', start=True, methods='external'):
    """parleyd with OTHER's auth.methods [methods] (the program's accounts
    in srv.users_file) and the internal accounts of HOST."""
    d = tmp_path_factory.mktemp(name)
    users_file = d / 'ext-users.txt'
    users_file.write_text(''.join('%s@%s:%s\n' % (u, OTHER, p) for u, p in EXT_USERS.items()))
    argv = ', '.join('"%s"' % a for a in [str(users_file)] + list(args))
    other_auth = ('{ methods: [%s], %sexternal: { program: "%s", args: [%s], instances: %d, '
                  'timeout: %s%s } }' % (methods, auth_extra, program, argv, instances, timeout, extra))
    srv = parleytest.Parleyd(d, other_auth=other_auth, users=INTERNAL_USERS, global_auth=global_auth,
                             register_open=register_open,
                             other_modules='{ register: { open: true, throttle: 0 } }')
    srv.users_file = users_file
    for u, p in EXT_USERS.items():
        srv.passwords[(u, OTHER)] = p
    if start:
        srv.start_with_users()
    return srv


@pytest.fixture(scope='module')
def ext(tmp_path_factory):
    """test.local: internal accounts; other.local: doc/examples/extauth.py."""
    srv = ext_server(tmp_path_factory, 'ext', EXTAUTH_PY, [], extra=', cache_ttl: 0')
    yield srv
    srv.finish()


def plain_login(srv, user, password, host=OTHER):
    """Raw PLAIN login; returns the <success/> or <failure/> element."""
    c = RawClient(srv.port, host=host)
    try:
        c.open()
        c.starttls()
        return c.auth_plain(user, password)
    finally:
        c.close()


def condition(el):
    if el.tag == q(NS_SASL, 'success'):
        return 'success'
    assert el.tag == q(NS_SASL, 'failure'), tostr(el)
    return [parleytest.local(ch.tag) for ch in el if parleytest.local(ch.tag) != 'text'][0]


# ---- mechanisms and the two hosts -------------------------------------------------

def test_mechanisms_per_host(ext):
    """SCRAM only where the store keeps SCRAM keys; PLAIN (after TLS) for the
    external host."""
    c = RawClient(ext.port, host=OTHER)
    c.open()
    assert c.mechanisms() == [], 'mechanisms before TLS: %s' % c.mechanisms()
    c.starttls()
    assert c.mechanisms() == ['PLAIN'], c.mechanisms()
    c.close()
    c = RawClient(ext.port, host=HOST)
    c.open()
    c.starttls()
    m = c.mechanisms()
    assert 'SCRAM-SHA-256' in m and 'PLAIN' in m, m
    c.close()


def test_both_hosts_log_in_and_talk(ext, run):
    """An internal account on test.local and an external one on other.local
    at once, exchanging a message."""
    async def go():
        a = await login(ext, 'alice', mech='SCRAM-SHA-256')
        x = await login(ext, 'xena', host=OTHER, mech='PLAIN')
        body = unique('hello-')
        a.send_message(mto='xena@%s' % OTHER, mbody=body, mtype='chat')
        m = await parleytest.next_message(x, pred=lambda m: m['body'] == body)
        assert str(m['from'].bare) == 'alice@' + HOST
        await logout(a, x)
    run(go())


def test_wrong_password_and_unknown_user(ext):
    assert condition(plain_login(ext, 'xena', 'nope')) == 'not-authorized'
    assert condition(plain_login(ext, 'nobody', 'whatever')) == 'not-authorized'
    # a SCRAM attempt is not even offered on the external host
    assert condition(plain_login(ext, 'xena', EXT_USERS['xena'])) == 'success'
    lines = find_lines(r'auth failed: ip=127\.0\.0\.1 user=xena@%s reason=bad-password' % re.escape(OTHER),
                       ext.log())
    assert lines, ext.log()[-3000:]


def test_password_with_colons(ext):
    assert condition(plain_login(ext, 'yuri', 'pass:with:colons')) == 'success'
    assert condition(plain_login(ext, 'yuri', 'pass:with')) == 'not-authorized'
    assert condition(plain_login(ext, 'yuri', 'pass:with:colons:')) == 'not-authorized'


def test_internal_host_unaffected_by_external_accounts(ext):
    """xena exists only in the program's file: test.local does not know her."""
    assert condition(plain_login(ext, 'xena', EXT_USERS['xena'], host=HOST)) == 'not-authorized'
    assert condition(plain_login(ext, 'alice', ext.password('alice'), host=HOST)) == 'success'


# ---- account changes go to the program ----------------------------------------------

def test_parleyctl_register_passwd_unregister(ext):
    user = unique('ctl')
    r = ext.ctl('register', user, OTHER, 'first:pw')
    assert r.returncode == 0, r.stderr
    assert '%s@%s:first:pw' % (user, OTHER) in ext.users_file.read_text()
    assert condition(plain_login(ext, user, 'first:pw')) == 'success'
    r = ext.ctl('register', user, OTHER, 'again')
    assert r.returncode == 1 and 'exists' in r.stderr, r.stderr
    r = ext.ctl('passwd', user, OTHER, 'second')
    assert r.returncode == 0, r.stderr
    assert condition(plain_login(ext, user, 'first:pw')) == 'not-authorized'
    assert condition(plain_login(ext, user, 'second')) == 'success'
    r = ext.ctl('unregister', user, OTHER)
    assert r.returncode == 0, r.stderr
    assert user not in ext.users_file.read_text()
    assert condition(plain_login(ext, user, 'second')) == 'not-authorized'


def test_in_band_registration_goes_to_the_program(ext):
    user = unique('ibr')
    c = RawClient(ext.port, host=OTHER)
    c.open()
    c.starttls()
    res = c.iq('set', "<query xmlns='%s'><username>%s</username><password>ibr:pw</password></query>"
               % (NS_REGISTER, user), to=OTHER)
    c.close()
    assert res.get('type') == 'result', tostr(res)
    assert '%s@%s:ibr:pw' % (user, OTHER) in ext.users_file.read_text()
    assert condition(plain_login(ext, user, 'ibr:pw')) == 'success'
    # taken: the program says no to tryregister, the client hears <conflict/>
    c = RawClient(ext.port, host=OTHER)
    c.open()
    c.starttls()
    res = c.iq('set', "<query xmlns='%s'><username>%s</username><password>other</password></query>"
               % (NS_REGISTER, user), to=OTHER)
    c.close()
    assert parleytest.stanza_error(res) == 'conflict', tostr(res)


# ---- chains with the internal method ---------------------------------------------------

def test_chain_registration_of_a_program_user_is_a_conflict(tmp_path_factory):
    """[internal, external]: a name the program has is taken.  Made in the
    internal method, the account's password would open the program user's
    JID."""
    srv = ext_server(tmp_path_factory, 'ext-chain', EXTAUTH_PY, [], methods='internal, external')
    try:
        before = srv.users_file.read_text()
        el = register_in_band(srv, 'xena', 'mallory-pw', OTHER)
        assert parleytest.stanza_error(el) == 'conflict', tostr(el)
        r = srv.ctl('register', 'yuri', OTHER, 'mallory-pw')
        assert r.returncode == 1 and 'exists' in r.stderr, (r.returncode, r.stderr)
        assert condition(plain_login(srv, 'xena', 'mallory-pw')) == 'not-authorized'
        assert condition(plain_login(srv, 'yuri', 'mallory-pw')) == 'not-authorized'
        assert condition(plain_login(srv, 'xena', EXT_USERS['xena'])) == 'success'
        # a name nobody has becomes an internal account (the first method
        # that can create), which then is taken too
        user = unique('ibr')
        el = register_in_band(srv, user, 'ibr-pw', OTHER)
        assert el.get('type') == 'result', tostr(el)
        assert srv.users_file.read_text() == before
        assert condition(plain_login(srv, user, 'ibr-pw')) == 'success'
        assert parleytest.stanza_error(register_in_band(srv, user, 'other', OTHER)) == 'conflict'
    finally:
        srv.finish()


def test_chain_program_first_keeps_internal_accounts_working(tmp_path_factory):
    """[external, internal] in front of existing internal accounts: the
    program says no to setpass and removeuser of a user it does not have;
    those go to the internal method, which has the user."""
    srv = ext_server(tmp_path_factory, 'ext-first', EXTAUTH_PY, [], methods='internal, external')
    try:
        srv.register('ivy', OTHER, 'ivy-secret')
        srv.stop()
        srv.other_auth = srv.other_auth.replace('methods: [internal, external]',
                                                'methods: [external, internal]')
        srv.write_config()
        srv.start()
        assert condition(plain_login(srv, 'ivy', 'ivy-secret')) == 'success'
        c = RawClient(srv.port, host=OTHER)
        try:
            c.login('ivy', 'ivy-secret', presence=False)
            el = c.iq('set', "<query xmlns='%s'><username>ivy</username><password>ivy-2</password></query>"
                      % NS_REGISTER, to=OTHER)
        finally:
            c.close()
        assert el.get('type') == 'result', tostr(el)
        assert condition(plain_login(srv, 'ivy', 'ivy-2')) == 'success'
        r = srv.ctl('passwd', 'ivy', OTHER, 'ivy-3')
        assert r.returncode == 0, r.stderr
        assert condition(plain_login(srv, 'ivy', 'ivy-3')) == 'success'
        assert 'ivy' not in srv.users_file.read_text()
        # the program's own users still go to the program
        r = srv.ctl('passwd', 'zoe', OTHER, 'zoe-2')
        assert r.returncode == 0, r.stderr
        assert '%s:zoe-2' % ('zoe@' + OTHER) in srv.users_file.read_text()
        r = srv.ctl('passwd', unique('ghost'), OTHER, 'x')
        assert r.returncode == 1 and 'no such user' in r.stderr, (r.returncode, r.stderr)
        r = srv.ctl('unregister', 'ivy', OTHER)
        assert r.returncode == 0, r.stderr
        assert condition(plain_login(srv, 'ivy', 'ivy-3')) == 'not-authorized'
        assert srv.ctl('user-exists', 'ivy', OTHER).returncode == 1
    finally:
        srv.finish()


# ---- auth-test and status ------------------------------------------------------------

def test_auth_test_reports_each_backend(ext):
    r = ext.ctl('auth-test', 'xena@' + OTHER, input=EXT_USERS['xena'] + '\n')
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'backend 1 external: ok' in r.stdout, r.stdout
    assert 'login accepted' in r.stdout, r.stdout
    r = ext.ctl('auth-test', 'xena@' + OTHER, input='wrong\n')
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'backend 1 external: bad password (the user exists)' in r.stdout, r.stdout
    ghost = unique('ghost')
    r = ext.ctl('auth-test', '%s@%s' % (ghost, OTHER), input='wrong\n')
    assert r.returncode == 1
    assert 'backend 1 external: unknown user' in r.stdout, r.stdout
    r = ext.ctl('auth-test', 'alice@' + HOST, input=ext.password('alice') + '\n')
    assert r.returncode == 0 and 'backend 1 internal: ok' in r.stdout, r.stdout
    # the password is never an argument, and no attempt here counts as a
    # failed login
    assert not find_lines('auth failed: .*user=%s@' % ghost, ext.log())


def test_auth_test_needs_a_password(ext):
    r = ext.ctl('auth-test', 'xena@' + OTHER, input='')
    assert r.returncode == 2 and 'reads the password from stdin' in r.stderr, r.stderr


def test_status_shows_the_pool(ext):
    r = ext.ctl('status')
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stdout.splitlines() if l.startswith('host %s: auth external:' % OTHER)]
    assert line, r.stdout
    assert '2/2 processes up' in line[0], line[0]
    assert 'restarts' in line[0] and 'no errors' in line[0], line[0]


# ---- the shell example ------------------------------------------------------------------

def test_shell_example(tmp_path_factory):
    srv = ext_server(tmp_path_factory, 'ext-sh', EXTAUTH_SH, [], instances=1)
    try:
        assert condition(plain_login(srv, 'yuri', 'pass:with:colons')) == 'success'
        assert condition(plain_login(srv, 'xena', 'bad')) == 'not-authorized'
        r = srv.ctl('register', 'newbie', OTHER, 'pw')
        assert r.returncode == 1, r.stdout + r.stderr
        assert 'cannot register' in r.stderr or 'exists' in r.stderr, r.stderr
        assert find_lines("stderr: operation 'tryregister' is not supported", srv.log()), srv.log()[-2000:]
    finally:
        srv.finish()


# ---- programs that misbehave ------------------------------------------------------------

def test_hanging_program(tmp_path_factory, run):
    """A request that never gets an answer: <temporary-auth-failure/> after
    the timeout, the process is replaced, and everyone else goes on."""
    srv = ext_server(tmp_path_factory, 'ext-hang', FAULTY, ['hang-on', 'zoe'], instances=2,
                     timeout='1500ms')
    try:
        w = parleytest.Witness(srv)
        t0 = time.monotonic()
        c = RawClient(srv.port, host=OTHER, timeout=10)
        c.open()
        c.starttls()
        # while zoe's request hangs in one process, xena uses the other
        token = parleytest.base64.b64encode(('\0zoe\0%s' % EXT_USERS['zoe']).encode()).decode()
        c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
        assert condition(plain_login(srv, 'xena', EXT_USERS['xena'])) == 'success'
        el = c.wait_for(lambda e: e.tag in (q(NS_SASL, 'success'), q(NS_SASL, 'failure')))
        elapsed = time.monotonic() - t0
        assert condition(el) == 'temporary-auth-failure', tostr(el)
        assert 1.0 < elapsed < 6, elapsed
        c.close()
        w.check()
        log = srv.log()
        assert find_lines(r'no answer within 1\.5 s \(timeout\); killed', log), log[-3000:]
        assert find_lines(r'stderr: hanging on a request about zoe', log), log[-3000:]
        assert find_lines(r'temporary-auth-failure/> \(not counted', log), log[-3000:]
        assert not find_lines(r'auth failed: .*user=zoe@', log)
        # replaced: both processes up again, and logins still work
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            st = srv.ctl('status').stdout
            if '2/2 processes up' in st:
                break
            time.sleep(0.2)
        assert '2/2 processes up' in st and '1 timeouts' in st, st
        assert condition(plain_login(srv, 'xena', EXT_USERS['xena'])) == 'success'
        r = srv.ctl('auth-test', 'zoe@' + OTHER, input='x\n')
        assert r.returncode == 4, r.stdout + r.stderr
        assert 'backend 1 external: unreachable or too slow' in r.stdout, r.stdout
        assert 'timeout' in r.stdout, r.stdout
        w.close()
    finally:
        srv.finish()


def test_program_that_dies_after_n_requests(tmp_path_factory):
    """Each process leaves after two answers: the pool restarts it, and a
    question asked of a process that died is asked again, so every login
    succeeds."""
    srv = ext_server(tmp_path_factory, 'ext-die', FAULTY, ['die-after', '2'], instances=1)
    try:
        for i in range(6):
            assert condition(plain_login(srv, 'xena', EXT_USERS['xena'])) == 'success', i
        assert condition(plain_login(srv, 'xena', 'bad')) == 'not-authorized'
        log = srv.log()
        assert len(find_lines(r'exited with status 0', log)) >= 2, log[-3000:]
        assert find_lines(r'stderr: served 2 requests, leaving', log), log[-3000:]
        st = srv.ctl('status').stdout
        m = re.search(r'(\d+) restarts', st)
        assert m and int(m.group(1)) >= 2, st
    finally:
        srv.finish()


def test_program_that_writes_garbage(tmp_path_factory, run):
    srv = ext_server(tmp_path_factory, 'ext-garbage', FAULTY, ['garbage-on', 'zoe'], instances=1)
    try:
        w = parleytest.Witness(srv)
        assert condition(plain_login(srv, 'zoe', EXT_USERS['zoe'])) == 'temporary-auth-failure'
        log = srv.log()
        assert find_lines(r'wrote an invalid reply', log) or find_lines(r'garbage', log), log[-3000:]
        # the replacement comes after a short back-off; then xena gets in
        deadline = time.monotonic() + 5
        ok = False
        while time.monotonic() < deadline and not ok:
            ok = condition(plain_login(srv, 'xena', EXT_USERS['xena'])) == 'success'
        assert ok
        w.check()
        w.close()
    finally:
        srv.finish()


def test_program_that_cannot_start_backs_off(tmp_path_factory):
    """A program that exits at once is restarted with a growing wait (no
    tight loop); logins get <temporary-auth-failure/>, internal ones work."""
    srv = ext_server(tmp_path_factory, 'ext-crash', FAULTY, ['crash-at-start'], instances=1,
                     timeout='1s', extra=', restart_max: 2s')
    try:
        assert condition(plain_login(srv, 'xena', EXT_USERS['xena'])) == 'temporary-auth-failure'
        time.sleep(3)
        st = srv.ctl('status').stdout
        m = re.search(r'(\d+) restarts', st)
        # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 2 ... : a handful in 4 s, not hundreds
        assert m and 2 <= int(m.group(1)) <= 8, st
        assert 'exited with status 3' in st, st
        log = srv.log()
        assert find_lines(r'stderr: crash-at-start: cannot open the account database', log), log[-3000:]
        assert condition(plain_login(srv, 'alice', srv.password('alice'), host=HOST)) == 'success'
    finally:
        srv.finish()


@pytest.mark.parametrize('kind', ['missing', 'no-shebang', 'bad-interpreter', 'env-missing'])
def test_unrunnable_program_is_reported_at_start(tmp_path_factory, kind):
    d = tmp_path_factory.mktemp('ext-bad')
    prog = d / 'auth-prog'
    if kind == 'no-shebang':
        prog.write_text('echo hello\n')
    elif kind == 'bad-interpreter':
        prog.write_text('#!/usr/bin/no-such-python3\nprint(1)\n')
    elif kind == 'env-missing':
        prog.write_text('#!/usr/bin/env no-such-interpreter-xyz\nprint(1)\n')
    if kind != 'missing':
        prog.chmod(0o755)
    srv = parleytest.Parleyd(d, other_auth='{ methods: [external], external: { program: "%s" } }' % prog,
                             users={})
    with pytest.raises(ServerError) as e:
        srv.start(timeout=15)
    msg = str(e.value)
    expected = {
        'missing': 'No such file or directory',
        'no-shebang': 'neither a binary nor a script with a #! line',
        'bad-interpreter': 'interpreter /usr/bin/no-such-python3',
        'env-missing': "'no-such-interpreter-xyz' (#!/usr/bin/env no-such-interpreter-xyz) is not in PATH",
    }[kind]
    assert expected in msg and 'auth method external' in msg, msg
    srv.stop()


def test_config_requires_a_program(tmp_path_factory):
    d = tmp_path_factory.mktemp('ext-noprog')
    srv = parleytest.Parleyd(d, other_auth='{ methods: [external] }', users={})
    r = subprocess.run([srv.parleyd, '-t', '-c', str(srv.config)], capture_output=True, text=True,
                       timeout=30, env=srv.env)
    assert r.returncode != 0
    assert 'hosts.%s.auth.external' % OTHER in r.stderr and 'program' in r.stderr, r.stderr


def test_positive_answers_are_cached(tmp_path_factory):
    """cache_ttl: a good password is answered from memory for a while (the
    program is not asked: here it no longer knows the user), a wrong one
    never is, and setting the password forgets the cached answer."""
    srv = ext_server(tmp_path_factory, 'ext-cache', EXTAUTH_PY, [], instances=1,
                     extra=', cache_ttl: 60s')
    try:
        assert condition(plain_login(srv, 'zoe', EXT_USERS['zoe'])) == 'success'
        text = srv.users_file.read_text()
        srv.users_file.write_text(''.join(l for l in text.splitlines(True) if not l.startswith('zoe@')))
        assert condition(plain_login(srv, 'zoe', EXT_USERS['zoe'])) == 'success'
        assert condition(plain_login(srv, 'zoe', 'wrong')) == 'not-authorized'
        r = srv.ctl('auth-test', 'zoe@' + OTHER, input=EXT_USERS['zoe'] + '\n')
        assert 'backend 1 external: ok (password accepted) (cached answer)' in r.stdout, r.stdout
        st = srv.ctl('status').stdout
        assert re.search(r'auth external: .*, \d+ cached', st), st
        # a password change through Parley forgets what was cached
        srv.users_file.write_text(text)
        r = srv.ctl('passwd', 'zoe', OTHER, 'new-zoe')
        assert r.returncode == 0, r.stderr
        assert condition(plain_login(srv, 'zoe', EXT_USERS['zoe'])) == 'not-authorized'
        assert condition(plain_login(srv, 'zoe', 'new-zoe')) == 'success'
    finally:
        srv.finish()
