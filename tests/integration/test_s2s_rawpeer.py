"""Federation against raw peers holding certificates of a test CA:
dialback verifications over a bidirectional (XEP-0288) route, both when
parleyd connected and when it accepted, and what becomes of a
verification whose stream goes away before it is answered; the extended
key usage a peer's certificate needs for each direction; the presence a
user's privacy list or block list holds back from a peer's users."""
import hashlib
import hmac
import socket
import ssl

import pytest

from parleytest import (NS_DIALBACK, NS_SASL, NS_STANZA_ERR, NS_STREAM, NS_TLS, FedParleyd,
                        RawClient, RawServer, free_port, make_test_ca, q, stanza_error, tostr)
from test_blocking import block
from test_presence import expect, new_user, online, presence
from test_privacy import _set, item, list_xml

A = 'a.test'
B1 = 'b1.test'   # a raw peer that parleyd connects to (fake server, accepts bidi)
B2 = 'b2.test'   # a raw peer that connects to parleyd and asks for bidi
B3 = 'b3.test'   # a raw peer whose certificate is for TLS clients only (EKU)
B4 = 'b4.test'   # EKU emailProtection only
B5 = 'b5.test'   # no EKU extension: any usage
# raw peers parleyd connects to and authenticates with by dialback (their
# certificate names another domain): one each, as a failure backs off
DB_INVALID, DB_ERROR, DB_CLOSE = 'invalid.test', 'error.test', 'close.test'
VERIFY_ERROR = 'verr.test'  # answers parleyd's <db:verify/> with a dialback error
DIRECT = 'direct.test'  # a raw peer parleyd reaches by direct TLS (XEP-0368)
NOT_TLS = 'nottls.test'  # a raw peer that answers <starttls/> with no TLS at all
# raw peers that connect to parleyd with XEP-0288, whose users get presence
PRIV = 'privacy.test'
DIRECTED = 'directed.test'
SECRET_A = b'the dialback secret of a.test, for the raw tests'
NS_SERVER = 'jabber:server'
NS_BIDI = 'urn:xmpp:bidi'
NS_BIDI_FEATURE = 'urn:xmpp:features:bidi'


def key_of(secret, receiving, originating, stream_id):
    """The XEP-0185 key of originating for receiving."""
    k = hashlib.sha256(secret).digest()
    return hmac.new(k, ('%s %s %s' % (receiving, originating, stream_id)).encode(),
                    hashlib.sha256).hexdigest()


def header(frm, to, sid):
    return ("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' xmlns:db='%s' "
            "from='%s' to='%s' id='%s' version='1.0'>" % (NS_SERVER, NS_STREAM, NS_DIALBACK,
                                                           frm, to, sid))


