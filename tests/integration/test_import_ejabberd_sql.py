"""parleyctl import-ejabberd-sql: an ejabberd 23.01 (Debian's) on a real
PostgreSQL database and on a real MariaDB, with the multi-host schema
(sql/pg.new.sql, sql/mysql.new.sql as the package installs them), filled
through ejabberd itself, is imported; every
user logs in to Parley with the original password (SCRAM-SHA-1, PLAIN,
and SCRAM-SHA-256 for the users whose password ejabberd kept in clear) and
finds the roster with its groups, the pending request, the vCard, private
XML, offline messages, privacy and block lists and the archive.  The
source is read through a role that may only SELECT, and a second run
skips everybody.  The single-host schema (sql/pg.sql, sql/mysql.sql) is
read from rows written as that schema documents them.

ejabberd and the databases run privately on loopback (tests/db/pgsql.sh,
tests/db/mariadb.sh, the parleytest.Ejabberd instance with its
configuration replaced by one using SQL)."""
import base64
import hashlib
import hmac
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import parleytest
from parleytest import (HOST, OTHER, NS_BLOCKING, NS_CLIENT, NS_PRIVACY, NS_ROSTER, ejabberdctl, iq_ok,
                        items_of, q, raw_login, stanza_error, tostr)

EJ_SQL = Path('/usr/share/ejabberd/sql')
PASSWORDS = {('alice', HOST): 'Juliet is the sun', ('bob', HOST): 'b0b secret',
             ('carol', HOST): 'carol pass', ('dave', OTHER): 'dave plain pw',
             ('erin', OTHER): 'erin plain pw'}
NS_MAM = 'urn:xmpp:mam:2'
DB_DIR = Path(__file__).resolve().parent.parent / 'db'
SCRIPT = DB_DIR / 'pgsql.sh'


def have_mariadb():
    return shutil.which('mariadbd') or shutil.which('mysqld') or Path('/usr/sbin/mariadbd').exists()


def have_pgsql():
    if shutil.which('initdb'):
        return True
    return any(Path(d, 'bin', 'initdb').exists() for d in Path('/usr/lib/postgresql').glob('*'))


pytestmark = [
    pytest.mark.skipif(ejabberdctl() is None or not (EJ_SQL / 'pg.new.sql').exists(),
                       reason='ejabberd is not installed (apt-get install ejabberd)'),
    pytest.mark.skipif(not have_pgsql(), reason='PostgreSQL is not installed (apt-get install postgresql)'),
]


