"""The connection to the database lost while a COMMIT waits for its answer.

parleyd reaches the database through a relay in this test that reads the
client's side of the wire protocol (PostgreSQL's, for the pgsql driver
and for the odbc driver through psqlODBC; MySQL's for the mysql driver).
Armed, it cuts parleyd's connection at the COMMIT of the next transaction
that stores an offline message: either after passing the COMMIT on (the
server commits; its answer never reaches parleyd) or instead of passing
it on (the server rolls back when it sees its client gone).  Either way
the message must be stored exactly once and not bounced.  Mode 'silent'
passes the COMMIT on and holds the server's answers back, as a server
frozen right after it committed would, until parleyd's read timeout
gives up on the connection.  With a blackout after the cut (new
connections closed at once, as a server that cannot be reached), the
COMMIT is in doubt: the job waits for the database and its next try
finds its row.  The pgsql
driver asks the server on a new connection what became of the
transaction (txid_status) and the log says what it found; on every
store the job that runs again finds its own row by the message's token
(the odbc and mysql drivers cannot ask).  An archive insert, an
account's insert and the inserts of shared roster groups are cut once
committed: the job that runs again must take the row it finds for its
own.  The store replaces the lost connection for the next job.  Needs
PARLEY_TEST_STORAGE=pgsql, mysql or odbc (run-pgsql.sh, run-mysql.sh,
run-odbc.sh)."""
import os
import re
import socket
import struct
import threading
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, RawClient, q, tostr, unique

STORE = parleytest.storage_kind()
pytestmark = [
    pytest.mark.skipif(STORE not in ('pgsql', 'mysql', 'odbc'),
                       reason='needs PARLEY_TEST_STORAGE=pgsql, mysql or odbc'),
    pytest.mark.skipif(STORE in ('pgsql', 'odbc') and not re.search(
                       r'\bhost=(127\.0\.0\.1|localhost)\b', os.environ.get('PARLEY_TEST_PGSQL_DSN', '')),
                       reason='the relay reaches PostgreSQL on 127.0.0.1 only'),
]

OFFLINE_INSERT = b'INSERT INTO offline_messages'
# the inserts that these modes cut after, once committed
COMMITTED_INSERTS = {'archive': b'INSERT INTO archive ', 'account': b'INSERT INTO users ',
                     'group': b'INSERT INTO sr_groups ', 'member': b'INSERT INTO sr_members '}


