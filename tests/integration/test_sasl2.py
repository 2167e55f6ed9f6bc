"""SASL2 (XEP-0388) and Bind 2 (XEP-0386) over raw sockets: the stream
feature, SCRAM and PLAIN exchanges without a stream restart, failures, and
a session bound inline."""
import base64

import pytest

from parleytest import (HOST, NS_BIND, NS_CLIENT, NS_PING, NS_SASL, NS_STREAM, RawClient, q,
                        tostr, unique)
from scramclient import NS_SASL2, Client, scram, tls_exporter

NS_BIND2 = 'urn:xmpp:bind:0'


@pytest.fixture
def client(server):
    clients = []

    def make():
        c = Client(server.port)
        clients.append(c)
        c.open()
        c.starttls()
        return c
    yield make
    for c in clients:
        c.close()


def _sasl2_mechanisms(c):
    a = c.features.find(q(NS_SASL2, 'authentication'))
    assert a is not None, tostr(c.features)
    return [m.text for m in a.findall(q(NS_SASL2, 'mechanism'))]


def _features(c):
    return c.wait_for(lambda e: e.tag == q(NS_STREAM, 'features'), what='stream features')


def _plain(user, password):
    return base64.b64encode(('\0%s\0%s' % (user, password)).encode()).decode()


def _authenticate_plain(c, user, password, extra=''):
    c.send("<authenticate xmlns='%s' mechanism='PLAIN'><initial-response>%s</initial-response>%s"
           "</authenticate>" % (NS_SASL2, _plain(user, password), extra))
    return c.wait_for(lambda e: e.tag in (q(NS_SASL2, 'success'), q(NS_SASL2, 'failure')),
                      what='SASL2 result')


def _ping(c):
    iq_id = unique('ping')
    c.send("<iq type='get' id='%s' to='%s'><ping xmlns='%s'/></iq>" % (iq_id, HOST, NS_PING))
    return c.wait_iq(iq_id)


def test_feature_lists_the_sasl1_mechanisms_and_bind2(client):
    """The SASL1 mechanisms, and FAST's HT ones (test_fast.py)."""
    c = client()
    sasl2 = _sasl2_mechanisms(c)
    assert sorted(m for m in sasl2 if not m.startswith('HT-')) == sorted(c.mechanisms())
    assert 'HT-SHA-256-NONE' in sasl2
    bind = c.features.find('%s/%s' % (q(NS_SASL2, 'authentication'), q(NS_SASL2, 'inline')))
    assert bind is not None and bind.find(q(NS_BIND2, 'bind')) is not None, tostr(c.features)


def test_no_feature_before_tls(server):
    c = RawClient(server.port)
    try:
        f = c.open()
        assert f.find(q(NS_SASL2, 'authentication')) is None, tostr(f)
    finally:
        c.close()


def test_scram_plus_without_bind(server, client):
    """SCRAM-SHA-256-PLUS over SASL2; no stream restart: the features of an
    authenticated stream follow <success/>, and legacy binding works."""
    c = client()
    r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256-PLUS', 'p=tls-exporter,,',
              tls_exporter(c.sock), sasl2=True)
    assert r.ok, tostr(r.el)
    assert r.el.findtext(q(NS_SASL2, 'authorization-identifier')) == 'alice@' + HOST, tostr(r.el)
    assert r.el.find(q(NS_BIND2, 'bound')) is None
    f = _features(c)
    assert f.find(q(NS_BIND, 'bind')) is not None, tostr(f)
    assert f.find(q(NS_SASL2, 'authentication')) is None, tostr(f)
    jid = c.bind('legacy')
    assert jid == 'alice@%s/legacy' % HOST
    assert _ping(c).get('type') == 'result'


def test_scram_with_ssdp_and_y(server, client):
    """The XEP-0474 hash covers the same lists over SASL2 (scram() checks
    it), and 'y' is accepted on TLS 1.3 here as well."""
    c = client()
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-1', 'y,,', sasl2=True)
    assert r.ok, tostr(r.el)


def test_inline_bind_with_tag(server, client):
    c = client()
    el = _authenticate_plain(c, 'carol', server.password('carol'),
                             "<user-agent id='0b1d4f20-4a4e-4a2b-9f0e-9a8f5d1c2e3b'>"
                             "<software>TestClient</software></user-agent>"
                             "<bind xmlns='%s'><tag>TestClient</tag></bind>" % NS_BIND2)
    assert el.tag == q(NS_SASL2, 'success'), tostr(el)
    jid = el.findtext(q(NS_SASL2, 'authorization-identifier'))
    assert jid.startswith('carol@%s/TestClient/' % HOST) and len(jid) > len('carol@%s/TestClient/' % HOST), jid
    assert el.find(q(NS_BIND2, 'bound')) is not None, tostr(el)
    f = _features(c)
    assert f.find(q(NS_BIND, 'bind')) is None, tostr(f)
    # a bound session: it can talk, and it is reachable at its full JID
    assert _ping(c).get('type') == 'result'
    other = RawClient(server.port)
    try:
        other.login('alice', server.password('alice'), presence=False)
        body = unique('hello')
        other.send("<message to='%s' type='chat'><body>%s</body></message>" % (jid, body))
        m = c.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message'), what='message')
        assert m.findtext(q(NS_CLIENT, 'body')) == body and m.get('to') == jid, tostr(m)
    finally:
        other.close()
    # binding again is refused: the stream is bound
    iq_id = unique('bind')
    c.send("<iq type='set' id='%s'><bind xmlns='%s'/></iq>" % (iq_id, NS_BIND))
    assert c.wait_iq(iq_id).get('type') == 'error'


