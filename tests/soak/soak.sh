#!/bin/sh
# Soak run: parleyd under login churn, messages (online and offline),
# presence and group chat for a while, sampled every 10 s into a CSV; fails
# when a resource grows without bound or an error was counted.  Not part of
# `make check` (it takes as long as you ask).  See tests/soak/README.md.
#
#   tests/soak/soak.sh [MINUTES] [soak.py options, e.g. --steady 16]
#
# MINUTES defaults to 15; the CSV goes to soak-YYYYmmdd-HHMM.csv in the
# current directory unless --csv FILE is given.  Run from a build directory
# (or set PARLEY_BUILDDIR); needs /usr/bin/python3 with slixmpp.
here=$(cd "$(dirname "$0")" && pwd)
PARLEY_SRCDIR=$(cd "$here/../.." && pwd)
if [ -z "${PARLEY_BUILDDIR:-}" ]; then
    if [ -x ./parleyd ]; then PARLEY_BUILDDIR=$(pwd); else PARLEY_BUILDDIR=$PARLEY_SRCDIR; fi
fi
PARLEY_SQL_DIR=${PARLEY_SQL_DIR:-$PARLEY_SRCDIR/sql}
export PARLEY_SRCDIR PARLEY_BUILDDIR PARLEY_SQL_DIR PYTHONDONTWRITEBYTECODE=1
minutes=${1:-15}
case "$minutes" in
'' | *[!0-9]*) echo "usage: $0 [MINUTES] [soak.py options]" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift
exec /usr/bin/python3 "$here/soak.py" --duration $((minutes * 60)) \
    --csv "soak-$(date -u +%Y%m%d-%H%M).csv" "$@"
