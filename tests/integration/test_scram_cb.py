"""SCRAM channel binding (RFC 5802, RFC 5929, RFC 9266, XEP-0440), the gs2
flag 'y' and the XEP-0474 downgrade protection hash, with a SCRAM client
written here over raw sockets, on TLS 1.3 and on TLS 1.2.

Python's ssl module gives tls-unique only; the test reads tls-exporter
through libssl itself (ctypes on the SSL object of the Python socket, the
pointer checked against Python's own tls-unique first) and computes
tls-server-end-point from the server's certificate."""
import base64
import ctypes
import hashlib
import hmac
import os
import ssl
import subprocess
import time

import pytest

import parleytest
from parleytest import HOST, NS_SASL, RawClient, find_lines, login, logout, q, tostr

NS_CB = 'urn:xmpp:sasl-cb:0'


# ---------------------------------------------------------------------------
# channel binding data on the client side
# ---------------------------------------------------------------------------

_libssl = ctypes.CDLL('libssl.so.3')
_libssl.SSL_export_keying_material.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
    ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
_libssl.SSL_export_keying_material.restype = ctypes.c_int
_libssl.SSL_get_finished.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
_libssl.SSL_get_finished.restype = ctypes.c_size_t


def _ssl_pointer(sock):
    """The SSL * of a Python SSLSocket: the field after the object header
    and the socket reference in CPython's _ssl._SSLSocket.  Checked: its
    Finished message must be what Python returns as tls-unique."""
    obj = sock._sslobj
    ptr = ctypes.c_void_p.from_address(id(obj) + 2 * ctypes.sizeof(ctypes.c_void_p) +
                                       ctypes.sizeof(ctypes.c_ssize_t)).value
    buf = ctypes.create_string_buffer(64)
    n = _libssl.SSL_get_finished(ptr, buf, 64)
    assert 0 < n <= 64 and buf.raw[:n] == sock.get_channel_binding('tls-unique'), \
        'could not find the SSL object of the Python socket'
    return ptr


def tls_exporter(sock):
    """RFC 9266: 32 bytes of the exporter, label EXPORTER-Channel-Binding,
    empty context."""
    out = ctypes.create_string_buffer(32)
    label = b'EXPORTER-Channel-Binding'
    assert _libssl.SSL_export_keying_material(_ssl_pointer(sock), out, 32, label, len(label),
                                              None, 0, 0) == 1
    return out.raw


def tls_server_end_point(server, sock):
    """RFC 5929 section 4.1: the hash of the server certificate with the
    hash of its signature algorithm (the test certificate is ECDSA with
    SHA-256)."""
    text = subprocess.run(['openssl', 'x509', '-noout', '-text', '-in', str(server.dir / 'cert.pem')],
                          check=True, capture_output=True, text=True).stdout
    assert 'ecdsa-with-SHA256' in text, 'the test certificate is expected to be signed with SHA-256'
    return hashlib.sha256(sock.getpeercert(binary_form=True)).digest()


# ---------------------------------------------------------------------------
# a raw client with a choice of TLS version, and a SCRAM client
# ---------------------------------------------------------------------------

class Client(RawClient):
    def __init__(self, port, tls12=False, **kw):
        self.tls12 = tls12
        super().__init__(port, **kw)

    def _wrap(self):
        ctx = parleytest.tls_context()
        if self.tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.host)
        self.sock.settimeout(self.timeout)
        self.tls = True

    def cb_types(self):
        f = self.features.find(q(NS_CB, 'sasl-channel-binding'))
        return [] if f is None else [x.get('type') for x in f.findall(q(NS_CB, 'channel-binding'))]


@pytest.fixture
def client(server):
    clients = []

    def make(tls12=False):
        c = Client(server.port, tls12=tls12)
        clients.append(c)
        c.open()
        c.starttls()
        assert c.sock.version() == ('TLSv1.2' if tls12 else 'TLSv1.3'), c.sock.version()
        return c
    yield make
    for c in clients:
        c.close()


def _b64(data):
    return base64.b64encode(data).decode()


def ssdp_hash(c, hashname):
    """XEP-0474: the hash of what the server advertised, as a client
    computes it from the stream features."""
    s = '\x1e'.join(sorted(c.mechanisms()))
    types = c.cb_types()
    if types:
        s += '\x1f' + '\x1e'.join(sorted(types))
    return _b64(hashlib.new(hashname, s.encode()).digest())


