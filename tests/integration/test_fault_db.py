"""The database server of a host killed (SIGKILL, then started again) or
frozen (SIGSTOP for longer than the storage timeout, then SIGCONT) or hung
(SIGSTOP for longer than the drivers' read timeout) in the middle of
message traffic, with PostgreSQL (run-pgsql.sh), MariaDB
(run-mysql.sh) or PostgreSQL through unixODBC and psqlODBC (run-odbc.sh);
skipped on the other storage kinds.

A sender with stream management (XEP-0198) writes messages to an offline
user and to an online one without pause, asking for acks as it goes.
Afterwards: every message the server acknowledged is either in the store
exactly once or came back to its sender as an error (never both, never
neither); the online user got every message meant for it; the sender's
session and fresh logins work; the recipient gets what was stored; the log
says what happened (the modules' lines about failed messages at most once
a second, with the count of those left out); and parleyd was never
restarted.  A hung server also has the workers give up on it (the read
timeout: storage timeout rounded up plus 5 s) while it is still stopped,
and the host on another store keeps working meanwhile.

The fault tests (issue: fault injection), where each fault is tested:

  database (PostgreSQL, MariaDB)
    stopped cleanly, back later    test_db_outage.py (pgsql only: it skips the
                                   odbc run), test_pubsub_outage.py
    killed mid-traffic, restarted  test_fault_db.py [kill]  (pgsql, mysql, odbc)
    frozen (SIGSTOP) mid-traffic   test_fault_db.py [freeze] (pgsql, mysql, odbc)
    hung past the read timeout     test_fault_db.py [hang] (pgsql, mysql; psqlODBC
                                   has no read timeout)
  slapd
    hung (SIGSTOP)                 test_ldap.py test_hung_server_times_out_...
    both servers killed, then      test_ldap.py test_outage_is_temporary_...
      logins; failover             test_ldap.py test_failover_to_second_server
    killed during logins           test_fault_ldap.py
  external auth program
    hangs, dies after N requests,  test_extauth.py
      writes garbage, cannot
      start, crashes at start
    crashes on every request       test_fault_extauth.py
  embedded store (SQLite)
    file system full               test_fault_disk.py (a tmpfs; needs root)
  parleyd SIGKILL
    after offline messages were    test_offline.py test_stored_messages_...,
      stored / answered            test_an_answer_means_every_earlier_...
    after SM acks, quiet           test_sm.py test_acked_messages_survive_...
    under message load             test_fault_kill.py
    sessions and order             test_in_order.py, test_sm.py (resumption)
  file descriptors (RLIMIT_NOFILE) test_fault_fd.py
  long runs (leaks, growth)        tests/soak/soak.sh (not in make check)
  memory errors                    scripts/valgrind.sh (not in make check)
"""
import os
import re
import signal
import subprocess
import threading
import time

import pytest

import parleytest
from parleytest import HOST, NS_CLIENT, OTHER, RawClient, q, stanza_error, tostr
from test_sm import SMClient

KIND = parleytest.storage_kind()
pytestmark = pytest.mark.skipif(KIND not in ('pgsql', 'mysql', 'odbc'),
                                reason='needs PARLEY_TEST_STORAGE=pgsql, mysql or odbc '
                                       '(run-pgsql.sh, run-mysql.sh, run-odbc.sh)')
# the server behind the store: odbc is PostgreSQL through psqlODBC
SERVER = 'mysql' if KIND == 'mysql' else 'pgsql'
ROUND = 5
# the storage timeout of the test hosts (5 s), rounded up, plus 5 s
READ_TIMEOUT = 10
# what the log says when a worker gives up on a server that does not
# answer (Connector/C's read timeout reports a lost connection, 2013)
GAVE_UP = 'read timeout' if SERVER == 'pgsql' else 'Lost connection to server during query'


class DatabaseServer:
    """The throw-away database server of this run (tests/db/pgsql.sh or
    tests/db/mariadb.sh started it; run.sh put its settings in the
    environment)."""

    def __init__(self):
        if SERVER == 'pgsql':
            self.dir = os.environ['PARLEY_TEST_PGSQL_DIR']
            self.script = parleytest.srcdir() / 'tests' / 'db' / 'pgsql.sh'
        else:
            self.dir = os.environ['PARLEY_TEST_MYSQL_DIR']
            self.script = parleytest.srcdir() / 'tests' / 'db' / 'mariadb.sh'

    def pids(self):
        """The server's processes (PostgreSQL: the postmaster and its children)."""
        if SERVER == 'pgsql':
            with open(os.path.join(self.dir, 'data', 'postmaster.pid')) as f:
                main = int(f.readline())
        else:
            with open(os.path.join(self.dir, 'server.pid')) as f:
                main = int(f.read())
        r = subprocess.run(['pgrep', '-P', str(main)], capture_output=True, text=True, timeout=10)
        return [main] + [int(p) for p in r.stdout.split()]

    def signal(self, sig):
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        pids = self.pids()
        self.signal(signal.SIGKILL)
        deadline = time.monotonic() + 20
        for pid in pids:
            while os.path.exists('/proc/%d' % pid) and _state(pid) != 'Z':
                assert time.monotonic() < deadline, 'database process %d still there' % pid
                time.sleep(0.05)
        # the zombies' parent (run.sh's shell, or init) reaps them

    def restart(self):
        subprocess.run(['bash', str(self.script), 'resume', self.dir], check=True, timeout=120,
                       stdin=subprocess.DEVNULL)


