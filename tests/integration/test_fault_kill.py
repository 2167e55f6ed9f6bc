"""SIGKILL of parleyd under message load: several senders with stream
management (XEP-0198) write messages to offline users as fast as they can,
asking for acknowledgements as they go, and parleyd is killed in the
middle of it.  Every message the server acknowledged (counted in an <a h/>)
is in the store after the kill, none is there twice, and after a restart
the recipients get them.  (test_offline.py and test_sm.py kill parleyd at
a quiet moment; this one kills it mid-traffic.)  The map of
fault tests is in test_fault_db.py."""
import signal
import threading
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, RawClient, q
from test_sm import SMClient

SENDERS = 4
RECIPIENTS = 5          # per sender, so no one passes the offline quota (100)
PER_SENDER = 300
BURST = 10


@pytest.fixture
def load_server(tmp_path_factory):
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-kill'), loglevel='info')
    srv.start_with_users()
    for i in range(SENDERS):
        srv.register('sender%d' % i, HOST, 'sender-pw')
        for j in range(RECIPIENTS):
            srv.register('rcpt%d_%d' % (i, j), HOST, 'rcpt-pw')
    yield srv
    srv.finish()


class Sender(threading.Thread):
    def __init__(self, srv, i):
        super().__init__(daemon=True)
        self.srv, self.i = srv, i
        self.bodies = []     # in the order sent
        self.acked = 0       # the highest h the server sent
        self.error = None
        self.c = SMClient(srv, timeout=10)
        self.c.sm_login('sender%d' % i, resource='load', presence=False)

    def run(self):
        try:
            for n in range(PER_SENDER):
                body = 'load-%d-%04d' % (self.i, n)
                self.bodies.append(body)
                self.c.send("<message to='rcpt%d_%d@%s' type='chat'><body>%s</body></message>"
                            % (self.i, n % RECIPIENTS, HOST, body))
                if n % BURST == BURST - 1:
                    self.acked = max(self.acked, self.c.request())
        except Exception as e:      # the kill cuts the stream
            self.error = e


def stored(srv):
    """body -> how many times it is in offline storage."""
    out = {}
    for (stanza,) in srv.db_query('SELECT stanza FROM offline_messages'):
        body = stanza.split('<body>', 1)[1].split('</body>', 1)[0]
        out[body] = out.get(body, 0) + 1
    return out


def test_sigkill_under_load(load_server):
    srv = load_server
    senders = [Sender(srv, i) for i in range(SENDERS)]
    for s in senders:
        s.start()
    # kill mid-traffic: once a third of the messages are acknowledged
    deadline = time.monotonic() + 30
    while sum(s.acked for s in senders) < SENDERS * PER_SENDER // 3:
        assert time.monotonic() < deadline, [s.acked for s in senders]
        assert all(s.is_alive() or s.error is None for s in senders), [s.error for s in senders]
        time.sleep(0.01)
    srv.proc.send_signal(signal.SIGKILL)
    assert srv.wait_exit(10) == -signal.SIGKILL
    srv._logf.close()
    for s in senders:
        s.join(15)
        s.c.close()
    acked = [s.acked for s in senders]
    assert any(s.error is not None for s in senders), 'the kill came after all the traffic'

    have = stored(srv)
    assert all(n == 1 for n in have.values()), [b for b, n in have.items() if n > 1][:10]
    for s in senders:
        lost = [b for b in s.bodies[:s.acked] if b not in have]
        assert not lost, 'sender %d: %d acknowledged messages lost, e.g. %s' % (s.i, len(lost), lost[:5])

    # after a restart the recipients get what was stored, in order
    srv.start()
    for j in range(RECIPIENTS):
        user = 'rcpt0_%d' % j
        want = [b for b in senders[0].bodies if b in have and senders[0].bodies.index(b) % RECIPIENTS == j]
        c = RawClient(srv.port, timeout=20)
        c.login(user, 'rcpt-pw', resource='r', presence=False)
        c.send('<presence/>')
        got = []
        while len(got) < len(want):
            el = c.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message'), timeout=20,
                            what='message %d of %d for %s' % (len(got) + 1, len(want), user))
            got.append(el.findtext(q(NS_CLIENT, 'body')))
        assert got == want
        c.close()
    print('acknowledged per sender: %s; stored %d' % (acked, len(have)))
