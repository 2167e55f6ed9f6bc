"""Schema drift test: for every SQL dialect whose database is at hand,
a database at schema version 1 brought up to date by the migration scripts
must have the same catalog (tables, columns with their types, nullability
and defaults, primary keys, indexes) as a fresh database made from
sql/<dialect>.sql; and every dialect's schema must have the same tables
and columns.

Version 1 is rebuilt from the current schema file: everything but the
version-1 tables (V1_TABLES, fixed forever) is dropped and schema_version
set to 1; so a table added to a schema file without a migration, or a
migration that creates something else than the schema file, is drift.

A dialect is a class with fresh(), exec(script), catalog() and close();
sqlite always runs, pgsql when PARLEY_TEST_PGSQL_OWNER_DSN is set, mysql
when PARLEY_TEST_MYSQL_SOCKET is set (see tests/db/schema-drift.sh).
Another dialect adds its class to DIALECTS.

    /usr/bin/python3 tests/db/schema_drift.py SQL_DIR
Exit 0 when every dialect agrees, 1 with the differences otherwise.
"""
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

V1_TABLES = ('schema_version', 'users', 'roster_items', 'roster_groups', 'roster_version')
# Columns that later migrations added to version-1 tables: dropped when
# version 1 is rebuilt.
V1_LATER_COLUMNS = {
    'users': ('sha512_salt', 'sha512_iterations', 'sha512_stored_key', 'sha512_server_key'),  # 011
    'roster_items': ('ask_in_stanza', 'in_roster'),                                           # 015
}


def migrations(sql_dir, dialect):
    d = os.path.join(sql_dir, 'migrations', dialect)
    files = sorted(f for f in os.listdir(d) if re.match(r'^\d{3}-.*\.sql$', f))
    for i, f in enumerate(files):
        if int(f[:3]) != i + 2:
            raise SystemExit('%s: migration %s out of sequence (expected %03d)' % (d, f, i + 2))
    return [os.path.join(d, f) for f in files]


def schema_version_of(text):
    m = re.search(r'INSERT INTO schema_version \(version\) VALUES \((\d+)\)', text)
    if not m:
        raise SystemExit('no INSERT INTO schema_version in the schema file')
    return int(m.group(1))


class SQLite:
    name = 'sqlite'

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='parley-drift-')
        self.n = 0
        self.db = None

    def fresh(self):
        if self.db is not None:
            self.db.close()
        self.n += 1
        self.db = sqlite3.connect(os.path.join(self.dir, 'd%d.db' % self.n), isolation_level=None)
        self.db.execute('PRAGMA foreign_keys=ON')

    def exec(self, script):
        self.db.executescript(script)

    def tables(self):
        return [r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]

    def catalog(self):
        cat = {}
        for t in sorted(self.tables()):
            cols = tuple((r[1], r[2].upper(), bool(r[3]), r[4], r[5])
                         for r in self.db.execute('PRAGMA table_info(%s)' % t))
            idx = []
            for r in self.db.execute('PRAGMA index_list(%s)' % t):
                icols = tuple(c[2] for c in self.db.execute('PRAGMA index_info(%s)' % r[1]))
                # auto-named indexes (primary keys, UNIQUE) compare by content
                name = r[1] if not r[1].startswith('sqlite_autoindex') else '(auto)'
                idx.append((name, bool(r[2]), r[3], icols))
            sql = self.db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (t,)).fetchone()[0]
            without_rowid = 'WITHOUT ROWID' in sql.upper()
            fks = tuple(tuple(r[2:5]) + (r[6],) for r in
                        self.db.execute('PRAGMA foreign_key_list(%s)' % t))
            # triggers (those that keep a full-text table up to date)
            trg = tuple(sorted((r[0], ' '.join(r[1].split())) for r in self.db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (t,))))
            cat[t] = {'columns': cols, 'indexes': tuple(sorted(idx)), 'without_rowid': without_rowid,
                      'foreign_keys': tuple(sorted(fks)), 'triggers': trg}
        return cat

    def columns(self):
        return {t: sorted(r[1] for r in self.db.execute('PRAGMA table_info(%s)' % t))
                for t in self.tables()}

    def close(self):
        if self.db is not None:
            self.db.close()
        subprocess.run(['rm', '-rf', self.dir], check=False)