def _state(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0]
    except FileNotFoundError:
        return 'gone'


class Traffic(threading.Thread):
    """Rounds of ROUND messages to an offline user plus one to an online
    one, each round closed by <r/>; records what was sent, the server's h
    and the bounces."""

    def __init__(self, srv, online_jid):
        super().__init__(daemon=True)
        self.srv = srv
        self.online_jid = online_jid
        self.c = SMClient(srv, timeout=40)
        self.c.sm_login('alice', resource='traffic', presence=False)
        self.sent = []          # (to, body), in order: the stanzas h counts
        self.h = 0
        self.rounds = []        # (start, end, bounces so far)
        self.stop = threading.Event()
        self.error = None

    def bounced(self):
        return [e for e in list(self.c.received) if e.tag == q(NS_CLIENT, 'message')
                and e.get('type') == 'error']

    def run(self):
        n = 0
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                for _ in range(ROUND):
                    body = 'db-fault-%05d' % n
                    n += 1
                    self.sent.append(('bob', body))
                    self.c.send("<message to='bob@%s' type='chat'><body>%s</body></message>"
                                % (HOST, body))
                body = 'db-live-%05d' % n
                n += 1
                self.sent.append(('carol', body))
                self.c.send("<message to='%s' type='chat'><body>%s</body></message>"
                            % (self.online_jid, body))
                self.h = self.c.request()
                self.rounds.append((t0, time.monotonic(), len(self.bounced())))
                time.sleep(0.02)
        except Exception as e:
            self.error = e

    def recovered_after(self, t):
        """Two whole rounds begun after t without a new bounce."""
        later = [r for r in self.rounds if r[0] > t]
        return len(later) >= 3 and later[-1][2] == later[-3][2]


@pytest.fixture
def db_server(tmp_path_factory):
    # bob's offline messages are more than the default quota of 100 allows
    srv = parleytest.Parleyd(tmp_path_factory.mktemp('parley-dbfault'), loglevel='info')
    text = srv.config.read_text()
    srv.config.write_text(text.replace('  register: { open: false }\n',
                                       '  register: { open: false }\n'
                                       '  offline: { max_per_user: 100000 }\n', 1))
    durable(srv)
    srv.start_with_users()
    yield srv
    srv.finish()
    if SERVER == 'mysql':
        parleytest.my_sql('SET GLOBAL innodb_flush_log_at_trx_commit = 0')


def durable(srv):
    """A commit must survive a kill of the database server: the test
    servers trade that away for speed (tests/db/*.sh), this test wants it
    back (durable against a killed process, not against a power cut)."""
    if SERVER == 'pgsql':
        parleytest.pg_psql(os.environ['PARLEY_TEST_PGSQL_SUPER_DSN'],
                           'ALTER DATABASE %s SET synchronous_commit = on' % srv.pg_db)
    else:
        parleytest.my_sql('SET GLOBAL innodb_flush_log_at_trx_commit = 2')


def other_host_works(srv):
    """A user of the host on another store (SQLite) logs in and stores and
    reads back private XML."""
    d = RawClient(srv.port, timeout=10, host=OTHER)
    d.login('dave', srv.password('dave', OTHER), resource='elsewhere', presence=False)
    el = d.iq('set', "<query xmlns='jabber:iq:private'><x xmlns='parley:test:hang'>up</x></query>")
    assert el.get('type') == 'result', tostr(el)
    el = d.iq('get', "<query xmlns='jabber:iq:private'><x xmlns='parley:test:hang'/></query>")
    assert el.get('type') == 'result' and 'up' in tostr(el), tostr(el)
    d.close()


# hang: the login and connection timeouts are set through ODBC too, but
# psqlODBC applies neither to a read: its worker stays blocked until SIGCONT
@pytest.mark.parametrize('fault', ['kill', 'freeze', pytest.param('hang', marks=pytest.mark.skipif(
    KIND == 'odbc', reason='psqlODBC has no read timeout (doc/database.md)'))])
