#!/bin/bash
# ejabberd for bench/websocket.py: the harness's peers/ejabberd.sh (mnesia,
# its module set) in a folder, Erlang node and ports of its own (ejabberd-ws
# under PEER_ROOT, benchws@localhost, c2s 15252, distribution 15399) with an
# ejabberd_http listener on 127.0.0.1:15453 (TLS, the bench certificate)
# serving WebSocket at /ws, and its schedulers told not to spin while idle
# (+sbwt none and the dirty-scheduler variants, in ejabberdctl.cfg), so that
# its CPU counts work, not busy-waiting:
#   ejabberd-ws.sh start|stop|adduser N|pids|info
# env: EJABBERD_WS_HTTP_PORT (15453)
# It must sit beside the harness's ejabberd.sh and common.sh
# (bench/websocket.py --ejabberd copies it into a copy of the harness's peers/).
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=$HERE/ejabberd.sh
GEN=$HERE/.ejabberd-ws-gen.sh
if [ ! -f "$BASE" ]; then
    echo "ejabberd-ws.sh: no $BASE (run it from the harness copy's peers/)" >&2
    exit 1
fi
# the listener added after the c2s one's last line (expanded there)
# shellcheck disable=SC2016
HTTP_LINES='  -
    port: ${EJABBERD_WS_HTTP_PORT:-15453}
    ip: "127.0.0.1"
    module: ejabberd_http
    tls: true
    request_handlers:
      /ws: ejabberd_http_ws'
HTTP_LINES=$HTTP_LINES awk '/^    starttls_required: true$/ { print; print ENVIRON["HTTP_LINES"]; n++; next }
     /^INET_DIST_INTERFACE=127.0.0.1$/ { print; print "ERL_OPTIONS=\"+sbwt none +sbwtdcpu none +sbwtdio none\""; n++; next }
     { print } END { exit n != 2 }' "$BASE" |
    sed -e 's/^NAME=ejabberd$/NAME=ejabberd-ws/' -e 's/^NODE=bench@localhost$/NODE=benchws@localhost/' \
        -e 's/EJABBERD_PORT:-15222}/EJABBERD_WS_PORT:-15252}/' \
        -e 's/EJABBERD_DIST_PORT:-15369}/EJABBERD_WS_DIST_PORT:-15399}/' > "$GEN.tmp"
if [ "${PIPESTATUS[0]}" != 0 ] || ! grep -q '^NAME=ejabberd-ws$' "$GEN.tmp" ||
    ! grep -q '^NODE=benchws@localhost$' "$GEN.tmp" || ! grep -q 'EJABBERD_WS_PORT:-15252}' "$GEN.tmp" ||
    ! grep -q 'EJABBERD_WS_DIST_PORT:-15399}' "$GEN.tmp"; then
    echo "ejabberd-ws.sh: $BASE no longer has the lines this patches (the c2s listener, ejabberdctl.cfg, NAME, NODE, ports)" >&2
    exit 1
fi
mv "$GEN.tmp" "$GEN"
exec bash "$GEN" "$@"
