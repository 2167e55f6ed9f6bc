"""parleyctl fast-list and fast-revoke over the FAST tokens (XEP-0484) an
account has in the store (rows written here directly, with a random-looking
seed as the server keeps), and their removal with the account."""
import base64
import hashlib
import time

from parleytest import HOST, unique


def _token(server, user, ua, secret, created, ttl=86400):
    h = base64.b64encode(hashlib.sha256(secret).digest()).decode()
    server.db_query('INSERT INTO fast_tokens (server_host, username, token_seed, ua_id, mechanism, '
                    'created_at, expires_at, last_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                    (HOST, user, h, ua, 'HT-SHA-256-NONE', created, created + ttl, 0))


def _count(server, user):
    return server.db_query('SELECT COUNT(*) FROM fast_tokens WHERE server_host = ? AND username = ?',
                           (HOST, user))[0][0]


def test_list_and_revoke(server):
    user = unique('fast')
    server.register(user, HOST, 'pencil')
    now = int(time.time())
    _token(server, user, 'ua-phone', b'one', 1700000000)
    _token(server, user, 'ua-phone', b'two', now)
    _token(server, user, 'ua-laptop', b'three', now - 100, ttl=10)
    r = server.ctl('fast-list', '%s@%s' % (user, HOST))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3, r.stdout
    assert lines[0].startswith('ua-laptop HT-SHA-256-NONE created ') and lines[0].endswith('(expired)')
    assert lines[1].startswith('ua-phone HT-SHA-256-NONE created 2023-11-14T22:13:20Z expires ')
    assert not lines[2].endswith('(expired)')
    # no seed is shown
    assert base64.b64encode(hashlib.sha256(b'one').digest()).decode() not in r.stdout

    r = server.ctl('fast-revoke', '%s@%s' % (user, HOST), 'ua-phone')
    assert r.returncode == 0, r.stderr
    assert _count(server, user) == 1
    r = server.ctl('fast-revoke', '%s@%s' % (user, HOST), 'ua-phone')
    assert r.returncode == 1 and 'no tokens' in r.stderr, (r.stdout, r.stderr)
    r = server.ctl('fast-list', '%s@%s' % (user, HOST))
    assert r.stdout.startswith('ua-laptop ') and len(r.stdout.splitlines()) == 1, r.stdout
    r = server.ctl('fast-revoke', '%s@%s' % (user, HOST))
    assert r.returncode == 0, r.stderr
    assert _count(server, user) == 0
    assert server.ctl('fast-list', '%s@%s' % (user, HOST)).stdout == ''


def test_removed_with_the_account(server):
    user = unique('fast')
    server.register(user, HOST, 'pencil')
    _token(server, user, 'ua-1', b'x', int(time.time()))
    assert _count(server, user) == 1
    r = server.ctl('unregister', user, HOST)
    assert r.returncode == 0, r.stderr
    assert _count(server, user) == 0


def test_bad_arguments(server):
    r = server.ctl('fast-list', 'nobody-without-host')
    assert r.returncode != 0
    r = server.ctl('fast-revoke', 'a@b', 'c', 'd')
    assert r.returncode != 0


def test_purge_expired(server):
    u1, u2 = unique('fast'), unique('fast')
    server.register(u1, HOST, 'pencil')
    server.register(u2, HOST, 'pencil')
    now = int(time.time())
    _token(server, u1, 'ua-old', b'p1', now - 1000, ttl=10)
    _token(server, u2, 'ua-old', b'p2', now - 1000, ttl=10)
    _token(server, u2, 'ua-new', b'p3', now)
    r = server.ctl('fast-purge', HOST)
    assert r.returncode == 0, r.stderr
    n = int(r.stdout.split()[0])
    assert n >= 2 and r.stdout.endswith(' expired tokens deleted\n'), r.stdout
    assert _count(server, u1) == 0
    assert _count(server, u2) == 1
    assert server.ctl('fast-list', '%s@%s' % (u2, HOST)).stdout.startswith('ua-new ')
