"""parleyctl db status | migrate | print-schema, with parleyd running and
stopped, on the main test host's store (SQLite, or PostgreSQL with
PARLEY_TEST_STORAGE=pgsql): the version found and expected, the live state
of a running store, a refused start on an old schema naming the scripts,
and migrations applied only when the operator asks (on PostgreSQL the
DML-only role cannot, the owner can)."""
import os
import re

import parleytest
from parleytest import HOST, OTHER


def schema_file(srv):
    return parleytest.srcdir() / 'sql' / ('%s.sql' % srv.storage)


def expected_version(srv):
    text = schema_file(srv).read_text()
    marker = 'INSERT INTO schema_version (version) VALUES ('
    return int(text[text.index(marker) + len(marker):].split(')')[0])


def test_status_running(server):
    r = server.ctl('db', 'status')
    assert r.returncode == 0, r.stdout + r.stderr
    v = expected_version(server)
    assert 'schema version: %d found, %d expected (up to date)' % (v, v) in r.stdout, r.stdout
    assert 'hosts: %s' % HOST in r.stdout or ', %s' % HOST in r.stdout, r.stdout
    assert '  live: up: ' in r.stdout, r.stdout
    if server.storage == 'pgsql':
        assert 'store pgsql:' in r.stdout and os.environ['PARLEY_TEST_PGSQL_PASSWORD'] not in r.stdout


def test_print_schema(server):
    r = server.ctl('db', 'print-schema', HOST)
    assert r.returncode == 0, r.stderr
    assert r.stdout == schema_file(server).read_text()
    r = server.ctl('db', 'print-schema', 'sqlite')
    assert r.returncode == 0 and 'CREATE TABLE users' in r.stdout
    r = server.ctl('db', 'print-schema', 'nosuch.example')
    assert r.returncode != 0 and 'neither a storage driver nor a host' in r.stderr, r.stderr
    r = server.ctl('db', 'frobnicate')
    assert r.returncode == 2 and 'usage: db status' in r.stderr, r.stderr


def test_old_schema_refused_then_migrated(fresh_server):
    srv = fresh_server
    v = expected_version(srv)
    srv.stop()
    # The store goes back to the version before the last migration: the
    # last script's tables are dropped (read from the script itself).
    mig_dir = parleytest.srcdir() / 'sql' / 'migrations' / srv.storage
    last = sorted(p for p in os.listdir(mig_dir) if p.endswith('.sql'))[-1]
    text = (mig_dir / last).read_text()
    # (a full-text table of SQLite is a CREATE VIRTUAL TABLE)
    tables = [m.group(1) for m in re.finditer(
        r'^CREATE (?:VIRTUAL )?TABLE (?:IF NOT EXISTS )?(\w+)', text, re.M)]
    # and the columns it adds to older tables (ALTER TABLE t ADD COLUMN c)
    added = [(m.group(1), c) for m in re.finditer(r'^ALTER TABLE (\w+)\b(.*?);', text, re.M | re.S)
             for c in re.findall(r'ADD COLUMN (\w+)', m.group(2))]
    assert tables or added, last
    for t in reversed(tables):
        srv.db_query('DROP TABLE %s' % t)
    for t, c in added:
        srv.db_query('ALTER TABLE %s DROP COLUMN %s' % (t, c))
    srv.db_query('UPDATE schema_version SET version = ?', (v - 1,))

    r = srv.ctl('db', 'status', HOST)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'schema version: %d found, %d expected' % (v - 1, v) in r.stdout, r.stdout
    assert last in r.stdout, r.stdout
    assert 'live:' not in r.stdout             # parleyd is not running

    # parleyd refuses to start, naming the script.
    try:
        srv.start(timeout=10)
        started = True
    except parleytest.ServerError as e:
        started = False
        assert last in str(e) and 'needs %d' % v in str(e), str(e)
    assert not started

    if srv.storage == 'pgsql':
        # parleyd's own role has no DDL rights: nothing changes (a script
        # that creates a table is refused "permission denied", one that
        # alters a table "must be owner of table")
        r = srv.ctl('db', 'migrate', HOST)
        assert r.returncode == 1, r.stdout + r.stderr
        assert re.search(r'permission denied|must be owner of table', r.stdout), r.stdout
        assert 'stays at version %d' % (v - 1) in r.stdout, r.stdout
        owner = parleytest._pg_dsn(os.environ['PARLEY_TEST_PGSQL_OWNER_DSN'], srv.pg_db)
        r = srv.ctl('db', 'migrate', '--dsn', owner, HOST)
    else:
        r = srv.ctl('db', 'migrate', HOST)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'applied ' in r.stdout and 'now version %d' % v in r.stdout, r.stdout
    r = srv.ctl('db', 'status')
    assert r.returncode == 0, r.stdout + r.stderr
    srv.start()
    # the other host's store was never touched and works
    assert srv.ctl('user-exists', 'dave', OTHER).returncode == 0
