"""Happy Eyeballs for outgoing s2s connections (RFC 8305, simplified):
b.test's SRV target has an AAAA and an A record; the AAAA address is a
black hole (a listening socket whose accept queue is full, so the
kernel drops further SYNs and connect() neither succeeds nor fails) and
the A address is the real server.  With s2s.connect_delay the second
address is tried beside the first and the message arrives at once;
without it (connect_delay 0: one address at a time) the connection
times out.  Names come from the test DNS server (python3-dnslib)."""
import contextlib
import itertools
import socket
import time

import pytest

import parleytest
from parleytest import FedParleyd, free_port, login, logout, next_message, unique

pytestmark = parleytest.needs_dnslib()

A, B = 'a.test', 'b.test'


class BlackHole:
    """[::1]:port listening with a full accept queue: SYNs are dropped."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET6)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.sock.bind(('::1', port))
        self.sock.listen(0)
        self.filler = socket.create_connection(('::1', port), timeout=2)
        probe = socket.socket(socket.AF_INET6)
        probe.settimeout(0.5)
        try:
            probe.connect(('::1', port))
            raise AssertionError('the black hole accepted a connection')
        except socket.timeout:
            pass
        finally:
            probe.close()

    def close(self):
        self.filler.close()
        self.sock.close()


@contextlib.contextmanager
def start(base, a_opts):
    from parleytest import TestDNS
    pa, pb = free_port(), free_port()
    with contextlib.closing(BlackHole(pb)) as hole, TestDNS({
        ('_xmpp-server._tcp.' + B, 'SRV'): [(10, 0, pb, 'srv-b.test')],
        ('srv-b.test', 'AAAA'): ['::1'],
        ('srv-b.test', 'A'): ['127.0.0.1'],
    }) as dns:
        opts = {'dns_servers': '["127.0.0.1:%d"]' % dns.port}
        opts.update(a_opts)
        a = FedParleyd(base / 'a', A, {('alice', A): 'alice-secret'}, s2s_port=pa, s2s=opts)
        b = FedParleyd(base / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb)
        with parleytest.started(a, b):
            yield a, b, dns, hole


@pytest.fixture
def net_factory(tmp_path):
    n = itertools.count()
    with contextlib.ExitStack() as stack:
        def make(**a_opts):
            # a fresh folder for each try: a retry must not find the
            # accounts of the try before
            return stack.enter_context(parleytest.on_free_ports(
                lambda: start(tmp_path / ('n%d' % next(n)), a_opts)))
        yield make


def test_second_address_wins_while_first_hangs(net_factory, run):
    a, b, dns, hole = net_factory(connect_timeout='20s', connect_delay='250ms')

    async def go():
        alice = await login(a, 'alice', host=A, resource='h')
        bob = await login(b, 'bob', host=B, resource='h')
        body = unique('eyeballs ')
        t0 = time.monotonic()
        alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
        await next_message(bob, pred=lambda m: m['body'] == body, timeout=15)
        took = time.monotonic() - t0
        await logout(alice, bob)
        return took
    took = run(go(), timeout=60)
    assert took < 5, 'delivered after %.2f s' % took
    assert ('srv-b.test', 'AAAA') in dns.queries and ('srv-b.test', 'A') in dns.queries
    log = a.log()
    assert 'resolved to ::1 port %d, 127.0.0.1 port %d' % (b.s2s_port, b.s2s_port) in log, \
        log[-3000:]
    assert 'b.test: 127.0.0.1 port %d connected first; 1 other attempts closed' % b.s2s_port \
        in log, log[-3000:]


def test_one_address_at_a_time_times_out(net_factory, run):
    """The same network with connect_delay 0: the black hole holds the
    connection until s2s.connect_timeout, and the message bounces."""
    a, b, dns, hole = net_factory(connect_timeout='3s', connect_delay='0')

    async def go():
        alice = await login(a, 'alice', host=A, resource='t')
        body = unique('no eyeballs ')
        alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
        err = await next_message(alice, pred=lambda m: m['type'] == 'error', timeout=15)
        await logout(alice)
        return err
    err = run(go(), timeout=60)
    assert err['error']['condition'] == 'remote-server-timeout', err