class Pg:
    kind = 'pgsql'
    new_schema, old_schema = 'pg.new.sql', 'pg.sql'

    def __init__(self):
        # The postgres user must reach it: not under pytest's private root.
        self.top = Path(tempfile.mkdtemp(prefix='parley-ejsql-pg-'))
        self.top.chmod(0o755)
        self.dir = self.top / 'pg'
        subprocess.run(['bash', str(SCRIPT), 'start', str(self.dir)], check=True, timeout=180)
        env = {}
        for line in (self.dir / 'env').read_text().splitlines():
            if '=' in line and not line.startswith('export'):
                k, v = line.split('=', 1)
                env[k] = v.strip("'")
        self.port = int(env['PARLEY_TEST_PGSQL_PORT'])
        self.bindir = env['PARLEY_TEST_PGSQL_BINDIR']

    def psql(self, db, sql=None, file=None):
        argv = [os.path.join(self.bindir, 'psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
                '-h', str(self.dir / 'sock'), '-p', str(self.port), '-U', 'postgres', '-d', db]
        argv += ['-f', str(file)] if file else ['-c', sql]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (sql, file, r.stderr)
        return r.stdout

    def sql(self, db, sql):
        return self.psql(db, sql)

    def make_db(self, name, schema):
        """Database name with ejabberd's schema file, and the role
        ejreader that may only read it."""
        self.psql('postgres', 'CREATE DATABASE %s' % name)
        self.psql(name, "SET client_min_messages = warning", file=EJ_SQL / schema)
        self.psql(name, "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ejreader') "
                  "THEN CREATE ROLE ejreader LOGIN; END IF; END $$; "
                  "GRANT SELECT ON ALL TABLES IN SCHEMA public TO ejreader")

    def dsn(self, db):
        return 'pgsql:host=127.0.0.1 port=%d dbname=%s user=ejreader sslmode=disable' % (self.port, db)

    def ejabberd_sql(self):
        return ('sql_type: pgsql\nsql_server: "127.0.0.1"\nsql_port: %d\nsql_database: ejabberd\n'
                'sql_username: postgres\nsql_password: "unused"\n' % self.port)

    def digest(self, db):
        return self.psql(db, "SELECT md5(string_agg(t, '|' ORDER BY t)) FROM (%s) AS x" % DIGEST_ROWS)

    def stop(self):
        subprocess.run(['bash', str(SCRIPT), 'stop', str(self.dir)], timeout=60)
        shutil.rmtree(str(self.top), ignore_errors=True)


def ejabberd_config(ej, db):
    etc = Path(ej.dir) / 'etc'
    (etc / 'ejabberd.yml').write_text(f'''# written by test_import_ejabberd_sql.py
loglevel: info
log_rotate_count: 0
hosts:
  - {HOST}
  - {OTHER}
certfiles:
  - "{etc}/ejabberd.pem"
listen:
  -
    port: {ej.port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: true
    shaper: none
  -
    port: {ej.s2s_port}
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
{db.ejabberd_sql()}sql_pool_size: 2
new_sql_schema: true
default_db: sql
auth_method: sql
auth_password_format: scram
host_config:
  {OTHER}:
    auth_password_format: plain
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
  max_user_offline_messages: 100
  c2s_shaper: none
modules:
  mod_admin_extra: {{}}
  mod_blocking: {{}}
  mod_disco: {{}}
  mod_mam:
    default: always
  mod_muc_admin: {{}}
  mod_muc:
    access_create: all
    default_room_options:
      mam: true
  mod_last: {{}}
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_privacy: {{}}
  mod_private: {{}}
  mod_roster: {{}}
  mod_vcard:
    search: false
''')
    shutil.chown(str(etc / 'ejabberd.yml'), 'ejabberd', 'ejabberd')


PHOTO = ('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==')


def fill(ej, run):
    T, O = HOST, OTHER
    for (user, host), pw in PASSWORDS.items():
        ej.ctl('register', user, host, pw)
    ej.ctl('add_rosteritem', 'alice', T, 'bob', T, 'Bob', 'Friends', 'both')
    ej.ctl('add_rosteritem', 'bob', T, 'alice', T, 'Alice', 'Friends', 'both')
    ej.ctl('add_rosteritem', 'alice', T, 'dave', O, 'Dave', 'Work', 'to')
    ej.ctl('add_rosteritem', 'dave', O, 'alice', T, 'Alice', '', 'from')
    # an archived conversation through ejabberd's c2s, before anything is
    # pending (slixmpp would accept a pending request)
    async def talk():
        b = await parleytest.login(ej, 'bob', host=T, resource='y', password=PASSWORDS[('bob', T)])
        e = await parleytest.login(ej, 'erin', host=O, resource='x', password=PASSWORDS[('erin', O)])
        e.send_message(mto='bob@' + T, mbody='archived one', mtype='chat')
        await parleytest.next_message(b, pred=lambda m: m['body'] == 'archived one', timeout=20)
        b.send_message(mto='erin@' + O, mbody='archived two', mtype='chat')
        await parleytest.next_message(e, pred=lambda m: m['body'] == 'archived two', timeout=20)
        await parleytest.logout(b, e)
    run(talk(), timeout=90)
    ej.ctl('send_stanza', 'erin@' + O, 'alice@' + T, "<presence xmlns='jabber:client' type='subscribe'/>")
    stanzas = [
        ('alice', "<vCard xmlns='vcard-temp'><FN>Alice A.</FN><NICKNAME>al</NICKNAME><PHOTO>"
         "<TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard>" % PHOTO),
        ('alice', "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>"
         "<colour>green</colour></prefs></query>"),
        ('alice', "<query xmlns='jabber:iq:privacy'><list name='work'><item type='jid' "
         "value='dave@%s' action='allow' order='1'/><item type='subscription' value='none' "
         "action='deny' order='2'><message/></item></list></query>" % O),
        ('alice', "<query xmlns='jabber:iq:privacy'><default name='work'/></query>"),
        ('bob', "<block xmlns='urn:xmpp:blocking'><item jid='dave@%s'/></block>" % O),
        ('alice', "<block xmlns='urn:xmpp:blocking'><item jid='spam.example'/></block>"),
    ]
    for i, (user, payload) in enumerate(stanzas):
        ej.ctl('send_stanza', '%s@%s/fix' % (user, T), '%s@%s' % (user, T),
               "<iq xmlns='jabber:client' type='set' id='f%d'>%s</iq>" % (i, payload))
    ej.ctl('send_message', 'chat', 'bob@%s/desk' % T, 'carol@' + T, '', 'first offline message')
    ej.ctl('send_message', 'chat', 'alice@%s/desk' % T, 'carol@' + T, '', 'second')
    ej.ctl('send_message', 'chat', 'alice@%s/desk' % T, 'dave@' + O, '', 'hello dave')
    fill_rooms(ej)


ROOM_SVC = 'conference.' + HOST
NS_MUC = 'http://jabber.org/protocol/muc'
NS_MUC_ADMIN = NS_MUC + '#admin'
NS_MUC_USER = NS_MUC + '#user'
ROOM_MESSAGES = [('cc', 'room one'), ('bobby', 'room two'), ('cc', 'room three')]
LAST_SECONDS_AGO = 7200


def join(c, room, nick, password=None):
    """Enter room as nick; returns the self-presence (status 110) or the
    error presence."""
    pw = '<password>%s</password>' % password if password else ''
    c.send("<presence to='%s/%s'><x xmlns='%s'><history maxstanzas='0'/>%s</x></presence>"
           % (room, nick, NS_MUC, pw))

    def mine(e):
        if e.tag != q(NS_CLIENT, 'presence') or not e.get('from', '').startswith(room + '/' + nick):
            return False
        return e.get('type') == 'error' or any(
            st.get('code') == '110' for st in e.iter(q(NS_MUC_USER, 'status')))
    return c.wait_for(mine, timeout=15, what='the self-presence in %s' % room)


def fill_rooms(ej):
    """Two persistent rooms made and configured through ejabberdctl, a
    registered nick, a conversation in one room (its archive), alice's
    archive preferences set by her client and bob's last activity."""
    S = ROOM_SVC
    ej.ctl('create_room', 'team', S, HOST)
    for opt, val in [('persistent', 'true'), ('title', 'Team room'), ('description', 'Daily "stand-up"'),
                     ('members_only', 'true'), ('moderated', 'true'), ('public', 'false'),
                     ('mam', 'true'), ('allow_change_subj', 'false')]:
        ej.ctl('change_room_option', 'team', S, opt, val)
    for jid, aff in [('alice@' + HOST, 'owner'), ('bob@' + HOST, 'member'), ('carol@' + HOST, 'member'),
                     ('dave@' + OTHER, 'admin'), ('spam.example', 'outcast')]:
        ej.ctl('set_room_affiliation', 'team', S, jid, aff)
    ej.ctl('create_room', 'locked', S, HOST)
    for opt, val in [('persistent', 'true'), ('password_protected', 'true'), ('password', 's3cret'),
                     ('captcha_protected', 'true'), ('mam', 'false'), ('title', 'Caf\u00e9 \u2615')]:
        ej.ctl('change_room_option', 'locked', S, opt, val)
    ej.ctl('set_room_affiliation', 'locked', S, 'carol@' + HOST, 'owner')
    ej.ctl('muc_register_nick', 'bobby', 'bob@' + HOST, S)
    # carol and bob talk in the room (alice's default privacy list would
    # refuse the room's messages: no subscription to it)
    a = parleytest.RawClient(ej.port, host=HOST)
    b = parleytest.RawClient(ej.port, host=HOST)
    c = parleytest.RawClient(ej.port, host=HOST)
    try:
        a.login('alice', PASSWORDS[('alice', HOST)], resource='muc', presence=False)
        b.login('bob', PASSWORDS[('bob', HOST)], resource='muc', presence=False)
        c.login('carol', PASSWORDS[('carol', HOST)], resource='muc', presence=False)
        assert join(c, 'team@' + S, 'cc').get('type') != 'error'
        assert join(b, 'team@' + S, 'bobby').get('type') != 'error'
        for nick, body in ROOM_MESSAGES:
            cl = c if nick == 'cc' else b
            cl.send("<message to='team@%s' type='groupchat'><body>%s</body></message>" % (S, body))
            cl.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') and
                        e.findtext(q(NS_CLIENT, 'body')) == body, timeout=15, what='the reflection')
        # archive preferences through alice's client
        iq_ok(a, 'set', "<prefs xmlns='%s' default='roster'><always><jid>bob@%s</jid></always>"
              "<never><jid>spam@%s</jid></never></prefs>" % (NS_MAM, HOST, OTHER))
    finally:
        a.close()
        b.close()
        c.close()
    ej.ctl('set_last', 'bob', HOST, str(int(time.time()) - LAST_SECONDS_AGO), 'gone fishing')



