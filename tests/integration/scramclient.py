"""A SCRAM client over raw sockets for the SASL tests (test_scram_cb.py,
test_sasl2.py): channel binding data as a client computes it, the XEP-0474
hash check, SASL1 or SASL2 framing.

Python's ssl module gives tls-unique only; tls-exporter is read through
libssl itself (ctypes on the SSL object of the Python socket, the pointer
checked against Python's own tls-unique first); tls-server-end-point is
computed from the server's certificate."""
import base64
import ctypes
import hashlib
import hmac
import os
import ssl
import subprocess
import time

import parleytest
from parleytest import NS_SASL, RawClient, q, tostr

NS_SASL2 = 'urn:xmpp:sasl:2'
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


def _b64(data):
    return base64.b64encode(data).decode()


def ssdp_hash(c, hashname, sasl2=False):
    """XEP-0474: the hash of what the server advertised, as a client
    computes it from the stream features (over SASL2 the mechanisms of
    its <authentication/>, which add FAST's HT mechanisms)."""
    mechs = c.mechanisms()
    if sasl2:
        mechs = [m.text for m in c.features.find(q(NS_SASL2, 'authentication')).findall(
            q(NS_SASL2, 'mechanism'))]
    s = '\x1e'.join(sorted(mechs))
    types = c.cb_types()
    if types:
        s += '\x1f' + '\x1e'.join(sorted(types))
    return _b64(hashlib.new(hashname, s.encode()).digest())


class Outcome:
    def __init__(self, el, server_first=None, elapsed=0.0, ns=NS_SASL):
        self.el = el
        self.server_first = server_first or {}
        self.elapsed = elapsed
        self.ns = ns

    @property
    def ok(self):
        return self.el.tag == q(self.ns, 'success')

    @property
    def condition(self):
        assert self.el.tag == q(self.ns, 'failure'), tostr(self.el)
        return [x.tag.split('}')[-1] for x in self.el if not x.tag.endswith('}text')]


def scram(c, user, password, mech, gs2, cbdata=b'', check_ssdp=True, sasl2=False, extra=''):
    """One SCRAM exchange; gs2 is the gs2 header ('p=tls-exporter,,',
    'y,,', 'n,,'), cbdata what the client binds to.  With check_ssdp the
    h= attribute of server-first must match the features (XEP-0474).
    sasl2: over XEP-0388, extra the further children of <authenticate/>."""
    ns = NS_SASL2 if sasl2 else NS_SASL
    hashname = {'SCRAM-SHA-1': 'sha1', 'SCRAM-SHA-256': 'sha256', 'SCRAM-SHA-512': 'sha512'}[
        mech.replace('-PLUS', '')]
    cnonce = _b64(os.urandom(18))
    bare = 'n=%s,r=%s' % (user, cnonce)
    start = time.monotonic()
    first = _b64((gs2 + bare).encode())
    if sasl2:
        c.send("<authenticate xmlns='%s' mechanism='%s'><initial-response>%s</initial-response>%s"
               "</authenticate>" % (ns, mech, first, extra))
    else:
        c.send("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (ns, mech, first))
    el = c.wait_for(lambda e: e.tag in (q(ns, 'challenge'), q(ns, 'failure'), q(ns, 'success')),
                    what='SASL answer')
    if el.tag != q(ns, 'challenge'):
        return Outcome(el, elapsed=time.monotonic() - start, ns=ns)
    sf = base64.b64decode(el.text).decode()
    attrs = dict(kv.split('=', 1) for kv in sf.split(','))
    assert attrs['r'].startswith(cnonce), sf
    if check_ssdp:
        assert attrs.get('h') == ssdp_hash(c, hashname, sasl2), (sf, c.mechanisms(), c.cb_types())
    salted = hashlib.pbkdf2_hmac(hashname, password.encode(), base64.b64decode(attrs['s']),
                                 int(attrs['i']))
    client_key = hmac.new(salted, b'Client Key', hashname).digest()
    stored_key = hashlib.new(hashname, client_key).digest()
    without_proof = 'c=%s,r=%s' % (_b64(gs2.encode() + cbdata), attrs['r'])
    auth_message = ','.join((bare, sf, without_proof)).encode()
    sig = hmac.new(stored_key, auth_message, hashname).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    c.send("<response xmlns='%s'>%s</response>" % (ns, _b64(
        ('%s,p=%s' % (without_proof, _b64(proof))).encode())))
    # SASL2: <continue/> when tasks follow (XEP-0480), with the final data
    el = c.wait_for(lambda e: e.tag in (q(ns, 'failure'), q(ns, 'success'), q(ns, 'continue')),
                    what='SASL result')
    if el.tag in (q(ns, 'success'), q(ns, 'continue')):
        server_key = hmac.new(salted, b'Server Key', hashname).digest()
        v = _b64(hmac.new(server_key, auth_message, hashname).digest())
        data = el.findtext(q(NS_SASL2, 'additional-data')) if sasl2 else el.text
        assert base64.b64decode(data).decode() == 'v=' + v, 'wrong server signature'
    return Outcome(el, attrs, time.monotonic() - start, ns=ns)