class PgSQL:
    """One database per fresh(), made and dropped as the cluster's superuser,
    filled as the owner of the tables (as a DBA would)."""
    name = 'pgsql'

    def __init__(self):
        self.psql = os.path.join(os.environ['PARLEY_TEST_PGSQL_BINDIR'], 'psql')
        self.super_dsn = os.environ['PARLEY_TEST_PGSQL_SUPER_DSN']
        self.owner_dsn = os.environ['PARLEY_TEST_PGSQL_OWNER_DSN']
        self.dbs = []

    @staticmethod
    def _dsn(base, db):
        return ' '.join([p for p in base.split() if not p.startswith('dbname=')] + ['dbname=' + db])

    def _run(self, dsn, script):
        r = subprocess.run([self.psql, '-X', '-q', '-A', '-t', '-F', '|', '-v', 'ON_ERROR_STOP=1',
                            '-d', dsn], input=script, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError('psql: %s' % r.stderr.strip())
        return [line.split('|') for line in r.stdout.splitlines() if line]

    def fresh(self):
        db = 'parley_drift_%d_%d' % (os.getpid(), len(self.dbs))
        self._run(self.super_dsn, 'CREATE DATABASE %s OWNER parley_owner;\n' % db)
        self.dbs.append(db)
        self.dsn = self._dsn(self.owner_dsn, db)
        self._run(self.dsn, 'SET client_min_messages = warning;\n')

    def exec(self, script):
        self._run(self.dsn, 'SET client_min_messages = warning;\n' + script)

    def tables(self):
        return [r[0] for r in self._run(self.dsn, "SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = 'public';\n")]

    def catalog(self):
        cat = {}
        for t in sorted(self.tables()):
            cols = tuple(tuple(r) for r in self._run(self.dsn, (
                "SELECT column_name, data_type, COALESCE(character_maximum_length::text, ''), "
                "is_nullable, COALESCE(column_default, ''), is_identity, "
                "COALESCE(identity_generation, '') FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = '%s' ORDER BY ordinal_position;\n")
                % t))
            idx = tuple(sorted(tuple(r) for r in self._run(self.dsn, (
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "AND tablename = '%s';\n") % t)))
            cons = tuple(sorted(tuple(r) for r in self._run(self.dsn, (
                "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'public.%s'::regclass;\n") % t)))
            cat[t] = {'columns': cols, 'indexes': idx, 'constraints': cons}
        return cat

    def columns(self):
        out = {}
        for t, c in self._run(self.dsn, "SELECT table_name, column_name FROM "
                              "information_schema.columns WHERE table_schema = 'public';\n"):
            out.setdefault(t, []).append(c)
        return {t: sorted(c) for t, c in out.items()}

    def close(self):
        for db in self.dbs:
            try:
                self._run(self.super_dsn, 'DROP DATABASE IF EXISTS %s;\n' % db)
            except RuntimeError:
                pass


class MySQL:
    """One database per fresh(), made, filled and dropped as the server's
    root (as a DBA would), through the mariadb client on the socket of
    tests/db/mariadb.sh (PARLEY_TEST_MYSQL_SOCKET, _ADMIN_PASSWORD)."""
    name = 'mysql'

    def __init__(self):
        self.client = None
        for c in ('mariadb', 'mysql'):
            for d in os.environ.get('PATH', '/usr/bin').split(':') + ['/usr/bin']:
                if os.access(os.path.join(d, c), os.X_OK):
                    self.client = os.path.join(d, c)
                    break
            if self.client:
                break
        if self.client is None:
            raise SystemExit('mysql: no mariadb client found')
        self.socket = os.environ['PARLEY_TEST_MYSQL_SOCKET']
        self.password = os.environ['PARLEY_TEST_MYSQL_ADMIN_PASSWORD']
        self.dbs = []
        self.db = None

    def _run(self, script, db=None):
        args = [self.client, '--no-defaults', '--socket=' + self.socket, '-uroot',
                '--password=' + self.password, '--default-character-set=utf8mb4', '-N', '-B']
        if db:
            args.append(db)
        r = subprocess.run(args, input=script, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError('mariadb: %s' % r.stderr.strip())
        return [line.split('\t') for line in r.stdout.splitlines() if line]

    def fresh(self):
        self.db = 'parley_drift_%d_%d' % (os.getpid(), len(self.dbs))
        self._run('CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n' % self.db)
        self.dbs.append(self.db)

    def exec(self, script):
        self._run(script, self.db)

    def tables(self):
        return [r[0] for r in self._run("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = '%s';\n" % self.db)]

    def catalog(self):
        cat = {}
        for t in sorted(self.tables()):
            cols = tuple(tuple(r) for r in self._run((
                "SELECT column_name, column_type, is_nullable, COALESCE(column_default, 'NULL'), "
                "COALESCE(collation_name, ''), extra FROM information_schema.columns "
                "WHERE table_schema = '%s' AND table_name = '%s' ORDER BY ordinal_position;\n")
                % (self.db, t)))
            idx = tuple(sorted(tuple(r) for r in self._run((
                "SELECT index_name, non_unique, seq_in_index, column_name, "
                "COALESCE(sub_part, '') FROM information_schema.statistics "
                "WHERE table_schema = '%s' AND table_name = '%s';\n") % (self.db, t))))
            tab = tuple(tuple(r) for r in self._run((
                "SELECT engine, table_collation, row_format FROM information_schema.tables "
                "WHERE table_schema = '%s' AND table_name = '%s';\n") % (self.db, t)))
            cons = tuple(sorted(tuple(r) for r in self._run((
                "SELECT constraint_name, check_clause FROM information_schema.check_constraints "
                "WHERE constraint_schema = '%s' AND table_name = '%s';\n") % (self.db, t))))
            cat[t] = {'columns': cols, 'indexes': idx, 'table': tab, 'checks': cons}
        return cat

    def columns(self):
        out = {}
        for t, c in self._run("SELECT table_name, column_name FROM information_schema.columns "
                              "WHERE table_schema = '%s';\n" % self.db):
            out.setdefault(t, []).append(c)
        return {t: sorted(c) for t, c in out.items()}

    def close(self):
        for db in self.dbs:
            try:
                self._run('DROP DATABASE IF EXISTS %s;\n' % db)
            except RuntimeError:
                pass


# Columns a dialect adds on purpose: a surrogate primary key where its
# index limit cannot hold the natural one (MySQL's 3072 bytes cannot index
# roster_groups' server_host, username, jid and group name together).
# Parley's SQL never names them, but for SQLite's archive.seq: the rowid
# its full-text table refers to (an explicit one, which VACUUM keeps).
SURROGATE = {('mysql', 'roster_groups', 'id'), ('mssql', 'roster_groups', 'id'), ('sqlite', 'archive', 'seq')}

# Tables only one dialect has, by name prefix: SQLite's full-text index of
# the archive is an FTS5 table (with its shadow tables), where the other
# dialects index a column of archive.
DIALECT_ONLY = {'sqlite': ('archive_fts',)}


def shared_table(dialect, table):
    return not table.startswith(DIALECT_ONLY.get(dialect, ()) or ('\0',))


def available():
    out = [SQLite]
    if os.environ.get('PARLEY_TEST_PGSQL_OWNER_DSN'):
        out.append(PgSQL)
    if os.environ.get('PARLEY_TEST_MYSQL_SOCKET'):
        out.append(MySQL)
    return out


DIALECTS = {'sqlite': SQLite, 'pgsql': PgSQL, 'mysql': MySQL}


def diff(a, b, path=''):
    """Human-readable differences between two nested dicts/tuples."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append('%s%s: only in the fresh schema' % (path, k))
            elif k not in b:
                out.append('%s%s: only in the migrated one' % (path, k))
            else:
                out += diff(a[k], b[k], '%s%s.' % (path, k))
    elif a != b:
        out.append('%s: migrated %r, fresh %r' % (path.rstrip('.'), a, b))
    return out


def check_dialect(cls, sql_dir):
    problems = []
    schema_file = os.path.join(sql_dir, '%s.sql' % cls.name)
    with open(schema_file) as f:
        schema = f.read()
    version = schema_version_of(schema)
    migs = migrations(sql_dir, cls.name)
    if len(migs) != version - 1:
        problems.append('%s: schema version %d but %d migration scripts (expected %d)'
                        % (cls.name, version, len(migs), version - 1))
    d = cls()
    try:
        d.fresh()
        d.exec(schema)
        fresh = d.catalog()
        columns = d.columns()

        # version 1, rebuilt from the schema file
        d.fresh()
        d.exec(schema)
        for t in d.tables():
            if t not in V1_TABLES:
                # IF EXISTS: dropping a full-text table drops its shadow tables
                d.exec('DROP TABLE IF EXISTS %s;' % t)
        for t, cols in V1_LATER_COLUMNS.items():
            for c in cols:
                d.exec('ALTER TABLE %s DROP COLUMN %s;' % (t, c))
        d.exec('UPDATE schema_version SET version = 1;')
        for m in migs:
            with open(m) as f:
                try:
                    d.exec(f.read())
                except Exception as e:       # a script that fails is drift too
                    problems.append('%s: %s failed: %s' % (cls.name, os.path.basename(m), e))
                    return problems, columns
        migrated = d.catalog()
        rows = migrated.get('schema_version')
        problems += ['%s: %s' % (cls.name, x) for x in diff(migrated, fresh)]
    finally:
        d.close()
    return problems, columns


def text_tables(text):
    """{table: sorted column names} of the CREATE TABLE statements in text."""
    out = {}
    for m in re.finditer(r'CREATE TABLE (?:IF NOT EXISTS )?(\w+) \((.*?)\n\);', text, re.S):
        cols = []
        for line in m.group(2).split('\n'):
            w = line.split()
            if w and not w[0].startswith('--') and w[0].upper() not in (
                    'CONSTRAINT', 'PRIMARY', 'KEY', 'UNIQUE', 'INDEX', 'FOREIGN', 'CHECK'):
                cols.append(w[0])
        out[m.group(1)] = sorted(cols)
    return out


def text_alters(text):
    """{table: column names} added by the ALTER TABLE ... ADD statements
    of text (SQL Server syntax: ADD once, then the columns, and the
    constraints added with them)."""
    out = {}
    for m in re.finditer(r'ALTER TABLE (\w+) ADD\n(.*?);', text, re.S):
        out.setdefault(m.group(1), []).extend(
            line.split()[0] for line in m.group(2).split('\n')
            if line.split() and line.split()[0].upper() != 'CONSTRAINT')
    return out


def text_columns(sql_dir, dialect):
    with open(os.path.join(sql_dir, '%s.sql' % dialect)) as f:
        schema = f.read()
    fresh = text_tables(schema)
    problems = []
    migs = migrations(sql_dir, dialect)
    if len(migs) != schema_version_of(schema) - 1:
        problems.append('%s: schema version %d but %d migration scripts'
                        % (dialect, schema_version_of(schema), len(migs)))
    migrated = {t: [x for x in c if x not in V1_LATER_COLUMNS.get(t, ())]
                for t, c in fresh.items() if t in V1_TABLES}
    for m in migs:
        with open(m) as f:
            text = f.read()
        made = text_tables(text)
        altered = text_alters(text)
        if not made and not altered:
            problems.append('%s: %s creates no table and adds no column' % (dialect, os.path.basename(m)))
        for t, cols in altered.items():
            migrated[t] = sorted(migrated.get(t, []) + cols)
        if not re.search(r'UPDATE schema_version SET version = %d' % int(os.path.basename(m)[:3]),
                         text):
            problems.append('%s: %s does not set the version' % (dialect, os.path.basename(m)))
        migrated.update(made)
    problems += ['%s: %s' % (dialect, x) for x in diff(migrated, fresh)]
    return problems, fresh


def main():
    sql_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', '..', 'sql')
    problems = []
    all_columns = {}
    for cls in available():
        p, cols = check_dialect(cls, sql_dir)
        problems += p
        all_columns[cls.name] = {t: [c for c in cs if (cls.name, t, c) not in SURROGATE]
                                 for t, cs in cols.items() if shared_table(cls.name, t)}
        print('%s: %s' % (cls.name, 'migrations match the schema file' if not p else
                          '%d difference(s)' % len(p)))
    # SQL Server: no server here, so its files are compared as text (tables
    # and columns; the migrations create exactly the tables the schema file
    # adds after version 1, and there is one per version)
    if os.path.exists(os.path.join(sql_dir, 'mssql.sql')) and 'mssql' not in all_columns:
        p, cols = text_columns(sql_dir, 'mssql')
        problems += p
        all_columns['mssql'] = {t: [c for c in cs if ('mssql', t, c) not in SURROGATE]
                                for t, cs in cols.items()}
        print('mssql: checked as text only (no SQL Server here): %s'
              % ('migrations match the schema file' if not p else '%d difference(s)' % len(p)))
    # every dialect has the same tables and columns
    names = sorted(all_columns)
    for other in names[1:]:
        for x in diff(all_columns[names[0]], all_columns[other]):
            problems.append('tables and columns, %s vs %s: %s' % (names[0], other, x))
    # dialects that exist as files but were not checked here
    for f in sorted(os.listdir(sql_dir)):
        if f.endswith('.sql') and f[:-4] not in all_columns:
            print('%s: not checked here (%s)' % (f[:-4], 'no database at hand'
                                                  if f[:-4] in DIALECTS else 'no dialect class'))
    for p in problems:
        print('DRIFT ' + p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
