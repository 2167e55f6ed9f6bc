"""s2s name resolution for real: parleyd's c-ares asks a DNS server run
by the test (s2s.dns_servers pointing at parleytest.TestDNS), which
serves SRV and address records for made-up domains:

- b.test: _xmpp-server._tcp SRV -> srv-b.test:PORT (a parleyd serving
  b.test, STARTTLS);
- c.test: _xmpps-server._tcp SRV only -> srv-c.test:PORT (a parleyd
  serving c.test whose s2s listener on that port is direct TLS,
  XEP-0368);
- d.test: no SRV, A 127.0.0.1 and AAAA ::1: the fallback to the domain's
  own addresses on port 5269, IPv6 first;
- e.test: no record at all: remote-server-not-found;
- dot.test: both SRV names answer with the target "." (the service is
  decidedly not offered, RFC 2782), dot1.test: _xmpp-server "." and no
  _xmpps-server record; both have an A record, which must not be used.

The servers of b.test and c.test reach a.test back through their static
maps (dialback needs that)."""
import contextlib
import time

import pytest

import parleytest
from parleytest import (FedParleyd, free_port, iq, login, logout, next_message, stanza_error, tostr,
                        unique)

pytestmark = parleytest.needs_dnslib()

A, B, C, D, E = 'a.test', 'b.test', 'c.test', 'd.test', 'e.test'
DOT, DOT1 = 'dot.test', 'dot1.test'


@contextlib.contextmanager
def start_net(base):
    """The test DNS server and parleyd a, b and c on fresh ports: (a, b, c,
    dns)."""
    from parleytest import TestDNS
    pa, pb, pc_tls = free_port(), free_port(), free_port()
    with TestDNS({
        ('_xmpp-server._tcp.' + B, 'SRV'): [(10, 0, pb, 'srv-b.test')],
        ('srv-b.test', 'A'): ['127.0.0.1'],
        ('_xmpps-server._tcp.' + C, 'SRV'): [(10, 0, pc_tls, 'srv-c.test')],
        ('srv-c.test', 'A'): ['127.0.0.1'],
        (D, 'A'): ['127.0.0.1'],
        (D, 'AAAA'): ['::1'],
        (E + '-unused', 'A'): ['127.0.0.1'],
        ('_xmpp-server._tcp.' + DOT, 'SRV'): [(0, 0, 0, '.')],
        ('_xmpps-server._tcp.' + DOT, 'SRV'): [(0, 0, 0, '.')],
        (DOT, 'A'): ['127.0.0.1'],
        ('_xmpp-server._tcp.' + DOT1, 'SRV'): [(0, 0, 0, '.')],
        (DOT1, 'A'): ['127.0.0.1'],
    }) as dns:
        a = FedParleyd(base / 'a', A, {('alice', A): 'alice-secret'}, s2s_port=pa,
                       s2s={'connect_timeout': '20s', 'dns_servers': '["127.0.0.1:%d"]' % dns.port})
        b = FedParleyd(base / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb)
        c = FedParleyd(base / 'c', C, {('carl', C): 'carl-secret'}, peers={A: pa}, s2s_tls_port=pc_tls)
        with parleytest.started(a, b, c):
            yield a, b, c, dns


@pytest.fixture(scope='module')
def net(tmp_path_factory):
    with parleytest.on_free_ports(lambda: start_net(tmp_path_factory.mktemp('s2s-dns'))) as got:
        yield got


def test_srv_xmpp_server_target_and_port(net, run):
    a, b, c, dns = net

    async def go():
        alice = await login(a, 'alice', host=A, resource='b')
        bob = await login(b, 'bob', host=B, resource='b')
        body = unique('via srv ')
        alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
        m = await next_message(bob, pred=lambda m: m['body'] == body, timeout=25)
        assert m['from'] == alice.boundjid
        await logout(alice, bob)
    run(go(), timeout=60)
    assert ('_xmpps-server._tcp.' + B, 'SRV') in dns.queries, dns.queries
    assert ('_xmpp-server._tcp.' + B, 'SRV') in dns.queries, dns.queries
    assert ('srv-b.test', 'A') in dns.queries, dns.queries
    assert 'b.test: resolved to 127.0.0.1 port %d' % b.s2s_port in a.log(), a.log()[-3000:]


def test_srv_xmpps_server_direct_tls(net, run):
    a, b, c, dns = net

    async def go():
        alice = await login(a, 'alice', host=A, resource='c')
        carl = await login(c, 'carl', host=C, resource='c')
        body = unique('via xmpps srv ')
        alice.send_message(mto='carl@' + C, mbody=body, mtype='chat')
        m = await next_message(carl, pred=lambda m: m['body'] == body, timeout=25)
        assert m['from'] == alice.boundjid
        await logout(alice, carl)
    run(go(), timeout=60)
    assert ('srv-c.test', 'A') in dns.queries, dns.queries
    assert 'c.test: resolved to 127.0.0.1 port %d (direct TLS)' % c.s2s_tls_port in a.log(), \
        a.log()[-3000:]