class Relay(threading.Thread):
    """A TCP relay to the test's database server; upstream() (one per
    protocol) reads what the client sends and decides where to cut.  Armed
    with a mode, it cuts one connection, at the COMMIT of a transaction
    that ran the offline insert: mode 'after' passes the COMMIT to the
    server first, mode 'before' does not.  The modes of COMMITTED_INSERTS
    cut it once their insert was committed: passed on, right after the
    insert when it ran as a statement of its own (committed by the server
    as it runs), else after the COMMIT of its transaction (archive jobs
    stored as one batch, a shared roster group with its lists).  Mode
    'in-tx' cuts it at the first message after the next BEGIN, not
    passed on (a statement in a transaction on a lost connection).  Mode
    'silent' passes the COMMIT on, drops the server's answers and keeps
    the connection open until parleyd closes it.  A blackout (arm's) has
    the relay close every new connection at once from the cut until that
    many seconds after the cut connection closed."""

    def __init__(self, db_port):
        super().__init__(daemon=True)
        self.db_port = db_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.mode = None        # armed: 'after', 'before', 'silent', 'in-tx' or a COMMITTED_INSERTS key
        self.cuts = 0
        self.blackout = 0       # seconds of refused connections after a cut
        self.refusing = False   # from a cut with a blackout until its connection closed
        self.refuse_until = 0   # then until this (monotonic)
        self.refused = 0        # connections closed at once

    def arm(self, mode, blackout=0):
        with self.lock:
            self.mode = mode
            self.blackout = blackout

    def take(self, mode):
        """mode when the relay is armed for it (and disarmed now), else None."""
        with self.lock:
            if self.mode != mode:
                return None
            self.mode = None
            return mode

    def run(self):
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                refuse = self.refusing or time.monotonic() < self.refuse_until
                self.refused += refuse
            if refuse:
                _close(client)
                continue
            server = socket.create_connection(('127.0.0.1', self.db_port))
            state = {'drop': False, 'mute': False, 'client': client}
            threading.Thread(target=self.downstream, args=(server, client, state), daemon=True).start()
            threading.Thread(target=self.upstream_guarded, args=(client, server, state), daemon=True).start()

    def downstream(self, server, client, state):
        buf = b''
        try:
            while True:
                data = server.recv(65536)
                if not data or state['drop']:
                    break
                if state['mute']:
                    continue
                buf = self.seen_from_server(state, buf + data)
                client.sendall(data)
        except OSError:
            pass
        for s in (client, server):
            _close(s)

    def seen_from_server(self, state, buf):
        """What the server said, for a protocol that needs it; returns
        what is left of an incomplete message."""
        return b''

    def cut(self, state, server, msg, mode):
        """Cut the connection at msg: passed on first unless mode is 'before';
        'silent': passed on, and the connection kept until parleyd closes it."""
        with self.lock:
            self.cuts += 1
            self.refusing = self.blackout > 0
        try:
            if mode == 'silent':
                state['mute'] = True
                server.sendall(msg)
                while state['client'].recv(65536):
                    pass
            else:
                state['drop'] = True
                if mode != 'before':
                    server.sendall(msg)
                    time.sleep(0.5)     # the server runs and commits it meanwhile
        finally:
            with self.lock:
                if self.refusing:
                    self.refusing = False
                    self.refuse_until = time.monotonic() + self.blackout

    def upstream_guarded(self, client, server, state):
        try:
            self.upstream(client, server, state)
        except OSError:
            pass
        finally:
            for s in (client, server):
                _close(s)


class Tx:
    """What a connection's current transaction did, as a relay saw it;
    take is the relay's (the armed mode, once)."""

    def __init__(self, take):
        self.take = take
        self.open = False       # between BEGIN and COMMIT or ROLLBACK
        self.insert = False     # it ran the offline insert
        self.ran_modes = set()  # the COMMITTED_INSERTS it ran, not committed yet
        self.cut_next = False   # mode 'in-tx' took this transaction: cut at its next message

    def ran(self, text):
        """A statement ran (its text): the mode to cut after it, if it
        was one of COMMITTED_INSERTS outside a transaction (committed by
        the server as it runs), else None."""
        self.insert = self.insert or OFFLINE_INSERT in text
        for mode, needle in COMMITTED_INSERTS.items():
            if needle in text:
                if not self.open:
                    return self.take(mode)
                self.ran_modes.add(mode)
        return None

    def query(self, query):
        """A simple query (upper case): the mode to cut at it when it is
        the COMMIT of a transaction that ran the offline insert or one of
        COMMITTED_INSERTS, else None."""
        mode = None
        if query.startswith(b'BEGIN') or query.startswith(b'START TRANSACTION'):
            self.open, self.insert, self.ran_modes = True, False, set()
            self.cut_next = bool(self.take('in-tx'))
        elif query.startswith(b'COMMIT') or (query.startswith(b'ROLLBACK')
                                             and not query.startswith(b'ROLLBACK TO')):
            if query.startswith(b'COMMIT') and self.insert:
                mode = self.take('after') or self.take('before') or self.take('silent')
            elif query.startswith(b'COMMIT'):
                for m in self.ran_modes:
                    mode = mode or self.take(m)
            self.open, self.insert, self.ran_modes = False, False, set()
        return mode


