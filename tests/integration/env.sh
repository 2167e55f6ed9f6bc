# Sourced by tests/integration/run.sh and tests/browser/run.sh (with
# $here set to the sourcing script's folder, two below the top): where the
# sources, the build and the SQL files are, the Python that runs the
# tests, and the checks that it has slixmpp and pytest (else exit 77,
# skipped) and that parleyd and parleyctl are built (else exit 99).
PARLEY_SRCDIR=$(cd "${top_srcdir:-$here/../..}" && pwd)
if [ -n "$top_builddir" ]; then
    PARLEY_BUILDDIR=$(cd "$top_builddir" && pwd)
elif [ -x ./parleyd ]; then
    PARLEY_BUILDDIR=$(pwd)
else
    PARLEY_BUILDDIR=$PARLEY_SRCDIR
fi
export PARLEY_SRCDIR PARLEY_BUILDDIR
# the schema a new database is made from (make check sets it too)
PARLEY_SQL_DIR=${PARLEY_SQL_DIR:-$PARLEY_SRCDIR/sql}
export PARLEY_SQL_DIR

# Debian's python3-slixmpp and python3-pytest live in the system python; a
# python3 earlier in PATH (pyenv, venv) usually does not have them.
PY=/usr/bin/python3
if ! "$PY" -c 'import slixmpp, pytest' >/dev/null 2>&1; then
    echo "SKIP: $PY lacks slixmpp or pytest (apt-get install python3-slixmpp python3-pytest)"
    exit 77
fi
for b in parleyd parleyctl; do
    if [ ! -x "$PARLEY_BUILDDIR/$b" ]; then
        echo "ERROR: $PARLEY_BUILDDIR/$b not built"
        exit 99
    fi
done
