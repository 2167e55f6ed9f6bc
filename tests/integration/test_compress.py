"""Stream compression (XEP-0138, zlib) on client TCP streams: negotiated
after TLS and SASL when `compression: { enabled: true }`, not offered when
off (the default), and bounded: a decompression bomb is cut off at the
stanza size limit and undecodable input ends the stream, while other users
keep working."""
import asyncio
import select
import time
import zlib

import pytest

import parleytest
from parleytest import (HOST, NS_SASL, RawClient, login, logout, next_message, q, tostr,
                        unique)

NS_COMPRESS = 'http://jabber.org/protocol/compress'
NS_COMPRESS_FEATURE = 'http://jabber.org/features/compress'


class CompressingParleyd(parleytest.Parleyd):
    def write_config(self):
        super().write_config()
        self.config.write_text(self.config.read_text() + 'compression:\n  enabled: true\n')


@pytest.fixture(scope='module')
def zserver(tmp_path_factory):
    srv = CompressingParleyd(tmp_path_factory.mktemp('compress'))
    srv.start_with_users()
    yield srv
    srv.finish()


class ZlibSocket:
    """A socket (plain or TLS) seen through zlib in both directions."""

    def __init__(self, sock):
        self.sock = sock
        self.deflater = zlib.compressobj()
        self.inflater = zlib.decompressobj()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def fileno(self):
        return self.sock.fileno()

    def sendall_raw(self, data):
        self.sock.sendall(data)

    def sendall(self, data):
        self.sock.sendall(self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH))

    def recv(self, n):
        while True:
            data = self.sock.recv(n)
            if not data:
                return b''
            out = self.inflater.decompress(data)
            if out:
                return out

    def close(self):
        self.sock.close()


def compression_methods(features):
    c = features.find(q(NS_COMPRESS_FEATURE, 'compression'))
    if c is None:
        return None
    return [m.text for m in c.findall(q(NS_COMPRESS_FEATURE, 'method'))]


def authenticate(c, user, password):
    """TLS and SASL; returns the features of the authenticated stream."""
    c.open()
    c.starttls()
    r = c.auth_plain(user, password)
    assert r.tag == q(NS_SASL, 'success'), tostr(r)
    return c.open()


def compress(c, method='zlib'):
    """Ask for compression; returns the answer (<compressed/> or <failure/>)."""
    c.send("<compress xmlns='%s'><method>%s</method></compress>" % (NS_COMPRESS, method))
    el = c.wait_for(lambda e: e.tag.startswith('{%s}' % NS_COMPRESS), what='compression answer')
    if el.tag == q(NS_COMPRESS, 'compressed'):
        c.sock = ZlibSocket(c.sock)
    return el


def compressed_client(srv, user, resource=None):
    c = RawClient(srv.port, timeout=10)
    features = authenticate(c, user, srv.password(user))
    assert compression_methods(features) == ['zlib'], tostr(features)
    el = compress(c)
    assert el.tag == q(NS_COMPRESS, 'compressed'), tostr(el)
    features = c.open()
    # compressed once: not offered again
    assert compression_methods(features) is None, tostr(features)
    c.bind(resource or unique('z-'))
    c.send('<presence/>')
    return c


def rss_kib(srv):
    with open('/proc/%d/status' % srv.proc.pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise AssertionError('no VmRSS')


def send_until_answered(c, chunks):
    """Write each chunk (already compressed) until the server says
    something (its stream error), so that our surplus does not make the
    kernel reset the connection before we read the answer."""
    for chunk in chunks:
        readable, _, _ = select.select([c.sock.fileno()], [], [], 0)
        if readable:
            return
        try:
            c.sock.sendall_raw(chunk)
        except OSError:
            return


def test_compressed_login_and_messages_with_slixmpp_user(zserver, run, loop):
    alice = compressed_client(zserver, 'alice', resource='zlib1')

    async def go():
        bob = await login(zserver, 'bob', resource='plain1')
        body = unique('compressed to bob ')
        alice.send("<message to='bob@%s' type='chat'><body>%s</body></message>" % (HOST, body))
        m = await next_message(bob, pred=lambda m: m['body'] == body)
        assert str(m['from']) == alice.jid
        # and back, many times: every flush is a sync-flushed deflate block
        bodies = [unique('to alice %d ' % i) for i in range(50)]
        for b in bodies:
            bob.send_message(mto=alice.jid, mbody=b, mtype='chat')
        for b in bodies:
            got = await loop.run_in_executor(None, alice.wait_message, b, 10)
            assert got.get('from') == str(bob.boundjid), tostr(got)
        await logout(bob)
    run(go())
    r = alice.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    assert r.get('type') == 'result', tostr(r)
    alice.close()


def test_unsupported_method_gets_failure(zserver):
    c = RawClient(zserver.port)
    authenticate(c, 'alice', zserver.password('alice'))
    el = compress(c, method='lzw')
    assert el.tag == q(NS_COMPRESS, 'failure'), tostr(el)
    assert el.find(q(NS_COMPRESS, 'unsupported-method')) is not None, tostr(el)
    # the stream goes on uncompressed
    c.bind('after-failure')
    c.close()


def test_not_offered_before_authentication(zserver):
    c = RawClient(zserver.port)
    features = c.open()
    assert compression_methods(features) is None, tostr(features)
    features = c.starttls()
    assert compression_methods(features) is None, tostr(features)
    c.close()


def test_not_offered_when_off(server):
    c = RawClient(server.port)
    features = authenticate(c, 'alice', server.password('alice'))
    assert compression_methods(features) is None, tostr(features)
    el = compress(c)
    assert el.tag == q(NS_COMPRESS, 'failure'), tostr(el)
    assert el.find(q(NS_COMPRESS, 'setup-failed')) is not None, tostr(el)
    c.bind('uncompressed')
    c.close()


def bomb_chunks(d, prefix, filler, total):
    """prefix then total bytes of filler, deflated on the fly by the
    stream's deflater d (never held whole in memory here either)."""
    yield d.compress(prefix) + d.flush(zlib.Z_SYNC_FLUSH)
    block = filler * (1 << 20)
    for _ in range(total >> 20):
        out = d.compress(block)
        if out:
            yield out
    yield d.flush(zlib.Z_SYNC_FLUSH)


@pytest.mark.parametrize('prefix,filler', [
    (b"<message to='bob@test.local'><body>", b'a'),   # one endless stanza
    (b'', b' '),                                      # endless whitespace between stanzas
], ids=['in-stanza', 'between-stanzas'])
def test_decompression_bomb_is_cut_off(zserver, prefix, filler):
    w = parleytest.Witness(zserver)
    before = rss_kib(zserver)
    c = compressed_client(zserver, 'alice')
    c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    start = time.monotonic()
    send_until_answered(c, bomb_chunks(c.sock.deflater, prefix, filler, 100 << 20))
    assert c.stream_error(timeout=30) == 'policy-violation'
    assert c.wait_closed(timeout=10)
    # cut off at the limit: the server did not inflate 100 MB into memory
    assert rss_kib(zserver) - before < 32 * 1024
    assert time.monotonic() - start < 30
    w.check()
    w.close()


def test_bad_compressed_bytes_get_a_stream_error(zserver, witness_z):
    c = compressed_client(zserver, 'alice')
    c.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    c.sock.sendall_raw(b'\xff\xfe this is not deflate data \x00' * 4)
    assert c.stream_error(timeout=10) == 'bad-format'
    assert c.wait_closed(timeout=10)
    witness_z.check()


@pytest.fixture
def witness_z(zserver):
    w = parleytest.Witness(zserver)
    yield w
    w.close()
