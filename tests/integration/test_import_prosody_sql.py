"""parleyctl import-prosody-sql: a private Prosody 0.12 (Debian's) with
storage = "sql" on SQLite, and on PostgreSQL and MariaDB when a server is
at hand (run-pgsql.sh, run-mysql.sh), is filled through Prosody itself (prosodyctl
register, then slixmpp clients setting a roster with groups, a vCard with
a photo, private XML, a block list and a PEP bookmark, a pending
subscription request and an offline message), stopped, and imported into
a Parley store.  The users then log in to Parley with their original
passwords (SCRAM-SHA-1 from Prosody's internal_hashed values, and PLAIN;
SCRAM-SHA-256 too for a user whose password Prosody kept in clear), and
their data is there.  The source is not changed; a second run skips every
user.  PEP nodes and items (a bookmark) come across too."""
import asyncio
import glob
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import parleytest
from test_pubsub import PubsubParleyd
from parleytest import (HOST, OTHER, _pg_dsn, free_port, iq, login, logout, my_sql, next_message, pg_psql,
                        tostr)

pytestmark = pytest.mark.skipif(shutil.which('prosody') is None or shutil.which('prosodyctl') is None,
                                reason='prosody is not installed (apt-get install prosody)')


def lua_dbd(name):
    """Whether Prosody's SQL storage can reach this database (lua-dbi-NAME)."""
    return bool(glob.glob('/usr/lib/*/lua/5.*/dbd/%s.so' % name))

THIRD = 'third.local'
PW = {('alice', HOST): 'Alice pw 1', ('bob', HOST): 'bob-pw-2', ('carol', OTHER): 'carol plain 3',
      ('dan', THIRD): 'dan sha256 4'}
PHOTO = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=='