class PgRelay(Relay):
    """PostgreSQL's frontend messages of each connection: Parse names a
    statement and its text, Bind runs a named one, Query is a simple
    query, Sync ends an extended-protocol run."""

    def upstream(self, client, server, state):
        buf = b''
        startup = True
        names = {}              # prepared statement name -> its text
        tx = Tx(self.take)
        ran_mode = None         # a committed insert's cut mode, at the next Sync
        while True:
            data = client.recv(65536)
            if not data:
                return
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
                if tx.cut_next:
                    return self.cut(state, server, msg, 'before')
                if kind == b'P':
                    name, rest = body.split(b'\0', 1)
                    names[name] = rest.split(b'\0', 1)[0]
                elif kind == b'B':
                    ran_mode = tx.ran(names.get(body.split(b'\0', 2)[1], b'')) or ran_mode
                elif kind == b'S' and ran_mode:
                    return self.cut(state, server, msg, ran_mode)
                elif kind == b'Q':
                    mode = tx.query(body.rstrip(b'\0').strip().upper())
                    if mode:
                        return self.cut(state, server, msg, mode)
                server.sendall(msg)


class MyRelay(Relay):
    """MySQL's client/server protocol, unencrypted and uncompressed: each
    packet is a 3-byte little-endian length, a sequence number and the
    payload.  A command starts a new sequence (0): COM_QUERY (text),
    COM_STMT_PREPARE (text; the server's first answer packet carries the
    statement id) and COM_STMT_EXECUTE (statement id).  The connection's
    handshake packets have sequence numbers of 1 and up."""

    COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE = 0x03, 0x16, 0x17

    @staticmethod
    def packets(buf):
        """The complete packets at the start of buf, and the rest."""
        out = []
        while len(buf) >= 4:
            n = int.from_bytes(buf[:3], 'little')
            if len(buf) < 4 + n:
                break
            out.append(buf[:4 + n])
            buf = buf[4 + n:]
        return out, buf

    def seen_from_server(self, state, buf):
        pkts, rest = self.packets(buf)
        for pkt in pkts:
            # the first answer to a prepare: 0x00, then the statement id
            if state.get('preparing') is not None and pkt[3] == 1:
                if pkt[4] == 0 and len(pkt) >= 9:
                    state.setdefault('names', {})[pkt[5:9]] = state['preparing']
                state['preparing'] = None
        return rest

    def upstream(self, client, server, state):
        buf = b''
        tx = Tx(self.take)
        while True:
            data = client.recv(65536)
            if not data:
                return
            pkts, buf = self.packets(buf + data)
            for pkt in pkts:
                if tx.cut_next and pkt[3] == 0:
                    return self.cut(state, server, pkt, 'before')
                if pkt[3] == 0 and len(pkt) > 4:
                    cmd, body = pkt[4], pkt[5:]
                    if cmd == self.COM_STMT_PREPARE:
                        state['preparing'] = body
                    elif cmd == self.COM_STMT_EXECUTE:
                        mode = tx.ran(state.get('names', {}).get(body[:4], b''))
                        if mode:
                            return self.cut(state, server, pkt, mode)
                    elif cmd == self.COM_QUERY:
                        mode = tx.query(body.strip().upper())
                        if mode:
                            return self.cut(state, server, pkt, mode)
                server.sendall(pkt)