class Accepted(RawClient):
    """The server side of a connection parleyd opened to a raw peer."""

    def __init__(self, sock, timeout=15.0):
        self.timeout = timeout
        self.host = None
        self.sock = sock
        self.sock.settimeout(timeout)
        self.tls = False
        self.header = None
        self.features = None
        self.closed = False
        self.jid = None
        self.received = []
        self._reset_parser()

    def wait_header(self):
        self._reset_parser()
        self.header = None
        while self.header is None:
            self._read_some(self.timeout)
            assert not self.closed, 'parleyd closed before its header'
        return self.header

    def wrap_server(self, cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(str(cert[2]))
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        self.sock.settimeout(self.timeout)
        self.tls = True


class CertServer(RawServer):
    """A raw peer connecting to parleyd with a client certificate."""

    def __init__(self, port, origin, target, cert, **kw):
        self.cert = cert
        super().__init__(port, origin, target, **kw)

    def _wrap(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.host)
        self.sock.settimeout(self.timeout)
        self.tls = True

    def starttls(self):
        f = self.open()
        assert f.find(q(NS_TLS, 'starttls')) is not None, tostr(f)
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        el = self.wait_for(lambda e: e.tag.startswith('{%s}' % NS_TLS), what='STARTTLS answer')
        assert el.tag == q(NS_TLS, 'proceed'), tostr(el)
        self._wrap()
        return self.open()


def dialback_client(server, origin):
    """A raw peer claiming origin without a certificate, on TLS, that sends
    a <db:result/> with some key; returns it (parleyd then asks origin's
    authoritative server)."""
    r = RawServer(server.s2s_port, origin, A, timeout=15)
    f = r.open()
    assert f.find(q(NS_TLS, 'starttls')) is not None, tostr(f)
    r.send("<starttls xmlns='%s'/>" % NS_TLS)
    r.wait_for(lambda e: e.tag == q(NS_TLS, 'proceed'), what='proceed')
    r._wrap()
    r.open()
    r.send("<db:result from='%s' to='%s'>%064x</db:result>" % (origin, A, 42))
    return r


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp('s2s-raw')
    ca = make_test_ca(base / 'ca', [A, B1, B2, B3, B4, B5, PRIV, DIRECTED],
                      ekus={B3: 'clientAuth', B4: 'emailProtection', B5: ''})
    lst = socket.socket()
    lst.bind(('127.0.0.1', 0))
    lst.listen(8)
    (base / 'a-secret').write_bytes(SECRET_A)
    a = FedParleyd(base / 'a', A, {('alice', A): 'alice-secret'},
                   peers={B1: lst.getsockname()[1], B2: free_port(), B3: lst.getsockname()[1],
                          DB_INVALID: lst.getsockname()[1], DB_ERROR: lst.getsockname()[1],
                          DB_CLOSE: lst.getsockname()[1], VERIFY_ERROR: lst.getsockname()[1],
                          DIRECT: 'tls://127.0.0.1:%d' % lst.getsockname()[1],
                          NOT_TLS: lst.getsockname()[1]},
                   s2s={'connect_timeout': '20s', 'dialback_secret_file': str(base / 'a-secret')},
                   ca=ca)
    a.start_with_users()
    yield a, ca, lst
    lst.close()
    a.finish()


def bidi_peer(a, ca, domain):
    """A raw peer for domain that connects to parleyd with SASL EXTERNAL
    and XEP-0288, so that parleyd's stanzas for domain come back on its
    stream; returns it after the stream restart."""
    p = CertServer(a.s2s_port, domain, A, ca[domain], timeout=15)
    f = p.starttls()
    mechs = f.find(q(NS_SASL, 'mechanisms'))
    assert mechs is not None and f.find(q(NS_BIDI_FEATURE, 'bidi')) is not None, tostr(f)
    p.send("<bidi xmlns='%s'/>" % NS_BIDI)
    p.send("<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % NS_SASL)
    el = p.wait_for(lambda e: e.tag.startswith('{%s}' % NS_SASL), what='SASL answer')
    assert el.tag == q(NS_SASL, 'success'), tostr(el)
    p.open()
    p.claimed = set()
    return p


def accept_to_proceed(lst, domain, sid):
    """Take the connection parleyd opens to domain as its server would, up
    to <proceed/> of a required STARTTLS (the stream id sid); returns the
    peer, whose next bytes are the TLS handshake."""
    lst.settimeout(20)
    conn, _ = lst.accept()
    p = Accepted(conn)
    h = p.wait_header()
    assert h.get('to') == domain and h.get('from') == A, h
    p.send(header(domain, A, sid) + "<stream:features><starttls xmlns='%s'><required/>"
           "</starttls></stream:features>" % NS_TLS)
    p.wait_for(lambda e: e.tag == q(NS_TLS, 'starttls'), what='starttls')
    p.send("<proceed xmlns='%s'/>" % NS_TLS)
    return p


def accept_external(a, ca, lst, domain, cert, bidi=True):
    """Take the connection parleyd opens to domain as its server would:
    STARTTLS with cert, then SASL EXTERNAL (and XEP-0288 when bidi);
    returns the peer and the element that ended the negotiation."""
    p = accept_to_proceed(lst, domain, 'fake1')
    p.wrap_server(cert + (ca['ca'],))
    p.wait_header()
    p.send(header(domain, A, 'fake2') + "<stream:features><mechanisms xmlns='%s'>"
           "<mechanism>EXTERNAL</mechanism></mechanisms>%s<dialback xmlns='urn:xmpp:features:"
           "dialback'/></stream:features>"
           % (NS_SASL, "<bidi xmlns='%s'/>" % NS_BIDI_FEATURE if bidi else ''))
    el = p.wait_for(lambda e: e.tag in (q(NS_SASL, 'auth'), q(NS_DIALBACK, 'result')),
                    what='auth or db:result')
    return p, el


def test_db_verify_over_bidi_route_parleyd_connected(env):
    """parleyd connects to b1.test (SASL EXTERNAL, XEP-0288); b1.test's
    server then asks, on that same stream, whether a key is a.test's:
    parleyd answers (valid for its key, invalid for another)."""
    a, ca, lst = env
    r = dialback_client(a, B1)          # makes parleyd connect to b1.test
    p, el = accept_external(a, ca, lst, B1, ca[B1])
    assert el.tag == q(NS_SASL, 'auth') and el.get('mechanism') == 'EXTERNAL', tostr(el)
    assert any(e.tag == q(NS_BIDI, 'bidi') for e in p.received), [tostr(e) for e in p.received]
    p.send("<success xmlns='%s'/>" % NS_SASL)
    p.wait_header()
    p.send(header(B1, A, 'fake3') + "<stream:features/>")
    # parleyd's own verification request for the dialback client above
    # (sent once TLS was up)
    v = [e for e in p.received if e.tag == q(NS_DIALBACK, 'verify')]
    assert len(v) == 1 and v[0].get('type') is None, [tostr(e) for e in p.received]
    v = v[0]
    # b1.test's requests of the authoritative role, on parleyd's stream
    good = key_of(SECRET_A, B1, A, 'xyz')
    p.send("<db:verify from='%s' to='%s' id='xyz'>%s</db:verify>" % (B1, A, good))
    el = p.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'verify'), what='db:verify answer')
    assert el.get('type') == 'valid' and el.get('from') == A and el.get('to') == B1, tostr(el)
    p.send("<db:verify from='%s' to='%s' id='xyz'>%064x</db:verify>" % (B1, A, 9))
    el = p.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'verify'), what='db:verify answer')
    assert el.get('type') == 'invalid', tostr(el)
    # and the answer to parleyd's request reaches the dialback client
    p.send("<db:verify from='%s' to='%s' id='%s' type='invalid'/>" % (B1, A, v.get('id')))
    el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), what='db:result')
    assert el.get('type') == 'invalid', tostr(el)
    r.close()
    p.close()