def test_database_fault_mid_traffic(db_server, fault):
    srv = db_server
    db = DatabaseServer()
    carol = RawClient(srv.port, timeout=20)
    carol.login('carol', srv.password('carol'), resource='online')
    traffic = Traffic(srv, 'carol@%s/online' % HOST)
    traffic.start()
    try:
        deadline = time.monotonic() + 20
        while len(traffic.rounds) < 3:
            assert traffic.error is None and time.monotonic() < deadline, traffic.error
            time.sleep(0.05)
        if fault == 'kill':
            db.kill()
            time.sleep(3)
            db.restart()
            durable(srv)
        elif fault == 'freeze':
            db.signal(signal.SIGSTOP)
            try:
                time.sleep(8)       # longer than the storage timeout (5 s)
            finally:
                db.signal(signal.SIGCONT)
        else:
            db.signal(signal.SIGSTOP)
            try:
                # the workers give up on the stopped server: the read
                # timeout, then a connection attempt that times out too
                t0 = time.monotonic()
                while GAVE_UP not in srv.log():
                    assert time.monotonic() < t0 + READ_TIMEOUT + 4, \
                        'no read timeout while the server is stopped:\n' + srv.log()[-4000:]
                    time.sleep(0.2)
                other_host_works(srv)
                time.sleep(max(0, t0 + READ_TIMEOUT + 6 - time.monotonic()))
            finally:
                db.signal(signal.SIGCONT)
        back = time.monotonic()
        deadline = back + 45
        while not traffic.recovered_after(back):
            assert traffic.error is None, traffic.error
            assert time.monotonic() < deadline, 'no recovery:\n' + srv.log()[-4000:]
            time.sleep(0.1)
    finally:
        traffic.stop.set()
        traffic.join(60)
    assert traffic.error is None, traffic.error
    assert not traffic.is_alive()
    a = traffic.c
    h = traffic.h
    assert h == len(traffic.sent), (h, len(traffic.sent))

    bounces = {}
    for e in traffic.bounced():
        body = e.findtext(q(NS_CLIENT, 'body'))
        assert stanza_error(e) == 'resource-constraint', tostr(e)
        assert e.find(q(NS_CLIENT, 'error')).get('type') == 'wait', tostr(e)
        bounces[body] = bounces.get(body, 0) + 1
    stored = {}
    for (stanza,) in srv.db_query("SELECT stanza FROM offline_messages WHERE username = 'bob'"):
        body = stanza.split('<body>', 1)[1].split('</body>', 1)[0]
        stored[body] = stored.get(body, 0) + 1
    to_bob = [b for who, b in traffic.sent if who == 'bob']
    lost = [b for b in to_bob if b not in stored and b not in bounces]
    both = [b for b in to_bob if b in stored and b in bounces]
    twice = [b for b, n in list(stored.items()) + list(bounces.items()) if n > 1]
    assert not lost, '%d acknowledged messages neither stored nor bounced: %s' % (len(lost), lost[:5])
    assert not both, '%d messages bounced and stored too: %s' % (len(both), both[:5])
    assert not twice, twice[:5]
    # A freeze that catches jobs waiting for a worker expires them (they
    # bounce); one that catches the round in flight entirely inside the
    # workers (a group commit) holds its acknowledgement until the server
    # runs again, and nothing bounces.  Either shows the fault reached
    # parleyd; the checks of the bounce lines below need the first.
    held = [r for r in traffic.rounds if r[1] - r[0] > 5]
    if fault == 'freeze' and not bounces:
        assert held, 'nothing bounced and no acknowledgement held: the freeze did not reach parleyd'
        print('freeze: no job was waiting for a worker; a round waited %.1f s'
              % max(r[1] - r[0] for r in held))
    else:
        assert bounces, 'nothing bounced: the fault did not reach parleyd'

    # the online user got every message meant for it, once
    live = [b for who, b in traffic.sent if who == 'carol']
    got = [e.findtext(q(NS_CLIENT, 'body')) for e in carol.received
           if e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'chat']
    while len(got) < len(live) and carol.next(5) is not None:
        got = [e.findtext(q(NS_CLIENT, 'body')) for e in carol.received
               if e.tag == q(NS_CLIENT, 'message') and e.get('type') == 'chat']
    assert got == live, 'online: %d of %d' % (len(got), len(live))

    # no stuck session: the sender still works, a fresh login gets the
    # stored messages in order and can send
    el = a.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=HOST)
    assert el.get('type') == 'result', tostr(el)
    want = [b for b in to_bob if b in stored]
    b = RawClient(srv.port, timeout=30)
    b.login('bob', srv.password('bob'), resource='back', presence=False)
    b.send('<presence/>')
    got = []
    while len(got) < len(want):
        el = b.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message'), timeout=30,
                        what='offline message %d of %d' % (len(got) + 1, len(want)))
        got.append(el.findtext(q(NS_CLIENT, 'body')))
    assert got == want
    b.send("<message to='carol@%s/online' type='chat'><body>bob-is-back</body></message>" % HOST)
    carol.wait_message('bob-is-back')
    for x in (a, b, carol):
        x.close()

    log = srv.log()
    if fault == 'kill':
        assert 'lost its connection' in log or 'cannot connect' in log, log[-4000:]
    elif fault == 'hang':
        assert 'lost its connection (%s' % GAVE_UP in log, log[-4000:]
    elif bounces:
        assert 'no worker took the job in time' in log, log[-4000:]
    # a stalled store expires every queued job at once: one line a second
    # per store
    expired = {}
    for ln in log.splitlines():
        m = EXPIRED.match(ln)
        if m is not None:
            t = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
            expired.setdefault(m.group(4), []).append((t, ln))
    if fault == 'freeze' and bounces:
        assert expired, 'no expiry line matched'
    for got in expired.values():
        for (t0, l0), (t1, l1) in zip(got, got[1:]):
            assert apart(t0, t1) > 0.9, 'two lines %.3f s apart:\n%s\n%s' % (apart(t0, t1), l0, l1)
    if bounces:
        assert 'bob@%s (storage temporary failure); bouncing a message' % HOST in log, log[-4000:]
    # each line names whose job failed once (an archive owner is an
    # address already), and the driver's message stays on its line: the
    # log writes a control character as '?', and no message of a lost
    # connection has a '?' of its own
    doubled = [ln for ln in log.splitlines() if '@%s@%s' % (HOST, HOST) in ln]
    assert not doubled, doubled[:3]
    for ln in log.splitlines():
        if 'lost its connection (' in ln:
            msg = ln.split('lost its connection (', 1)[1].rsplit(')', 1)[0]
            assert '?' not in msg, ln
    check_failure_lines(srv, len(bounces))
    assert srv.running()
    print('%s: %d stanzas acknowledged, %d bounced, %d stored' % (fault, h, len(bounces), len(stored)))