class Outcome:
    def __init__(self, el, server_first=None, elapsed=0.0):
        self.el = el
        self.server_first = server_first or {}
        self.elapsed = elapsed

    @property
    def ok(self):
        return self.el.tag == q(NS_SASL, 'success')

    @property
    def condition(self):
        assert self.el.tag == q(NS_SASL, 'failure'), tostr(self.el)
        return [x.tag.split('}')[-1] for x in self.el if not x.tag.endswith('}text')]


def scram(c, user, password, mech, gs2, cbdata=b'', check_ssdp=True):
    """One SCRAM exchange; gs2 is the gs2 header ('p=tls-exporter,,',
    'y,,', 'n,,'), cbdata what the client binds to.  With check_ssdp the
    h= attribute of server-first must match the features (XEP-0474)."""
    hashname = 'sha1' if mech.startswith('SCRAM-SHA-1') else 'sha256'
    cnonce = _b64(os.urandom(18))
    bare = 'n=%s,r=%s' % (user, cnonce)
    start = time.monotonic()
    c.send("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (NS_SASL, mech, _b64((gs2 + bare).encode())))
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL, 'challenge'), q(NS_SASL, 'failure'),
                                         q(NS_SASL, 'success')), what='SASL answer')
    if el.tag != q(NS_SASL, 'challenge'):
        return Outcome(el, elapsed=time.monotonic() - start)
    sf = base64.b64decode(el.text).decode()
    attrs = dict(kv.split('=', 1) for kv in sf.split(','))
    assert attrs['r'].startswith(cnonce), sf
    if check_ssdp:
        assert attrs.get('h') == ssdp_hash(c, hashname), (sf, c.mechanisms(), c.cb_types())
    salted = hashlib.pbkdf2_hmac(hashname, password.encode(), base64.b64decode(attrs['s']),
                                 int(attrs['i']))
    client_key = hmac.new(salted, b'Client Key', hashname).digest()
    stored_key = hashlib.new(hashname, client_key).digest()
    without_proof = 'c=%s,r=%s' % (_b64(gs2.encode() + cbdata), attrs['r'])
    auth_message = ','.join((bare, sf, without_proof)).encode()
    sig = hmac.new(stored_key, auth_message, hashname).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    c.send("<response xmlns='%s'>%s</response>" % (NS_SASL, _b64(
        ('%s,p=%s' % (without_proof, _b64(proof))).encode())))
    el = c.wait_for(lambda e: e.tag in (q(NS_SASL, 'failure'), q(NS_SASL, 'success')),
                    what='SASL result')
    if el.tag == q(NS_SASL, 'success'):
        server_key = hmac.new(salted, b'Server Key', hashname).digest()
        v = _b64(hmac.new(server_key, auth_message, hashname).digest())
        assert base64.b64decode(el.text).decode() == 'v=' + v, 'wrong server signature'
    return Outcome(el, attrs, time.monotonic() - start)


def _authenticated_lines(server, user, mech, cbtype=None):
    tail = r' authenticated with %s%s$' % (mech, r' \(%s\)' % cbtype if cbtype else '')
    return find_lines(r'%s@%s%s' % (user, HOST.replace('.', r'\.'), tail), server.log())


