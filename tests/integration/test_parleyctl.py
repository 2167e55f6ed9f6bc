"""parleyctl against a running parleyd and offline, with its exit codes:
0 ok (yes), 1 the command failed (no), 2 usage error, 3 parleyd not
reachable, 5 refused while parleyd runs; --json output parsed."""
import json
import os
import re

from parleytest import (HOST, NS_CLIENT, NS_PING, NS_SASL, OTHER, RawClient, find_lines, q, tostr,
                        unique)


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


def test_unregister_closes_an_authenticated_stream_not_yet_bound(server):
    """A stream that authenticated before the removal but had no resource
    yet is closed too: it must not bind a session of the removed account
    (and leave data behind for whoever registers the name next)."""
    user = unique('unbound')
    server.register(user, HOST, 'unbound-pw')
    c = RawClient(server.port)
    try:
        c.open()
        c.starttls()
        assert c.auth_plain(user, 'unbound-pw').tag == q(NS_SASL, 'success')
        c.open()  # the stream restart after SASL; no bind yet
        r = server.ctl('unregister', user, HOST)
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert c.stream_error(timeout=10) == 'not-authorized'
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
    # a usage error is one whether parleyd runs or not
    for args in (('status', 'extra'), ('reload', 'now'), ('--json', 'stop')):
        r = srv.ctl(*args)
        assert r.returncode == 2 and 'parleyd is not running' not in r.stderr, (args, r.returncode, r.stderr)

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