def test_inline_bind_without_tag(server, client):
    c = client()
    el = _authenticate_plain(c, 'erin', server.password('erin'), "<bind xmlns='%s'/>" % NS_BIND2)
    assert el.tag == q(NS_SASL2, 'success'), tostr(el)
    jid = el.findtext(q(NS_SASL2, 'authorization-identifier'))
    assert jid.startswith('erin@%s/' % HOST) and len(jid) > len('erin@%s/' % HOST), jid


def test_bind_ignored_after_failure(server, client):
    c = client()
    el = _authenticate_plain(c, 'alice', 'wrong', "<bind xmlns='%s'><tag>X</tag></bind>" % NS_BIND2)
    assert el.tag == q(NS_SASL2, 'failure'), tostr(el)
    assert el.find(q(NS_SASL, 'not-authorized')) is not None, tostr(el)
    # the stream is still unauthenticated; a retry without bind succeeds
    el = _authenticate_plain(c, 'alice', server.password('alice'))
    assert el.tag == q(NS_SASL2, 'success'), tostr(el)
    assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == 'alice@' + HOST


def test_removed_account_closes_a_stream_authenticated_without_bind(server, client):
    """Authenticated without Bind 2, the stream has no session yet: the
    account's removal closes it all the same."""
    user = unique('unbound2')
    server.register(user, HOST, 'pw-' + user)
    c = client()
    el = _authenticate_plain(c, user, 'pw-' + user)
    assert el.tag == q(NS_SASL2, 'success'), tostr(el)
    r = server.ctl('unregister', user, HOST)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert c.stream_error(timeout=10) == 'not-authorized'


def test_authenticate_without_initial_response(server, client):
    """No <initial-response/>: an empty <challenge/>, and the <response/>
    is the mechanism's first message."""
    c = client()
    c.send("<authenticate xmlns='%s' mechanism='PLAIN'/>" % NS_SASL2)
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL2, 'challenge'), q(NS_SASL2, 'failure')))
    assert el.tag == q(NS_SASL2, 'challenge') and not el.text, tostr(el)
    c.send("<response xmlns='%s'>%s</response>" % (NS_SASL2, _plain('erin', server.password('erin'))))
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL2, 'success'), q(NS_SASL2, 'failure')))
    assert el.tag == q(NS_SASL2, 'success'), tostr(el)
    assert el.findtext(q(NS_SASL2, 'authorization-identifier')) == 'erin@' + HOST


def test_unknown_mechanism(client):
    c = client()
    c.send("<authenticate xmlns='%s' mechanism='DIGEST-MD5'/>" % NS_SASL2)
    el = c.wait_for(lambda e: e.tag == q(NS_SASL2, 'failure'), what='failure')
    assert el.find(q(NS_SASL, 'invalid-mechanism')) is not None, tostr(el)


def test_abort(server, client):
    c = client()
    c.send("<authenticate xmlns='%s' mechanism='SCRAM-SHA-256'><initial-response>%s"
           "</initial-response></authenticate>"
           % (NS_SASL2, base64.b64encode(b'n,,n=alice,r=abcdefgh').decode()))
    c.wait_for(lambda e: e.tag == q(NS_SASL2, 'challenge'), what='challenge')
    c.send("<abort xmlns='%s'/>" % NS_SASL2)
    el = c.wait_for(lambda e: e.tag == q(NS_SASL2, 'failure'), what='failure')
    assert el.find(q(NS_SASL, 'aborted')) is not None, tostr(el)
    # a SASL2 response with no exchange going on
    c.send("<response xmlns='%s'>Zm9v</response>" % NS_SASL2)
    el = c.wait_for(lambda e: e.tag == q(NS_SASL2, 'failure'), what='failure')
    assert el.find(q(NS_SASL, 'malformed-request')) is not None, tostr(el)


def test_stanza_before_success_is_refused(client):
    c = client()
    c.send("<message to='alice@%s'><body>x</body></message>" % HOST)
    assert c.stream_error() in ('not-authorized', 'policy-violation'), c.received