def _close(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


class RelayedParleyd(parleytest.Parleyd):
    """parleyd whose database connections go through the relay, in plain
    text (the relay reads the protocol)."""

    def __init__(self, d, relay_port):
        self.relay_port = relay_port
        super().__init__(d)

    def pg_dsn(self):
        dsn = re.sub(r'\bport=\d+', 'port=%d' % self.relay_port, super().pg_dsn())
        dsn = re.sub(r'\bsslmode=\S+', '', dsn)
        return dsn + ' sslmode=disable gssencmode=disable'

    def host_storage_yaml(self):
        line = super().host_storage_yaml()
        if self.storage == 'mysql':
            line = re.sub(r'\bport=\d+', 'port=%d' % self.relay_port, line)
            assert 'sslmode=disable' in line, line
        elif self.storage == 'odbc':
            line = re.sub(r'\bPort=\d+', 'Port=%d' % self.relay_port, line)
            assert 'SSLmode=disable' in line, line
        return line


def relayed_server(tmp_path, timeout=None):
    """A relay and parleyd behind it, started; timeout: the storage
    timeout of its host instead of the tests' 5 s."""
    if STORE == 'mysql':
        relay = MyRelay(int(os.environ['PARLEY_TEST_MYSQL_PORT']))
    else:
        relay = PgRelay(int(os.environ['PARLEY_TEST_PGSQL_PORT']))
    relay.start()
    srv = RelayedParleyd(tmp_path / 'parley', relay.port)
    srv.enable_module('shared_roster')   # for the shared roster group test
    if timeout is not None:
        text = srv.config.read_text()
        assert text.count('timeout: 5s }') == 1, text
        srv.config.write_text(text.replace('timeout: 5s }', 'timeout: %s }' % timeout))
    srv.start_with_users()
    return srv, relay


@pytest.fixture
def relayed(tmp_path):
    srv, relay = relayed_server(tmp_path)
    yield srv, relay
    srv.finish()
    relay.lsock.close()


def done_before(log, op, done, who=''):
    """The log line of a job run again that found its own write
    (sql_q_done_before): op's, about who, saying done ('stored' ...)."""
    return re.search(r'storage %s:[^\n]*: %s [^\n]*%s[^\n]*: %s by an earlier try \(its answer was lost\), '
                     r'not %s again' % (STORE, op, who, done, done), log)


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
    if STORE == 'pgsql':
        assert re.search(r'storage pgsql:[^\n]*: lost the connection during COMMIT of transaction \d+; '
                         r'the server says it was %s' % outcome, log), log[-3000:]
    else:
        # no way to ask: the job runs again, and finds its row by its token
        # when the server had committed it
        assert 'lost its connection' in log, log[-3000:]
        found = done_before(log, 'offline_store', 'stored', 'bob')
        assert bool(found) == (mode == 'after'), log[-3000:]

    # the next message goes through a new connection
    after = unique('next-')
    rows, errors = send_and_count(srv, alice, after)
    assert rows == 1 and errors == [], (rows, [tostr(e) for e in errors])
    if mode == 'after' and STORE == 'pgsql':
        assert 'replacing the connection that broke under an earlier job' in srv.log(), srv.log()[-3000:]
    alice.close()


# seconds the database cannot be reached after a cut, in the tests of a
# COMMIT in doubt
BLACKOUT = 3


def send_and_ping(alice, body):
    """Send body to bob (offline), then a ping: the sender's answers wait
    for the message's store (mod_offline holds them), so the ping's
    answer comes once the store is done, after the bounce if it failed.
    The bounces of body."""
    alice.send("<message to='bob@%s' type='chat' id='%s'><body>%s</body></message>"
               % (HOST, unique('m'), body))
    el = alice.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST, timeout=90)
    assert el.get('type') == 'result', tostr(el)
    return [e for e in alice.received if e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'error'
            and e.findtext(q(NS_CLIENT, 'body')) == body]


@pytest.mark.parametrize('mode', ['after', pytest.param('silent', marks=pytest.mark.skipif(
    STORE == 'odbc', reason='psqlODBC has no read timeout (doc/database.md)'))])
def test_commit_in_doubt_waits_for_the_database(relayed, mode):
    """The answer to the COMMIT of an offline message is lost (the
    connection cut after it; 'silent': the server's answers held back
    until the read timeout, as from a server frozen right after it
    committed), and the database cannot be reached for a few seconds
    after: the job is in doubt.  Its worker keeps it, connects again as
    the outage's backoff allows, and the next try finds the message's
    token: stored once and not bounced, never bounced and stored too.
    The sender's answers wait meanwhile."""
    srv, cutter = relayed
    alice = RawClient(srv.port, timeout=20)
    alice.login('alice', srv.password('alice'), resource='doubt')
    body = unique('doubt-%s-' % mode)
    cutter.arm(mode, blackout=BLACKOUT)
    bounced = send_and_ping(alice, body)
    assert cutter.cuts == 1, 'the relay did not cut a COMMIT'
    assert cutter.refused > 0, 'parleyd did not try to connect while the database was out of reach'
    rows = offline_rows(srv, body)
    log = srv.log()
    assert not (rows and bounced), 'the message was bounced and stored too\n' + log[-3000:]
    assert rows == 1 and not bounced, (rows, [tostr(e) for e in bounced], log[-3000:])
    assert done_before(log, 'offline_store', 'stored', 'bob'), log[-3000:]
    assert re.search(r'offline_store bob@%s: out of doubt: the database answered \d+ s after the '
                     r'answer to its COMMIT was lost' % re.escape(HOST), log), log[-3000:]
    if mode == 'silent':
        assert 'read timeout' in log or 'Lost connection to server during query' in log, log[-3000:]

    # the next message goes through a new connection
    after = unique('next-')
    assert send_and_ping(alice, after) == []
    assert offline_rows(srv, after) == 1
    alice.close()