def _json(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def test_list_commands_json_and_help_command(server):
    cmds = _json(server.ctl('--json', 'list-commands'))
    names = {c['name'] for c in cmds}
    for want in ('status', 'stop', 'restart', 'reload', 'register', 'unregister', 'passwd',
                 'check-password', 'user-exists', 'registered-users', 'connected-users',
                 'connected-users-info', 'kick-session', 'send-message', 'send-stanza', 'stats',
                 'backup', 'restore', 'list-commands', 'help'):
        assert want in names, (want, names)
    assert {c['name'] for c in cmds if c['json']} == {
        'registered-users', 'connected-users', 'connected-users-info', 'stats', 'ldap-test',
        'muc-list', 'muc-info', 'pubsub-list', 'pubsub-info', 'components', 'list-commands',
        'api-token-list', 'upload-list', 'get-roster', 'offline-list'}
    r = server.ctl('help', 'kick-session')
    assert r.returncode == 0 and 'kick-session JID [REASON]' in r.stdout, (r.returncode, r.stdout)
    r = server.ctl('help', 'no-such-thing')
    assert r.returncode == 2, (r.returncode, r.stderr)
    # --json on a command without JSON output is a usage error
    r = server.ctl('--json', 'status')
    assert r.returncode == 2, (r.returncode, r.stderr)


def test_check_password_reads_stdin(server):
    r = server.ctl('check-password', 'alice', HOST, input=server.password('alice') + '\n')
    assert r.returncode == 0, (r.returncode, r.stderr)
    r = server.ctl('check-password', 'alice', HOST, input='not-the-password\n')
    assert r.returncode == 1 and 'wrong password' in r.stderr, (r.returncode, r.stderr)
    r = server.ctl('check-password', unique('ghost'), HOST, input='x\n')
    assert r.returncode == 1 and 'no such user' in r.stderr, (r.returncode, r.stderr)
    # the password never goes on the command line: a third argument is a usage error
    r = server.ctl('check-password', 'alice', HOST, server.password('alice'), input='')
    assert r.returncode == 2, (r.returncode, r.stderr)
    r = server.ctl('check-password', 'alice', 'nowhere.example', input='x\n')
    assert r.returncode == 1, (r.returncode, r.stderr)


def test_user_exists(server):
    assert server.ctl('user-exists', 'bob', HOST).returncode == 0
    assert server.ctl('user-exists', 'bob', OTHER).returncode == 1
    assert server.ctl('user-exists', 'dave', OTHER).returncode == 0
    assert server.ctl('user-exists', 'bob').returncode == 2


def test_registered_users(server):
    user = unique('listed')
    server.register(user, OTHER, 'listed-pw')
    r = server.ctl('registered-users', OTHER)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout.split() == sorted(['dave', user]), r.stdout
    doc = _json(server.ctl('registered-users', OTHER, '--json'))
    assert doc == {'host': OTHER, 'count': 2, 'users': sorted(['dave', user])}, doc
    r = server.ctl('registered-users', 'nowhere.example')
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert server.ctl('unregister', user, OTHER).returncode == 0


def test_connected_users_info_and_json(server):
    a = RawClient(server.port)
    t = RawClient(server.tls_port, direct_tls=True)
    try:
        ja = a.login('alice', server.password('alice'), resource='info-a')
        a.send("<presence><priority>7</priority></presence>")
        a.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        jb = t.login('bob', server.password('bob'), resource='info-b')
        users = _json(server.ctl('--json', 'connected-users'))
        assert ja in users and jb in users, users
        info = {s['jid']: s for s in _json(server.ctl('--json', 'connected-users-info'))}
        sa, sb = info[ja], info[jb]
        assert sa['ip'] == '127.0.0.1' and sa['port'] == a.sock.getsockname()[1], sa
        assert sb['port'] == t.sock.getsockname()[1], sb
        assert sa['priority'] == 7 and sa['resource'] == 'info-a', sa
        assert sa['tls'].startswith('TLSv1.') and sb['tls'].startswith('TLSv1.'), (sa, sb)
        assert sa['user'] == 'alice' and sa['host'] == HOST, sa
        assert sa['connected_seconds'] >= 0 and sa['connected_since'].endswith('Z'), sa
        r = server.ctl('connected-users-info')
        assert r.returncode == 0
        line = [x for x in r.stdout.splitlines() if x.startswith(ja + ' ')]
        assert line and '127.0.0.1' in line[0] and 'info-a' in line[0], r.stdout
    finally:
        a.close()
        t.close()


def test_kick_session(server):
    a = RawClient(server.port)
    b = RawClient(server.port)
    try:
        ja = a.login('carol', server.password('carol'), resource='kick-a')
        jb = b.login('carol', server.password('carol'), resource='kick-b')
        r = server.ctl('kick-session', ja, 'maintenance')
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert a.stream_error(timeout=10) == 'policy-violation'
        texts = [e for e in a.received if e.tag.endswith('}error')]
        assert texts and 'maintenance' in tostr(texts[-1]), [tostr(e) for e in a.received]
        # the other resource stays
        el = b.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        assert el.get('type') == 'result'
        r = server.ctl('kick-session', ja)
        assert r.returncode == 1, (r.returncode, r.stderr)
        r = server.ctl('kick-session', 'carol@' + HOST)
        assert r.returncode == 0 and jb in r.stdout, (r.returncode, r.stdout, r.stderr)
        assert b.stream_error(timeout=10) == 'policy-violation'
        assert server.ctl('kick-session', 'not a jid@@').returncode == 2
    finally:
        a.close()
        b.close()


def _wait_gone(server, jid, timeout=10):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if jid not in server.ctl('connected-users').stdout.split():
            return
        time.sleep(0.05)
    raise AssertionError('%s still connected' % jid)


def test_send_message_online_and_offline(server):
    a = RawClient(server.port)
    try:
        ja = a.login('erin', server.password('erin'), resource='sendmsg')
        body = unique('from-admin-')
        r = server.ctl('send-message', HOST, ja, body)
        assert r.returncode == 0, (r.returncode, r.stderr)
        m = a.wait_message(body, timeout=10)
        assert m.get('from') == HOST, tostr(m)
    finally:
        a.close()
    _wait_gone(server, ja)
    # to a user who is not online: the offline storage keeps it
    body = unique('stored-')
    r = server.ctl('send-message', 'admin@' + HOST, 'erin@' + HOST, body)
    assert r.returncode == 0, (r.returncode, r.stderr)
    b = RawClient(server.port)
    try:
        b.login('erin', server.password('erin'), resource='later')
        # delivered at the available presence, before login()'s ping answer
        got = [e for e in b.received if e.tag == q(NS_CLIENT, 'message')
               and e.findtext(q(NS_CLIENT, 'body')) == body]
        m = got[0] if got else b.wait_message(body, timeout=10)
        assert m.get('from') == 'admin@' + HOST, tostr(m)
    finally:
        b.close()
    assert server.ctl('send-message', 'x@@y', 'erin@' + HOST, 'b').returncode == 2


def test_send_stanza(server):
    a = RawClient(server.port)
    try:
        ja = a.login('bob', server.password('bob'), resource='stanza')
        body = unique('raw-')
        xml = "<message type='chat'><body>%s</body><thread>t1</thread></message>" % body
        r = server.ctl('send-stanza', 'alice@' + HOST, ja, xml)
        assert r.returncode == 0, (r.returncode, r.stderr)
        m = a.wait_message(body, timeout=10)
        assert m.get('from') == 'alice@' + HOST and m.get('type') == 'chat', tostr(m)
        assert m.findtext(q(NS_CLIENT, 'thread')) == 't1', tostr(m)
        # refused by the XML wall or not a stanza: usage error, nothing sent
        for bad in ("<message><body>x</body>",
                    "<!DOCTYPE m [<!ENTITY e 'x'>]><message><body>&e;</body></message>",
                    "<foo xmlns='urn:x'/>",
                    "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
                    "<message/><message/>"):
            r = server.ctl('send-stanza', 'alice@' + HOST, ja, bad)
            assert r.returncode == 2, (bad, r.returncode, r.stderr)
        # an iq to a user's bare JID is answered by the server for them
        el = a.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        assert el.get('type') == 'result'
    finally:
        a.close()


def test_stats(server):
    a = RawClient(server.port)
    try:
        a.login('alice', server.password('alice'), resource='stats')
        before = _json(server.ctl('stats', '--json'))
        a.send("<message to='bob@%s' type='chat'><body>count me</body></message>" % HOST)
        a.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=HOST)
        after = _json(server.ctl('--json', 'stats'))
        assert after['stanzas_in']['message'] == before['stanzas_in']['message'] + 1, (before, after)
        assert after['stanzas_in']['iq'] >= before['stanzas_in']['iq'] + 1
        assert after['stanzas_out']['iq'] >= before['stanzas_out']['iq'] + 1
        h = after['hosts'][HOST]
        assert h['registered_users'] >= 4 and h['online_users'] >= 1 and h['sessions'] >= 1, h
        assert after['hosts'][OTHER]['registered_users'] >= 1
        assert after['uptime_seconds'] >= 0
        # (the heap figure is 0 under AddressSanitizer, which has its own allocator)
        assert after['memory']['rss_kib'] > 1000 and after['memory']['heap_used_kib'] >= 0
        r = server.ctl('stats')
        assert r.returncode == 0 and 'stanzas in:' in r.stdout and 'rss' in r.stdout, r.stdout
    finally:
        a.close()