def test_fallback_to_domain_addresses(net, run):
    """No SRV record: the domain's AAAA then A addresses on 5269.  Nothing
    of ours listens there, so the iq bounces (not-found, or whatever a
    stranger on 5269 makes of it): what counts is the order tried."""
    a, b, c, dns = net

    async def go():
        alice = await login(a, 'alice', host=A, resource='d')
        el = await iq(alice, 'get', 'x@' + D, "<ping xmlns='urn:xmpp:ping'/>", timeout=30)
        assert el.get('type') == 'error', tostr(el)
        await logout(alice)
    run(go(), timeout=60)
    assert (D, 'AAAA') in dns.queries and (D, 'A') in dns.queries, dns.queries
    assert 'd.test: resolved to ::1 port 5269, 127.0.0.1 port 5269' in a.log(), a.log()[-3000:]


def test_domain_without_records_bounces_not_found(net, run):
    a, b, c, dns = net

    async def go():
        alice = await login(a, 'alice', host=A, resource='e')
        el = await iq(alice, 'get', 'x@' + E, "<ping xmlns='urn:xmpp:ping'/>", timeout=30)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        body = unique('lost ')
        alice.send_message(mto='y@' + E, mbody=body, mtype='chat')
        m = await next_message(alice, pred=lambda m: m['type'] == 'error', timeout=30)
        assert m['error']['condition'] == 'remote-server-not-found', m
        await logout(alice)
    run(go(), timeout=60)
    assert (E, 'A') in dns.queries or (E, 'AAAA') in dns.queries, dns.queries
    assert 'cannot resolve e.test' in a.log(), a.log()[-3000:]


@pytest.mark.parametrize('domain', [DOT, DOT1])
def test_srv_target_dot_means_no_service(net, run, domain):
    """An SRV answer whose only target is "." says the domain offers no
    XMPP server (RFC 2782, XEP-0368 5): no fallback to its own addresses
    on 5269; stanzas bounce with remote-server-not-found and the log says
    why."""
    a, b, c, dns = net

    async def go():
        alice = await login(a, 'alice', host=A, resource='dot')
        el = await iq(alice, 'get', 'x@' + domain, "<ping xmlns='urn:xmpp:ping'/>", timeout=30)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        await logout(alice)
    run(go(), timeout=60)
    assert ('_xmpp-server._tcp.' + domain, 'SRV') in dns.queries, dns.queries
    assert (domain, 'A') not in dns.queries and (domain, 'AAAA') not in dns.queries, dns.queries
    assert 'cannot resolve %s: its SRV records say it offers no XMPP server' % domain in a.log(), \
        a.log()[-3000:]


def test_dns_servers_apply_on_reload(net, run):
    """A reload switches c-ares to the new list: g.test, unknown to the
    first server, resolves through the second (its SRV target an IP
    literal, its port closed: the iq still bounces, the log shows where
    it went)."""
    from parleytest import TestDNS
    a, b, c, dns = net
    closed = free_port()
    dns2 = TestDNS({('_xmpp-server._tcp.g.test', 'SRV'): [(0, 0, closed, '127.0.0.1')]})
    old = a.s2s_opts['dns_servers']
    try:
        async def ping(resource):
            alice = await login(a, 'alice', host=A, resource=resource)
            el = await iq(alice, 'get', 'x@g.test', "<ping xmlns='urn:xmpp:ping'/>", timeout=30)
            assert stanza_error(el) == 'remote-server-not-found', tostr(el)
            await logout(alice)
        run(ping('g1'), timeout=60)
        assert 'cannot resolve g.test' in a.log()
        assert not dns2.queries
        a.s2s_opts['dns_servers'] = '["127.0.0.1:%d"]' % dns2.port
        a.write_config()
        r = a.ctl('reload')
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 30
        while 'g.test: resolved to 127.0.0.1 port %d' % closed not in a.log():
            assert time.monotonic() < deadline, a.log()[-3000:]
            time.sleep(1)   # past g.test's backoff (1 s, at most 2 s)
            run(ping('g2'), timeout=60)
        assert ('_xmpp-server._tcp.g.test', 'SRV') in dns2.queries, dns2.queries
    finally:
        a.s2s_opts['dns_servers'] = old
        a.write_config()
        a.ctl('reload')
        dns2.stop()