def in_doubt_line(log, why):
    """The line of a job in doubt that gave up (why: 'giving up' or 'the
    store is closing'): the seconds since its COMMIT's answer was lost, or
    None."""
    m = re.search(r'storage %s:[^\n]*: offline_store bob@%s: in doubt: %s (\d+) s after the answer '
                  r'to its COMMIT was lost, without learning whether the database applied it; it '
                  r'fails, and what it wrote may be there all the same \(an offline message both '
                  r'stored and bounced\)' % (STORE, re.escape(HOST), why), log)
    return int(m.group(1)) if m else None


def test_commit_in_doubt_gives_up_at_its_deadline(tmp_path):
    """A database still out of reach six storage timeouts (here 2 s) after
    the answer to a COMMIT was lost: the job gives up, the message bounces,
    and the log says that it is in doubt (the server had committed it: it
    is stored too)."""
    srv, cutter = relayed_server(tmp_path, timeout='2s')
    try:
        alice = RawClient(srv.port, timeout=20)
        alice.login('alice', srv.password('alice'), resource='doubt')
        body = unique('doubt-late-')
        cutter.arm('after', blackout=600)
        t0 = time.monotonic()
        bounced = send_and_ping(alice, body)
        assert cutter.cuts == 1, 'the relay did not cut a COMMIT'
        assert len(bounced) == 1, [tostr(e) for e in alice.received]
        assert time.monotonic() - t0 >= 12, 'the job gave up before its deadline'
        after = in_doubt_line(srv.log(), 'giving up')
        assert after is not None and after >= 12, srv.log()[-3000:]
        assert offline_rows(srv, body) == 1
        alice.close()
    finally:
        srv.finish()
        cutter.lsock.close()


def test_stop_while_in_doubt(relayed):
    """parleyd stopped while an offline message's job is in doubt (the
    database out of reach since its COMMIT's answer was lost) stops
    without waiting for the job's deadline: the job gives up and says
    that the message is in doubt."""
    srv, cutter = relayed
    alice = RawClient(srv.port, timeout=20)
    alice.login('alice', srv.password('alice'), resource='doubt')
    cutter.arm('after', blackout=600)
    alice.send("<message to='bob@%s' type='chat' id='%s'><body>%s</body></message>"
               % (HOST, unique('m'), unique('doubt-stop-')))
    deadline = time.monotonic() + 30
    while 'lost its connection' not in srv.log() or cutter.refused == 0:
        assert time.monotonic() < deadline, srv.log()[-3000:]
        time.sleep(0.1)
    t0 = time.monotonic()
    assert srv.stop() == 0, srv.log()[-3000:]
    assert time.monotonic() - t0 < 15, 'the stop waited for the job in doubt'
    assert in_doubt_line(srv.log(), 'the store is closing') is not None, srv.log()[-3000:]


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