def test_backup_and_restore(fresh_server):
    srv = fresh_server
    keep = unique('kept')
    srv.register(keep, HOST, 'kept-pw')
    r = srv.ctl('backup', 'backup.db')
    assert r.returncode == 0, (r.returncode, r.stderr)
    bak = srv.dir / 'backup.db'
    assert bak.exists()
    # a backup is a whole database: the accounts are in it
    import sqlite3
    db = sqlite3.connect(str(bak))
    try:
        names = {row[0] for row in db.execute('SELECT username FROM users')}
    finally:
        db.close()
    assert keep in names and 'alice' in names, names
    # made after the backup: gone after the restore
    later = unique('later')
    srv.register(later, HOST, 'later-pw')
    r = srv.ctl('restore', 'backup.db')
    assert r.returncode == 5, (r.returncode, r.stderr)
    # a backup into a directory that does not exist fails cleanly
    r = srv.ctl('backup', 'no/such/dir/x.db')
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert srv.ctl('stop').returncode == 0
    assert srv.wait_exit(20) == 0
    # not a database: refused, the store is untouched
    (srv.dir / 'junk.db').write_text('this is not sqlite\n' * 100)
    r = srv.ctl('restore', 'junk.db')
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert srv.ctl('user-exists', later, HOST).returncode == 0
    r = srv.ctl('restore', str(bak))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert srv.ctl('user-exists', later, HOST).returncode == 1
    assert srv.ctl('user-exists', keep, HOST).returncode == 0
    # offline backup works too
    r = srv.ctl('backup', 'offline.db')
    assert r.returncode == 0 and (srv.dir / 'offline.db').exists(), (r.returncode, r.stderr)
    srv.start()
    assert _can_login(srv, keep, 'kept-pw')
    assert not _can_login(srv, later, 'later-pw')


def test_restart_in_place(fresh_server):
    srv = fresh_server
    pid = srv.proc.pid
    c = RawClient(srv.port)
    try:
        c.login('alice', srv.password('alice'), presence=False)
        r = srv.ctl('restart')
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert c.stream_error(timeout=10) == 'system-shutdown'
    finally:
        c.close()
    assert srv.running() and srv.proc.pid == pid
    r = srv.ctl('status')
    assert r.returncode == 0 and 'pid: %d' % pid in r.stdout, (r.returncode, r.stdout)
    assert _can_login(srv, 'bob', srv.password('bob'))
    assert srv.log().count('parleyd restarting') == 1


