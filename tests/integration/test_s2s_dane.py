"""DANE for outgoing s2s (s2s.dane): a.test resolves its peers through a
test DNS server (parleytest.TestDNS) that plays a validating resolver on
loopback, setting the AD bit on the answers of the names it calls
secure, and serves TLSA records.  One parleyd, "peer", serves b.test,
c.test and d.test with one self-signed certificate (no CA vouches for
it); a.test has a certificate from a test CA that peer trusts, so peer
accepts a.test's SASL EXTERNAL, and a.test keeps dialback allowed:

- b.test: secure SRV -> srv-b.test, secure TLSA 3 1 1 of peer's key:
  authenticated by DANE, SASL EXTERNAL, no dialback ("dane");
- c.test: secure SRV -> srv-c.test, secure TLSA 3 1 1 of another key:
  refused, without falling back to dialback;
- d.test: SRV -> srv-d.test and a mismatching TLSA, none of it secure:
  today's behaviour (dialback), and no TLSA query at all;
- f.test: secure SRV -> srv-f.test, a mismatching TLSA without AD:
  asked, and ignored (dialback);
- e.test: secure SRV -> srv-e.test whose TLSA lookup fails (SERVFAIL):
  that host is not used;
- g.test: its _xmpps-server SRV lookup fails (SERVFAIL): no fallback to
  g.test on 5269 without DANE (RFC 7673 3.1), the stanza bounces;
- with s2s.dane off (after a reload), c.test's records are ignored;
- a TLSA answer is kept for its TTL: new connections to b.test within it
  send no TLSA query (counted at the DNS server), and one after it does;
  parleyctl status counts DANE matches, mismatches and the TLSA lookups.
"""
import contextlib
import hashlib
import json
import os
import re
import subprocess
import time

import pytest

import parleytest
from parleytest import (FedParleyd, free_port, iq, login, logout, make_test_ca, next_message,
                        stanza_error, tostr, unique)

pytestmark = parleytest.needs_dnslib()

A, B, C, D, E, F, G = 'a.test', 'b.test', 'c.test', 'd.test', 'e.test', 'f.test', 'g.test'


