"""Federation policy: deny lists (applied on reload, both directions),
the idle timeout, and the limit on incoming connections per address."""
import asyncio
import time

import pytest

from parleytest import (FedParleyd, RawServer, free_port, iq, login, logout, next_message,
                        stanza_error, started, tostr, unique)

A, B = 'a.test', 'b.test'


@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    base = tmp_path_factory.mktemp('s2s-policy')
    pa, pb = free_port(), free_port()
    a = FedParleyd(base / 'a', A, {('alice', A): 'alice-secret'}, peers={B: pb}, s2s_port=pa,
                   s2s={'idle_timeout': '2s', 'max_connections_per_ip': '3'})
    b = FedParleyd(base / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb)
    with started(a, b):
        yield a, b


def chat(a, b, run):
    async def go():
        alice = await login(a, 'alice', host=A, resource='c')
        bob = await login(b, 'bob', host=B, resource='c')
        body = unique('hi ')
        alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
        await next_message(bob, pred=lambda m: m['body'] == body, timeout=15)
        back = unique('ho ')
        bob.send_message(mto='alice@' + A, mbody=back, mtype='chat')
        await next_message(alice, pred=lambda m: m['body'] == back, timeout=15)
        await logout(alice, bob)
    run(go(), timeout=60)


def wait_no_stream(server, direction, domain, timeout=15):
    deadline = time.monotonic() + timeout
    while '%s\t%s' % (direction, domain) in server.ctl('s2s-list').stdout:
        assert time.monotonic() < deadline, server.ctl('s2s-list').stdout
        time.sleep(0.1)


def test_idle_connections_close(pair, run):
    a, b = pair
    chat(a, b, run)
    assert 'out\t%s' % B in a.ctl('s2s-list').stdout
    wait_no_stream(a, 'out', B)
    assert 'idle for 2 s: closing' in a.log()
    chat(a, b, run)     # and a new one opens when needed


def test_deny_list_applies_on_reload_both_ways(pair, run):
    a, b = pair
    chat(a, b, run)
    a.s2s_opts['deny'] = '[%s]' % B
    a.write_config()
    r = a.ctl('reload')
    assert r.returncode == 0, r.stderr
    # the streams with b.test end at once
    wait_no_stream(a, 'out', B)
    wait_no_stream(b, 'out', A)

    async def go():
        alice = await login(a, 'alice', host=A, resource='d')
        bob = await login(b, 'bob', host=B, resource='d')
        el = await iq(alice, 'get', 'bob@' + B, "<ping xmlns='urn:xmpp:ping'/>", timeout=20)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        # b.test's stanzas: its stream (if any) is closed, a new one refused
        errors = asyncio.Queue()
        bob.add_event_handler('message_error', errors.put_nowait)
        bob.send_message(mto='alice@' + A, mbody=unique('denied '), mtype='chat')
        m = await asyncio.wait_for(errors.get(), 20)
        assert m['error']['condition'] == 'remote-server-not-found', m
        await logout(alice, bob)
    run(go(), timeout=60)
    assert 'federation with your domain is not allowed here' in a.log()
    del a.s2s_opts['deny']
    a.write_config()
    assert a.ctl('reload').returncode == 0
    wait_no_stream(b, 'out', A)
    time.sleep(2.5)     # b.test's backoff for a.test (max_backoff 2s) ends
    chat(a, b, run)


def test_connections_per_ip_limit(pair, run):
    a, b = pair
    # every stream comes from 127.0.0.1: wait until b.test's (idle after
    # 2 s on a.test) are gone
    deadline = time.monotonic() + 15
    while any(ln.startswith('in\t') for ln in a.ctl('s2s-list').stdout.splitlines()):
        assert time.monotonic() < deadline, a.ctl('s2s-list').stdout
        time.sleep(0.1)
    conns = [RawServer(a.s2s_port, 'x%d.test' % i, A) for i in range(4)]
    try:
        for c in conns[:3]:
            c.open()
        # the fourth is closed at once, without a stream
        c = conns[3]
        assert c.wait_closed(timeout=5)
        assert 'already 3 s2s connections from that address' in a.log()
    finally:
        for c in conns:
            c.close()
    wait_no_stream(a, 'in', 'x0.test')
    chat(a, b, run)


def test_direct_tls_s2s(tmp_path, run):
    """XEP-0368: the static map says tls:// and the peer's listener is
    direct TLS; the stream starts with the TLS handshake."""
    pa, pb, pbt = free_port(), free_port(), free_port()
    a = FedParleyd(tmp_path / 'a', A, {('alice', A): 'alice-secret'},
                   peers={B: 'tls://127.0.0.1:%d' % pbt}, s2s_port=pa)
    b = FedParleyd(tmp_path / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb,
                   s2s_tls_port=pbt)
    with started(a, b):
        chat(a, b, run)
        assert 'connected to 127.0.0.1 port %d (direct TLS)' % pbt in a.log(), a.log()[-3000:]
        out = [ln.split('\t') for ln in a.ctl('s2s-list').stdout.splitlines()]
        assert any(ln[0] == 'out' and ln[1] == B and ln[3].startswith('TLSv1') for ln in out), out
