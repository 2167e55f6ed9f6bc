"""Interop: Parley federating with ejabberd 23.01 (Debian's ejabberd),
both directions, over STARTTLS and dialback with self-signed
certificates.  ejabberd runs privately on loopback: its own config,
spool and log directory, node name, Erlang cookie and distribution port
(so no epmd), as the ejabberd user, in its own process group that the
fixture always kills.

Name resolution: Parley reaches ejabberd.test through its s2s.hosts
map; ejabberd finds parley.test through a test DNS server
(parleytest.TestDNS, python3-dnslib) named in its inetrc, which serves
_xmpp-server._tcp.parley.test with Parley's s2s port.  ejabberd 23.01
resolves SRV targets with the system's getaddrinfo (net:getaddrinfo),
not its Erlang resolver, so the record's target is the IP literal
127.0.0.1 rather than a name only the test DNS knows.
"""
import os
import sys

import pytest

from parleytest import (Ejabberd, FedParleyd, ejabberdctl, free_port, iq, login, logout, needs_dnslib,
                        next_message, stanza_error, tostr, unique)

PARLEY = 'parley.test'
EJABBERD = 'ejabberd.test'

pytestmark = [
    pytest.mark.skipif(ejabberdctl() is None, reason='ejabberd is not installed (apt-get install ejabberd)'),
    needs_dnslib(),
]


@pytest.fixture(scope='module')
def peers(tmp_path_factory):
    from parleytest import TestDNS
    base = tmp_path_factory.mktemp('s2s-ejabberd')
    parley_s2s = free_port()
    dns = TestDNS({('_xmpp-server._tcp.' + PARLEY, 'SRV'): [(0, 0, parley_s2s, '127.0.0.1')]})
    ej = None
    try:
        ej = Ejabberd(EJABBERD, None, {'carl': 'carl-secret'}, dns_port=dns.port)
        parley = FedParleyd(base / 'parley', PARLEY, {('alice', PARLEY): 'alice-secret'},
                            peers={EJABBERD: ej.s2s_port}, s2s_port=parley_s2s,
                            s2s={'connect_timeout': '20s'})
        parley.start_with_users()
        try:
            ej.start()
        except Exception:
            parley.stop()
            raise
        yield parley, ej, dns
        if os.environ.get('PARLEY_KEEP_LOGS'):
            sys.stderr.write(ej.log()[-5000:])
        parley.finish()
    finally:
        if ej is not None:
            ej.stop()
        dns.stop()


def test_messages_with_ejabberd_both_ways(peers, run):
    parley, ej, dns = peers

    async def go():
        alice = await login(parley, 'alice', host=PARLEY, resource='x')
        carl = await login(ej, 'carl', host=EJABBERD, resource='x', password='carl-secret')
        body = unique('to ejabberd ')
        alice.send_message(mto='carl@' + EJABBERD, mbody=body, mtype='chat')
        m = await next_message(carl, pred=lambda m: m['body'] == body, timeout=40)
        assert m['from'] == alice.boundjid
        back = unique('from ejabberd ')
        carl.send_message(mto=str(alice.boundjid), mbody=back, mtype='chat')
        m = await next_message(alice, pred=lambda m: m['body'] == back, timeout=40)
        assert m['from'] == carl.boundjid
        await logout(alice, carl)
    run(go(), timeout=120)
    listing = parley.ctl('s2s-list').stdout
    assert 'out\t%s\t%s' % (EJABBERD, PARLEY) in listing, listing
    assert 'in\t%s\t%s' % (EJABBERD, PARLEY) in listing, listing
    # ejabberd found parley.test through the test DNS server's SRV record
    assert ('_xmpp-server._tcp.' + PARLEY, 'SRV') in dns.queries, dns.queries


def test_iq_errors_across(peers, run):
    parley, ej, dns = peers

    async def go():
        alice = await login(parley, 'alice', host=PARLEY, resource='y')
        carl = await login(ej, 'carl', host=EJABBERD, resource='y', password='carl-secret')
        # to an unknown ejabberd user: ejabberd answers with an error
        el = await iq(alice, 'get', 'nobody@%s/r' % EJABBERD, "<ping xmlns='urn:xmpp:ping'/>", timeout=40)
        assert el.get('type') == 'error', tostr(el)
        # and from ejabberd to an unknown Parley user: Parley answers
        el = await iq(carl, 'get', 'nobody@%s/r' % PARLEY, "<ping xmlns='urn:xmpp:ping'/>", timeout=40)
        assert el.get('type') == 'error', tostr(el)
        assert stanza_error(el) in ('service-unavailable', 'item-not-found', 'recipient-unavailable'), tostr(el)
        # a working iq to the other server itself answers
        el = await iq(alice, 'get', EJABBERD, "<query xmlns='jabber:iq:version'/>", timeout=40)
        assert el.get('type') == 'result', tostr(el)
        await logout(alice, carl)
    run(go(), timeout=120)