class Prosody(parleytest.ProsodyProcess):
    """A private Prosody with SQL storage: test.local keeps hashed
    passwords (internal_hashed, SCRAM-SHA-1), other.local plain ones
    (internal_plain), third.local SCRAM-SHA-256 ones."""

    def __init__(self, workdir, sql):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = self.port
        subprocess.run(
            ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
             '-nodes', '-days', '30', '-subj', '/CN=' + HOST, '-addext',
             'subjectAltName=DNS:%s,DNS:%s,DNS:%s' % (HOST, OTHER, THIRD), '-keyout', str(self.dir / 'key.pem'),
             '-out', str(self.dir / 'cert.pem')],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=30)
        (self.dir / 'data').mkdir()
        self.config = self.dir / 'prosody.cfg.lua'
        self.logfile = self.dir / 'prosody.log'
        ssl = 'ssl = { certificate = "%s/cert.pem"; key = "%s/key.pem" }' % (self.dir, self.dir)
        self.config.write_text(f'''-- written by tests/integration/test_import_prosody_sql.py
daemonize = false
run_as_root = true
pidfile = "{self.dir}/prosody.pid"
data_path = "{self.dir}/data"
log = {{ debug = "{self.logfile}" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
s2s_ports = {{ }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "vcard"; "private"; "blocklist";
                    "offline"; "pep"; "bookmarks" }}
modules_disabled = {{ "s2s"; "c2s_limits" }}
storage = "sql"
sql = {sql}
c2s_require_encryption = true
allow_registration = false
VirtualHost "{HOST}"
  authentication = "internal_hashed"
  {ssl}
VirtualHost "{OTHER}"
  authentication = "internal_plain"
  {ssl}
VirtualHost "{THIRD}"
  authentication = "internal_hashed"
  password_hash = "SHA-256"
  {ssl}
''')
        self.proc = None

    def prosodyctl(self, *args):
        r = subprocess.run(['prosodyctl', '--config', str(self.config)] + list(args), cwd=str(self.dir),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (args, r.stdout, r.stderr)

    def password(self, user, host):
        return PW[(user, host)]


def fill(prosody, run):
    """Users and their data, through Prosody itself."""
    for (user, host), pw in PW.items():
        prosody.prosodyctl('register', user, host, pw)
    prosody.start()
    try:
        async def go():
            a = await login(prosody, 'alice', host=HOST, resource='r')
            for payload in (
                    "<query xmlns='jabber:iq:roster'><item jid='carol@%s' name='Carol'>"
                    "<group>Friends</group><group>Work</group></item></query>" % OTHER,
                    "<vCard xmlns='vcard-temp'><FN>Alice Prosody</FN><PHOTO><TYPE>image/png</TYPE>"
                    "<BINVAL>%s</BINVAL></PHOTO></vCard>" % PHOTO,
                    "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs' a='1'>"
                    "<colour>green &amp; blue</colour></prefs></query>",
                    "<block xmlns='urn:xmpp:blocking'><item jid='spam@example.net'/></block>",
                    "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'>"
                    "<item id='room@conference.example.org'><conference xmlns='urn:xmpp:bookmarks:1' "
                    "name='Room' autojoin='true'/></item></publish></pubsub>"):
                el = await iq(a, 'set', None, payload)
                assert el.get('type') == 'result', tostr(el)
            # a request bob has not answered (bob is offline), and a message
            # waiting for him
            a.send_presence(pto='bob@' + HOST, ptype='subscribe')
            a.send_message(mto='bob@' + HOST, mbody='hello from prosody', mtype='chat')
            await iq(a, 'get', HOST, "<ping xmlns='urn:xmpp:ping'/>")
            await logout(a)
        run(go(), timeout=60)
    finally:
        prosody.stop()


def store_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(params=['sqlite', 'pgsql', 'mysql'])
def prosody_store(request, tmp_path_factory, run):
    """A filled Prosody store: (driver, source, the SQLite file, or the
    password file for MySQL, or None)."""
    yield from make_store(request.param, tmp_path_factory, run)


@pytest.fixture
def prosody_sqlite(tmp_path_factory, run):
    yield from make_store('sqlite', tmp_path_factory, run)


def make_store(kind, tmp_path_factory, run):
    d = tmp_path_factory.mktemp('prosody-sql')
    if kind == 'sqlite':
        if not lua_dbd('sqlite3'):
            pytest.skip('Prosody cannot use SQLite (apt-get install lua-dbi-sqlite3)')
        db = d / 'prosody.sqlite'
        fill(Prosody(d / 'prosody', '{ driver = "SQLite3", database = "%s" }' % db), run)
        yield 'sqlite', str(db), db
        return
    if kind == 'mysql':
        yield from prosody_mysql(d, run)
        return
    if not lua_dbd('postgresql'):
        pytest.skip('Prosody cannot use PostgreSQL (apt-get install lua-dbi-postgresql)')
    if 'PARLEY_TEST_PGSQL_SUPER_DSN' not in os.environ:
        pytest.skip('no PostgreSQL server (run through tests/integration/run-pgsql.sh)')
    super_dsn = os.environ['PARLEY_TEST_PGSQL_SUPER_DSN']
    port = os.environ['PARLEY_TEST_PGSQL_PORT']
    name = 'prosody_' + uuid.uuid4().hex[:12]
    pg_psql(super_dsn, 'CREATE DATABASE %s OWNER postgres' % name)
    fill(Prosody(d / 'prosody', '{ driver = "PostgreSQL", database = "%s", username = "postgres", '
                 'host = "127.0.0.1", port = %s }' % (name, port)), run)
    # Parley reads it as a role that may only read
    ro = 'ro_' + name
    dsn = _pg_dsn(super_dsn, name)
    pg_psql(super_dsn, 'CREATE ROLE %s LOGIN' % ro)
    pg_psql(dsn, 'GRANT SELECT ON prosody, prosodyarchive TO %s' % ro)
    try:
        yield 'pgsql', 'host=127.0.0.1 port=%s dbname=%s user=%s sslmode=disable' % (port, name, ro), None
    finally:
        pg_psql(super_dsn, 'DROP DATABASE %s' % name)
        pg_psql(super_dsn, 'DROP ROLE %s' % ro)


def prosody_mysql(d, run):
    """Prosody on the MariaDB of run-mysql.sh, read by a user that may only
    SELECT, whose password is in a file."""
    if not lua_dbd('mysql'):
        pytest.skip('Prosody cannot use MySQL (apt-get install lua-dbi-mysql)')
    if 'PARLEY_TEST_MYSQL_ADMIN_PASSWORD' not in os.environ:
        pytest.skip('no MariaDB server (run through tests/integration/run-mysql.sh)')
    port = os.environ['PARLEY_TEST_MYSQL_PORT']
    name = 'prosody_' + uuid.uuid4().hex[:12]
    pw, ro_pw = uuid.uuid4().hex, uuid.uuid4().hex
    my_sql('CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_bin' % name)
    my_sql("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'" % (name, pw))
    my_sql("GRANT ALL ON %s.* TO '%s'@'127.0.0.1'" % (name, name))
    ro = 'ro_' + name[-12:]
    try:
        fill(Prosody(d / 'prosody', '{ driver = "MySQL", database = "%s", username = "%s", password = "%s", '
                     'host = "127.0.0.1", port = %s }' % (name, name, pw, port)), run)
        my_sql("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'" % (ro, ro_pw))
        for table in ('prosody', 'prosodyarchive'):
            my_sql("GRANT SELECT ON %s.%s TO '%s'@'127.0.0.1'" % (name, table, ro))
        pwfile = d / 'ro.pw'
        pwfile.write_text(ro_pw + '\n')
        pwfile.chmod(0o600)
        yield 'mysql', 'host=127.0.0.1 port=%s dbname=%s user=%s sslmode=disable' % (port, name, ro), pwfile
    finally:
        my_sql('DROP DATABASE %s' % name)
        my_sql("DROP USER IF EXISTS '%s'@'127.0.0.1'" % name)
        my_sql("DROP USER IF EXISTS '%s'@'127.0.0.1'" % ro)


def parley_for_import(tmp_path_factory):
    """A parleyd (not started) with PEP on test.local, for the users of
    Prosody's three hosts."""
    s = PubsubParleyd(tmp_path_factory.mktemp('parley-from-prosody'), users={},
                      extra_hosts='  %s: {}\n' % THIRD)
    s.passwords.update(PW)
    return s


def test_import_prosody_sql(prosody_store, tmp_path_factory, run):
    driver, source, extra = prosody_store
    db = extra if driver == 'sqlite' else None
    args = ['--password-file', extra] if driver == 'mysql' else []
    if db is not None:
        con = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
        stores = {r[0] for r in con.execute('SELECT DISTINCT store FROM prosody')}
        con.close()
        assert {'accounts', 'roster', 'vcard', 'private', 'blocklist', 'pep'} <= stores, stores
        before = store_digest(db)
    s = parley_for_import(tmp_path_factory)
    try:
        r = s.ctl('import-prosody-sql', *args, driver, source)
        assert r.returncode == 0, (r.stdout, r.stderr)
        out = r.stdout
        assert 'imported 4 users, skipped 0' in out, out
        assert ('imported: 2 roster items, 1 pending request, 1 vCard, 1 private XML element, '
                '1 offline message, 1 blocked JID') in out, out
        assert 'PEP: 2 nodes with 1 item' in out, out
        assert 'not imported' not in out, out
        if db is not None:
            # read-only: the file is the same, and no journal was left beside it
            assert store_digest(db) == before
            assert not Path(str(db) + '-wal').exists()

        # idempotent: a second run skips every user and changes nothing
        r = s.ctl('import-prosody-sql', *args, driver, source)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert 'imported 0 users, skipped 4' in r.stdout, r.stdout
        assert 'skipped: alice@%s exists' % HOST in r.stdout, r.stdout

        s.start()

        async def go():
            # SCRAM-SHA-1 from Prosody's hashed values, and PLAIN against them
            for mech in ('SCRAM-SHA-1', 'PLAIN'):
                c = await login(s, 'alice', host=HOST, mech=mech)
                await logout(c)
            # a plain password: every mechanism
            for mech in ('SCRAM-SHA-1', 'SCRAM-SHA-256', 'PLAIN'):
                c = await login(s, 'carol', host=OTHER, mech=mech)
                await logout(c)
            # SCRAM-SHA-256 from a Prosody with password_hash = "SHA-256"
            for mech in ('SCRAM-SHA-256', 'PLAIN'):
                c = await login(s, 'dan', host=THIRD, mech=mech)
                await logout(c)
            with pytest.raises(parleytest.LoginFailed):
                await login(s, 'alice', host=HOST, password='wrong', mech='SCRAM-SHA-1')

            a = await login(s, 'alice', host=HOST, resource='r')
            el = await iq(a, 'get', None, "<query xmlns='jabber:iq:roster'/>")
            items = {i.get('jid'): i for i in el.iter('{jabber:iq:roster}item')}
            carol = items['carol@%s' % OTHER]
            assert carol.get('name') == 'Carol', tostr(el)
            assert sorted(g.text for g in carol.findall('{jabber:iq:roster}group')) == ['Friends', 'Work']
            assert items['bob@%s' % HOST].get('ask') == 'subscribe', tostr(el)
            el = await iq(a, 'get', None, "<vCard xmlns='vcard-temp'/>")
            v = el.find('{vcard-temp}vCard')
            assert v.findtext('{vcard-temp}FN') == 'Alice Prosody', tostr(el)
            assert v.findtext('{vcard-temp}PHOTO/{vcard-temp}BINVAL') == PHOTO, tostr(el)
            el = await iq(a, 'get', None,
                          "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query>")
            prefs = el.find('{jabber:iq:private}query/{urn:example:prefs}prefs')
            assert prefs is not None and prefs.get('a') == '1', tostr(el)
            assert prefs.findtext('{urn:example:prefs}colour') == 'green & blue', tostr(el)
            # the bookmark Prosody kept in PEP
            el = await iq(a, 'get', None, "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                          "<items node='urn:xmpp:bookmarks:1'/></pubsub>")
            item = el.find('.//{http://jabber.org/protocol/pubsub}item')
            assert item is not None and item.get('id') == 'room@conference.example.org', tostr(el)
            assert item.find('{urn:xmpp:bookmarks:1}conference').get('name') == 'Room', tostr(el)
            el = await iq(a, 'get', None, "<blocklist xmlns='urn:xmpp:blocking'/>")
            assert [i.get('jid') for i in el.iter('{urn:xmpp:blocking}item')] == ['spam@example.net'], \
                tostr(el)
            await logout(a)

            # bob: the pending request and the offline message on login
            requests = asyncio.Queue()

            async def prepare(c):
                c.auto_authorize = None
                c.add_event_handler('presence_subscribe', requests.put_nowait)
            b = await login(s, 'bob', host=HOST, resource='r', prepare=prepare)
            m = await next_message(b, pred=lambda m: m['body'] == 'hello from prosody')
            assert m['from'].bare == 'alice@' + HOST
            p = await asyncio.wait_for(requests.get(), 10)
            assert p['from'].bare == 'alice@' + HOST
            await logout(b)
        run(go(), timeout=90)
    finally:
        s.finish()


def test_import_prosody_refusals(prosody_sqlite, tmp_path_factory):
    _, db, _ = prosody_sqlite
    s = parley_for_import(tmp_path_factory)
    try:
        # a host of the store that is not configured here is a failure;
        # --host imports one host alone
        text = s.config.read_text()
        s.config.write_text(text.replace('  %s: {}\n' % OTHER, ''))
        r = s.ctl('import-prosody-sql', 'sqlite', db)
        assert r.returncode != 0, r.stdout
        assert 'host %s (1 user) is not in' % OTHER in r.stdout + r.stderr, (r.stdout, r.stderr)
        assert 'imported 3 users' in r.stdout, r.stdout
        s.config.write_text(text)
        r = s.ctl('import-prosody-sql', '--host', OTHER, 'sqlite', db)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert 'imported 1 user, skipped 0' in r.stdout, r.stdout
        # not a Prosody store, a file that is not there, a driver we do not
        # read, a bad option
        r = s.ctl('import-prosody-sql', 'sqlite', s.dir / 'parley.db')
        assert r.returncode != 0 and 'prosody' in r.stderr, (r.stdout, r.stderr)
        r = s.ctl('import-prosody-sql', 'sqlite', s.dir / 'missing.sqlite')
        assert r.returncode != 0 and 'cannot open' in r.stderr, (r.stdout, r.stderr)
        r = s.ctl('import-prosody-sql', 'oracle', 'x')
        assert r.returncode != 0 and 'oracle' in r.stderr, (r.stdout, r.stderr)
        r = s.ctl('import-prosody-sql', '--hots', OTHER, 'sqlite', db)
        assert r.returncode != 0 and 'usage' in r.stderr, (r.stdout, r.stderr)
    finally:
        s.finish()