LINE = re.compile(r'^\d{4}-\d\d-\d\d (\d\d):(\d\d):(\d\d\.\d+) \[\w+\] (\w+): (.*)$')
# "storage STORE: OP WHO: no worker took the job in time", per STORE
EXPIRED = re.compile(r'^\d{4}-\d\d-\d\d (\d\d):(\d\d):(\d\d\.\d+) \[\w+\] storage (.+): \S+ \S+: '
                     r'no worker took the job in time')


def check_failure_lines(srv, nbounced):
    """An outage fails every message, but mod_offline and mod_mam say so
    at most once a second each, and count the lines they left out: on the
    next line, or in a summary a second later.  The offline lines account
    for every bounce."""
    deadline = time.monotonic() + 5     # the last summary may be due still
    while True:
        lines, said = failure_lines(srv.log())
        if said == nbounced or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for module, got in lines.items():
        for (t0, a), (t1, b) in zip(got, got[1:]):
            # the loop's clock and the log's differ by a few milliseconds
            assert apart(t0, t1) > 0.9, '%s: two lines %.3f s apart:\n%s\n%s' % (
                module, apart(t0, t1), a, b)
    assert said == nbounced, (said, nbounced, [text for _, text in lines['offline']])
    if nbounced > 1:
        assert any('not stored because of a storage failure' in text
                   for _, text in lines['offline']), lines['offline']


def apart(t0, t1):
    """Seconds from t0 to t1, two times of day of log lines written in
    that order: a run that passes midnight wraps around."""
    d = t1 - t0
    return d + 86400 if d < -43200 else d


def failure_lines(log):
    """The lines of mod_offline and mod_mam about messages a storage failure
    hit, per module, as (seconds of the day, text); and how many bounces the
    offline ones account for."""
    lines = {'offline': [], 'mam': []}
    for ln in log.splitlines():
        m = LINE.match(ln)
        if m is None or m.group(4) not in lines:
            continue
        text = m.group(5)
        if m.group(4) == 'offline' and ('bouncing a message' in text
                                        or 'not stored because of a storage failure' in text):
            pass
        elif m.group(4) == 'mam' and (text.startswith('cannot archive a message of')
                                      or '; archiving a message' in text
                                      or ' while archiving messages ' in text):
            pass
        else:
            continue
        t = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        lines[m.group(4)].append((t, text))
    said = 0
    for _, text in lines['offline']:
        m = re.search(r'\(and (\d+) more since the last line\)$', text)
        if m is not None:
            said += 1 + int(m.group(1))
            continue
        m = re.match(r'(\d+) more messages? not stored because of a storage failure', text)
        said += int(m.group(1)) if m is not None else 1
    return lines, said