def test_db_verify_over_bidi_route_parleyd_accepted(env):
    """b2.test connects with SASL EXTERNAL and XEP-0288, so parleyd's
    stanzas for b2.test go back on that stream, <db:verify/> requests
    included: b2.test's answer comes back on it too and settles the
    dialback; a request still waiting when the stream closes is answered
    with an error, not left waiting."""
    a, ca, lst = env
    p = bidi_peer(a, ca, B2)

    r = dialback_client(a, B2)
    v = p.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'verify'), what='db:verify request')
    assert v.get('to') == B2 and v.get('from') == A, tostr(v)
    key = v.text
    p.send("<db:verify from='%s' to='%s' id='%s' type='valid'/>" % (B2, A, v.get('id')))
    el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), what='db:result')
    assert el.get('type') == 'valid', tostr(el)
    assert key == '%064x' % 42
    r.close()

    r = dialback_client(a, B2)
    v = p.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'verify'), what='db:verify request')
    p.send('</stream:stream>')
    p.close()
    el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), what='db:result')
    assert el.get('type') == 'error', tostr(el)
    r.close()
    assert 'the stream closed before the authoritative server answered' in a.log()


def test_outgoing_peer_certificate_needs_server_auth(env):
    """b3.test's certificate chains to the CA and names b3.test, but its
    extended key usage is clientAuth only: as the server parleyd connects
    to it is not accepted, so parleyd uses dialback, not SASL EXTERNAL."""
    a, ca, lst = env
    r = dialback_client(a, B3)
    p, el = accept_external(a, ca, lst, B3, ca[B3])
    assert el.tag == q(NS_DIALBACK, 'result'), tostr(el)
    assert not any(e.tag == q(NS_BIDI, 'bidi') for e in p.received)
    p.close()
    r.close()