def test_config_check(server, tmp_path):
    # the server's own file is fine
    r = server.ctl('config-check', server.config)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', (r.returncode, r.stdout, r.stderr)
    good = server.config.read_text()
    cases = [
        # (text replaced, replacement, expected "file:line:column: key '...'" fragment)
        ('  max_stanza_size: 64K\n', '  max_stanza_size: 64K\n  max_dept: 3\n',
         "key 'limits.max_dept': unknown key (did you mean 'max_depth'?)"),
        ('  auth_attempts: 3\n', '  auth_attempts: lots\n',
         "key 'limits.auth_attempts': expected an unsigned integer, got 'lots'"),
        ('  ping: {}\n', '  pong: {}\n', "unknown module 'pong'"),
        ('  time: {}\n', '  time: { zone: utc }\n', "key 'hosts.%s.modules.time.zone': unknown key" % HOST),
        ('min_password_length: 4 }', 'min_password_length: many }',
         "key 'hosts.%s.modules.register.min_password_length': expected an unsigned integer" % HOST),
    ]
    for old, new, want in cases:
        assert old in good, old
        bad = tmp_path / 'bad.yml'
        bad.write_text(good.replace(old, new, 1))
        # works without reading -c (a file that does not even exist)
        r = _ctl_plain(server, 'config-check', str(bad))
        assert r.returncode == 1, (want, r.returncode, r.stdout, r.stderr)
        assert 'ok' not in r.stdout.split()
        line = [x for x in r.stderr.splitlines() if want in x]
        assert line, (want, r.stderr)
        # file:line:column: first
        path, lineno, col = line[0].split(': ', 1)[1].split(':')[:3]
        assert path == str(bad) and int(lineno) > 0 and int(col) > 0, line[0]
        # the line named is the one with the bad key
        bad_key = want.split("'")[1].split('.')[-1] if want.startswith('key') else 'pong'
        assert bad_key in bad.read_text().splitlines()[int(lineno) - 1], (line[0], lineno)
    r = _ctl_plain(server, 'config-check', str(tmp_path / 'missing.yml'))
    assert r.returncode == 1 and 'missing.yml' in r.stderr, (r.returncode, r.stderr)
    r = _ctl_plain(server, 'config-check')
    assert r.returncode == 2, (r.returncode, r.stderr)


def _ctl_plain(server, *args):
    """parleyctl without -c (config-check must not need one)."""
    import subprocess
    return subprocess.run([server.parleyctl, '-c', '/nonexistent/parley.yml'] + list(args),
                          capture_output=True, text=True, timeout=60, cwd=str(server.dir), env=server.env)


def test_config_dump(server):
    r = server.ctl('config-dump', HOST)
    assert r.returncode == 0, (r.returncode, r.stderr)
    out = r.stdout
    assert 'hosts:\n  %s:\n' % HOST in out, out
    assert OTHER + ':' not in out
    assert 'admins: [alice@%s]' % HOST in out, out
    # overrides of the host over the global modules, and the defaults of the rest
    reg = out[out.index('      register:'):]
    assert '        open: true' in reg and '        throttle: 0' in reg, out
    off = out[out.index('      offline:'):]
    assert '        max_per_user: 100' in off, out
    r = server.ctl('config-dump', OTHER)
    assert r.returncode == 0 and '        open: false' in r.stdout, r.stdout
    r = server.ctl('config-dump')
    assert r.returncode == 0
    for key in ('loglevel:', 'limits:', '  max_stanza_size: 64K', 'listen:', 'hosts:'):
        assert key in r.stdout, (key, r.stdout)
    assert server.ctl('config-dump', 'nowhere.example').returncode == 1