def _wait_log(server, user, mech, cbtype=None, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _authenticated_lines(server, user, mech, cbtype):
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------
# advertised types (XEP-0440)
# ---------------------------------------------------------------------------

def test_types_on_tls13(client):
    c = client()
    assert sorted(c.cb_types()) == ['tls-exporter', 'tls-server-end-point'], tostr(c.features)
    assert 'SCRAM-SHA-256-PLUS' in c.mechanisms()


def test_types_on_tls12(client):
    c = client(tls12=True)
    assert sorted(c.cb_types()) == ['tls-server-end-point', 'tls-unique'], tostr(c.features)
    assert 'SCRAM-SHA-256-PLUS' in c.mechanisms()


# ---------------------------------------------------------------------------
# -PLUS with each type
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('mech', ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS'])
def test_plus_tls_exporter(server, client, mech):
    c = client()
    r = scram(c, 'alice', server.password('alice'), mech, 'p=tls-exporter,,', tls_exporter(c.sock))
    assert r.ok, tostr(r.el)
    assert _wait_log(server, 'alice', mech, 'tls-exporter'), 'no "authenticated with" log line'


@pytest.mark.parametrize('tls12', [False, True])
def test_plus_tls_server_end_point(server, client, tls12):
    c = client(tls12=tls12)
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,',
              tls_server_end_point(server, c.sock))
    assert r.ok, tostr(r.el)
    assert _wait_log(server, 'bob', 'SCRAM-SHA-256-PLUS', 'tls-server-end-point')


def test_plus_tls_unique_on_tls12(server, client):
    c = client(tls12=True)
    r = scram(c, 'carol', server.password('carol'), 'SCRAM-SHA-256-PLUS', 'p=tls-unique,,',
              c.sock.get_channel_binding('tls-unique'))
    assert r.ok, tostr(r.el)
    assert _wait_log(server, 'carol', 'SCRAM-SHA-256-PLUS', 'tls-unique')


def test_tls_exporter_refused_on_tls12(server, client):
    """Not advertised on TLS 1.2 (no exporter binding there)."""
    c = client(tls12=True)
    r = scram(c, 'carol', server.password('carol'), 'SCRAM-SHA-256-PLUS', 'p=tls-exporter,,', b'x' * 32)
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
    assert r.server_first == {}, 'refused at the client-first message'


def test_tls_unique_refused_on_tls13(server, client):
    """tls-unique is undefined on TLS 1.3 (RFC 9266): a client naming it is
    refused at once, before any password is tried, without the failed-login
    delay and without using up the stream's attempts; the stream goes on."""
    c = client()
    for _ in range(4):   # more than auth_attempts (3): none of them counts
        r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256-PLUS', 'p=tls-unique,,',
                  c.sock.get_channel_binding('tls-unique'))
        assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
        assert r.server_first == {}, 'refused at the client-first message'
        assert r.elapsed < 0.15, 'answered after the failed-login delay (0.2s): %.3fs' % r.elapsed
    assert find_lines(r'SCRAM-SHA-256-PLUS refused: unsupported-channel-binding-type', server.log())
    r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256-PLUS', 'p=tls-exporter,,',
              tls_exporter(c.sock))
    assert r.ok, tostr(r.el)


def test_unknown_type_refused(server, client):
    c = client()
    r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256-PLUS', 'p=tls-nonsense,,', b'x')
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)


@pytest.mark.parametrize('cbtype', ['tls-exporter', 'tls-server-end-point'])
def test_wrong_binding_data(server, client, cbtype):
    c = client()
    good = tls_exporter(c.sock) if cbtype == 'tls-exporter' else tls_server_end_point(server, c.sock)
    bad = bytes([good[0] ^ 1]) + good[1:]
    r = scram(c, 'erin', server.password('erin'), 'SCRAM-SHA-256-PLUS', 'p=%s,,' % cbtype, bad)
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)


def test_binding_from_another_connection(server, client):
    """The exporter value of one TLS connection does not log in on another."""
    a = client()
    b = client()
    r = scram(b, 'erin', server.password('erin'), 'SCRAM-SHA-256-PLUS', 'p=tls-exporter,,',
              tls_exporter(a.sock))
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)


# ---------------------------------------------------------------------------
# the gs2 flags 'y' and 'n'
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('mech', ['SCRAM-SHA-256', 'SCRAM-SHA-1'])
def test_y_accepted_on_tls13(server, client, mech):
    """'y' on TLS 1.3: the client knows channel binding but none of the
    types on offer (tls-unique is not one there); accepted."""
    c = client()
    r = scram(c, 'alice', server.password('alice'), mech, 'y,,')
    assert r.ok, tostr(r.el)


def test_y_refused_on_tls12(server, client):
    """'y' on TLS 1.2, where -PLUS is offered with tls-unique, the type every
    channel-binding SCRAM client implements: the -PLUS mechanisms must have
    been removed on the way, so the exchange fails (RFC 5802 section 6)."""
    c = client(tls12=True)
    r = scram(c, 'alice', server.password('alice'), 'SCRAM-SHA-256', 'y,,')
    assert not r.ok and r.condition == ['not-authorized'], tostr(r.el)
    assert r.server_first == {}
    assert find_lines(r'SCRAM-SHA-256 refused: server-does-support-channel-binding', server.log())


@pytest.mark.parametrize('tls12', [False, True])
def test_n_accepted(server, client, tls12):
    c = client(tls12=tls12)
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-256', 'n,,')
    assert r.ok, tostr(r.el)
    assert _wait_log(server, 'bob', 'SCRAM-SHA-256')