@pytest.mark.parametrize('domain,external', [(B3, True), (B4, False), (B5, True)])
def test_incoming_peer_certificate_key_usage(env, domain, external):
    """A peer that connects presents its certificate as a TLS client:
    clientAuth (b3.test) or no EKU at all (b5.test) will do, an EKU
    without clientAuth and serverAuth (b4.test) will not: then SASL
    EXTERNAL is not offered and refused when tried."""
    a, ca, lst = env
    p = CertServer(a.s2s_port, domain, A, ca[domain], timeout=15)
    f = p.starttls()
    mechs = f.find(q(NS_SASL, 'mechanisms'))
    offered = mechs is not None and 'EXTERNAL' in [m.text for m in mechs]
    assert offered == external, tostr(f)
    p.send("<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % NS_SASL)
    el = p.wait_for(lambda e: e.tag.startswith('{%s}' % NS_SASL), what='SASL answer')
    assert el.tag == q(NS_SASL, 'success' if external else 'failure'), tostr(el)
    p.close()
    if not external:
        assert "extended key usage allows neither clientAuth nor serverAuth" in a.log()


@pytest.mark.parametrize('domain,answer,bounce', [
    (DB_INVALID, "<db:result from='%s' to='%s' type='invalid'/>", 'internal-server-error'),
    (DB_ERROR, "<db:result from='%s' to='%s' type='error'><error type='cancel'><item-not-found "
     "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>",
     'remote-server-timeout'),
    (DB_CLOSE, '</stream:stream>', 'remote-server-timeout')], ids=['invalid', 'error', 'closed'])
def test_dialback_answer_decides_the_bounce(env, domain, answer, bounce):
    """XEP-0220 2.1.1: the stanzas queued while parleyd waits for the
    peer's answer to its <db:result/> bounce with <internal-server-error/>
    when the key is 'invalid', with <remote-server-timeout/> on a dialback
    error or when the peer closes the stream instead of answering; the log
    names what the peer said."""
    a, ca, lst = env
    alice = RawClient(a.port, host=A, timeout=15)
    alice.login('alice', 'alice-secret', resource='db')
    alice.send("<message to='x@%s' id='m1' type='chat'><body>queued</body></message>" % domain)
    p = accept_to_proceed(lst, domain, 'db1')
    p.wrap_server(ca[B1] + (ca['ca'],))
    p.wait_header()
    p.send(header(domain, A, 'db2') + "<stream:features><dialback xmlns='urn:xmpp:features:"
           "dialback'><errors/></dialback></stream:features>")
    p.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), what='db:result')
    p.send(answer % (domain, A) if '%s' in answer else answer)
    el = alice.wait_for(lambda e: e.get('id') == 'm1', what='the bounce')
    assert el.get('type') == 'error' and stanza_error(el) == bounce, tostr(el)
    p.close()
    alice.close()
    if domain == DB_ERROR:
        assert 's2s a.test -> error.test: a dialback error <item-not-found/> from the peer' \
            in a.log(), a.log()[-2000:]


def test_dialback_for_a_domain_not_served_here(env):
    """XEP-0220 2.2.1 and 2.2.2: on a stream authenticated for b5.test ->
    a.test, a <db:result/> or a <db:verify/> whose 'to' is not a domain of
    this server gets a dialback error <item-not-found/> from that domain,
    and the stream stays open (it may carry other pairs)."""
    a, ca, lst = env
    p = CertServer(a.s2s_port, B5, A, ca[B5], timeout=15)
    p.starttls()
    p.send("<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % NS_SASL)
    el = p.wait_for(lambda e: e.tag.startswith('{%s}' % NS_SASL), what='SASL answer')
    assert el.tag == q(NS_SASL, 'success'), tostr(el)
    p.open()

    def dialback_error(el, name):
        assert el.tag == q(NS_DIALBACK, name) and el.get('type') == 'error', tostr(el)
        assert el.get('from') == 'notours.test' and el.get('to') == B5, tostr(el)
        err = el.find('{jabber:server}error')
        assert err is not None and err.find(q(NS_STANZA_ERR, 'item-not-found')) is not None, \
            tostr(el)

    p.send("<db:result from='%s' to='notours.test'>%064x</db:result>" % (B5, 7))
    dialback_error(p.wait_for(lambda e: e.tag in (q(NS_DIALBACK, 'result'), q(NS_STREAM, 'error')),
                              what='db:result answer'), 'result')
    p.send("<db:verify from='%s' to='notours.test' id='v1'>%064x</db:verify>" % (B5, 7))
    el = p.wait_for(lambda e: e.tag in (q(NS_DIALBACK, 'verify'), q(NS_STREAM, 'error')),
                    what='db:verify answer')
    dialback_error(el, 'verify')
    assert el.get('id') == 'v1', tostr(el)
    # still open and still authenticated: a request for a.test is answered
    good = key_of(SECRET_A, B5, A, 'v2')
    p.send("<db:verify from='%s' to='%s' id='v2'>%s</db:verify>" % (B5, A, good))
    el = p.wait_for(lambda e: e.tag in (q(NS_DIALBACK, 'verify'), q(NS_STREAM, 'error')),
                    what='db:verify answer')
    assert el.tag == q(NS_DIALBACK, 'verify') and el.get('type') == 'valid', tostr(el)
    p.close()


def test_direct_tls_sends_sni_and_alpn(env):
    """XEP-0368: an outgoing direct-TLS connection names the domain in SNI
    and asks for the ALPN protocol 'xmpp-server'."""
    a, ca, lst = env
    alice = RawClient(a.port, host=A, timeout=15)
    alice.login('alice', 'alice-secret', resource='tls')
    alice.send("<message to='x@%s' type='chat'><body>direct</body></message>" % DIRECT)
    lst.settimeout(20)
    conn, _ = lst.accept()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(ca[B1][0]), str(ca[B1][1]))
    ctx.set_alpn_protocols(['xmpp-server'])
    seen = {}
    ctx.sni_callback = lambda sock, name, c: seen.__setitem__('sni', name)
    conn.settimeout(15)
    t = ctx.wrap_socket(conn, server_side=True)
    try:
        assert seen.get('sni') == DIRECT, seen
        assert t.selected_alpn_protocol() == 'xmpp-server', t.selected_alpn_protocol()
    finally:
        t.close()
        alice.close()


