#!/bin/bash
# Message archive query latency on SQLite and on PostgreSQL: fills the
# archive of one owner (alice@bench.local) with ROWS messages (1 million by
# default) exchanged with 100 peers, straight in SQL (a recursive CTE on
# SQLite, generate_series on PostgreSQL), then runs bench/mam-query on each
# store: p50/p99 of storage_mam_query for pages of 50 messages filtered by
# 'with' (forwards after a random id, and the newest page), the newest
# page without a filter, and the newest page of a full-text search for a
# rare word and for a word in every message; the query plans of a few.
#   bench/mam-query.sh [ROWS [QUERIES]]
# Needs a built checkout (it builds bench/mam-query), sqlite3, and root
# for PostgreSQL (a throw-away cluster from tests/db/pgsql.sh, in a
# folder of its own, stopped at the end).  Prints the figures; the fill
# times too.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
ROWS=${1:-1000000}
QUERIES=${2:-2000}
OWNER=alice@bench.local
PEERS=100

make -s -C "$TOP" bench/mam-query
work=$(mktemp -d /tmp/parley-mam-bench-XXXXXX)
pg=$(mktemp -d /tmp/parley-mam-bench-pg-XXXXXX)   # pgsql.sh makes it the server's
cleanup() {
    bash "$TOP/tests/db/pgsql.sh" stop "$pg" >/dev/null 2>&1 || true
    rm -rf "$work" "$pg"
}
trap cleanup EXIT

# The rows, the same in both databases: message x (1..ROWS) is 1 ms after
# the one before, with peer x % PEERS, alternately sent and received, with
# a body of a few words and a stanza of about 300 bytes.
select_rows() {   # SQL-EXPR-OF-x FROM-CLAUSE
    cat <<EOF
INSERT INTO archive (server_host, owner, id, peer, resource, outgoing, body, stanza)
SELECT 'bench.local', '$OWNER', 1700000000000000 + x * 1000,
       'peer' || (x % $PEERS) || '@bench.local', 'phone', x % 2,
       'message ' || x || ' about the weather and the garden',
       '<message xmlns=''jabber:client'' from=''peer' || (x % $PEERS) || '@bench.local/phone'' '
       || 'to=''$OWNER'' type=''chat'' id=''m' || x || '''><body>message ' || x
       || ' about the weather and the garden</body><active xmlns=''http://jabber.org/protocol/chatstates''/>'
       || '<stanza-id xmlns=''urn:xmpp:sid:0'' by=''$OWNER'' id=''' || x || '''/></message>'
$1;
EOF
}

# The SQL of storage/sql-mam.c for two pages, with values in place of
# the parameters.
with_page() {   # OWNER
    echo "SELECT id, peer, resource, outgoing, body, stanza FROM archive WHERE server_host = 'bench.local'" \
         "AND owner = '$1' AND peer = 'peer7@bench.local' AND id > 1700000500000000 ORDER BY id LIMIT 51"
}
text_page() {   # OWNER QUERY CONDITION-FORMAT
    # shellcheck disable=SC2059
    echo "SELECT id, peer, resource, outgoing, body, stanza FROM archive WHERE server_host = 'bench.local'" \
         "AND owner = '$1' AND $(printf "$3" "$2") ORDER BY id DESC LIMIT 51"
}

echo "== SQLite ($ROWS messages, $PEERS peers)"
db=$work/parley.db
sqlite3 "$db" < "$TOP/sql/sqlite.sql"
t0=$(date +%s)
{
    echo "PRAGMA journal_mode=WAL; BEGIN;"
    select_rows "FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $ROWS) SELECT x FROM c)"
    echo "COMMIT; ANALYZE;"
} | sqlite3 "$db" >/dev/null
echo "filled in $(( $(date +%s) - t0 )) s, $(du -m "$db" | cut -f1) MiB"
"$TOP/bench/mam-query" sqlite "$db" "$OWNER" "$PEERS" "$QUERIES"
echo "plans (a 'with' page forwards; full-text pages backwards, a rare word and a common one):"
sqlite3 "$db" "EXPLAIN QUERY PLAN $(with_page "$OWNER")" \
    "EXPLAIN QUERY PLAN $(text_page "$OWNER" "'\"12345\"'" \
        "seq IN (SELECT rowid FROM archive_fts WHERE archive_fts MATCH %s)")" \
    "EXPLAIN QUERY PLAN $(text_page "$OWNER" "'\"garden\"'" \
        "+seq IN (SELECT rowid FROM archive_fts WHERE archive_fts MATCH %s)")"

echo "== PostgreSQL ($ROWS messages, $PEERS peers)"
# (the cluster's database has sql/pgsql.sql applied, and parleyd's role)
PARLEY_SQL_DIR=$TOP/sql bash "$TOP/tests/db/pgsql.sh" start "$pg" >/dev/null
# shellcheck source=/dev/null
. "$pg/env"
psql=$PARLEY_TEST_PGSQL_BINDIR/psql
t0=$(date +%s)
{
    echo "SET client_min_messages = warning;"
    select_rows "FROM generate_series(1, $ROWS) AS g(x)"
    echo "VACUUM ANALYZE archive;"
} | "$psql" -X -q -v ON_ERROR_STOP=1 -d "$PARLEY_TEST_PGSQL_OWNER_DSN" >/dev/null
echo "filled in $(( $(date +%s) - t0 )) s, $("$psql" -X -At -d "$PARLEY_TEST_PGSQL_OWNER_DSN" \
    -c "SELECT pg_size_pretty(pg_total_relation_size('archive'))")"
PGPASSWORD=$PARLEY_TEST_PGSQL_PASSWORD "$TOP/bench/mam-query" pgsql "$PARLEY_TEST_PGSQL_DSN" "$OWNER" \
    "$PEERS" "$QUERIES"
echo "plans (a 'with' page forwards; a full-text page backwards):"
"$psql" -X -At -d "$PARLEY_TEST_PGSQL_OWNER_DSN" -c "EXPLAIN $(with_page "$OWNER")" \
    -c "EXPLAIN $(text_page "$OWNER" "'weather garden'" \
        "to_tsvector('simple', body) @@ plainto_tsquery('simple', %s)")"