def spki_sha256(cert_pem):
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo (TLSA 3 1 1),
    computed with the openssl tool."""
    pub = subprocess.run(['openssl', 'x509', '-in', str(cert_pem), '-pubkey', '-noout'],
                         check=True, capture_output=True, timeout=30).stdout
    der = subprocess.run(['openssl', 'pkey', '-pubin', '-outform', 'DER'], input=pub,
                         check=True, capture_output=True, timeout=30).stdout
    return hashlib.sha256(der).digest()


@contextlib.contextmanager
def start_net(base):
    from parleytest import TestDNS
    ca = make_test_ca(base / 'ca', [A])
    pa, pp = free_port(), free_port()
    with TestDNS({}, secure={'_xmpps-server._tcp.' + B, '_xmpp-server._tcp.' + B,
                             '_%d._tcp.srv-b.test' % pp,
                             '_xmpps-server._tcp.' + C, '_xmpp-server._tcp.' + C,
                             '_%d._tcp.srv-c.test' % pp,
                             '_xmpps-server._tcp.' + E, '_xmpp-server._tcp.' + E,
                             '_xmpps-server._tcp.' + F, '_xmpp-server._tcp.' + F}) as dns:
        a = FedParleyd(base / 'a', A, {('alice', A): 'alice-secret'}, s2s_port=pa, cert=ca[A],
                       s2s={'connect_timeout': '20s', 'dane': 'true',
                            'dns_servers': '["127.0.0.1:%d"]' % dns.port})
        peer = FedParleyd(base / 'peer', B, {('bob', B): 'bob-secret', ('carl', C): 'carl-secret',
                                             ('dora', D): 'dora-secret', ('fred', F): 'fred-secret'},
                          peers={A: pa}, s2s_port=pp, more_domains=(C, D, F), ca=ca)
        with parleytest.started(a, peer):
            good = spki_sha256(peer.dir / 'cert.pem')
            wrong = hashlib.sha256(b'some other key').digest()
            recs = {
                ('_xmpp-server._tcp.' + B, 'SRV'): [(10, 0, pp, 'srv-b.test')],
                ('srv-b.test', 'A'): ['127.0.0.1'],
                ('_%d._tcp.srv-b.test' % pp, 'TLSA'): [(3, 1, 1, wrong), (3, 1, 1, good)],
                ('_xmpp-server._tcp.' + C, 'SRV'): [(10, 0, pp, 'srv-c.test')],
                ('srv-c.test', 'A'): ['127.0.0.1'],
                ('_%d._tcp.srv-c.test' % pp, 'TLSA'): [(3, 1, 1, wrong)],
                ('_xmpp-server._tcp.' + D, 'SRV'): [(10, 0, pp, 'srv-d.test')],
                ('srv-d.test', 'A'): ['127.0.0.1'],
                ('_%d._tcp.srv-d.test' % pp, 'TLSA'): [(3, 1, 1, wrong)],
                ('_xmpp-server._tcp.' + E, 'SRV'): [(10, 0, pp, 'srv-e.test')],
                ('srv-e.test', 'A'): ['127.0.0.1'],
                ('_%d._tcp.srv-e.test' % pp, 'TLSA'): 'SERVFAIL',
                ('_xmpp-server._tcp.' + F, 'SRV'): [(10, 0, pp, 'srv-f.test')],
                ('srv-f.test', 'A'): ['127.0.0.1'],
                ('_%d._tcp.srv-f.test' % pp, 'TLSA'): [(3, 1, 1, wrong)],
                ('_xmpps-server._tcp.' + G, 'SRV'): 'SERVFAIL',
                (G, 'A'): ['127.0.0.1'],
            }
            dns.records.update({(n.lower(), t): v for (n, t), v in recs.items()})
            yield a, peer, dns


@pytest.fixture(scope='module')
def net(tmp_path_factory):
    with parleytest.on_free_ports(lambda: start_net(tmp_path_factory.mktemp('s2s-dane'))) as got:
        yield got


def out_auth(server, domain):
    """The authentication column of the outgoing stream to domain."""
    rows = [ln.split('\t') for ln in server.ctl('s2s-list').stdout.splitlines()]
    return [r[4] for r in rows if r[0] == 'out' and r[1] == domain]


def dane_counters(server):
    """The numbers of the "s2s DANE:" line of parleyctl status, by name."""
    line = [ln for ln in server.ctl('status').stdout.splitlines() if ln.startswith('s2s DANE: ')]
    assert len(line) == 1, server.ctl('status').stdout
    m = re.fullmatch(r's2s DANE: valid (\d+), mismatch (\d+); TLSA queries (\d+), from cache (\d+), '
                     r'failed (\d+), (\d+) names cached', line[0])
    assert m, line[0]
    return dict(zip(('valid', 'mismatch', 'queries', 'cache', 'failed', 'cached'),
                    (int(v) for v in m.groups())))


def test_matching_dane_ee_authenticates_without_dialback(net, run):
    a, peer, dns = net

    async def go():
        alice = await login(a, 'alice', host=A, resource='b')
        bob = await login(peer, 'bob', host=B, resource='b')
        body = unique('dane ')
        alice.send_message(mto='bob@' + B, mbody=body, mtype='chat')
        m = await next_message(bob, pred=lambda m: m['body'] == body, timeout=25)
        assert m['from'] == alice.boundjid
        await logout(alice, bob)
    run(go(), timeout=60)
    assert out_auth(a, B) == ['dane'], a.ctl('s2s-list').stdout
    log = a.log()
    assert 'b.test: DANE: the certificate matches a DANE-EE(3) record of _%d._tcp.srv-b.test' \
        % peer.s2s_port in log, log[-3000:]
    # the queries asked whether the answers were validated
    assert ('_xmpp-server._tcp.' + B, 'SRV') in dns.ad_asked, dns.ad_asked
    assert ('_%d._tcp.srv-b.test' % peer.s2s_port, 'TLSA') in dns.ad_asked, dns.ad_asked
    # no dialback: peer saw SASL EXTERNAL for a.test, never a <db:result/>
    assert [ln for ln in peer.ctl('s2s-list').stdout.splitlines()
            if ln.startswith('in\t' + A + '\t' + B + '\t')][0].split('\t')[4] == 'external'


def test_mismatching_tlsa_refuses_without_dialback(net, run):
    a, peer, dns = net
    before = dane_counters(a)

    async def go():
        alice = await login(a, 'alice', host=A, resource='c')
        el = await iq(alice, 'get', 'carl@' + C, "<ping xmlns='urn:xmpp:ping'/>", timeout=30)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        await logout(alice)
    run(go(), timeout=60)
    log = a.log()
    assert 'DANE: the certificate of c.test does not match the TLSA records of _%d._tcp.srv-c.test' \
        % peer.s2s_port in log, log[-3000:]
    assert out_auth(a, C) == []
    # no dialback either: peer has no stream for c.test, a.test never got ready
    assert not [ln for ln in peer.ctl('s2s-list').stdout.splitlines() if '\t' + C + '\t' in ln]
    assert 'a.test -> c.test: ready' not in log, log[-3000:]
    after = dane_counters(a)
    assert after['mismatch'] >= before['mismatch'] + 1, (before, after)
    assert after['valid'] == before['valid'], (before, after)


def send_through(a, peer, user, domain, run):
    async def go():
        alice = await login(a, 'alice', host=A, resource=domain)
        them = await login(peer, user, host=domain, resource='x')
        body = unique('to %s ' % domain)
        alice.send_message(mto='%s@%s' % (user, domain), mbody=body, mtype='chat')
        await next_message(them, pred=lambda m: m['body'] == body, timeout=25)
        await logout(alice, them)
    run(go(), timeout=60)


def test_insecure_zone_is_ignored(net, run):
    """Nothing secure: the TLSA name is not even asked (RFC 7673 4.1)."""
    a, peer, dns = net
    send_through(a, peer, 'dora', D, run)
    assert ('srv-d.test', 'A') in dns.queries, dns.queries
    assert ('_%d._tcp.srv-d.test' % peer.s2s_port, 'TLSA') not in dns.queries, dns.queries
    assert out_auth(a, D) == ['dialback'], a.ctl('s2s-list').stdout


def test_insecure_tlsa_answer_is_ignored(net, run):
    """A secure SRV, a TLSA answer without AD: asked, not believed."""
    a, peer, dns = net
    send_through(a, peer, 'fred', F, run)
    assert ('_%d._tcp.srv-f.test' % peer.s2s_port, 'TLSA') in dns.queries, dns.queries
    assert 'TLSA _%d._tcp.srv-f.test: not DNSSEC-secure' % peer.s2s_port in a.log(), a.log()[-3000:]
    assert out_auth(a, F) == ['dialback'], a.ctl('s2s-list').stdout


def test_failed_tlsa_lookup_skips_the_host(net, run):
    a, peer, dns = net

    async def go():
        alice = await login(a, 'alice', host=A, resource='e')
        el = await iq(alice, 'get', 'x@' + E, "<ping xmlns='urn:xmpp:ping'/>", timeout=30)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        await logout(alice)
    run(go(), timeout=60)
    assert ('_%d._tcp.srv-e.test' % peer.s2s_port, 'TLSA') in dns.queries, dns.queries
    log = a.log()
    assert 'the TLSA lookup for srv-e.test failed' in log, log[-3000:]
    assert 'e.test: connected to' not in log and 'e.test: resolved to' not in log, log[-3000:]


def test_failed_srv_lookup_aborts(net, run):
    """RFC 7673 3.1: an SRV lookup that fails (not "no records") ends the
    attempt; no fallback to the domain's own address without TLSA."""
    a, peer, dns = net

    async def go():
        alice = await login(a, 'alice', host=A, resource='g')
        el = await iq(alice, 'get', 'x@' + G, "<ping xmlns='urn:xmpp:ping'/>", timeout=30)
        assert stanza_error(el) == 'remote-server-not-found', tostr(el)
        await logout(alice)
    run(go(), timeout=60)
    assert ('_xmpps-server._tcp.' + G, 'SRV') in dns.queries, dns.queries
    assert (G, 'A') not in dns.queries and (G, 'AAAA') not in dns.queries, dns.queries
    log = a.log()
    assert 'the SRV lookup for _xmpps-server._tcp.g.test failed' in log, log[-3000:]
    assert 'cannot resolve g.test: the SRV lookup failed' in log, log[-3000:]


