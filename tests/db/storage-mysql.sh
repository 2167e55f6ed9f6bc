#!/bin/bash
# The storage-interface suite (tests/unit/test-storage) on a real MariaDB
# server that this script starts (tests/db/mariadb.sh) and stops.  Skipped
# (77) only when this build has no MySQL driver (configure did not find
# libmariadb); a missing server binary is a failure.
set -uo pipefail

top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
top_srcdir=$(cd "$top_srcdir" && pwd)
export PARLEY_SQL_DIR=${PARLEY_SQL_DIR:-$top_srcdir/sql}

if [ "${PARLEY_HAVE_MYSQL:-}" = no ]; then
    echo "SKIP: this build has no MySQL driver (configure found no libmariadb: apt-get install libmariadb-dev)"
    exit 77
fi
prog=$top_builddir/tests/unit/test-storage
[ -x "$prog" ] || { echo "storage-mysql: $prog is not built (cmocka missing?)" >&2; exit 77; }

dir=$(mktemp -d /tmp/parley-mariadb-XXXXXX)
trap 'bash "$top_srcdir/tests/db/mariadb.sh" stop "$dir"' EXIT
bash "$top_srcdir/tests/db/mariadb.sh" start "$dir" || exit 1
# shellcheck disable=SC1091
. "$dir/env"
PARLEY_TEST_BACKENDS=mysql "$prog"