def test_account_insert_answer_lost(relayed):
    """An account's insert commits on the server and its answer is lost
    with the connection: the store runs it again, finds the account
    holding this very insert's salts and keys, and answers that it was
    created, not that it exists; the new account logs in.  An account
    that another request created is still refused as existing."""
    srv, cutter = relayed
    user = unique('carol').lower()
    password = 'pw-' + unique('p')
    cutter.arm('account')
    r = srv.ctl('register', user, HOST, password)
    assert cutter.cuts == 1, 'the relay did not cut an account insert'
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr, srv.log()[-3000:])
    log = srv.log()
    assert 'lost its connection' in log or 'lost the connection' in log, log[-3000:]
    assert done_before(log, 'account_create', 'created', user), log[-3000:]
    assert srv.db_query("SELECT count(*) FROM users WHERE username = ?", (user,))[0][0] == 1
    c = RawClient(srv.port, timeout=20)
    c.login(user, password, resource='made')
    c.close()

    r = srv.ctl('register', user, HOST, 'another-password')
    assert r.returncode != 0 and 'exists' in (r.stdout + r.stderr), (r.returncode, r.stdout, r.stderr)


@pytest.mark.parametrize('mode', ['group', 'member'])
def test_shared_group_write_answer_lost(relayed, mode):
    """srg-create and srg-user-add commit on the server and their answer
    is lost: the job that runs again (mysql, odbc) finds the group (with
    this job's label and description) or the member there and counts it
    as done, so the operator is not told that what the command made
    exists; the pgsql driver asks the server instead."""
    srv, cutter = relayed
    group = unique('team')
    if mode == 'member':
        r = srv.ctl('srg-create', HOST, group, '--name', 'Team', '--description', 'the team')
        assert r.returncode == 0, r.stderr
    cutter.arm(mode)
    if mode == 'group':
        r = srv.ctl('srg-create', HOST, group, '--name', 'Team', '--description', 'the team')
    else:
        r = srv.ctl('srg-user-add', 'alice@%s' % HOST, HOST, group)
    assert cutter.cuts == 1, 'the relay did not cut the insert'
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr, srv.log()[-3000:])
    op = 'srg_create' if mode == 'group' else 'srg_member_add'
    if STORE == 'pgsql':
        # the driver asks the server, which says the COMMIT was applied
        assert re.search(r'lost the connection during COMMIT of transaction \d+; the server says it '
                         r'was committed', srv.log()), srv.log()[-3000:]
    else:
        assert done_before(srv.log(), op, 'done'), srv.log()[-3000:]
    if mode == 'group':
        rows = srv.db_query("SELECT label, description FROM sr_groups WHERE name = ?", (group,))
        assert rows == [('Team', 'the team')], rows
        # another group of the name is still refused
        r = srv.ctl('srg-create', HOST, group, '--name', 'Other')
        assert r.returncode != 0 and 'exists' in (r.stdout + r.stderr), (r.stdout, r.stderr)
    else:
        rows = srv.db_query("SELECT member FROM sr_members WHERE grp = ?", (group,))
        assert rows == [('alice@%s' % HOST,)], rows


def test_connection_lost_inside_a_transaction(relayed):
    """The connection goes between a transaction's BEGIN and its first
    statement, as when the server dies then: the job that ran that
    transaction (the next one after arming: a read of the sender's or the
    recipient's data, or the offline store) runs again on a new
    connection, whatever error the driver gives (psqlODBC says "internal
    SAVEPOINT failed" or "Error while preparing parameters" with SQLSTATE
    HY000, not a connection state); no request fails, and the message is
    stored, not bounced."""
    srv, cutter = relayed
    alice = RawClient(srv.port, timeout=20)
    alice.login('alice', srv.password('alice'), resource='in-tx')
    body = unique('in-tx-')
    cutter.arm('in-tx')
    rows, errors = send_and_count(srv, alice, body)
    assert cutter.cuts == 1, 'the relay did not cut a transaction'
    assert errors == [], ([tostr(e) for e in errors], srv.log()[-3000:])
    assert rows == 1, (rows, srv.log()[-3000:])
    log = srv.log()
    assert 'lost its connection' in log, log[-3000:]
    # the job the cut hit ran again: no request failed for good
    failed = [ln for ln in log.splitlines() if '[error] storage' in ln]
    assert not failed, failed
    alice.close()
