"""parleyctl announce and motd against a running parleyd, with real
clients: a headline to the online users of a host, or to all its users
(stored offline for those away, committed before the command returns,
delivered at their next login); the message of the day shown, set,
delivered at login and deleted; usage errors, unknown hosts and storage
failures give a clear message and their exit code."""
import asyncio
import time

import pytest

import parleytest
from parleytest import HOST, OTHER, login, logout, next_message, unique


def new_user(srv, prefix='ann'):
    user, pw = unique(prefix), 'announce-pw'
    srv.register(user, HOST, pw)
    return user, pw


def wait_rows(srv, user, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.db_rows('offline_messages', user) == n:
            return
        time.sleep(0.05)
    raise AssertionError('%s has %d offline rows, expected %d'
                         % (user, srv.db_rows('offline_messages', user), n))


def count(stdout, label):
    """The number after 'label: ' in parleyctl's output."""
    for line in stdout.splitlines():
        if line.startswith(label + ': '):
            return int(line.split(': ', 1)[1].split()[0])
    raise AssertionError('no %r line in %r' % (label, stdout))


@pytest.fixture
def quota_server(tmp_path_factory):
    """A server whose users keep at most one offline message."""
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-announce-quota'))
    text = srv.config.read_text()
    marker = 'modules:\n  disco: {}\n'
    assert marker in text
    srv.config.write_text(text.replace(marker, marker + '  offline: { max_per_user: 1 }\n', 1))
    srv.start_with_users()
    yield srv
    srv.finish()


def test_announce_online_reaches_online_users_only(server, run):
    away, away_pw = new_user(server)
    body = unique('online-')

    async def go():
        b = await login(server, 'bob', resource='hears')
        d = await login(server, 'dave', host=OTHER, resource='elsewhere')
        try:
            r = server.ctl('announce', HOST, '--online', body)
            assert r.returncode == 0, (r.returncode, r.stderr)
            assert count(r.stdout, 'delivered online') >= 1, r.stdout
            m = await next_message(b, pred=lambda m: body in m['body'])
            assert m['from'].full == HOST and m['type'] == 'headline', m
            assert m['body'] == body
            # other hosts are not told
            with pytest.raises(asyncio.TimeoutError):
                await next_message(d, timeout=1, pred=lambda m: body in m['body'])
        finally:
            await logout(b, d)
        # nothing was stored for the user who was away
        assert server.db_rows('offline_messages', away) == 0
        c = await login(server, away, password=away_pw)
        try:
            with pytest.raises(asyncio.TimeoutError):
                await next_message(c, timeout=1, pred=lambda m: body in m['body'])
        finally:
            await logout(c)
    run(go())


def test_announce_all_stores_for_offline_users_before_returning(server, run):
    away, away_pw = new_user(server)
    body = unique('to-all-') + '\nsecond line'

    async def go():
        b = await login(server, 'bob', resource='online')
        try:
            r = server.ctl('announce', HOST, '--all', body)
            assert r.returncode == 0, (r.returncode, r.stderr)
            assert count(r.stdout, 'delivered online') >= 1, r.stdout
            assert count(r.stdout, 'stored offline') >= 1, r.stdout
            # committed when the command returned: no waiting
            assert server.db_rows('offline_messages', away) == 1
            m = await next_message(b, pred=lambda m: body in m['body'])
            assert m['from'].full == HOST and m['type'] == 'headline', m
        finally:
            await logout(b)
        # the user who was away gets it at login, from offline storage
        c = await login(server, away, password=away_pw)
        try:
            m = await next_message(c, pred=lambda m: body in m['body'])
            assert m['from'].full == HOST and m['body'] == body
            assert m.xml.find('{urn:xmpp:delay}delay') is not None, m
        finally:
            await logout(c)
    run(go())


def test_announce_all_fails_when_a_copy_cannot_be_stored(quota_server, run):
    srv = quota_server
    full, _ = new_user(srv, 'full')
    r = srv.ctl('send-message', 'alice@' + HOST, '%s@%s' % (full, HOST), 'fills the queue')
    assert r.returncode == 0, (r.returncode, r.stderr)
    wait_rows(srv, full, 1)
    body = unique('quota-')
    r = srv.ctl('announce', HOST, '--all', body)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert 'could not be stored for 1 user of %s' % HOST in r.stderr, r.stderr
    assert full in r.stderr and 'full' in r.stderr, r.stderr
    assert count(r.stdout, 'failed') == 1, r.stdout
    # the others have it (alice, bob, carol, erin are all away)
    assert count(r.stdout, 'stored offline') == 4, r.stdout
    assert srv.db_rows('offline_messages', 'carol') == 1
    assert srv.db_rows('offline_messages', full) == 1


def test_announce_usage_and_host_errors(server):
    r = server.ctl('announce', 'not-a-host.example', '--online', 'hello')
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert 'not-a-host.example' in r.stderr and 'not served' in r.stderr, r.stderr
    for args in (['announce', HOST, '--online'], ['announce', HOST],
                 ['announce', HOST, '--everyone', 'hello'], ['announce', HOST, '--all', '']):
        r = server.ctl(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.strip(), args
    r = server.ctl('announce', HOST, '--all', '')
    assert 'empty' in r.stderr, r.stderr
    r = server.ctl('help', 'announce')
    assert r.returncode == 0 and 'needs a running parleyd' in r.stdout, r.stdout


def test_motd_set_show_deliver_delete(server, run):
    r = server.ctl('motd', HOST, '--delete')
    assert r.returncode == 0, (r.returncode, r.stderr)
    r = server.ctl('motd', HOST)
    assert r.returncode == 1 and 'no message of the day' in r.stderr, (r.returncode, r.stderr)
    motd = unique('motd-') + '\nbe nice'
    r = server.ctl('motd', HOST, motd)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert 'set' in r.stdout, r.stdout
    r = server.ctl('motd', HOST)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout == motd + '\n', r.stdout

    async def at_login(user, expected):
        c = await login(server, user, resource=unique('motd-'))
        try:
            if expected:
                m = await next_message(c, pred=lambda m: motd in m['body'])
                assert m['from'].full == HOST and m['body'] == motd
            else:
                with pytest.raises(asyncio.TimeoutError):
                    await next_message(c, timeout=1, pred=lambda m: motd in m['body'])
        finally:
            await logout(c)
    run(at_login('carol', True))

    r = server.ctl('motd', HOST, '--delete')
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert 'deleted' in r.stdout, r.stdout
    r = server.ctl('motd', HOST)
    assert r.returncode == 1, (r.returncode, r.stdout)
    run(at_login('erin', False))


def test_motd_usage_and_host_errors(server):
    r = server.ctl('motd', 'not-a-host.example')
    assert r.returncode == 1 and 'not served' in r.stderr, (r.returncode, r.stderr)
    for args in (['motd'], ['motd', HOST, ''], ['motd', HOST, '--remove'],
                 ['motd', HOST, 'a', 'b']):
        r = server.ctl(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.strip(), args


def test_announce_and_motd_need_a_running_parleyd(fresh_server):
    fresh_server.stop()
    for args in (['announce', HOST, '--all', 'hello'], ['motd', HOST]):
        r = fresh_server.ctl(*args)
        assert r.returncode == 3, (args, r.returncode, r.stderr)
        assert 'not running' in r.stderr, r.stderr
