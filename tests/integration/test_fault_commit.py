"""PostgreSQL: the connection lost while a COMMIT waits for its answer.

parleyd reaches the database through a relay in this test that reads the
client's side of the wire protocol.  Armed, it cuts parleyd's connection
at the COMMIT of the next transaction that stores an offline message:
either after passing the COMMIT on (the server commits; its answer never
reaches parleyd) or instead of passing it on (the server rolls back when
it sees its client gone).  Either way the message must be stored exactly
once and not bounced: the driver asks the server on a new connection what
became of the transaction (txid_status) instead of guessing; the log says
what it found, and the store replaces the lost connection for the next
job.  Needs PARLEY_TEST_STORAGE=pgsql (run-pgsql.sh)."""
import os
import re
import socket
import struct
import threading
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, RawClient, free_port, q, tostr, unique

pytestmark = [
    pytest.mark.skipif(parleytest.storage_kind() != 'pgsql',
                       reason='needs PARLEY_TEST_STORAGE=pgsql (run-pgsql.sh)'),
    pytest.mark.skipif(not re.search(r'\bhost=(127\.0\.0\.1|localhost)\b',
                                     os.environ.get('PARLEY_TEST_PGSQL_DSN', '')),
                       reason='the relay reaches PostgreSQL on 127.0.0.1 only'),
]

OFFLINE_INSERT = b'INSERT INTO offline_messages'
ARCHIVE_INSERT = b'INSERT INTO archive '


class CommitCutter(threading.Thread):
    """A TCP relay to the test's PostgreSQL that follows the frontend
    messages of each connection (Parse names a statement and its text, Bind
    runs a named one, Query is a simple query) and, when armed, cuts the
    connection at the COMMIT of a transaction that bound the offline
    insert: mode 'after' passes the COMMIT to the server first, mode
    'before' does not.  Mode 'archive' cuts it after the Sync that ends an
    archive insert (a statement of its own, committed by the server as
    it runs), passed on."""

    def __init__(self, pg_port):
        super().__init__(daemon=True)
        self.pg_port = pg_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.mode = None        # armed: 'after' or 'before'
        self.cuts = 0

    def arm(self, mode):
        with self.lock:
            self.mode = mode

    def take(self, mode):
        """mode when the relay is armed for it (and disarmed now), else None."""
        with self.lock:
            if self.mode != mode:
                return None
            self.mode = None
            self.cuts += 1
            return mode

    def run(self):
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            server = socket.create_connection(('127.0.0.1', self.pg_port))
            state = {'drop': False}
            threading.Thread(target=self.downstream, args=(server, client, state), daemon=True).start()
            threading.Thread(target=self.upstream, args=(client, server, state), daemon=True).start()

    @staticmethod
    def downstream(server, client, state):
        try:
            while True:
                data = server.recv(65536)
                if not data or state['drop']:
                    break
                client.sendall(data)
        except OSError:
            pass
        for s in (client, server):
            _close(s)

    def upstream(self, client, server, state):
        buf = b''
        startup = True
        names = {}              # prepared statement name -> its text
        insert = False          # this transaction bound the offline insert
        archive = False         # an archive insert was bound since the last Sync
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    if startup:     # the startup message has no type byte
                        if len(buf) < 4:
                            break
                        n = struct.unpack('!I', buf[:4])[0]
                        if len(buf) < n:
                            break
                        msg, buf = buf[:n], buf[n:]
                        server.sendall(msg)
                        startup = False
                        continue
                    if len(buf) < 5:
                        break
                    kind, n = buf[:1], struct.unpack('!I', buf[1:5])[0]
                    if len(buf) < 1 + n:
                        break
                    msg, buf = buf[:1 + n], buf[1 + n:]
                    body = msg[5:]
                    if kind == b'P':
                        name, rest = body.split(b'\0', 1)
                        names[name] = rest.split(b'\0', 1)[0]
                    elif kind == b'B':
                        stmt = body.split(b'\0', 2)[1]
                        insert = insert or OFFLINE_INSERT in names.get(stmt, b'')
                        archive = archive or ARCHIVE_INSERT in names.get(stmt, b'')
                    elif kind == b'S':
                        cut = archive and self.take('archive')
                        archive = False
                        if cut:
                            state['drop'] = True
                            server.sendall(msg)
                            time.sleep(0.5)     # the server runs and commits it meanwhile
                            return
                    elif kind == b'Q':
                        query = body.rstrip(b'\0')
                        if query.startswith(b'BEGIN'):
                            insert = False
                        elif query == b'COMMIT' and insert:
                            mode = self.take('after') or self.take('before')
                            if mode:
                                state['drop'] = True
                                if mode == 'after':
                                    server.sendall(msg)
                                    time.sleep(0.5)     # the server commits meanwhile
                                return
                    server.sendall(msg)
        except OSError:
            pass
        finally:
            for s in (client, server):
                _close(s)


