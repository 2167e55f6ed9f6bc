"""Stream compression (XEP-0138, zlib) on s2s streams with
`compression: { s2s: true }`: two parleyd instances (dialback with
self-signed certificates, static map) negotiate it once authenticated and
federate through it; a server without the option neither offers nor asks
for it; a raw peer's 100 MB decompression bomb is cut off at the stanza
size limit with <policy-violation/> while federation goes on."""
import time

import pytest

import parleytest
from parleytest import (NS_DIALBACK, NS_TLS, FedParleyd, RawServer, free_port, login, logout,
                        next_message, q, started, tostr, unique)
from test_compress import (NS_COMPRESS, ZlibSocket, bomb_chunks, compression_methods, rss_kib,
                           send_until_answered)

A, B, C = 'a.test', 'b.test', 'c.test'
SECRET_B = b'the dialback secret of b.test, for the bomb'


class ZParleyd(FedParleyd):
    def __init__(self, *args, s2s_compression=True, **kw):
        self.s2s_compression = s2s_compression
        super().__init__(*args, **kw)

    def write_config(self):
        super().write_config()
        if self.s2s_compression:
            self.config.write_text(self.config.read_text() + 'compression:\n  s2s: true\n')


@pytest.fixture(scope='module')
def fed(tmp_path_factory):
    base = tmp_path_factory.mktemp('s2sz')
    (base / 'b-secret').write_bytes(SECRET_B)
    pa, pb, pc = free_port(), free_port(), free_port()
    a = ZParleyd(base / 'a', A, {('alice', A): 'alice-secret'}, peers={B: pb, C: pc}, s2s_port=pa)
    b = ZParleyd(base / 'b', B, {('bob', B): 'bob-secret'}, peers={A: pa}, s2s_port=pb,
                 s2s={'dialback_secret_file': str(base / 'b-secret')})
    c = ZParleyd(base / 'c', C, {('carl', C): 'carl-secret'}, peers={A: pa}, s2s_port=pc,
                 s2s_compression=False)
    with started(a, b, c):
        yield a, b, c


def rows(server, direction):
    out = server.ctl('s2s-list')
    assert out.returncode == 0, out.stderr
    return [ln.split('\t') for ln in out.stdout.splitlines() if ln.startswith(direction + '\t')]


def chat(a, b, user_a, user_b, dom_a, dom_b, run):
    async def go():
        x = await login(a, user_a, host=dom_a, resource='z')
        y = await login(b, user_b, host=dom_b, resource='z')
        for src, dst in ((x, y), (y, x)):
            body = unique('zlib ')
            src.send_message(mto=str(dst.boundjid.bare), mbody=body, mtype='chat')
            m = await next_message(dst, pred=lambda m, body=body: m['body'] == body, timeout=15)
            assert m['from'] == src.boundjid
        await logout(x, y)
    run(go(), timeout=60)


def test_compressed_federation(fed, run):
    a, b, _ = fed
    chat(a, b, 'alice', 'bob', A, B, run)
    out_a = [r for r in rows(a, 'out') if r[1] == B]
    assert out_a and out_a[0][3].endswith('+zlib') and out_a[0][4] == 'dialback', out_a
    in_b = [r for r in rows(b, 'in') if r[1] == A]
    assert in_b and in_b[0][3].endswith('+zlib'), in_b
    out_b = [r for r in rows(b, 'out') if r[1] == A]
    assert out_b and out_b[0][3].endswith('+zlib'), out_b


def test_not_negotiated_with_a_server_without_it(fed, run):
    a, _, c = fed
    chat(a, c, 'alice', 'carl', A, C, run)
    out_a = [r for r in rows(a, 'out') if r[1] == C]
    assert out_a and not out_a[0][3].endswith('+zlib'), out_a
    out_c = [r for r in rows(c, 'out') if r[1] == A]
    assert out_c and not out_c[0][3].endswith('+zlib'), out_c


def raw_peer(a):
    """A raw peer claiming b.test on TLS, authenticated by dialback with
    b.test's secret (a.test asks the real b.test, which says valid)."""
    r = RawServer(a.s2s_port, B, A, timeout=10)
    r.open()
    r.send("<starttls xmlns='%s'/>" % NS_TLS)
    el = r.wait_for(lambda e: e.tag.startswith('{%s}' % NS_TLS), what='STARTTLS answer')
    assert el.tag == q(NS_TLS, 'proceed'), tostr(el)
    r._wrap()
    features = r.open()
    assert compression_methods(features) == ['zlib'], tostr(features)
    return r


