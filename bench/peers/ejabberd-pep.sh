#!/bin/bash
# ejabberd for bench/pep.sh: the harness's peers/ejabberd.sh (which already
# has mod_caps and mod_pubsub with the flat and pep plugins, PEP nodes
# defaulting to the presence access model and one item, as Parley's) in a
# folder, Erlang node and ports of its own (ejabberd-pep under PEER_ROOT,
# benchpep@localhost, c2s 15232, distribution 15379), so that it neither
# shares the accounts of the other runs nor clashes with them, plus one
# command:
#   ejabberd-pep.sh start|stop|adduser N|pids|info|import-xep0227 FILE
# import-xep0227 loads accounts and rosters from a XEP-0227 file
# (ejabberdctl import_piefxis; ejabberd must run; existing accounts fail).
# It must sit beside the harness's ejabberd.sh and common.sh (bench/pep.sh
# copies it into the harness copy's peers/).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=$HERE/ejabberd.sh
GEN=$HERE/.ejabberd-pep-gen.sh
if [ ! -f "$BASE" ]; then
    echo "ejabberd-pep.sh: no $BASE (run it from the harness copy's peers/)" >&2
    exit 1
fi
IMPORT_ARM='import-xep0227)
    F=${2:?FILE}
    cp "$F" "$DIR/import.xml"; chown ejabberd:ejabberd "$DIR/import.xml"
    CTL import_piefxis "$DIR/import.xml"
    echo "registered users: $(CTL registered_users "$BENCH_DOMAIN" 2>/dev/null | wc -l)"
    ;;' \
awk '/^pids\) pids; echo ;;$/ { print ENVIRON["IMPORT_ARM"]; n++ } { print }
     END { exit n != 1 }' "$BASE" |
    sed -e 's/^NAME=ejabberd$/NAME=ejabberd-pep/' -e 's/^NODE=bench@localhost$/NODE=benchpep@localhost/' \
        -e 's/EJABBERD_PORT:-15222}/EJABBERD_PEP_PORT:-15232}/' \
        -e 's/EJABBERD_DIST_PORT:-15369}/EJABBERD_PEP_DIST_PORT:-15379}/' > "$GEN.tmp"
if [ "${PIPESTATUS[0]}" != 0 ] || ! grep -q '^NAME=ejabberd-pep$' "$GEN.tmp" ||
    ! grep -q '^NODE=benchpep@localhost$' "$GEN.tmp" || ! grep -q 'EJABBERD_PEP_PORT:-15232}' "$GEN.tmp" ||
    ! grep -q 'EJABBERD_PEP_DIST_PORT:-15379}' "$GEN.tmp"; then
    echo "ejabberd-pep.sh: $BASE no longer has the lines this patches (pids, NAME, NODE, ports)" >&2
    exit 1
fi
mv "$GEN.tmp" "$GEN"
exec bash "$GEN" "$@"