def _close(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


class RelayedParleyd(parleytest.Parleyd):
    """parleyd whose PostgreSQL connections go through the relay."""

    def __init__(self, d, relay_port):
        self.relay_port = relay_port
        super().__init__(d)

    def pg_dsn(self):
        dsn = re.sub(r'\bport=\d+', 'port=%d' % self.relay_port, super().pg_dsn())
        dsn = re.sub(r'\bsslmode=\S+', '', dsn)
        # plain text on loopback: the relay reads the protocol
        return dsn + ' sslmode=disable gssencmode=disable'


@pytest.fixture
def relayed(tmp_path):
    cutter = CommitCutter(int(os.environ['PARLEY_TEST_PGSQL_PORT']))
    cutter.start()
    srv = RelayedParleyd(tmp_path / 'parley', cutter.port)
    srv.start_with_users()
    yield srv, cutter
    srv.finish()
    cutter.lsock.close()


def offline_rows(srv, body):
    return srv.db_query("SELECT count(*) FROM offline_messages WHERE username = 'bob' "
                        "AND stanza LIKE ?", ('%' + body + '%',))[0][0]


def send_and_count(srv, alice, body):
    """Send body to bob (offline): the number of rows holding it a second
    and a half after the first appeared (a second try would show by
    then), and the errors alice got meanwhile."""
    alice.send("<message to='bob@%s' type='chat' id='%s'><body>%s</body></message>"
               % (HOST, unique('m'), body))
    got = []
    deadline = time.monotonic() + 15
    seen_at = None
    while time.monotonic() < deadline:
        try:
            el = alice.next(0.2)
        except TimeoutError:
            el = False
        if el is None:
            break
        if el is not False:
            got.append(el)
        if seen_at is None and offline_rows(srv, body) > 0:
            seen_at = time.monotonic()
        if seen_at is not None and time.monotonic() - seen_at > 1.5:
            break
    errors = [e for e in got if e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'error']
    return offline_rows(srv, body), errors


@pytest.mark.parametrize('mode,outcome', [('after', 'committed'), ('before', 'rolled back')])
def test_commit_answer_lost(relayed, mode, outcome):
    srv, cutter = relayed
    alice = RawClient(srv.port, timeout=20)
    alice.login('alice', srv.password('alice'), resource='commit')

    body = unique('cut-%s-' % mode)
    cutter.arm(mode)
    rows, errors = send_and_count(srv, alice, body)
    assert cutter.cuts == 1, 'the relay did not cut a COMMIT'
    assert rows == 1, '%d rows hold the message (expected exactly one)\n%s' % (rows, srv.log()[-3000:])
    assert errors == [], [tostr(e) for e in errors]
    log = srv.log()
    assert re.search(r'storage pgsql:[^\n]*: lost the connection during COMMIT of transaction \d+; the server '
                     r'says it was %s' % outcome, log), log[-3000:]

    # the next message goes through a new connection
    after = unique('next-')
    rows, errors = send_and_count(srv, alice, after)
    assert rows == 1 and errors == [], (rows, [tostr(e) for e in errors])
    if mode == 'after':
        assert 'replacing the connection that broke under an earlier job' in srv.log(), srv.log()[-3000:]
    alice.close()


def archive_rows(srv, body):
    return srv.db_query("SELECT owner, id FROM archive WHERE body = ? ORDER BY owner", (body,))


def test_archive_insert_answer_lost(relayed):
    """The archive's insert runs and commits on the server, and its answer
    is lost with the connection: the store runs it again, finds the key
    taken by this very message and takes that as done, so each owner's
    archive holds the message once (not again under a new id)."""
    srv, cutter = relayed
    alice = RawClient(srv.port, timeout=20)
    alice.login('alice', srv.password('alice'), resource='archive')
    bob = RawClient(srv.port, timeout=20)
    bob.login('bob', srv.password('bob'), resource='archive')

    body = unique('archived-')
    cutter.arm('archive')
    alice.send("<message to='bob@%s/archive' type='chat' id='%s'><body>%s</body></message>"
               % (HOST, unique('m'), body))
    bob.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and e.findtext(q(NS_CLIENT, 'body')) == body)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(archive_rows(srv, body)) < 2:
        time.sleep(0.1)
    time.sleep(1.5)     # a second copy would show by now
    assert cutter.cuts == 1, 'the relay did not cut an archive insert'
    rows = archive_rows(srv, body)
    owners = sorted(r[0] for r in rows)
    assert owners == ['alice@%s' % HOST, 'bob@%s' % HOST], (rows, srv.log()[-3000:])
    assert 'cannot archive' not in srv.log(), srv.log()[-3000:]
    alice.close()
    bob.close()
