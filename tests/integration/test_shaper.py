"""Traffic shaping: a client connection is read at no more than
shaper.c2s bytes per second.  A fast sender is slowed down (its socket is
not read while its bucket is empty), not disconnected, and other users are
not held up meanwhile."""
import threading
import time

import pytest

import parleytest
from parleytest import HOST, RawClient, tostr, unique

RATE = 100 * 1024     # shaper.c2s below
SIZE = 300 * 1024     # bytes the fast client sends
BURST = 16 * 1024     # what the bucket holds when full


class ShapedParleyd(parleytest.Parleyd):
    def write_config(self):
        super().write_config()
        self.config.write_text(self.config.read_text() + 'shaper:\n  c2s: 100K\n')


@pytest.fixture(scope='module')
def shaped(tmp_path_factory):
    srv = ShapedParleyd(tmp_path_factory.mktemp('shaper'))
    srv.start_with_users()
    yield srv
    srv.finish()


def test_fast_sender_is_slowed_not_disconnected(shaped):
    w = parleytest.Witness(shaped)
    fast = RawClient(shaped.port, timeout=60)
    fast.login('alice', shaped.password('alice'), resource='fast')
    # whitespace between stanzas is legal, and costs the server nothing to
    # parse: only the shaper slows it down
    payload = b' ' * SIZE + b"<iq type='get' id='after-flood' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % HOST.encode()
    done = {}

    def send():
        start = time.monotonic()
        fast.send(payload)
        answer = fast.wait_iq('after-flood', timeout=60)
        done['elapsed'] = time.monotonic() - start
        done['answer'] = answer

    t = threading.Thread(target=send)
    start = time.monotonic()
    t.start()
    try:
        # another user's message goes through at once meanwhile
        body = unique('meanwhile-')
        w.a.send("<message to='%s' type='chat'><body>%s</body></message>" % (w.b.jid, body))
        w.b.wait_message(body, timeout=10)
        witness_elapsed = time.monotonic() - start
        assert 'answer' not in done, 'the shaped client finished first (%.2fs)' % witness_elapsed
    finally:
        t.join(90)
    assert not t.is_alive()
    assert done['answer'].get('type') == 'result', tostr(done['answer'])
    # (SIZE - BURST) / RATE = 2.84 s at least; load can only lengthen it
    assert done['elapsed'] >= (SIZE - BURST) / RATE * 0.9, done['elapsed']
    assert done['elapsed'] < 45, done['elapsed']
    assert not fast.closed
    w.check()
    fast.close()
    w.close()


def test_unshaped_by_default(server):
    """Unshaped by default: the same flood goes through quickly."""
    fast = RawClient(server.port, timeout=30)
    fast.login('alice', server.password('alice'), resource='fast-default')
    start = time.monotonic()
    fast.send(b' ' * SIZE)
    r = fast.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    assert r.get('type') == 'result', tostr(r)
    # the shaped case above takes at least 2.5 s
    assert time.monotonic() - start < 2.5
    fast.close()