def test_option_off_ignores_tlsa(net, run):
    """After a reload with s2s.dane off, c.test's mismatching records
    count for nothing: dialback, as without DANE."""
    a, peer, dns = net
    try:
        a.s2s_opts['dane'] = 'false'
        a.write_config()
        r = a.ctl('reload')
        assert r.returncode == 0, r.stderr

        async def go():
            alice = await login(a, 'alice', host=A, resource='off')
            carl = await login(peer, 'carl', host=C, resource='off')
            body = unique('no dane ')
            deadline = time.monotonic() + 30
            while True:   # c.test may still be in its backoff (at most 2 s)
                alice.send_message(mto='carl@' + C, mbody=body, mtype='chat')
                try:
                    await next_message(carl, pred=lambda m: m['body'] == body, timeout=5)
                    break
                except Exception:
                    assert time.monotonic() < deadline, a.log()[-3000:]
            await logout(alice, carl)
        asked = len(dns.ad_asked)
        run(go(), timeout=60)
        assert out_auth(a, C) == ['dialback'], a.ctl('s2s-list').stdout
        assert len(dns.ad_asked) == asked, dns.ad_asked[asked:]
    finally:
        a.s2s_opts['dane'] = 'true'
        a.write_config()
        a.ctl('reload')


def test_tlsa_answer_is_kept_for_its_ttl(net, run):
    """Three new connections to b.test within the TTL: one TLSA query; the
    counters of parleyctl status say the same."""
    a, peer, dns = net
    name = ('_%d._tcp.srv-b.test' % peer.s2s_port, 'TLSA')
    try:
        dns.ttl = 300
        assert a.ctl('reload').returncode == 0   # a reload forgets kept answers
        before, asked = dane_counters(a), dns.queries.count(name)
        for i in range(3):
            a.ctl('s2s-close', B)
            send_through(a, peer, 'bob', B, run)
            assert out_auth(a, B) == ['dane'], a.ctl('s2s-list').stdout
        assert dns.queries.count(name) == asked + 1, dns.queries
        after = dane_counters(a)
        assert after['valid'] == before['valid'] + 3, (before, after)
        assert after['mismatch'] == before['mismatch'], (before, after)
        assert after['queries'] == before['queries'] + 1, (before, after)
        assert after['cache'] == before['cache'] + 2, (before, after)
        assert after['cached'] >= 1, after
        js = json.loads(a.ctl('--json', 'stats').stdout)['s2s']
        assert (js['dane_valid'], js['tlsa_queries'], js['tlsa_cache_hits']) == \
            (after['valid'], after['queries'], after['cache']), js

        # a TTL of 1 s: the answer is asked again once it ran out
        dns.ttl = 1
        assert a.ctl('reload').returncode == 0
        asked = dns.queries.count(name)
        a.ctl('s2s-close', B)
        send_through(a, peer, 'bob', B, run)
        time.sleep(1.5)
        a.ctl('s2s-close', B)
        send_through(a, peer, 'bob', B, run)
        assert dns.queries.count(name) == asked + 2, dns.queries
    finally:
        dns.ttl = 5


def test_dane_refuses_resolvers_off_loopback(tmp_path):
    """The AD bit of a resolver across the network proves nothing."""
    s = FedParleyd(tmp_path / 'x', A, {('x', A): 'x-secret'},
                   s2s={'dane': 'true', 'dns_servers': '["192.0.2.53"]'})
    s.write_cert()
    s.write_config()
    r = subprocess.run([os.path.join(os.environ.get('PARLEY_BUILDDIR', '.'), 'parleyd'), '-c',
                        str(s.config), '-t'], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert 'dns_servers' in r.stderr and 'loopback' in r.stderr, r.stderr
