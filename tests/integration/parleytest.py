"""Helpers for Parley's integration tests.

Parleyd: one parleyd in a scratch directory (self-signed ECDSA certificate,
two virtual hosts, a STARTTLS and a direct-TLS listener on free loopback
ports), plus parleyctl calls against it.

RawClient: a blocking socket client that speaks the stream by hand, for the
tests that need exact control of the bytes (bad input, stream features,
SASL failures).

Client / login(): slixmpp clients for the tests that act like real clients.

Every wait here is bounded: sockets have timeouts and every coroutine is
awaited through asyncio.wait_for.
"""
import asyncio
import base64
import contextlib
import fcntl
import os
import re
import signal
import socket
import sqlite3
import ssl
import shutil
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from pathlib import Path

HOST = 'test.local'
OTHER = 'other.local'
# a FedParleyd's domain and a raw s2s peer's (the conftest fixture fed_peer)
FED_A, FED_B = 'a.test', 'b2.test'

NS_STREAM = 'http://etherx.jabber.org/streams'
NS_CLIENT = 'jabber:client'
NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls'
NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl'
NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind'
NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session'
NS_STREAM_ERR = 'urn:ietf:params:xml:ns:xmpp-streams'
NS_STANZA_ERR = 'urn:ietf:params:xml:ns:xmpp-stanzas'
NS_REGISTER = 'jabber:iq:register'
NS_REGISTER_FEATURE = 'http://jabber.org/features/iq-register'
NS_PING = 'urn:xmpp:ping'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items'
NS_VERSION = 'jabber:iq:version'
NS_TIME = 'urn:xmpp:time'
NS_ROSTER = 'jabber:iq:roster'
NS_PRIVACY = 'jabber:iq:privacy'
NS_BLOCKING = 'urn:xmpp:blocking'

# Accounts every server fixture creates: (user, host) -> password.
USERS = {
    ('alice', HOST): 'alice-secret',
    ('bob', HOST): 'bob-secret',
    ('carol', HOST): 'carol-secret',
    ('erin', HOST): 'erin-secret',
    ('dave', OTHER): 'dave-secret',
}

# The line parleyd logs once it listens ("parleyd ready", possibly with the
# version between the two words).
READY = re.compile(r'parleyd (\S+ )?ready')

# What a sanitizer writes when it finds something.
SANITIZER_MARKS = ('runtime error', 'AddressSanitizer', 'LeakSanitizer',
                   'UndefinedBehaviorSanitizer', 'ThreadSanitizer')


def q(ns, tag):
    """ElementTree name of tag in namespace ns."""
    return '{%s}%s' % (ns, tag)


def local(tag):
    """The local part of an ElementTree name."""
    return tag.rsplit('}', 1)[-1]


def unique(prefix):
    return '%s%s' % (prefix, uuid.uuid4().hex[:10])


def _dir_from_env(name):
    v = os.environ.get(name)
    if v:
        return Path(v).resolve()
    return Path(__file__).resolve().parent.parent.parent


def builddir():
    return _dir_from_env('PARLEY_BUILDDIR')


def srcdir():
    return _dir_from_env('PARLEY_SRCDIR')


# Listening ports for the servers under test.  A port is picked before
# parleyd binds it, so whatever takes it in between makes that start fail.
# Port 0 would hand out a port from the kernel's ephemeral range, which
# every outgoing connection of every test draws from as well, and
# another test process could be handed the same port a moment later.
# So the ports come from below the ephemeral range instead, where
# nothing connecting picks a port, in slots of PORT_SLOT_SIZE: each test
# process takes the first free slot under an exclusive lock (released
# when the process ends; parallel pytest sessions and xdist workers all
# share the lock folder) and cycles through its own slot's ports,
# skipping any still bound.  The lock files are writable by every user
# (a machine's CI user and its developers share the ports).  When no slot
# is free, or the ephemeral range starts too low, or no lock file can be
# opened, it falls back to port 0.
PORT_BASE = 10000
PORT_SLOTS = 45
PORT_SLOT_SIZE = 500
PORT_LOCK_DIR = '/tmp/parley-tests-ports'
_port_slot = {'tried': False, 'lock': None, 'first': None, 'next': 0}


def _ephemeral_low():
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _open_slot_lock(k):
    """The lock file of slot k, open (made writable by all when this
    process creates it), or None."""
    path = os.path.join(PORT_LOCK_DIR, 'slot-%d.lock' % k)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        os.fchmod(fd, 0o666)
        return fd
    except FileExistsError:
        pass
    except OSError:
        return None
    # another user's file (flock needs no write access; sticky /tmp
    # folders refuse O_CREAT on files of others)
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


def port_slot():
    """This process's first port and slot size, or None (port 0 then)."""
    if not _port_slot['tried']:
        _port_slot['tried'] = True
        if _ephemeral_low() < PORT_BASE + PORT_SLOTS * PORT_SLOT_SIZE:
            return None
        try:
            os.makedirs(PORT_LOCK_DIR, exist_ok=True)
            os.chmod(PORT_LOCK_DIR, 0o1777)
        except OSError:
            pass
        for k in range(PORT_SLOTS):
            fd = _open_slot_lock(k)
            if fd is None:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            _port_slot.update(lock=fd, first=PORT_BASE + k * PORT_SLOT_SIZE, next=0)
            break
    if _port_slot['lock'] is None:
        return None
    return _port_slot['first'], PORT_SLOT_SIZE


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(('127.0.0.1', port))
            return True
        except OSError:
            return False