DIGEST_ROWS = ("SELECT CONCAT('u', username, password) AS t FROM users UNION ALL "
               "SELECT CONCAT('r', username, jid, subscription, ask) FROM rosterusers UNION ALL "
               "SELECT CONCAT('s', username, xml) FROM spool UNION ALL "
               "SELECT CONCAT('a', username, xml) FROM archive")


class Maria:
    kind = 'mysql'
    new_schema, old_schema = 'mysql.new.sql', 'mysql.sql'

    def __init__(self):
        self.top = Path(tempfile.mkdtemp(prefix='parley-ejsql-my-'))
        self.top.chmod(0o755)
        self.dir = self.top / 'my'
        subprocess.run(['bash', str(DB_DIR / 'mariadb.sh'), 'start', str(self.dir)], check=True, timeout=180,
                       stdout=subprocess.DEVNULL)
        env = {}
        for line in (self.dir / 'env').read_text().splitlines():
            if '=' in line and not line.startswith('export'):
                k, v = line.split('=', 1)
                env[k] = v.strip("'")
        self.port = int(env['PARLEY_TEST_MYSQL_PORT'])
        self.socket = env['PARLEY_TEST_MYSQL_SOCKET']
        self.rootpw = env['PARLEY_TEST_MYSQL_ADMIN_PASSWORD']
        self.client = shutil.which('mariadb') or shutil.which('mysql')
        self.sql('mysql', "CREATE USER IF NOT EXISTS 'ejabberd'@'127.0.0.1' IDENTIFIED BY 'ej-pw'; "
                 "CREATE USER IF NOT EXISTS 'ejreader'@'127.0.0.1' IDENTIFIED BY 'reader-pw'")

    def sql(self, db, sql=None, file=None):
        r = subprocess.run([self.client, '--no-defaults', '--socket=' + self.socket, '-uroot',
                            '--password=' + self.rootpw, '-N', '-B', db] + ([] if file else ['-e', sql]),
                           input=Path(file).read_text() if file else None,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (sql, file, r.stderr)
        return r.stdout

    def make_db(self, name, schema):
        self.sql('mysql', 'CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
        self.sql(name, file=EJ_SQL / schema)
        self.sql('mysql', "GRANT ALL ON %s.* TO 'ejabberd'@'127.0.0.1'; "
                 "GRANT SELECT ON %s.* TO 'ejreader'@'127.0.0.1'" % (name, name))

    def dsn(self, db):
        return 'mysql:host=127.0.0.1 port=%d dbname=%s user=ejreader password=reader-pw' % (self.port, db)

    def ejabberd_sql(self):
        return ('sql_type: mysql\nsql_server: "127.0.0.1"\nsql_port: %d\nsql_database: ejabberd\n'
                'sql_username: ejabberd\nsql_password: "ej-pw"\n' % self.port)

    def digest(self, db):
        return self.sql(db, "SELECT MD5(GROUP_CONCAT(t ORDER BY t SEPARATOR '|')) FROM (%s) AS x"
                        % DIGEST_ROWS)

    def stop(self):
        subprocess.run(['bash', str(DB_DIR / 'mariadb.sh'), 'stop', str(self.dir)], timeout=60,
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(str(self.top), ignore_errors=True)


@pytest.fixture(scope='module', params=['pgsql', 'mysql'])
def source(request):
    if request.param == 'mysql' and not have_mariadb():
        pytest.skip('MariaDB is not installed (apt-get install mariadb-server)')
    pg = Pg() if request.param == 'pgsql' else Maria()
    ej = None
    try:
        with parleytest.event_loop() as lp:
            pg.make_db('ejabberd', pg.new_schema)
            ej = parleytest.Ejabberd(HOST, None, {})
            ejabberd_config(ej, pg)
            ej.start()
            fill(ej, parleytest.runner(lp))
            ej.stop()
            ej = None
        yield pg
    finally:
        if ej is not None:
            ej.stop()
        pg.stop()


@pytest.fixture
def empty_srv(tmp_path_factory):
    s = parleytest.Parleyd(tmp_path_factory.mktemp('parley-ejsql'), users={})
    yield s
    if s.running():
        s.finish()


def test_import_from_ejabberd(source, empty_srv, run):
    pg, s = source, empty_srv
    before = pg.digest('ejabberd')
    dsn = pg.dsn('ejabberd')
    # one host of the database first
    r = s.ctl('import-ejabberd-sql', '--dsn', dsn, '--host', OTHER)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert 'multi-host' in r.stdout, r.stdout
    assert 'imported 2 users, skipped 0, 0 failures\n' in r.stdout, r.stdout
    assert 'imported: erin@%s' % OTHER in r.stdout and HOST not in r.stdout, r.stdout
    # then all of it: the users of that host are skipped
    r = s.ctl('import-ejabberd-sql', '--dsn', dsn)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert 'imported 3 users, skipped 2, 0 failures\n' in r.stdout, r.stdout
    assert '1 pending request,' in r.stdout, r.stdout
    assert ', 1 vCard, 1 private XML element, 2 offline messages, 2 privacy lists (2 blocked JIDs in ' \
        'them), 7 archived messages\n' in r.stdout, r.stdout
    # idempotent: everybody is skipped the second time
    r2 = s.ctl('import-ejabberd-sql', '--dsn', dsn)
    assert r2.returncode == 0 and 'imported 0 users, skipped 5, 0 failures\n' in r2.stdout, r2.stdout
    assert pg.digest('ejabberd') == before
    s.passwords = dict(PASSWORDS)
    s.start()
    # not while parleyd runs (it opens the stores itself)
    r = s.ctl('import-ejabberd-sql', '--dsn', dsn)
    assert r.returncode == 5, (r.returncode, r.stdout, r.stderr)

    a = raw_login(s, 'alice')
    try:
        a.send('<presence/>')
        p = a.wait_for(lambda e: e.tag == q(NS_CLIENT, 'presence') and e.get('type') == 'subscribe',
                       timeout=10, what='the pending subscription request')
        assert p.get('from') == 'erin@%s' % OTHER, tostr(p)
        r = iq_ok(a, 'get', "<query xmlns='jabber:iq:roster'/>")
        roster = {i.get('jid'): i for i in items_of(r, NS_ROSTER)}
        assert sorted(roster) == ['bob@%s' % HOST, 'dave@%s' % OTHER], tostr(r)
        assert roster['bob@%s' % HOST].get('subscription') == 'both'
        assert roster['bob@%s' % HOST].get('name') == 'Bob'
        assert [g.text for g in roster['bob@%s' % HOST]] == ['Friends']
        assert roster['dave@%s' % OTHER].get('subscription') == 'to'
        assert [g.text for g in roster['dave@%s' % OTHER]] == ['Work']
        r = iq_ok(a, 'get', "<vCard xmlns='vcard-temp'/>")
        assert r.findtext('.//' + q('vcard-temp', 'FN')) == 'Alice A.'
        assert r.findtext('.//' + q('vcard-temp', 'BINVAL')) == PHOTO, tostr(r)
        r = iq_ok(a, 'get', "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query>")
        assert r.findtext('.//{urn:example:prefs}colour') == 'green', tostr(r)
        r = iq_ok(a, 'get', "<blocklist xmlns='urn:xmpp:blocking'/>")
        assert [i.get('jid') for i in items_of(r, NS_BLOCKING)] == ['spam.example'], tostr(r)
        r = iq_ok(a, 'get', "<query xmlns='jabber:iq:privacy'/>")
        assert [l.get('name') for l in items_of(r, NS_PRIVACY, 'list')] == ['work'], tostr(r)
        assert r.find('.//' + q(NS_PRIVACY, 'default')).get('name') == 'work'
        r = iq_ok(a, 'get', "<query xmlns='jabber:iq:privacy'><list name='work'/></query>")
        assert [(i.get('type'), i.get('value'), i.get('action'), i.get('order'),
                 [c.tag for c in i]) for i in items_of(r, NS_PRIVACY)] == \
            [('jid', 'dave@%s' % OTHER, 'allow', '1', []),
             ('subscription', 'none', 'deny', '2', [q(NS_PRIVACY, 'message')])], tostr(r)
    finally:
        a.close()
    b = raw_login(s, 'bob')
    try:
        r = iq_ok(b, 'get', "<blocklist xmlns='urn:xmpp:blocking'/>")
        assert [i.get('jid') for i in items_of(r, NS_BLOCKING)] == ['dave@%s' % OTHER], tostr(r)
        r = iq_ok(b, 'get', "<query xmlns='jabber:iq:privacy'/>")
        assert items_of(r, NS_PRIVACY, 'list') == [], tostr(r)
        # the archive: both directions of the conversation, in order
        b.send("<iq type='set' id='mam1'><query xmlns='%s' queryid='q1'/></iq>" % NS_MAM)
        got = []
        while True:
            e = b.wait_for(lambda e: e.tag == q(NS_CLIENT, 'message') or e.get('id') == 'mam1',
                           timeout=10, what='archive results')
            if e.get('id') == 'mam1':
                assert e.get('type') == 'result', tostr(e)
                break
            fwd = e.find('.//' + q(NS_CLIENT, 'message'))
            got.append((fwd.get('from').split('/')[0], fwd.findtext(q(NS_CLIENT, 'body'))))
        assert got == [('erin@%s' % OTHER, 'archived one'), ('bob@%s' % HOST, 'archived two'),
                       ('bob@%s' % HOST, 'first offline message')], got
    finally:
        b.close()
    c = raw_login(s, 'carol')
    try:
        c.send('<presence/>')
        got = [c.wait_message(timeout=10) for _ in range(2)]
        assert [m.findtext(q(NS_CLIENT, 'body')) for m in got] == ['first offline message', 'second']
    finally:
        c.close()
    d = raw_login(s, 'dave', host=OTHER)
    try:
        d.send('<presence/>')
        d.wait_message('hello dave', timeout=10)
    finally:
        d.close()

    # SCRAM-SHA-1 for everybody (ejabberd's own SCRAM values on test.local);
    # SCRAM-SHA-256 where ejabberd kept the password in clear
    async def scram_logins():
        for (user, host) in PASSWORDS:
            mechs = ['SCRAM-SHA-1'] + (['SCRAM-SHA-256'] if host == OTHER else [])
            for mech in mechs:
                cl = await parleytest.login(s, user, host=host, mech=mech)
                await parleytest.logout(cl)
    run(scram_logins(), timeout=120)


def test_single_host_schema_and_bad_rows(source, empty_srv, run):
    """Rows written as sql/pg.sql documents them (no server_host): the
    host is named with --host; a user with unusable SCRAM values is
    reported with its JID and the others are imported."""
    pg, s = source, empty_srv
    # SCRAM-SHA-256 values as ejabberd keeps them (auth_scram_hash: sha256)
    salt = b'salt-of-hank-256'
    salted = hashlib.pbkdf2_hmac('sha256', b'hank pw', salt, 4096)
    client_key = hmac.new(salted, b'Client Key', 'sha256').digest()
    stored = base64.b64encode(hashlib.sha256(client_key).digest()).decode()
    server = base64.b64encode(hmac.new(salted, b'Server Key', 'sha256').digest()).decode()
    pg.make_db('ejsingle', pg.old_schema)
    pg.sql('ejsingle', """
INSERT INTO users (username, password) VALUES ('frank', 'frank pw');
INSERT INTO users (username, password, serverkey, salt, iterationcount)
  VALUES ('hank', '%s', '%s', '%s', 4096);
INSERT INTO users (username, password, serverkey, salt, iterationcount)
  VALUES ('broken', 'c2hvcnQ=', 'c2hvcnQ=', 'c2FsdA==', 4096);
INSERT INTO rosterusers (username, jid, nick, subscription, ask, askmessage, server, subscribe, type)
  VALUES ('frank', 'gina@example.org', 'Gina', 'B', 'N', '', 'N', '', 'item');
INSERT INTO rostergroups (username, jid, grp) VALUES ('frank', 'gina@example.org', 'Pals');
INSERT INTO spool (username, xml) VALUES ('frank',
  '<message xmlns="jabber:client" from="gina@example.org/x" to="frank@%s" type="chat"><body>hi frank</body></message>');
INSERT INTO vcard (username, vcard) VALUES ('frank', '<vCard xmlns="vcard-temp"><FN>Frank F.</FN></vCard>');
INSERT INTO muc_room (name, host, opts) VALUES
  ('broken', 'conference.%s', '[{persistent,true},{title,<<"x">>}'),
  ('fine', 'conference.%s', '[{persistent,true},{title,<<"Fine">>},{frobnicate,42},
    {affiliations,[{{<<"frank">>,<<"%s">>,<<>>},owner},{{<<>>,<<>>,<<>>},member}]},
    {affiliations,[{{<<"x">>,<<"y.example">>,<<>>},member},{{<<"z">>,<<"y.example">>,<<>>},member},
                   {{<<"w">>,<<"y.example">>,<<>>},member}]}]'),
  ('gone', 'conference.%s', '[{persistent,false}]'),
  ('elsewhere', 'muc.nowhere.example', '[{persistent,true}]');
INSERT INTO archive (username, timestamp, peer, bare_peer, xml, txt, kind, nick) VALUES ('fine',
  1700000000000000, 'frank@%s/x', 'frank@%s',
  '<message xmlns="jabber:client" from="frank@%s/x" to="fine@conference.%s" type="groupchat"><body>in fine</body></message>',
  '', 'groupchat', 'frankie');
""" % ((stored, server, base64.b64encode(salt).decode(), HOST) + (HOST,) * 8))
    # more archived messages than one page of the import, with equal
    # timestamps across the page boundary
    seq = ('generate_series(1, 1100) AS g(i)', 'i / 3') if pg.kind == 'pgsql' else \
        ('seq_1_to_1100 AS g', 'seq DIV 3')
    num = 'i' if pg.kind == 'pgsql' else 'seq'
    pg.sql('ejsingle', "INSERT INTO archive (username, timestamp, peer, bare_peer, xml, txt, kind) "
           "SELECT 'frank', 1700000000000000 + %s, 'gina@example.org/x', 'gina@example.org', "
           "CONCAT('<message xmlns=\"jabber:client\" from=\"gina@example.org/x\" to=\"frank@%s\" "
           "type=\"chat\"><body>', %s, '</body></message>'), '', 'chat' FROM %s"
           % (seq[1], HOST, num, seq[0]))
    dsn = pg.dsn('ejsingle')
    r = s.ctl('import-ejabberd-sql', '--dsn', dsn)
    assert r.returncode != 0 and '--host' in r.stderr + r.stdout, (r.stdout, r.stderr)
    r = s.ctl('import-ejabberd-sql', '--dsn', dsn, '--host', HOST)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert 'single-host' in r.stdout
    assert 'failed: broken@%s: SCRAM-SHA-1' % HOST in r.stdout, r.stdout
    # the bad user and two bad rooms
    assert 'imported 2 users, skipped 0, 3 failures\n' in r.stdout, r.stdout
    assert '1 roster item, 0 pending requests, 1 vCard, 0 private XML elements, 1 offline message, ' \
        '0 privacy lists (0 blocked JIDs in them), 1100 archived messages\n' in r.stdout, r.stdout
    # rooms: a truncated option list fails that room alone, an unknown
    # option is said, a room of a service Parley does not run is a failure
    assert 'failed: room broken@conference.%s: its options cannot be read (at byte ' % HOST in r.stdout, \
        r.stdout
    assert "note: fine@conference.%s: ejabberd's room option {frobnicate,42} is not known" % HOST in r.stdout
    assert 'note: fine@conference.%s: the affiliation {{<<>>,<<>>,<<>>},member} is not understood' % HOST \
        in r.stdout, r.stdout
    # a second affiliations list is said and left out (it once overran the
    # array sized for the first)
    assert "note: fine@conference.%s: ejabberd's room option {affiliations,[{{<<\"x\">>" % HOST in r.stdout \
        and 'is given twice: the first is kept' in r.stdout, r.stdout
    assert 'note: gone@conference.%s: not a persistent room in ejabberd' % HOST in r.stdout, r.stdout
    assert 'failed: host %s: 1 room and 0 registered nicks of the MUC service muc.nowhere.example are not ' \
        'imported' % HOST in r.stdout, r.stdout
    assert 'imported 1 room (1 affiliation, 1 archived room message), skipped 0 rooms' in r.stdout, r.stdout
    # a DSN of another kind is refused with the reason
    r = s.ctl('import-ejabberd-sql', '--dsn', 'host=127.0.0.1 dbname=x')
    assert r.returncode != 0 and 'pgsql:' in r.stderr, r.stderr
    s.passwords = {('frank', HOST): 'frank pw', ('hank', HOST): 'hank pw'}
    s.start()
    f = raw_login(s, 'frank', password='frank pw')
    try:
        r = iq_ok(f, 'get', "<query xmlns='jabber:iq:roster'/>")
        items = items_of(r, NS_ROSTER)
        assert [(i.get('jid'), i.get('name'), i.get('subscription'), [g.text for g in i]) for i in items] \
            == [('gina@example.org', 'Gina', 'both', ['Pals'])], tostr(r)
        f.send('<presence/>')
        f.wait_message('hi frank', timeout=10)
    finally:
        f.close()

    async def scram256():
        cl = await parleytest.login(s, 'hank', mech='SCRAM-SHA-256', password='hank pw')
        await parleytest.logout(cl)
    run(scram256(), timeout=60)


def muc_items(c, room, affiliation):
    r = iq_ok(c, 'get', "<query xmlns='%s'><item affiliation='%s'/></query>" % (NS_MUC_ADMIN, affiliation),
              to=room)
    return sorted(i.get('jid') for i in items_of(r, NS_MUC_ADMIN))


def test_rooms_prefs_and_last_from_ejabberd(source, empty_srv):
    """Persistent rooms with their options, affiliations, registered nicks
    and archives, archive preferences and last activity; a second run skips
    the rooms."""
    pg, s = source, empty_srv
    before = pg.digest('ejabberd')
    dsn = pg.dsn('ejabberd')
    r = s.ctl('import-ejabberd-sql', '--dsn', dsn)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert 'imported: room team@%s\n' % ROOM_SVC in r.stdout, r.stdout
    assert 'imported: room locked@%s\n' % ROOM_SVC in r.stdout, r.stdout
    assert 'imported 2 rooms (6 affiliations, 3 archived room messages), skipped 0 rooms, ' \
        '1 registered nick\n' in r.stdout, r.stdout
    # what Parley has no place for is said, not dropped
    assert 'note: locked@%s: ejabberd\'s room option {captcha_protected,true} has no equivalent' \
        % ROOM_SVC in r.stdout, r.stdout
    assert 'imported 1 archive preference, 5 last activities\n' in r.stdout, r.stdout
    assert 'roles' not in r.stdout, r.stdout
    r2 = s.ctl('import-ejabberd-sql', '--dsn', dsn)
    assert r2.returncode == 0, (r2.stdout, r2.stderr)
    assert 'imported 0 rooms (0 affiliations, 0 archived room messages), skipped 2 rooms, ' \
        '0 registered nicks\n' in r2.stdout, r2.stdout
    assert 'skipped: room team@%s exists' % ROOM_SVC in r2.stdout
    assert pg.digest('ejabberd') == before
    s.passwords = dict(PASSWORDS)
    s.start()
    room = 'team@' + ROOM_SVC
    a = raw_login(s, 'alice')
    b = raw_login(s, 'bob')
    c = raw_login(s, 'carol')
    e_ = raw_login(s, 'erin', host=OTHER)
    try:
        # the options, as disco#info tells them
        r = iq_ok(a, 'get', "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=room)
        feats = {f.get('var') for f in r.iter(q('http://jabber.org/protocol/disco#info', 'feature'))}
        assert {'muc_membersonly', 'muc_moderated', 'muc_hidden', 'muc_persistent',
                'muc_semianonymous'} <= feats, feats
        fields = {f.get('var'): f.findtext(q('jabber:x:data', 'value'))
                  for f in r.iter(q('jabber:x:data', 'field'))}
        assert fields.get('muc#roomconfig_roomname') == 'Team room', fields
        assert fields.get('muc#roominfo_description') == 'Daily "stand-up"', fields
        assert fields.get('muc#roominfo_subjectmod') == '0', fields
        r = iq_ok(a, 'get', "<query xmlns='http://jabber.org/protocol/disco#info'/>", to='locked@' + ROOM_SVC)
        feats = {f.get('var') for f in r.iter(q('http://jabber.org/protocol/disco#info', 'feature'))}
        assert {'muc_passwordprotected', 'muc_public', 'muc_persistent', 'muc_open'} <= feats, feats
        fields = {f.get('var'): f.findtext(q('jabber:x:data', 'value'))
                  for f in r.iter(q('jabber:x:data', 'field'))}
        assert fields.get('muc#roomconfig_roomname') == 'Caf\u00e9 \u2615', fields
        # a member enters; a stranger is refused by members-only
        assert join(b, room, 'bobby').get('type') != 'error'
        e = join(e_, room, 'erin')
        assert e.get('type') == 'error' and stanza_error(e) == 'registration-required', tostr(e)
        # the password room wants its password
        e = join(e_, 'locked@' + ROOM_SVC, 'erin')
        assert stanza_error(e) == 'not-authorized', tostr(e)
        assert join(e_, 'locked@' + ROOM_SVC, 'erin', password='s3cret').get('type') != 'error'
        # bob's nick registered with the service
        r = iq_ok(b, 'get', "<query xmlns='jabber:iq:register'/>", to=room)
        assert r.findtext('.//{jabber:iq:register}username') == 'bobby', tostr(r)
        # the owner sees the affiliations
        assert join(a, room, 'al').get('type') != 'error'
        assert muc_items(a, room, 'owner') == ['alice@' + HOST]
        assert muc_items(a, room, 'admin') == ['dave@' + OTHER]
        assert muc_items(a, room, 'member') == ['bob@' + HOST, 'carol@' + HOST]
        assert muc_items(a, room, 'outcast') == ['spam.example']
        # the room's archive: the old conversation, in order, with the nicks
        b.send("<iq type='set' id='rmam' to='%s'><query xmlns='%s' queryid='r1'/></iq>" % (room, NS_MAM))
        got = []
        while True:
            e = b.wait_for(lambda e: (e.tag == q(NS_CLIENT, 'message') and e.find(q(NS_MAM, 'result'))
                                      is not None) or e.get('id') == 'rmam', timeout=10, what='room archive')
            if e.get('id') == 'rmam':
                assert e.get('type') == 'result', tostr(e)
                break
            fwd = e.find('.//' + q(NS_CLIENT, 'message'))
            # as the room sent it: from the sender's room JID, never the real one
            assert fwd.get('from').startswith(room + '/') and fwd.get('to') is None, tostr(fwd)
            got.append((fwd.get('from').split('/', 1)[1], fwd.findtext(q(NS_CLIENT, 'body'))))
        assert got == ROOM_MESSAGES, got
        # alice's archive preferences
        r = iq_ok(a, 'get', "<prefs xmlns='%s'/>" % NS_MAM)
        p = r.find(q(NS_MAM, 'prefs'))
        assert p.get('default') == 'roster', tostr(r)
        assert [j.text for j in p.find(q(NS_MAM, 'always'))] == ['bob@' + HOST], tostr(r)
        assert [j.text for j in p.find(q(NS_MAM, 'never'))] == ['spam@' + OTHER], tostr(r)
        # bob's last activity, as alice (a contact) asks for it
        r = iq_ok(a, 'get', "<query xmlns='jabber:iq:last'/>", to='bob@' + HOST)
        last = r.find(q('jabber:iq:last', 'query'))
        assert LAST_SECONDS_AGO <= int(last.get('seconds')) < LAST_SECONDS_AGO + 600, tostr(r)
        assert last.text == 'gone fishing', tostr(r)
    finally:
        for cl in (a, b, c, e_):
            cl.close()