def test_plus_requires_p_flag(server, client):
    c = client()
    r = scram(c, 'bob', server.password('bob'), 'SCRAM-SHA-256-PLUS', 'n,,')
    assert not r.ok and r.condition == ['malformed-request'], tostr(r.el)


# ---------------------------------------------------------------------------
# XEP-0474: the hash of the advertised lists in server-first
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('tls12', [False, True])
@pytest.mark.parametrize('mech', ['SCRAM-SHA-1', 'SCRAM-SHA-256'])
def test_ssdp_hash(server, client, tls12, mech):
    c = client(tls12=tls12)
    r = scram(c, 'carol', server.password('carol'), mech, 'n,,')   # scram() checks h=
    assert r.ok, tostr(r.el)
    assert 'h' in r.server_first


def test_ssdp_hash_detects_a_changed_list(server, client):
    """A client that saw a list without -PLUS computes another hash."""
    c = client()
    r = scram(c, 'carol', server.password('carol'), 'SCRAM-SHA-256', 'n,,', check_ssdp=False)
    assert r.ok
    stripped = '\x1e'.join(sorted(m for m in c.mechanisms() if not m.endswith('-PLUS')))
    assert r.server_first['h'] != _b64(hashlib.sha256(stripped.encode()).digest())


def test_ssdp_for_unknown_user(server, client):
    """An unknown user gets the same attribute (no user enumeration)."""
    c = client()
    r = scram(c, 'nobody', 'whatever', 'SCRAM-SHA-256', 'n,,')
    assert not r.ok and r.condition == ['not-authorized']
    assert r.server_first.get('h') == ssdp_hash(c, 'sha256')


# ---------------------------------------------------------------------------
# Debian 12's slixmpp (knows tls-unique only) on TLS 1.3
# ---------------------------------------------------------------------------

def test_slixmpp_logs_in_with_scram_on_tls13(server, run):
    """slixmpp 1.8.3 picks SCRAM-SHA-256-PLUS with tls-unique first; that is
    refused on TLS 1.3 (at once, not counted), as is SCRAM-SHA-1-PLUS; it
    then uses SCRAM-SHA-256 with the flag 'y', which is accepted: it logs in
    with SCRAM, never with PLAIN.  (parleytest.login treats every SASL
    failure as fatal; slixmpp itself goes on to its next mechanism.)"""
    import asyncio
    before = len(server.log().splitlines())

    async def go():
        c = parleytest.make_client('erin@' + HOST, server.password('erin'))
        done = asyncio.get_running_loop().create_future()
        tried = []

        def finish(result=None, exc=None):
            if not done.done():
                done.set_exception(exc) if exc is not None else done.set_result(result)
        c.add_event_handler('session_start', lambda e: finish(True))
        c.add_event_handler('failed_auth', lambda e: tried.append(c['feature_mechanisms'].mech.name))
        c.add_event_handler('no_auth', lambda e: finish(exc=AssertionError('no usable mechanism')))
        c.add_event_handler('failed_all_auth', lambda e: finish(exc=AssertionError('all failed')))
        c.add_event_handler('disconnected', lambda e: finish(exc=AssertionError('disconnected')))
        c.connect(address=('127.0.0.1', server.port), force_starttls=True)
        try:
            await asyncio.wait_for(done, 20)
            assert c.boundjid.bare == 'erin@' + HOST
            mech = c['feature_mechanisms'].mech.name
        finally:
            c.abort()
        return mech, tried
    mech, tried = run(go())
    assert mech == 'SCRAM-SHA-256', (mech, tried)
    # the two -PLUS attempts with tls-unique, refused
    assert tried == ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS'], tried
    lines = server.log().splitlines()[before:]
    ok = [ln for ln in lines if 'erin@%s authenticated with' % HOST in ln]
    assert len(ok) == 1, lines
    assert ok[0].endswith('authenticated with SCRAM-SHA-256'), ok[0]
    assert not [ln for ln in lines if 'auth failed' in ln], lines


def test_slixmpp_scram_sha256_flag_y_on_tls13(server, run):
    """slixmpp told to use SCRAM-SHA-256 sends 'y' on TLS 1.3: accepted."""
    before = len(server.log().splitlines())

    async def go():
        c = await login(server, 'bob', mech='SCRAM-SHA-256', claim_cb_support=True)
        await logout(c)
    run(go())
    lines = server.log().splitlines()[before:]
    assert any(ln.endswith('bob@%s authenticated with SCRAM-SHA-256' % HOST) for ln in lines), lines