def test_compress_before_authentication_is_refused(fed):
    a, _, _ = fed
    r = raw_peer(a)
    r.send("<compress xmlns='%s'><method>zlib</method></compress>" % NS_COMPRESS)
    el = r.wait_for(lambda e: e.tag.startswith('{%s}' % NS_COMPRESS), what='compression answer')
    assert el.tag == q(NS_COMPRESS, 'failure'), tostr(el)
    assert el.find(q(NS_COMPRESS, 'setup-failed')) is not None, tostr(el)
    r.close()


def test_compress_while_a_dialback_verification_is_pending_is_refused(fed):
    """A <compress/> right behind a <db:result/> whose verification is in
    flight: its answer would come between <compressed/> and the restarted
    header, so compression is refused; the answer still arrives, and
    compression works once nothing is pending."""
    a, _, _ = fed
    r = raw_peer(a)
    key = r.dialback_key(SECRET_B, A, r.header['id'])
    r.send("<db:result from='%s' to='%s'>%s</db:result>" % (B, A, key))
    el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), timeout=20, what='db:result')
    assert el.get('type') == 'valid', tostr(el)
    # one write: parleyd reads both before b.test can answer
    r.send("<db:result from='%s' to='%s'>%s</db:result>"
           "<compress xmlns='%s'><method>zlib</method></compress>" % (B, A, key, NS_COMPRESS))
    el = r.wait_for(lambda e: e.tag.startswith('{%s}' % NS_COMPRESS), what='compression answer')
    assert el.tag == q(NS_COMPRESS, 'failure'), tostr(el)
    assert el.find(q(NS_COMPRESS, 'setup-failed')) is not None, tostr(el)
    el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), timeout=20, what='db:result')
    assert el.get('type') == 'valid', tostr(el)
    r.send("<compress xmlns='%s'><method>zlib</method></compress>" % NS_COMPRESS)
    el = r.wait_for(lambda e: e.tag.startswith('{%s}' % NS_COMPRESS), what='compression answer')
    assert el.tag == q(NS_COMPRESS, 'compressed'), tostr(el)
    r.close()


@pytest.mark.parametrize('prefix,filler', [
    ("<message from='bob@%s' to='alice@%s'><body>" % (B, A), b'a'),   # one endless stanza
    ('', b' '),                                                         # endless whitespace
], ids=['in-stanza', 'between-stanzas'])
def test_decompression_bomb_on_s2s_is_cut_off(fed, run, prefix, filler):
    a, b, _ = fed
    before = rss_kib(a)
    r = raw_peer(a)
    key = r.dialback_key(SECRET_B, A, r.header['id'])
    r.send("<db:result from='%s' to='%s'>%s</db:result>" % (B, A, key))
    el = r.wait_for(lambda e: e.tag == q(NS_DIALBACK, 'result'), timeout=20, what='db:result')
    assert el.get('type') == 'valid', tostr(el)
    r.send("<compress xmlns='%s'><method>zlib</method></compress>" % NS_COMPRESS)
    el = r.wait_for(lambda e: e.tag.startswith('{%s}' % NS_COMPRESS), what='compression answer')
    assert el.tag == q(NS_COMPRESS, 'compressed'), tostr(el)
    r.sock = ZlibSocket(r.sock)
    features = r.open()
    assert compression_methods(features) is None, tostr(features)
    # a stanza through the compressed stream arrives
    r.send("<message from='bob@%s' to='nobody@%s' type='chat'><body>z</body></message>" % (B, A))
    # then 100 MB that inflate from about 100 kB
    t0 = time.monotonic()
    send_until_answered(r, bomb_chunks(r.sock.deflater, prefix.encode(), filler, 100 << 20))
    assert r.stream_error(timeout=30) == 'policy-violation'
    took = time.monotonic() - t0
    r.close()
    assert took < 30, took
    # cut off at the limit: parleyd did not inflate 100 MB into memory
    assert rss_kib(a) - before < 32 * 1024
    assert "s2s in" in a.log() and 'closing with <policy-violation/>' in a.log()
    assert a.running()
    # federation through the real b.test goes on
    chat(a, b, 'alice', 'bob', A, B, run)