def test_failed_tls_handshake_names_the_peer(env):
    """A peer that says <proceed/> and then sends no TLS: the handshake
    fails, the queued stanza bounces, and the log line says which remote
    domain it was (not only the stream's address)."""
    a, ca, lst = env
    alice = RawClient(a.port, host=A, timeout=15)
    alice.login('alice', 'alice-secret', resource='nt')
    alice.send("<message to='x@%s' id='t1' type='chat'><body>tls</body></message>" % NOT_TLS)
    p = accept_to_proceed(lst, NOT_TLS, 'nt1')
    p.sock.sendall(b'this is not TLS at all\r\n' * 10)
    el = alice.wait_for(lambda e: e.get('id') == 't1', what='the bounce')
    assert stanza_error(el) == 'remote-server-not-found', tostr(el)
    p.sock.close()
    alice.close()
    assert 's2s a.test -> %s: TLS handshake failed on stream' % NOT_TLS in a.log(), a.log()[-2000:]


def test_verify_error_is_an_error_to_the_initiating_server(env):
    """XEP-0220 2.5: when the authoritative server answers parleyd's
    <db:verify/> with a dialback error (step 3), the initiating server
    gets a <remote-server-not-found/> dialback error, not 'invalid' (which
    says its key was forged and ends its stream)."""
    a, ca, lst = env
    r = dialback_client(a, VERIFY_ERROR)    # makes parleyd connect to verr.test
    p = accept_to_proceed(lst, VERIFY_ERROR, 've1')
    p.wrap_server(ca[B1] + (ca['ca'],))
    p.wait_header()
    p.send(header(VERIFY_ERROR, A, 've2') + "<stream:features><dialback xmlns='urn:xmpp:"
           "features:dialback'><errors/></dialback></stream:features>")
    v = p.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'verify'), what='db:verify request')
    p.send("<db:verify from='%s' to='%s' id='%s' type='error'><error type='cancel'>"
           "<item-not-found xmlns='%s'/></error></db:verify>"
           % (VERIFY_ERROR, A, v.get('id'), NS_STANZA_ERR))
    el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), what='db:result')
    assert el.get('type') == 'error' and el.get('from') == A and el.get('to') == VERIFY_ERROR, \
        tostr(el)
    err = el.find('{jabber:server}error')
    assert err is not None and err.find(q(NS_STANZA_ERR, 'remote-server-not-found')) is not None, \
        tostr(el)
    r.close()
    p.close()
    assert 'a dialback error <item-not-found/> from the authoritative server' in a.log()