def test_reload_adds_and_removes_hosts(fresh_server):
    srv = fresh_server
    base = srv.config.read_text()
    line = '  %s: {}\n' % OTHER
    assert line in base
    srv.config.write_text(base.replace(line, line + '  new.local: { admins: [boss@new.local] }\n'))
    r = srv.ctl('reload')
    assert r.returncode == 0 and 'host new.local: added' in r.stdout, (r.returncode, r.stdout, r.stderr)
    assert 'new.local' in srv.ctl('status').stdout
    srv.register('nina', 'new.local', 'nina-pw')
    c = RawClient(srv.port, host='new.local')
    d = RawClient(srv.port, host=OTHER)
    try:
        jn = c.login('nina', 'nina-pw', resource='r')
        jd = d.login('dave', srv.password('dave', OTHER), resource='r')
        # users of the new host talk to the others
        d.send("<message to='%s' type='chat'><body>welcome</body></message>" % jn)
        assert c.wait_message('welcome', timeout=10).get('from') == jd
        # remove other.local: its session is closed, the other hosts go on
        srv.config.write_text(base.replace(line, '  new.local: {}\n'))
        r = srv.ctl('reload')
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert 'host %s: removed (1 sessions closed)' % OTHER in r.stdout, r.stdout
        assert d.stream_error(timeout=10) == 'host-gone'
        el = c.iq('get', "<ping xmlns='%s'/>" % NS_PING, to='new.local')
        assert el.get('type') == 'result', tostr(el)
        # a message to the removed domain bounces
        c.send("<message id='m1' to='dave@%s' type='chat'><body>x</body></message>" % OTHER)
        err = c.wait_for(lambda e: e.get('id') == 'm1', timeout=10)
        assert err.get('type') == 'error', tostr(err)
    finally:
        c.close()
        d.close()
    e = RawClient(srv.port, host=OTHER)
    try:
        e.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
               "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>" % OTHER)
        assert e.stream_error(timeout=10) == 'host-unknown'
    finally:
        e.close()
    assert OTHER not in srv.ctl('status').stdout.split('hosts:')[1].split('\n')[0]
    # back again, with its accounts (same store)
    srv.config.write_text(base)
    r = srv.ctl('reload')
    assert r.returncode == 0 and 'host %s: added' % OTHER in r.stdout, r.stdout
    assert 'host new.local: removed' in r.stdout, r.stdout
    assert _can_login(srv, 'dave', srv.password('dave', OTHER), host=OTHER)
    # a broken file changes nothing (parleyctl cannot read it either: exit 2;
    # SIGHUP makes parleyd try and refuse it)
    import signal
    srv.config.write_text(base.replace(line, '') + 'bogus_key: 1\n')
    r = srv.ctl('reload')
    assert r.returncode == 2 and 'bogus_key' in r.stderr, (r.returncode, r.stdout, r.stderr)
    srv.proc.send_signal(signal.SIGHUP)
    assert _can_login(srv, 'dave', srv.password('dave', OTHER), host=OTHER)
    assert "reload: %s" % srv.config in srv.log() and 'bogus_key' in srv.log()
    srv.config.write_text(base)


def test_reload_refuses_a_host_that_is_a_service(fresh_server):
    """A new host named like a domain already served (the MUC service of
    HOST) is refused, as start-up refuses it, and nothing changes."""
    srv = fresh_server
    base = srv.config.read_text()
    line = '  %s: {}\n' % OTHER
    assert line in base
    assert srv.ctl('muc-create', 'room@conference.' + HOST, 'alice@' + HOST).returncode == 0
    srv.config.write_text(base.replace(line, line + '  conference.%s: {}\n  new.local: {}\n' % HOST))
    want = 'the domain conference.%s is already served here' % HOST
    r = srv.ctl('config-check', str(srv.config))
    assert r.returncode == 1 and want in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr)
    r = srv.ctl('reload')
    assert r.returncode == 1 and want in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr)
    hosts = srv.ctl('status').stdout.split('hosts:')[1].split('\n')[0]
    assert 'conference.' not in hosts and 'new.local' not in hosts, hosts
    c = RawClient(srv.port)
    try:
        c.login('alice', srv.password('alice'), presence=False)
        el = c.iq('get', "<query xmlns='http://jabber.org/protocol/disco#info'/>", to='conference.' + HOST)
        assert el.get('type') == 'result' and 'conference' in tostr(el), tostr(el)
    finally:
        c.close()
    srv.config.write_text(base)


def test_reload_with_a_new_host_that_cannot_start_changes_nothing(fresh_server):
    srv = fresh_server
    base = srv.config.read_text()
    line = '  %s: {}\n' % OTHER
    assert line in base
    # other.local goes, new.local comes with a certificate that is not there
    srv.config.write_text(base.replace(line, '  new.local: { tls: { certificate: nope.pem, key: key.pem } }\n'))
    r = srv.ctl('reload')
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert 'host new.local:' in r.stdout and 'nope.pem' in r.stdout, r.stdout
    assert 'nothing was changed' in r.stderr, r.stderr
    hosts = srv.ctl('status').stdout.split('hosts:')[1].split('\n')[0]
    assert OTHER in hosts and 'new.local' not in hosts, hosts
    assert _can_login(srv, 'dave', srv.password('dave', OTHER), host=OTHER)
    srv.config.write_text(base)