def free_port():
    slot = port_slot()
    if slot is not None:
        first, size = slot
        for _ in range(size):
            port = first + _port_slot['next']
            _port_slot['next'] = (_port_slot['next'] + 1) % size
            if _bindable(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def default_s2s_port():
    """Held, across test processes, by every test that listens on
    127.0.0.1 port 5269 or counts on nothing listening there (Prosody
    finds an IP-literal domain on that port; a domain without SRV records
    is dialled there): those tests take turns instead of racing for it.
    The lock file's path is fixed, so that parallel pytest sessions (one
    per store under make check) share it too.  A wait of more than 15
    minutes (a holder that hangs) fails the test."""
    with open('/tmp/parley-tests-port-5269.lock', 'a') as f:
        deadline = time.monotonic() + 900
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServerError('waited 15 minutes for port 5269 (%s)' % f.name)
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def wrapper():
    """The command parleyd runs under, from PARLEY_WRAPPER (split on
    blanks; e.g. "valgrind --error-exitcode=99"), or nothing."""
    return os.environ.get('PARLEY_WRAPPER', '').split()


def sanitizer_lines(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]


class ServerError(Exception):
    pass


def built_with_sanitizers():
    """True when parleyd was built with AddressSanitizer (./configure
    --enable-sanitizers): its memory figures then include the sanitizer's
    shadow and quarantine, so tests that bound memory scale down."""
    try:
        return b'__asan_init' in (builddir() / 'parleyd').read_bytes()
    except OSError:
        return False


def storage_kind():
    """'sqlite' (default), 'pgsql', 'mysql' or 'odbc' (PostgreSQL through
    unixODBC and psqlODBC, registered by run-odbc.sh): where the main test
    host (HOST) keeps its data, from PARLEY_TEST_STORAGE.  With pgsql (and
    odbc), the server is the one
    tests/db/pgsql.sh started (PARLEY_TEST_PGSQL_* in the environment; run.sh
    starts one when they are missing) and each Parleyd gets a database of
    its own, copied from the one made from sql/pgsql.sql; OTHER stays on
    SQLite, so every run also mixes the two."""
    kind = os.environ.get('PARLEY_TEST_STORAGE', 'sqlite') or 'sqlite'
    if kind not in ('sqlite', 'pgsql', 'mysql', 'odbc'):
        raise ServerError('PARLEY_TEST_STORAGE=%s: expected sqlite, pgsql, mysql or odbc' % kind)
    return kind


def my_quote(v):
    """v as a MySQL string literal (the test's own values only)."""
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace('\\', '\\\\').replace("'", "''") + "'"


def my_sql(sql, db=None, params=()):
    """Run SQL as the root of the MariaDB of tests/db/mariadb.sh (its
    PARLEY_TEST_MYSQL_* in the environment); '?' placeholders take params,
    quoted here.  Returns the rows as tuples of text (ints where the text
    is an integer)."""
    client = shutil.which('mariadb') or shutil.which('mysql') or '/usr/bin/mariadb'
    parts = sql.split('?')
    if len(parts) - 1 != len(params):
        raise ServerError('my_sql: %d placeholders, %d parameters' % (len(parts) - 1, len(params)))
    text = parts[0] + ''.join(my_quote(v) + rest for v, rest in zip(params, parts[1:]))
    args = [client, '--no-defaults', '--socket=' + os.environ['PARLEY_TEST_MYSQL_SOCKET'], '-uroot',
            '--password=' + os.environ['PARLEY_TEST_MYSQL_ADMIN_PASSWORD'],
            '--default-character-set=utf8mb4', '-N', '-B']
    if db:
        args.append(db)
    r = subprocess.run(args, input=text + ';\n', capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise ServerError('mariadb %s: %s' % (sql[:80], r.stderr.strip()))
    rows = []
    for line in r.stdout.splitlines():
        if line == '':
            continue
        rows.append(tuple(int(f) if re.fullmatch(r'-?[0-9]+', f) else f
                          for f in line.split('\t')))
    return rows


def _pg_dsn(base, dbname):
    """base (a key=value conninfo) with its dbname replaced."""
    parts = [p for p in base.split() if not p.startswith('dbname=')]
    return ' '.join(parts + ['dbname=' + dbname])


def pg_psql(dsn, sql, params=()):
    """Run one statement with psql on dsn; '?' placeholders take params
    (passed as psql variables, so no quoting is involved).  Returns the rows
    as tuples of text (ints where the text is an integer)."""
    psql = os.path.join(os.environ['PARLEY_TEST_PGSQL_BINDIR'], 'psql')
    args = [psql, '-X', '-q', '-A', '-t', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-d', dsn]
    n = 0
    out = []
    for ch in sql:
        if ch == '?':
            n += 1
            out.append(":'p%d'" % n)
        else:
            out.append(ch)
    for i, v in enumerate(params, 1):
        args += ['-v', 'p%d=%s' % (i, v)]
    r = subprocess.run(args, input=''.join(out) + ';\n', capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise ServerError('psql %s: %s' % (sql, r.stderr.strip()))
    rows = []
    for line in r.stdout.splitlines():
        if line == '':
            continue
        rows.append(tuple(int(f) if re.fullmatch(r'-?[0-9]+', f) else f
                          for f in line.split('\t')))
    return rows


class Parleyd:
    """One parleyd with its own directory, config, certificate and database."""

    def __init__(self, workdir, register_open=True, loglevel='debug', host_auth=None,
                 other_auth=None, global_auth='', users=None, other_modules=None,
                 extra_hosts='', muc='{}', components=None):
        """host_auth / other_auth: YAML flow maps for the auth section of
        HOST / OTHER; global_auth: extra lines (two-space indent) of the
        global auth section; users: the accounts create_users() makes
        (default USERS); muc: the options of HOST's multi-user chat
        service, conference.HOST (a YAML flow map; None: no muc module);
        components: the entries of the components section (YAML lines
        indented by two spaces) with a component listener on
        component_port, or None (neither)."""
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.parleyd = str(builddir() / 'parleyd')
        self.parleyctl = str(builddir() / 'parleyctl')
        self.config = self.dir / 'parley.yml'
        self.logfile = self.dir / 'parleyd.log'
        self.port = free_port()
        self.tls_port = free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        self.components = components
        self.component_port = None
        if components is not None:
            self.component_port = free_port()
            while self.component_port in (self.port, self.tls_port):
                self.component_port = free_port()
        self.register_open = register_open
        self.loglevel = loglevel
        # more entries under hosts: (YAML, indented by two spaces)
        self.extra_hosts = extra_hosts
        self.host_auth = host_auth
        self.other_auth = other_auth
        self.other_modules = other_modules
        self.muc = muc
        self.global_auth = global_auth
        self.users = dict(USERS) if users is None else dict(users)
        # the SQLite database, relative to the directory (a test may move it
        # to a file system of its own)
        self.sqlite_path = 'parley.db'
        self.proc = None
        # run in the child before parleyd starts (e.g. a lower RLIMIT_NOFILE)
        self.preexec_fn = None
        self.passwords = dict(self.users)
        self.ctl_reports = []       # sanitizer lines seen in parleyctl's stderr
        # where parleyd and parleyctl find the schema of a new database
        self.env = dict(os.environ)
        self.env.setdefault('PARLEY_SQL_DIR', str(srcdir() / 'sql'))
        self.storage = storage_kind()
        self.pg_db = None
        self.my_db = None
        if self.storage in ('pgsql', 'odbc'):
            self.make_pg_database()
        elif self.storage == 'mysql':
            self.make_my_database()
        self.write_cert()
        self.write_config()

    # ---- PostgreSQL -------------------------------------------------------
    def make_pg_database(self):
        """A database of this server's own, a copy of the template made from
        sql/pgsql.sql (same owner, same grants for parleyd's DML-only role)."""
        self.pg_db = 'parley_' + uuid.uuid4().hex[:12]
        pg_psql(os.environ['PARLEY_TEST_PGSQL_SUPER_DSN'],
                'CREATE DATABASE %s OWNER parley_owner TEMPLATE parley_template' % self.pg_db)
        pwfile = self.dir / 'db-password'
        pwfile.write_text(os.environ['PARLEY_TEST_PGSQL_PASSWORD'] + '\n')
        pwfile.chmod(0o600)

    # ---- MySQL / MariaDB --------------------------------------------------
    def make_my_database(self):
        """A database of this server's own, made from sql/mysql.sql as a DBA
        would, with DML-only grants for parleyd's user."""
        self.my_db = 'parley_' + uuid.uuid4().hex[:12]
        my_sql('CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_bin' % self.my_db)
        schema = (srcdir() / 'sql' / 'mysql.sql').read_text()
        my_sql(schema.rstrip().rstrip(';'), db=self.my_db)
        for h in ('127.0.0.1', 'localhost'):
            my_sql("GRANT SELECT, INSERT, UPDATE, DELETE ON %s.* TO 'parley'@'%s'" % (self.my_db, h))
        pwfile = self.dir / 'db-password'
        pwfile.write_text(Path(os.environ['PARLEY_TEST_MYSQL_PASSWORD_FILE']).read_text())
        pwfile.chmod(0o600)

    def pg_dsn(self):
        """parleyd's conninfo for this server's database (no password)."""
        return _pg_dsn(os.environ['PARLEY_TEST_PGSQL_DSN'], self.pg_db)

    def host_storage_yaml(self):
        """The storage line of HOST in the config ('' on SQLite)."""
        if self.storage == 'mysql':
            dsn = ' '.join([p for p in os.environ['PARLEY_TEST_MYSQL_DSN'].split()
                            if not p.startswith('dbname=')] + ['dbname=' + self.my_db])
            return ('    storage: { driver: mysql, dsn: "%s", password_file: db-password, '
                    'timeout: 5s }\n' % dsn)
        if self.storage == 'odbc':
            # through unixODBC and psqlODBC (the driver run-odbc.sh registers)
            dsn = ('Driver={%s};Servername=127.0.0.1;Port=%s;Database=%s;UID=parley;SSLmode=disable'
                   % (os.environ['PARLEY_TEST_ODBC_DRIVER'], os.environ['PARLEY_TEST_PGSQL_PORT'],
                      self.pg_db))
            return ('    storage: { driver: odbc, dsn: "%s", password_file: db-password, '
                    'timeout: 5s }\n' % dsn)
        if self.storage != 'pgsql':
            return ''
        return ('    storage: { driver: pgsql, dsn: "%s", password_file: db-password, '
                'timeout: 5s }\n' % self.pg_dsn())

    def db_query(self, sql, params=(), host=HOST):
        """Rows of one query on the database of host, run from outside as a
        DBA would ('?' placeholders).  Integers come back as ints."""
        if self.storage in ('pgsql', 'odbc') and host == HOST:
            dsn = _pg_dsn(os.environ['PARLEY_TEST_PGSQL_OWNER_DSN'], self.pg_db)
            return pg_psql(dsn, sql, params)
        if self.storage == 'mysql' and host == HOST:
            return my_sql(sql, db=self.my_db, params=params)
        db = sqlite3.connect(str(self.dir / self.sqlite_path), timeout=10)
        try:
            rows = db.execute(sql, params).fetchall()
            db.commit()
            return rows
        finally:
            db.close()

    # ---- files ----------------------------------------------------------
    def write_cert(self):
        if (self.dir / 'cert.pem').exists():
            return
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-days', '30', '-subj', '/CN=' + HOST,
             '-addext', 'subjectAltName=DNS:%s,DNS:%s' % (HOST, OTHER),
             '-keyout', str(self.dir / 'key.pem'), '-out', str(self.dir / 'cert.pem')],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=30)

    def write_config(self):
        self.config.write_text(f"""\
# written by tests/integration/parleytest.py
loglevel: {self.loglevel}
pidfile: parleyd.pid
control:
  socket: parley.sock
limits:
  max_stanza_size: 64K
  max_connections_per_ip: 0
  handshake_timeout: 30s
  auth_attempts: 3
  auth_failure_delay: 0.2s
tls:
  certificate: cert.pem
  key: key.pem
storage:
  driver: sqlite
  path: {self.sqlite_path}
auth:
  methods: [internal]
  scram_iterations: 4096
{self.global_auth}listen:
  - port: {self.port}
    address: 127.0.0.1
    module: c2s
    starttls: required
  - port: {self.tls_port}
    address: 127.0.0.1
    module: c2s
    direct_tls: true
{self._component_listen()}modules:
  disco: {{}}
  version: {{}}
  ping: {{}}
  time: {{}}
  roster: {{}}
  register: {{ open: false }}
hosts:
  {HOST}:
{self.host_storage_yaml()}    admins: [alice@{HOST}]
    modules:
      register: {{ open: {'true' if self.register_open else 'false'}, throttle: 0, min_password_length: 4 }}
{self._host_muc()}{self._host_extra()}{self.extra_hosts}{self._components()}""")

    def _component_listen(self):
        if self.component_port is None:
            return ''
        return ('  - port: %d\n    address: 127.0.0.1\n    module: component\n'
                '    starttls: off\n' % self.component_port)

    def _components(self):
        if self.components is None:
            return ''
        return 'components:\n' + self.components

    MUC_MARK = '  # parleytest default'

    def _host_muc(self):
        """HOST's muc module line (its service is conference.HOST).  A
        test that writes a muc entry of its own into HOST's modules gets
        it instead of this one (see _own_muc_wins)."""
        if self.muc is None:
            return ''
        return '      muc: %s%s\n' % (self.muc, self.MUC_MARK)

    def _own_muc_wins(self):
        """Drop the default muc line when the config file holds another
        one for HOST (two would be a duplicate key)."""
        text = self.config.read_text()
        lines = text.splitlines(keepends=True)
        mine = [ln for ln in lines if ln.startswith('      muc:') and ln.rstrip().endswith(self.MUC_MARK)]
        theirs = [ln for ln in lines if ln.startswith('      muc:') and not ln.rstrip().endswith(self.MUC_MARK)]
        if mine and theirs:
            self.config.write_text(''.join(ln for ln in lines if ln not in mine))

    def _host_extra(self):
        """HOST's auth (if any) and OTHER's entry, as YAML lines."""
        out = ''
        if self.host_auth:
            out += '    auth: %s\n' % self.host_auth
        if not self.other_auth and not self.other_modules:
            return out + '  %s: {}\n' % OTHER
        out += '  %s:\n' % OTHER
        if self.other_auth:
            out += '    auth: %s\n' % self.other_auth
        if self.other_modules:
            out += '    modules: %s\n' % self.other_modules
        return out

    # ---- process --------------------------------------------------------
    def log(self):
        try:
            return self.logfile.read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # How many times the first start begins again on fresh ports.
    PORT_RETRIES = 3
    # What parleyd logs when a listener cannot bind because the port is taken.
    PORT_TAKEN = re.compile(r'listen \S+ port (\d+): Address already in use')
    PORT_ATTR = re.compile(r'(^|_)port[0-9]*$')

    def start(self, timeout=60):
        """Start parleyd; return when it said 'parleyd ready' and the port accepts.

        parleyd is ready in well under a second on an idle machine; the
        generous default is for a loaded one (two builds' suites side by
        side, the sanitizer build, a database run writing beside it), where
        a start once took 30 s.

        The ports are picked with free_port() before parleyd binds them, so
        another process may take one in between.  Until it has started
        once, a server whose listener says "Address already in use" for a
        port it picked itself (own_ports()) moves that listener to a fresh
        port and starts again, up to PORT_RETRIES times; a port given to
        it from outside, which others may already know, is never moved."""
        for attempt in range(self.PORT_RETRIES + 1):
            begin = len(self.log())
            try:
                self._start_once(timeout)
                self.started_once = True
                return
            except ServerError:
                taken = self.PORT_TAKEN.search(self.log()[begin:])
                port = int(taken.group(1)) if taken else None
                if (port is None or getattr(self, 'started_once', False)
                        or attempt == self.PORT_RETRIES or self.proc.poll() is None
                        or port not in self.own_ports().values()):
                    raise
                self._logf.close()
                self.move_port(port)

    def _start_once(self, timeout):
        if not os.access(self.parleyd, os.X_OK):
            raise ServerError('no parleyd binary at %s' % self.parleyd)
        self._own_muc_wins()
        self._logf = open(self.logfile, 'ab')
        # this start's lines only, in the checks and in the errors (an
        # earlier start's "Address already in use" must not count again)
        start_len = len(self.log())
        self.proc = subprocess.Popen(wrapper() + [self.parleyd, '-c', str(self.config)],
                                     cwd=str(self.dir), stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=subprocess.STDOUT, env=self.env,
                                     preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError('parleyd exited with %s during start-up:\n%s'
                                  % (self.proc.returncode, self.log()[start_len:][-4000:]))
            if READY.search(self.log()[start_len:]) and self._port_open(self.port):
                return
            time.sleep(0.05)
        raise ServerError('parleyd not ready within %ss:\n%s'
                          % (timeout, self.log()[start_len:][-4000:]))

    def own_ports(self):
        """The ports this server picked itself: {attribute: port} for every
        attribute named port, ..._port or port6 and the like holding a
        number (port, tls_port and those a subclass adds, such as
        http_port), but not those in given_ports."""
        given = getattr(self, 'given_ports', ())
        return {name: value for name, value in vars(self).items()
                if self.PORT_ATTR.search(name) and type(value) is int and value not in given}

    def move_port(self, old):
        """Move the listener on old, one of own_ports(), to a fresh port:
        the attributes that held it and the number in the config file."""
        mine = set(self.own_ports().values())
        new = free_port()
        while new in mine or new == old:
            new = free_port()
        for name, value in self.own_ports().items():
            if value == old:
                setattr(self, name, new)
        text = re.sub(r'(?<![0-9])%d(?![0-9])' % old, str(new), self.config.read_text())
        self.config.write_text(text)
        with open(self.logfile, 'a') as f:
            f.write('parleytest: port %d was taken; starting again with %d\n' % (old, new))

    @staticmethod
    def _port_open(port):
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit status (None: had to be killed)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            rc = None
        self._logf.close()
        return rc

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def problems(self, rc):
        """What is wrong after a stop: a bad exit status or sanitizer reports."""
        out = []
        if rc != 0:
            out.append('parleyd exit status %s (expected 0)' % rc)
        out += sanitizer_lines(self.log())
        out += self.ctl_reports
        return out

    def finish(self):
        """Stop (SIGTERM) and fail the test with the log's tail when parleyd
        did not exit 0 or a sanitizer reported something (for fixtures)."""
        import pytest
        problems = self.problems(self.stop())
        if problems:
            pytest.fail('parleyd in %s:\n  %s\n--- log tail ---\n%s'
                        % (self.dir, '\n  '.join(problems[:40]), self.log()[-6000:]), pytrace=False)

    def db_rows(self, table, user, host=HOST):
        """How many rows of table the database holds for user (read from
        outside, as a DBA would)."""
        return self.db_query('SELECT COUNT(*) FROM %s WHERE server_host = ? AND username = ?'
                             % table, (host, user), host=host)[0][0]

    def enable_module(self, name, options='{}'):
        """Turn module name on for every host (a YAML flow map of its
        options), in the config written at construction, before start; a
        module the config names already with no options (roster) gets
        these options instead."""
        text = self.config.read_text()
        if '  %s: {}\n' % name in text:
            text = text.replace('  %s: {}\n' % name, '  %s: %s\n' % (name, options), 1)
        else:
            roster = re.search(r'^  roster: .*\n', text, re.M)
            assert roster is not None
            text = text[:roster.end()] + '  %s: %s\n' % (name, options) + text[roster.end():]
        self.config.write_text(text)

    # ---- parleyctl ------------------------------------------------------
    def ctl(self, *args, input=None, timeout=60):
        """Run parleyctl -c CONFIG ARGS; returns the CompletedProcess (text)."""
        r = subprocess.run([self.parleyctl, '-c', str(self.config)] + [str(a) for a in args],
                           input=input if input is not None else '', capture_output=True,
                           text=True, timeout=timeout, cwd=str(self.dir), env=self.env)
        self.ctl_reports += sanitizer_lines(r.stderr)
        return r

    def register(self, user, host, password):
        r = self.ctl('register', user, host, password)
        if r.returncode != 0:
            raise ServerError('parleyctl register %s %s: exit %s: %s'
                              % (user, host, r.returncode, r.stderr.strip()))
        self.passwords[(user, host)] = password

    def create_users(self):
        for (user, host), pw in self.users.items():
            self.register(user, host, pw)

    def start_with_users(self):
        """start(), then create_users(); stopped again when that fails."""
        self.start()
        try:
            self.create_users()
        except Exception:
            self.stop()
            raise

    def password(self, user, host=HOST):
        return self.passwords[(user, host)]


# ---------------------------------------------------------------------------
# Raw client
# ---------------------------------------------------------------------------

class StreamClosed(Exception):
    pass


def stream_header(to=HOST, ns=NS_CLIENT, stream_ns=NS_STREAM, version='1.0', decl=True):
    return ("%s<stream:stream xmlns='%s' xmlns:stream='%s' to='%s' version='%s'>"
            % ("<?xml version='1.0'?>" if decl else '', ns, stream_ns, to, version))


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RawClient:
    """A client that writes exactly the bytes it is given and reads the
    server's stream as depth-1 elements."""

    def __init__(self, port, direct_tls=False, timeout=5.0, host=HOST, address='127.0.0.1',
                 rcvbuf=None):
        """rcvbuf: a small socket receive buffer (set before connecting), for
        a client that stops reading and should not let the kernel take much."""
        self.timeout = timeout
        self.host = host
        if rcvbuf is None:
            self.sock = socket.create_connection((address, port), timeout=timeout)
        else:
            self.sock = socket.socket(socket.AF_INET6 if ':' in address else socket.AF_INET)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((address, port))
        self.sock.settimeout(timeout)
        self.tls = False
        if direct_tls:
            self._wrap()
        self.header = None        # attributes of the server's last stream header
        self.features = None      # the last <stream:features/>
        self.closed = False       # the server closed the stream or the socket
        self.jid = None
        self.received = []        # every element read, for failure messages
        self._reset_parser()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return '<RawClient %s>' % (self.jid or '')

    # ---- bytes ------------------------------------------------------------
    def _wrap(self):
        self.sock = tls_context().wrap_socket(self.sock, server_hostname=self.host)
        self.sock.settimeout(self.timeout)
        self.tls = True

    def _reset_parser(self):
        self.parser = ET.XMLPullParser(events=('start', 'end'))
        self.depth = 0
        self.root = None
        self.pending = deque()

    def send(self, data):
        """Write data; a peer that already closed is not an error here
        (the test reads the outcome)."""
        if isinstance(data, str):
            data = data.encode('utf-8')
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.closed = True

    def send_slowly(self, data, chunk=8192, pause=0.01):
        """Write data in chunks and stop as soon as the server says anything.

        A server that rejects a stream closes it with our surplus bytes still
        unread in its socket; TCP then answers with a reset, which can destroy
        the stream error before we read it.  Writing in small steps, and not
        after the server spoke, keeps that from happening."""
        import select
        if isinstance(data, str):
            data = data.encode('utf-8')
        for i in range(0, len(data), chunk):
            readable, _, _ = select.select([self.sock], [], [], 0)
            if readable or self.closed:
                return
            self.send(data[i:i + chunk])
            time.sleep(pause)

    def _read_some(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            data = b''
        if not data:
            self.closed = True
            self.pending.append(None)
            return
        try:
            self.parser.feed(data)
            events = list(self.parser.read_events())
        except ET.ParseError as e:
            raise AssertionError('server sent XML we cannot parse: %s (%r)' % (e, data[:500]))
        for ev, el in events:
            if ev == 'start':
                self.depth += 1
                if self.depth == 1:
                    self.root = el
                    self.header = dict(el.attrib)
            else:
                if self.depth == 2:
                    self.received.append(el)
                    self.pending.append(el)
                    self.root.remove(el)
                elif self.depth == 1:
                    self.closed = True
                    self.pending.append(None)
                self.depth -= 1

    def next(self, timeout=None):
        """The next depth-1 element, or None when the stream/socket closed.
        Raises TimeoutError when nothing comes within timeout."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('nothing from the server within %ss' % timeout)
            if self.closed and not self.pending:
                return None
            self._read_some(left)
        el = self.pending.popleft()
        if el is None:
            self.pending.appendleft(None)   # stays closed
        return el

    def wait_for(self, pred, timeout=None, what='element'):
        """Read until pred(element) holds; returns it. Raises StreamClosed
        (with what came before) or TimeoutError."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no %s within %ss; got %s' % (what, timeout, [tostr(e) for e in seen]))
            el = self.next(left)
            if el is None:
                raise StreamClosed('stream closed while waiting for %s; got %s'
                                   % (what, [tostr(e) for e in seen]))
            if pred(el):
                return el
            seen.append(el)

    def stream_error(self, timeout=None):
        """Read until a stream error and the end of the stream; returns the
        condition's local name ('closed' if the stream ended without one)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no stream error within %ss' % timeout)
            el = self.next(left)
            if el is None:
                return 'closed'
            if el.tag == q(NS_STREAM, 'error'):
                for child in el:
                    if child.tag.startswith('{%s}' % NS_STREAM_ERR) and local(child.tag) != 'text':
                        return local(child.tag)
                return 'error-without-condition'

    def wait_closed(self, timeout=None):
        """True when the server closes the connection within timeout."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.next(deadline - time.monotonic()) is None:
                    return True
            except TimeoutError:
                return False
        return False

    def close(self):
        try:
            if not self.closed:
                self.sock.sendall(b'</stream:stream>')
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    # ---- the XMPP steps ----------------------------------------------------
    def open(self, to=None, **kw):
        """Send a stream header and read the server's header and features."""
        self._reset_parser()
        self.send(stream_header(to or self.host, **kw))
        self.features = self.wait_for(lambda e: e.tag == q(NS_STREAM, 'features'),
                                      what='stream features')
        return self.features

    def mechanisms(self):
        m = self.features.find(q(NS_SASL, 'mechanisms')) if self.features is not None else None
        if m is None:
            return []
        return [x.text for x in m.findall(q(NS_SASL, 'mechanism'))]

    def starttls(self):
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        el = self.wait_for(lambda e: e.tag.startswith('{%s}' % NS_TLS), what='STARTTLS answer')
        assert el.tag == q(NS_TLS, 'proceed'), tostr(el)
        self._wrap()
        return self.open()

    def auth_plain(self, user, password, authzid=''):
        """SASL PLAIN; returns the <success/> or <failure/> element."""
        token = base64.b64encode(('%s\0%s\0%s' % (authzid, user, password)).encode()).decode()
        self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
        return self.wait_for(lambda e: e.tag in (q(NS_SASL, 'success'), q(NS_SASL, 'failure')),
                             what='SASL result')

    def bind(self, resource=None, iq_id='bind1'):
        """Returns the bound full JID (raises AssertionError on an error)."""
        res = '<resource>%s</resource>' % resource if resource is not None else ''
        self.send("<iq type='set' id='%s'><bind xmlns='%s'>%s</bind></iq>" % (iq_id, NS_BIND, res))
        el = self.wait_iq(iq_id)
        assert el.get('type') == 'result', tostr(el)
        jid = el.find('%s/%s' % (q(NS_BIND, 'bind'), q(NS_BIND, 'jid')))
        assert jid is not None and jid.text, tostr(el)
        self.jid = jid.text
        return self.jid

    def login(self, user, password, resource=None, presence=True):
        """Everything up to a bound resource (STARTTLS unless already on TLS)."""
        self.open()
        if not self.tls:
            self.starttls()
        r = self.auth_plain(user, password)
        assert r.tag == q(NS_SASL, 'success'), 'login %s failed: %s' % (user, tostr(r))
        self.open()
        jid = self.bind(resource)
        if presence:
            self.send('<presence/>')
            # a round trip, so the presence has been processed before the
            # test goes on (the answer's type does not matter here)
            self.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=self.host)
        return jid

    def wait_iq(self, iq_id, timeout=None):
        return self.wait_for(lambda e: e.tag == q(NS_CLIENT, 'iq') and e.get('id') == iq_id
                             and e.get('type') in ('result', 'error'),
                             timeout=timeout, what='iq %s answer' % iq_id)

    def iq(self, typ, payload, to=None, iq_id=None, timeout=None):
        """Send an iq and return its answer element."""
        iq_id = iq_id or unique('iq')
        to_attr = " to='%s'" % to if to else ''
        self.send("<iq type='%s' id='%s'%s>%s</iq>" % (typ, iq_id, to_attr, payload))
        return self.wait_iq(iq_id, timeout)

    def wait_message(self, body=None, timeout=None):
        def match(e):
            if e.tag != q(NS_CLIENT, 'message'):
                return False
            return body is None or e.findtext(q(NS_CLIENT, 'body')) == body
        return self.wait_for(match, timeout=timeout, what='message %r' % body)


NS_COMPONENT = 'jabber:component:accept'


def component_digest(stream_id, secret):
    """The XEP-0114 handshake: hex SHA-1 of stream id + secret."""
    import hashlib
    return hashlib.sha1((stream_id + secret).encode('utf-8')).hexdigest()


class RawComponent(RawClient):
    """An external component (XEP-0114) speaking by hand on a component
    listener."""

    def __init__(self, port, domain, **kw):
        super().__init__(port, host=domain, **kw)
        self.domain = domain

    def open_component(self, to=None):
        """Send the header; return the server's header attributes (or
        None when the server closed the stream at once)."""
        self._reset_parser()
        self.send("<stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>"
                  % (NS_COMPONENT, NS_STREAM, to or self.domain))
        deadline = time.monotonic() + self.timeout
        while self.header is None and not self.closed and time.monotonic() < deadline:
            try:
                self._read_some(deadline - time.monotonic())
            except (socket.timeout, TimeoutError):
                break
        return self.header

    def handshake(self, secret, to=None):
        """Header and handshake; returns 'ok' or the stream error's
        condition."""
        header = self.open_component(to)
        if header is None or 'id' not in header:
            return self.stream_error()
        self.send('<handshake>%s</handshake>' % component_digest(header['id'], secret))
        el = self.next()
        if el is not None and el.tag == q(NS_COMPONENT, 'handshake'):
            return 'ok'
        if el is not None:
            self.pending.appendleft(el)
        return self.stream_error()

    def wait_stanza(self, name, pred=lambda e: True, timeout=None):
        return self.wait_for(lambda e: e.tag == q(NS_COMPONENT, name) and pred(e),
                             timeout=timeout, what='component %s' % name)


def tostr(el):
    if el is None:
        return 'None'
    return ET.tostring(el, encoding='unicode')


def raw_login(server, user, host=HOST, password=None):
    """A RawClient logged in to server (a Parleyd or anything with port and
    password()) as user@host on a fresh resource, with no presence sent;
    the password is server.password(user, host) unless given."""
    c = RawClient(server.port, host=host)
    c.login(user, password if password is not None else server.password(user, host),
            resource=unique('x-'), presence=False)
    return c


def register_in_band(server, user, password, host=HOST, timeout=15):
    """XEP-0077 registration of user@host on a fresh stream (after
    STARTTLS, before any login); returns the answer."""
    c = RawClient(server.port, host=host, timeout=timeout)
    try:
        c.open()
        c.starttls()
        return c.iq('set', "<query xmlns='%s'><username>%s</username><password>%s</password></query>"
                    % (NS_REGISTER, user, password))
    finally:
        c.close()


def iq_ok(c, typ, payload, to=None):
    """c.iq(...) that must be answered with a result; returns the answer."""
    r = c.iq(typ, payload, to=to)
    assert r.get('type') == 'result', tostr(r)
    return r


def items_of(el, ns, name='item'):
    """Every element name in namespace ns below el, in document order."""
    return el.findall('.//' + q(ns, name))


def stanza_error(el):
    """The defined condition of a stanza error (local name), or None."""
    if el is None or el.get('type') != 'error':
        return None
    err = el.find(q(NS_CLIENT, 'error'))
    if err is None:
        return 'error-without-error-element'
    for child in err:
        if child.tag.startswith('{%s}' % NS_STANZA_ERR) and local(child.tag) != 'text':
            return local(child.tag)
    return 'error-without-condition'


class Witness:
    """Two users connected before a bad-input test, who must still be able to
    talk to each other after it: the bad input hurt only its own stream."""

    def __init__(self, server):
        self.a = RawClient(server.port)
        self.a.login('carol', server.password('carol'), resource=unique('witness-'))
        self.b = RawClient(server.port)
        self.b.login('erin', server.password('erin'), resource=unique('witness-'))

    def check(self):
        body = unique('still-alive-')
        self.a.send("<message to='%s' type='chat'><body>%s</body></message>" % (self.b.jid, body))
        got = self.b.wait_message(body, timeout=10)
        assert got.get('from') == self.a.jid, tostr(got)

    def close(self):
        self.a.close()
        self.b.close()


# ---------------------------------------------------------------------------
# slixmpp clients
# ---------------------------------------------------------------------------

class LoginFailed(Exception):
    pass


def make_client(jid, password, mech=None, claim_cb_support=False):
    """A slixmpp client that accepts any certificate.

    slixmpp, told to use a SCRAM mechanism without -PLUS on a TLS connection,
    sends the gs2 flag 'y' ("I could bind, but I think you cannot"), which a
    server that advertised -PLUS must refuse (RFC 5802 section 6, downgrade
    protection).  Unless claim_cb_support is set, such a client is given no
    channel binding data, so it sends 'n' like a client without support."""
    import slixmpp
    c = slixmpp.ClientXMPP(jid, password, sasl_mech=mech)
    if mech is not None and not mech.endswith('-PLUS') and not claim_cb_support:
        fm = c['feature_mechanisms']
        default_credentials = fm._default_credentials

        def credentials(required, optional):
            creds = default_credentials(required, optional)
            if 'channel_binding' in creds:
                creds['channel_binding'] = None
            return creds
        fm.sasl_callback = credentials
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE
    c.whitespace_keepalive = False
    c.auto_reconnect = False
    c.messages = asyncio.Queue()
    c.add_event_handler('message', c.messages.put_nowait)
    return c


async def login(server, user, host=HOST, password=None, mech='SCRAM-SHA-1', resource=None,
                direct_tls=False, timeout=15, claim_cb_support=False, plugins=(), prepare=None):
    """A logged-in slixmpp client (session started) or LoginFailed.
    mech=None lets slixmpp choose (it prefers SCRAM-SHA-256-PLUS, which it
    binds with tls-unique: that works on TLS 1.2 only, and a refused
    attempt fails this helper; see test_login.py's tls12 fixture).
    plugins: slixmpp plugins to register first ('xep_0115', ...);
    prepare: a coroutine function of the client awaited after the session
    started, before the available presence goes out."""
    jid = '%s@%s' % (user, host) + ('/' + resource if resource else '')
    if password is None:
        password = server.password(user, host)
    c = make_client(jid, password, mech, claim_cb_support)
    for name in plugins:
        c.register_plugin(name)
    done = asyncio.get_running_loop().create_future()

    def finish(result=None, exc=None):
        if not done.done():
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(result)

    c.add_event_handler('session_start', lambda e: finish(True))
    c.add_event_handler('failed_auth', lambda e: finish(exc=LoginFailed('authentication failed')))
    c.add_event_handler('no_auth', lambda e: finish(exc=LoginFailed('no usable SASL mechanism')))
    c.add_event_handler('disconnected', lambda e: finish(exc=LoginFailed('disconnected: %s' % (e,))))
    c.add_event_handler('connection_failed', lambda e: finish(exc=LoginFailed('connection failed: %s' % (e,))))
    c.add_event_handler('stream_error', lambda e: finish(exc=LoginFailed('stream error: %s' % (e,))))
    port = server.tls_port if direct_tls else server.port
    c.connect(address=('127.0.0.1', port), use_ssl=direct_tls, force_starttls=not direct_tls)
    try:
        await asyncio.wait_for(done, timeout)
        if prepare is not None:
            await prepare(c)
        # available, like a real client; the ping round trip makes sure the
        # server has processed the presence before the test goes on
        c.send_presence()
        await iq(c, 'get', host, "<ping xmlns='%s'/>" % NS_PING)
    except BaseException:
        c.abort()
        raise
    return c


async def logout(*clients):
    for c in clients:
        try:
            await asyncio.wait_for(c.disconnect(wait=1), 5)
        except Exception:
            c.abort()


async def iq(client, typ, to, payload, timeout=10):
    """Send an iq with an XML payload (a string) from a slixmpp client and
    return the answer as an ElementTree element, error or result."""
    from slixmpp.exceptions import IqError
    stanza = client.Iq()
    stanza['type'] = typ
    if to:
        stanza['to'] = to
    stanza.append(ET.fromstring(payload))
    try:
        answer = await asyncio.wait_for(stanza.send(), timeout)
    except IqError as e:
        answer = e.iq
    return answer.xml


async def next_message(client, timeout=10, pred=None):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError('no message within %ss' % timeout)
        m = await asyncio.wait_for(client.messages.get(), left)
        if pred is None or pred(m):
            return m


def find_lines(pattern, text):
    return [line for line in text.splitlines() if re.search(pattern, line)]


# ---------------------------------------------------------------------------
# Federation (s2s): parleyd instances for one domain each
# ---------------------------------------------------------------------------

NS_SERVER = 'jabber:server'
NS_DIALBACK = 'jabber:server:dialback'


def make_test_ca(directory, domains, sans=None, ekus=None):
    """A CA and, for each domain, a certificate it signs (SAN dNSName, or
    sans[domain]: a subjectAltName in openssl's syntax, e.g.
    'otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-server.example.org'):
    returns {'ca': ca.pem, domain: (cert, key), ...} as paths.
    ekus[domain]: the extendedKeyUsage value (e.g. 'clientAuth'), or ''
    for a certificate without the extension; serverAuth,clientAuth else."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run(list(a), check=True, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    out = {'ca': d / 'ca.pem'}
    run('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-days', '30', '-subj', '/CN=Parley test CA', '-keyout', str(d / 'ca-key.pem'),
        '-out', str(out['ca']), '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    for dom in domains:
        key, csr, cert = d / ('%s-key.pem' % dom), d / ('%s.csr' % dom), d / ('%s.pem' % dom)
        ext = d / ('%s.ext' % dom)
        san = (sans or {}).get(dom, 'DNS:%s' % dom)
        eku = (ekus or {}).get(dom, 'serverAuth,clientAuth')
        ext.write_text('subjectAltName=%s\n' % san +
                       ('extendedKeyUsage=%s\n' % eku if eku else ''))
        run('openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
            '-nodes', '-subj', '/CN=' + dom, '-keyout', str(key), '-out', str(csr))
        run('openssl', 'x509', '-req', '-in', str(csr), '-CA', str(out['ca']), '-CAkey',
            str(d / 'ca-key.pem'), '-CAcreateserial', '-days', '30', '-out', str(cert),
            '-extfile', str(ext))
        out[dom] = (cert, key)
    return out


class FedParleyd(Parleyd):
    """A parleyd serving one domain, with an s2s listener, federating
    through the static host map.  peers: {domain: port, or the map's
    value as a string ("tls://127.0.0.1:PORT")};
    s2s: options of the s2s section over the test defaults ({key: YAML
    value}); cert: (certificate, key) paths to use instead of a
    self-signed one; ca: a test CA (make_test_ca()) that this server
    trusts (s2s.ca_file) and whose certificate for domain it uses, when
    the CA made one and cert is not given."""

    def __init__(self, workdir, domain, users, peers=None, s2s=None, cert=None, s2s_port=None,
                 s2s_tls_port=None, more_domains=(), ca=None):
        """s2s_tls_port: also a direct-TLS (XEP-0368) s2s listener there;
        more_domains: further virtual hosts served beside domain."""
        self.domain = domain
        self.s2s_port = s2s_port or free_port()
        self.s2s_tls_port = s2s_tls_port
        # the peers and the DNS records of the test know these already
        self.given_ports = {p for p in (s2s_port, s2s_tls_port) if p}
        self.peers = dict(peers or {})
        self.s2s_opts = {'enabled': 'true', 'connect_timeout': '5s', 'backoff': '1s',
                         'max_backoff': '2s'}
        if ca is not None:
            self.s2s_opts['ca_file'] = str(ca['ca'])
            cert = cert or ca.get(domain)
        self.s2s_opts.update(s2s or {})
        self.cert_files = cert
        self.more_domains = tuple(more_domains)
        super().__init__(workdir, users=users, muc=None)

    def write_cert(self):
        if self.cert_files is not None:
            shutil.copy(str(self.cert_files[0]), str(self.dir / 'cert.pem'))
            shutil.copy(str(self.cert_files[1]), str(self.dir / 'key.pem'))
            return
        if (self.dir / 'cert.pem').exists():
            return
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-days', '30', '-subj', '/CN=' + self.domain,
             '-addext', 'subjectAltName=DNS:%s' % self.domain,
             '-keyout', str(self.dir / 'key.pem'), '-out', str(self.dir / 'cert.pem')],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=30)

    def write_config(self):
        hosts = ', '.join('"%s": "%s"' % (d, p if isinstance(p, str) else '127.0.0.1:%d' % p)
                          for d, p in sorted(self.peers.items()))
        direct = ('  - port: %d\n    address: 127.0.0.1\n    module: s2s\n    direct_tls: true\n'
                  % self.s2s_tls_port if self.s2s_tls_port else '')
        opts = ''.join('  %s: %s\n' % kv for kv in self.s2s_opts.items())
        self.config.write_text(f"""\
# written by tests/integration/parleytest.py (FedParleyd)
loglevel: {self.loglevel}
pidfile: parleyd.pid
control:
  socket: parley.sock
limits:
  max_stanza_size: 64K
  max_connections_per_ip: 0
  handshake_timeout: 30s
  auth_failure_delay: 0.2s
tls:
  certificate: cert.pem
  key: key.pem
storage:
  driver: sqlite
  path: parley.db
auth:
  methods: [internal]
  scram_iterations: 4096
s2s:
{opts}  hosts: {{ {hosts} }}
listen:
  - port: {self.port}
    address: 127.0.0.1
    module: c2s
    starttls: required
  - port: {self.tls_port}
    address: 127.0.0.1
    module: c2s
    direct_tls: true
  - port: {self.s2s_port}
    address: 127.0.0.1
    module: s2s
{direct}modules:
  disco: {{}}
  version: {{}}
  ping: {{}}
  time: {{}}
  roster: {{}}
  register: {{ open: false }}
hosts:
  {self.domain}: {{}}
{''.join('  %s: {}' % d + chr(10) for d in self.more_domains)}""")

    def set_peers(self, peers):
        """Rewrite the static map (before start)."""
        self.peers = dict(peers)
        self.write_config()


@contextlib.contextmanager
def started(*servers):
    """Start servers in turn (start_with_users() for a Parleyd, start() for
    a peer such as Prosody) and yield them; on leaving, finish() each
    Parleyd (the test fails on a bad exit status or a sanitizer report)
    and stop() the others, the last started first, all of them even when
    one fails.  When one cannot start, it and those started before it are
    stopped (each even when another's stop fails) and its error raised."""
    up = []
    try:
        for s in servers:
            up.append(s)    # stopped too if its start fails half-way
            getattr(s, 'start_with_users', s.start)()
    except BaseException:
        for s in reversed(up):
            try:
                s.stop()
            except Exception:   # the start's error is the one to see
                pass
        raise
    with contextlib.ExitStack() as stack:
        for s in up:
            stack.callback(getattr(s, 'finish', s.stop))
        yield servers


@contextlib.contextmanager
def on_free_ports(make, attempts=3):
    """Enter make(), a context manager that starts servers (see started())
    on ports picked with free_port() and told to others (peers, DNS
    records) before they are bound, so that Parleyd.start() may not move
    them; when that fails because a test running beside this one took
    one of them meanwhile, make() again on fresh ones, up to attempts
    times in all.  make() must leave nothing running when it fails, and
    must work in a fresh folder each time (a second try in the same one
    finds the accounts of the first)."""
    for attempt in range(attempts):
        stack = contextlib.ExitStack()
        try:
            got = stack.enter_context(make())
            break
        except (ServerError, OSError) as e:
            if 'Address already in use' not in str(e) or attempt == attempts - 1:
                raise
    with stack:
        yield got


class RawServer(RawClient):
    """A raw s2s peer: jabber:server stream headers with a 'from'."""

    def __init__(self, port, origin, target, **kw):
        self.origin = origin
        super().__init__(port, host=target, **kw)

    def open(self, to=None, **kw):
        self._reset_parser()
        self.send("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' xmlns:db='%s' "
                  "from='%s' to='%s' version='1.0'>"
                  % (NS_SERVER, NS_STREAM, NS_DIALBACK, self.origin, to or self.host))
        self.features = self.wait_for(lambda e: e.tag == q(NS_STREAM, 'features'),
                                      what='stream features')
        return self.features

    def dialback_key(self, secret, receiving, stream_id):
        """The XEP-0185 key of origin for receiving, with secret (bytes)."""
        import hashlib
        import hmac
        k = hashlib.sha256(secret).digest()
        return hmac.new(k, ('%s %s %s' % (receiving, self.origin, stream_id)).encode(),
                        hashlib.sha256).hexdigest()


def needs_dnslib():
    """A pytest mark that skips tests needing TestDNS when python3-dnslib
    is not installed."""
    import pytest
    try:
        import dnslib  # noqa: F401
        have = True
    except ImportError:
        have = False
    return pytest.mark.skipif(not have, reason='python3-dnslib is not installed '
                              '(apt-get install python3-dnslib)')


class TestDNS:
    """A tiny authoritative DNS server on a free loopback UDP and TCP port
    (python3-dnslib), for resolution tests: records is {(name, type):
    [rdata, ...]} with type 'SRV' (rdata (priority, weight, port,
    target)), 'A' or 'AAAA' (rdata an address string), 'TLSA' (rdata
    (usage, selector, matching type, bytes)); the value 'SERVFAIL' instead
    of a list answers SERVFAIL (what a validating resolver says of bogus
    data).  Names not in it answer NXDOMAIN; names with other types only,
    an empty answer.  secure: names whose answers (records or denials)
    carry the AD bit, as a validating resolver sets it; True: all.
    queries lists (name, type) as asked, ad_asked those asked with the AD
    bit set.  records, secure and ttl (of every record, in seconds) may
    change while it runs.  Use as a context manager or call stop()."""

    def __init__(self, records, secure=(), ttl=5):
        from dnslib import QTYPE, RCODE, RR, SRV, TLSA, A, AAAA
        from dnslib.server import BaseResolver, DNSLogger, DNSServer
        self.records = {(n.rstrip('.').lower(), t): v for (n, t), v in records.items()}
        self.queries = []
        self.ad_asked = []
        self.secure = secure if secure is True else {n.rstrip('.').lower() for n in secure}
        self.ttl = ttl
        outer = self

        class Resolver(BaseResolver):
            def resolve(self, request, handler):
                reply = request.reply()
                name = str(request.q.qname).rstrip('.').lower()
                qtype = QTYPE[request.q.qtype]
                outer.queries.append((name, qtype))
                if request.header.ad:
                    outer.ad_asked.append((name, qtype))
                # reply() copies the query's flags, AD among them
                reply.header.ad = 1 if outer.secure is True or name in outer.secure else 0
                if not any(n == name for n, _ in outer.records):
                    reply.header.rcode = RCODE.NXDOMAIN
                    return reply
                rds = outer.records.get((name, qtype), [])
                if rds == 'SERVFAIL':
                    reply.header.ad = 0
                    reply.header.rcode = RCODE.SERVFAIL
                    return reply
                for rd in rds:
                    if qtype == 'TLSA':
                        data = TLSA(rd[0], rd[1], rd[2], rd[3])
                    elif qtype == 'SRV':
                        data = SRV(priority=rd[0], weight=rd[1], port=rd[2], target=rd[3])
                    elif qtype == 'A':
                        data = A(rd)
                    elif qtype == 'AAAA':
                        data = AAAA(rd)
                    else:
                        continue
                    reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=data, ttl=outer.ttl))
                return reply

        quiet = DNSLogger('-recv,-send,-request,-reply,-truncated,-error,-data', prefix=False)
        last = None
        for _ in range(20):
            port = free_port()
            try:
                self.udp = DNSServer(Resolver(), port=port, address='127.0.0.1', logger=quiet)
                self.tcp = DNSServer(Resolver(), port=port, address='127.0.0.1', logger=quiet, tcp=True)
                break
            except OSError as e:
                last = e
        else:
            raise last
        self.port = port
        self.udp.start_thread()
        self.tcp.start_thread()

    def stop(self):
        for s in (self.udp, self.tcp):
            s.stop()
            s.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------
# ejabberd (Debian's, 23.01) as a private federation peer
# ---------------------------------------------------------------------------

def ejabberdctl():
    return shutil.which('ejabberdctl', path=os.environ.get('PATH', '') + ':/usr/sbin')


class Ejabberd:
    """A private ejabberd 23.01 serving one domain on loopback: its own
    config, spool and log directory, node name, Erlang cookie and
    distribution port (no epmd), run as the ejabberd user in its own
    process group.  peer_port: where it dials every remote domain
    (outgoing_s2s_port; give remote domains as IP literals) or None;
    dns_port: a DNS server on 127.0.0.1 for its SRV lookups (inetrc; the
    address lookups go through the system's getaddrinfo, so SRV targets
    must be IP literals or names the system knows); ip: the address its listeners bind; users:
    {user: password}, registered at start.  start(), then always stop()."""

    def __init__(self, domain, peer_port, users, ip='127.0.0.1', loglevel='info', s2s_port=None,
                 erl_options='', dns_port=None):
        # The ejabberd user must reach the directory: not under pytest's
        # private (0700) temporary root.
        self.domain = domain
        self.ip = ip
        self.dir = Path(tempfile.mkdtemp(prefix='parley-ejabberd-'))
        self.port = free_port()
        self.s2s_port = s2s_port or free_port()
        self.dist_port = free_port()
        self.node = 'parleytest%s@localhost' % uuid.uuid4().hex[:8]
        self.cookie = uuid.uuid4().hex
        self.users = users
        self.proc = None
        etc, spool, logs = self.dir / 'etc', self.dir / 'spool', self.dir / 'log'
        for d in (etc, spool, logs):
            d.mkdir()
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-days', '30', '-subj', '/CN=' + self.domain, '-addext',
             'subjectAltName=DNS:' + self.domain, '-keyout', str(etc / 'key.pem'),
             '-out', str(etc / 'cert.pem')],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=30)
        (etc / 'ejabberd.pem').write_bytes((etc / 'cert.pem').read_bytes() + (etc / 'key.pem').read_bytes())
        # resolv_conf first: read later, it would replace the nameserver
        (etc / 'inetrc').write_text('{resolv_conf, ""}.\n{nameserver, {127,0,0,1}, %d}.\n' % dns_port
                                    if dns_port else '')
        (etc / 'ejabberdctl.cfg').write_text(
            'ERL_DIST_PORT=%d\nINET_DIST_INTERFACE=127.0.0.1\nERL_OPTIONS="-setcookie %s %s"\n'
            % (self.dist_port, self.cookie, erl_options))
        (etc / 'ejabberd.yml').write_text(f'''# written by tests/integration/parleytest.py (Ejabberd)
loglevel: {loglevel}
log_rotate_count: 0
hosts:
  - {self.domain}
certfiles:
  - "{etc}/ejabberd.pem"
listen:
  -
    port: {self.port}
    ip: "{ip}"
    module: ejabberd_c2s
    starttls: true
    starttls_required: true
    shaper: none
  -
    port: {self.s2s_port}
    ip: "{ip}"
    module: ejabberd_s2s_in
s2s_use_starttls: required
{'outgoing_s2s_port: %d' % peer_port if peer_port else ''}
outgoing_s2s_families: [ipv4]
s2s_access: all
auth_method: internal
auth_password_format: scram
default_db: mnesia
acme:
  auto: false
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
shaper_rules:
  c2s_shaper: none
  s2s_shaper: none
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_s2s_dialback: {{}}
  mod_version: {{}}
''')
        shutil.chown(str(self.dir), 'ejabberd', 'ejabberd')
        for p in self.dir.rglob('*'):
            shutil.chown(str(p), 'ejabberd', 'ejabberd')

    def _ctl_argv(self, *args):
        return ['setpriv', '--reuid=ejabberd', '--regid=ejabberd', '--init-groups',
                'env', 'HOME=%s' % self.dir, ejabberdctl(), '--config-dir', str(self.dir / 'etc'),
                '--node', self.node, '--spool', str(self.dir / 'spool'), '--logs', str(self.dir / 'log')
                ] + list(args)

    def start(self, timeout=90):
        self._out = open(self.dir / 'stdout.log', 'ab')
        self.proc = subprocess.Popen(self._ctl_argv('foreground'), cwd=str(self.dir),
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('ejabberd exited: %s' % self.log()[-3000:])
            try:
                socket.create_connection((self.ip, self.port), timeout=1).close()
                socket.create_connection((self.ip, self.s2s_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError('ejabberd did not start in %ds: %s' % (timeout, self.log()[-3000:]))
        for user, pw in self.users.items():
            self.ctl('register', user, self.domain, pw)

    def ctl(self, *args, timeout=60):
        r = subprocess.run(self._ctl_argv(*args), cwd=str(self.dir), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError('ejabberdctl %s: %s %s' % (' '.join(args), r.stdout, r.stderr))
        return r.stdout

    def pids(self):
        """Every process of its group (the shell, the Erlang VM and helpers)."""
        out = []
        for d in os.listdir('/proc'):
            if d.isdigit():
                try:
                    if os.getpgid(int(d)) == self.proc.pid:
                        out.append(int(d))
                except OSError:
                    pass
        return out

    def password(self, user, host):
        return self.users[user]

    def log(self):
        text = ''
        for f in ('log/ejabberd.log', 'log/error.log', 'stdout.log'):
            try:
                text += (self.dir / f).read_text(errors='replace')
            except FileNotFoundError:
                pass
        return text

    def stop(self):
        if self.proc is not None:
            # The whole process group: ejabberdctl's shell and the Erlang VM.
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    # the VM may outlive the shell: probe the group
                    os.killpg(self.proc.pid, 0)
                    time.sleep(0.5)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
            self._out.close()
            self.proc = None
        shutil.rmtree(str(self.dir), ignore_errors=True)


class ProsodyProcess:
    """A private Prosody run from the tests (tests of federation with it,
    of importing its data and of exporting to it).  The subclass writes its
    configuration and sets dir (its folder), config (the file), port (its
    c2s port) and logfile (Prosody's own log, or None); start() runs it and
    waits until every port of wait_ports() accepts connections."""
    proc = None
    logfile = None

    def wait_ports(self):
        return [self.port]

    def start(self, timeout=20):
        self._logf = open(self.dir / 'stdout.log', 'ab')
        self.proc = subprocess.Popen(['prosody', '--config', str(self.config)], cwd=str(self.dir),
                                     stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('prosody exited: %s' % self.log()[-3000:])
            try:
                for port in self.wait_ports():
                    socket.create_connection(('127.0.0.1', port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError('prosody did not start: %s' % self.log()[-3000:])

    def log(self):
        text = ''
        for f in ([self.logfile] if self.logfile is not None else []) + [self.dir / 'stdout.log']:
            try:
                text += f.read_text(errors='replace')
            except FileNotFoundError:
                pass
        return text

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None:
            self._logf.close()
            self.proc = None


@contextlib.contextmanager
def event_loop():
    """A new asyncio loop, made the current one (slixmpp binds to the
    current loop when a client is made); afterwards its pending tasks are
    cancelled and it is closed."""
    lp = asyncio.new_event_loop()
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        pending = [t for t in asyncio.all_tasks(lp) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            lp.run_until_complete(asyncio.wait(pending, timeout=5))
        lp.close()
        asyncio.set_event_loop(None)


def runner(lp):
    """run(coro, timeout=30): run a coroutine on lp, bounded."""
    def run(coro, timeout=30):
        return lp.run_until_complete(asyncio.wait_for(coro, timeout))
    return run