def test_unsolicited_dialback_answers_on_an_incoming_stream(env):
    """XEP-0220 2.2 and 3.1: on a stream b5.test opened (no XEP-0288), a
    <db:result/> or <db:verify/> with a 'type' answers nothing parleyd
    asked: it is ignored (neither answered nor taken as a request), and
    the stream goes on."""
    a, ca, lst = env
    p = CertServer(a.s2s_port, B5, A, ca[B5], timeout=15)
    p.starttls()
    p.send("<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>" % NS_SASL)
    el = p.wait_for(lambda e: e.tag.startswith('{%s}' % NS_SASL), what='SASL answer')
    assert el.tag == q(NS_SASL, 'success'), tostr(el)
    p.open()
    p.send("<db:result from='%s' to='%s' type='valid'/>" % (B5, A))
    p.send("<db:result from='%s' to='%s' type='error'><error type='cancel'><item-not-found "
           "xmlns='%s'/></error></db:result>" % (B5, A, NS_STANZA_ERR))
    p.send("<db:verify from='%s' to='%s' id='u1' type='error'><error type='cancel'>"
           "<item-not-found xmlns='%s'/></error></db:verify>" % (B5, A, NS_STANZA_ERR))
    p.send("<db:verify from='%s' to='%s' id='u2' type='invalid'/>" % (B5, A))
    good = key_of(SECRET_A, B5, A, 'u3')
    p.send("<db:verify from='%s' to='%s' id='u3'>%s</db:verify>" % (B5, A, good))
    el = p.wait_for(lambda e: e.tag in (q(NS_DIALBACK, 'result'), q(NS_DIALBACK, 'verify'),
                                        q(NS_STREAM, 'error')), what='dialback answer')
    assert el.tag == q(NS_DIALBACK, 'verify') and el.get('id') == 'u3', tostr(el)
    assert el.get('type') == 'valid', tostr(el)
    p.close()


def test_privacy_list_holds_presence_back_from_a_remote_contact(env):
    """XEP-0016 presence-out: a contact on another server subscribed to the
    user is sent unavailable when the session's active list starts denying
    it presence-out, does not get the broadcasts that the list denies it (by
    JID, by subscription, by a rule for everyone after one that does not
    match), and gets them again once no list is active."""
    a, ca, lst = env
    p = bidi_peer(a, ca, PRIV)
    u = new_user(a, 'pv', host=A)
    c, c2 = online(a, u, host=A), online(a, u, host=A)
    user, bob = '%s@%s' % (u, A), 'bob@' + PRIV
    try:
        p.send("<presence from='%s' to='%s' type='subscribe'/>" % (bob, user))
        expect(c, presence('subscribe', bob), 'the request of the remote contact')
        c.send("<presence to='%s' type='subscribed'/>" % bob)
        expect(p, presence('subscribed', user, ns=NS_SERVER), 'the approval')
        expect(p, presence(None, c.jid, ns=NS_SERVER), 'the presence of the session')
        rules = (item(1, 'deny', 'jid', bob, ('presence-out',)),
                 item(1, 'deny', 'subscription', 'from', ('presence-out',)),
                 item(1, 'allow', 'jid', 'x@' + PRIV) + item(2, 'deny', stanzas=('presence-out',)))
        for i, rule in enumerate(rules):
            _set(c, list_xml('hide%d' % i, rule))
            _set(c, "<active name='hide%d'/>" % i)
            if i == 0:
                # the contact sees the session available: now no more
                expect(p, presence('unavailable', c.jid, ns=NS_SERVER), 'unavailable')
            c.send('<presence><status>hidden %d</status></presence>' % i)
            # the user's other resource gets the broadcast after the contacts
            expect(c2, presence(None, c.jid, status='hidden %d' % i), 'broadcast %d' % i)
        _set(c, '<active/>')
        c.send('<presence><status>shown</status></presence>')
        expect(p, presence(None, c.jid, status='shown', ns=NS_SERVER), 'the presence again')
        hidden = [tostr(e) for e in p.received
                  if presence(None, c.jid, ns=NS_SERVER)(e)
                  and (e.findtext(q(NS_SERVER, 'status')) or '').startswith('hidden')]
        assert not hidden, hidden
    finally:
        c.close()
        c2.close()
        p.close()


def test_block_ends_directed_presence_to_a_remote_jid(env):
    """XEP-0191 §3.3: a JID on another server that got directed presence
    from a session (no subscription) is sent unavailable from that session
    when the user blocks it."""
    a, ca, lst = env
    p = bidi_peer(a, ca, DIRECTED)
    u = new_user(a, 'bv', host=A)
    c = online(a, u, host=A)
    carol = 'carol@%s/desk' % DIRECTED
    try:
        c.send("<presence to='%s'><status>just you</status></presence>" % carol)
        e = expect(p, presence(None, c.jid, status='just you', ns=NS_SERVER), 'directed presence')
        assert e.get('to') == carol, tostr(e)
        block(c, 'carol@' + DIRECTED)
        e = expect(p, presence('unavailable', c.jid, ns=NS_SERVER), 'unavailable on the block')
        assert e.get('to') == carol, tostr(e)
    finally:
        c.close()
        p.close()