def test_config_check_finds_what_start_would_fail_on(server):
    """config-check and parleyd -t load the certificates (into a context
    of their own) and look at the folders of the files start-up makes."""
    import subprocess
    base = server.config.read_text()
    other = server.dir / 'other-key.pem'
    if not other.exists():
        subprocess.run(['openssl', 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', str(other)],
                       check=True, capture_output=True)
    line = '  %s: {}\n' % OTHER
    cases = [
        (('certificate: cert.pem', 'certificate: nocert.pem'), "key 'tls.certificate'", 'nocert.pem'),
        (('  key: key.pem', '  key: nokey.pem'), "key 'tls.key'", 'nokey.pem'),
        ((line, '  %s: { tls: { certificate: cert.pem, key: %s } }\n' % (OTHER, other)),
         "key 'hosts.%s.tls.key'" % OTHER, 'mismatch'),
        (('  key: key.pem', '  key: key.pem\n  ciphers: NOPE-CIPHER'), "key 'tls.ciphers'", 'NOPE-CIPHER'),
        ((line, '  %s: { auth: { methods: [external], external: { program: /nonexistent/prog } } }\n'
          % OTHER), "key 'hosts.%s.auth.external.program'" % OTHER, '/nonexistent/prog'),
        (('pidfile: parleyd.pid', 'pidfile: /nonexistent/parleyd.pid'), "key 'pidfile'", '/nonexistent'),
        (('pidfile: parleyd.pid', 'pidfile: parleyd.pid\nlog_file: /nonexistent/parleyd.log'),
         "key 'log_file'", '/nonexistent'),
        (('socket: parley.sock', 'socket: /nonexistent/parley.sock'), "key 'control.socket'", '/nonexistent'),
        (('  path: %s' % server.sqlite_path, '  path: /nonexistent/parley.db'), "key 'storage.path'",
         '/nonexistent'),
    ]
    for (old, new), key, what in cases:
        assert old in base, old
        path = server.dir / 'startable.yml'
        path.write_text(base.replace(old, new, 1))
        r = server.ctl('config-check', str(path))
        assert r.returncode == 1, (key, r.returncode, r.stdout, r.stderr)
        assert '%s:' % path in r.stderr and key in r.stderr and what in r.stderr, (key, r.stderr)
        t = subprocess.run([server.parleyd, '-t', '-c', str(path)], capture_output=True, text=True, timeout=30)
        assert t.returncode == 1 and key in t.stderr, (key, t.returncode, t.stdout, t.stderr)
    path.write_text(base)
    assert server.ctl('config-check', str(path)).returncode == 0


def test_changes_that_need_a_restart_are_reported_until_restarted(fresh_server):
    """Each reload compares with what runs: a change that needs a restart
    is reported (and logged, SIGHUP too) until parleyd restarts, and
    config-dump says the host's file settings do not run yet."""
    import signal
    import time
    srv = fresh_server
    base = srv.config.read_text()
    assert 'min_password_length: 4' in base
    changed = base.replace('min_password_length: 4', 'min_password_length: 8')
    srv.config.write_text(changed)
    want = 'host %s: storage, auth, tls or modules changed; restart parleyd' % HOST
    for _ in range(2):
        r = srv.ctl('reload')
        assert r.returncode == 0 and want in r.stdout, (r.returncode, r.stdout, r.stderr)
    assert len(find_lines(r'\[warning\] reload: ' + re.escape(want), srv.log())) == 2
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while len(find_lines(r'\[warning\] reload: ' + re.escape(want), srv.log())) < 3:
        assert time.time() < deadline, srv.log()[-2000:]
        time.sleep(0.1)
    r = srv.ctl('config-dump', HOST)
    assert r.returncode == 0 and '# restart parleyd to apply: ' + want.split(';')[0] in r.stdout, r.stdout
    # back to what runs: nothing to report
    srv.config.write_text(base)
    r = srv.ctl('reload')
    assert r.returncode == 0 and 'restart parleyd' not in r.stdout, r.stdout
    assert 'restart parleyd' not in srv.ctl('config-dump', HOST).stdout


def test_parleyd_help(server):
    import subprocess
    for arg in ('-h', '--help'):
        r = subprocess.run([server.parleyd, arg], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.startswith('usage: parleyd') and r.stderr == '', (arg, r)
        assert '-h, --help' in r.stdout, r.stdout
    r = subprocess.run([server.parleyd, '--nonsense'], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and 'usage: parleyd' in r.stderr, r
