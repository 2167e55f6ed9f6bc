"""parleyctl against a running parleyd and offline, with its exit codes:
0 ok, 1 the command failed, 2 usage error, 3 parleyd not reachable."""
from parleytest import HOST, NS_PING, NS_SASL, OTHER, RawClient, q, tostr, unique


def _can_login(server, user, password, host=HOST):
    c = RawClient(server.port, host=host)
    try:
        c.open()
        c.starttls()
        return c.auth_plain(user, password).tag == q(NS_SASL, 'success')
    finally:
        c.close()


def test_status_running(server):
    r = server.ctl('status')
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout.strip(), 'status printed nothing'


def test_help(server):
    r = server.ctl('help')
    assert r.returncode == 0, (r.returncode, r.stderr)
    for cmd in ('status', 'stop', 'reload', 'register', 'unregister', 'passwd', 'connected-users'):
        assert cmd in r.stdout, (cmd, r.stdout)
    r = server.ctl('--help')
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert 'import-users' in r.stdout, r.stdout


def test_usage_errors_exit_2(server):
    for args in (['register', 'onlyone'], ['no-such-command'], ['passwd', 'a']):
        r = server.ctl(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)


def test_register_and_register_again(server):
    user = unique('ctl')
    r = server.ctl('register', user, HOST, 'pw-one-two')
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert _can_login(server, user, 'pw-one-two')
    r = server.ctl('register', user, HOST, 'other-pw')
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert 'exists' in r.stderr, r.stderr
    assert _can_login(server, user, 'pw-one-two')


def test_register_on_unknown_host_fails(server):
    r = server.ctl('register', unique('x'), 'not-a-host.example', 'password')
    assert r.returncode in (1, 2), (r.returncode, r.stderr)
    assert r.stderr.strip()


def test_passwd(server):
    user = unique('pass')
    server.register(user, HOST, 'before-pw')
    r = server.ctl('passwd', user, HOST, 'after-pw')
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert _can_login(server, user, 'after-pw')
    assert not _can_login(server, user, 'before-pw')


def test_passwd_nonexistent_user_fails(server):
    r = server.ctl('passwd', unique('ghost'), HOST, 'whatever')
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.strip()


def test_unregister(server):
    user = unique('gone')
    server.register(user, HOST, 'gone-pw')
    r = server.ctl('unregister', user, HOST)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert not _can_login(server, user, 'gone-pw')
    r = server.ctl('unregister', user, HOST)
    assert r.returncode == 1, (r.returncode, r.stderr)


def test_unregister_disconnects_the_user(server):
    user = unique('kick')
    server.register(user, HOST, 'kick-pw')
    c = RawClient(server.port)
    try:
        c.login(user, 'kick-pw', presence=False)
        r = server.ctl('unregister', user, HOST)
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert c.wait_closed(timeout=10), 'session of a removed account stayed open'
    finally:
        c.close()


def test_connected_users(server):
    a = RawClient(server.port)
    d = RawClient(server.port, host=OTHER)
    try:
        ja = a.login('alice', server.password('alice'), resource='ctl-list')
        jd = d.login('dave', server.password('dave', OTHER), resource='ctl-list')
        r = server.ctl('connected-users')
        assert r.returncode == 0, (r.returncode, r.stderr)
        lines = r.stdout.split()
        assert ja in lines and jd in lines, r.stdout
    finally:
        a.close()
        d.close()


def test_import_users(server):
    u1, u2 = unique('imp'), unique('imp')
    data = '%s:pw-1234\n%s:pw-5678\nalice:not-changed\n' % (u1, u2)
    r = server.ctl('import-users', HOST, input=data)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert 'created 2, existing 1' in r.stdout, r.stdout
    assert _can_login(server, u1, 'pw-1234')
    assert _can_login(server, u2, 'pw-5678')
    assert _can_login(server, 'alice', server.password('alice'))


def test_reload(server):
    r = server.ctl('reload')
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert server.running()
    c = RawClient(server.port)
    try:
        c.login('alice', server.password('alice'), presence=False)
        el = c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        assert el.get('type') == 'result', tostr(el)
    finally:
        c.close()


def test_sighup_reload_keeps_serving(server):
    import signal
    server.proc.send_signal(signal.SIGHUP)
    c = RawClient(server.port)
    try:
        c.login('bob', server.password('bob'), presence=False)
    finally:
        c.close()
    assert server.running()


def test_stop_then_offline_commands(fresh_server):
    srv = fresh_server
    r = srv.ctl('stop')
    assert r.returncode == 0, (r.returncode, r.stderr)
    rc = srv.wait_exit(20)
    assert rc == 0, 'parleyd exit status after parleyctl stop: %s' % rc

    r = srv.ctl('status')
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    r = srv.ctl('connected-users')
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)

    # data commands work offline, on the store itself
    user = unique('off')
    r = srv.ctl('register', user, HOST, 'offline-pw')
    assert r.returncode == 0, (r.returncode, r.stderr)
    r = srv.ctl('register', user, HOST, 'offline-pw')
    assert r.returncode == 1 and 'exists' in r.stderr, (r.returncode, r.stderr)
    r = srv.ctl('passwd', user, HOST, 'offline-pw2')
    assert r.returncode == 0, (r.returncode, r.stderr)
    r = srv.ctl('passwd', unique('ghost'), HOST, 'x-pw-x')
    assert r.returncode == 1, (r.returncode, r.stderr)
    r = srv.ctl('import-users', HOST, input='%s:imp-pw\n%s:again\n' % (unique('oi'), user))
    assert r.returncode == 0 and 'created 1, existing 1' in r.stdout, (r.returncode, r.stdout, r.stderr)

    # back up: the account made offline logs in
    srv.start()
    assert _can_login(srv, user, 'offline-pw2')
    r = srv.ctl('unregister', user, HOST)
    assert r.returncode == 0, (r.returncode, r.stderr)
