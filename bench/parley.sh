#!/bin/bash
# Parley (this checkout's build) on 127.0.0.1:15522, for the shared XMPP benchmark harness.
# Same interface as the harness's peers/*.sh, and copied next to them by bench/run.sh.
# usage: parley.sh start|stop|adduser N|pids|info|import-xep0227 FILE
#   import-xep0227 FILE  accounts and their data (rosters) from a XEP-0227 file,
#                        with parleyd stopped (parleyctl import-xep0227; existing
#                        accounts are skipped); bench/pep.sh provisions with it
# env:   PARLEY_TOP     the built checkout (has ./parleyd and ./parleyctl); default: found from here
#        BENCH_CERT_KIND=ecdsa  use a P-256 certificate instead of the shared RSA-2048 one
#        PARLEY_PORT    (15522)
#        PARLEY_BENCH_DSN  keep the accounts in PostgreSQL (driver pgsql) with this
#                          libpq conninfo instead of SQLite; the database must hold
#                          sql/pgsql.sql (e.g. from tests/db/pgsql.sh start DIR)
#        PARLEY_BENCH_DB_PASSWORD_FILE  the database password, for PARLEY_BENCH_DSN
#        PARLEY_NAME    (parley) name of the run folder under PEER_ROOT
#        PARLEY_BENCH_MUC  1: load the MUC module (conference.bench.local, set up
#                          for bench/muc.sh), 0: do not; default: 1 when the
#                          build has modules/muc
#        PARLEY_BENCH_MAM  1: the message archive module with every chat message
#                          archived (mam: PARLEY_BENCH_MAM_OPTS, default
#                          { default: always }), for bench/mam.sh;
#                          0 (default): mam: false, when the build has the module
#                          (it is on by default), so that the msg scenario stays
#                          comparable with the harness's peers, which archive nothing
#        PARLEY_BENCH_STARTTLS  the listener's starttls (required); "optional" lets
#                          bench/sm-resume.sh measure logins without TLS
#        PARLEY_BENCH_MODULES  more lines for the modules: section, as they are
#                          (YAML, two spaces in), e.g. for bench/sm-resume.sh
set -e
# shellcheck source=/dev/null
. "$(dirname "$0")/common.sh"
NAME=${PARLEY_NAME:-parley}
DIR=$PEER_ROOT/$NAME
PORT=${PARLEY_PORT:-15522}
CFG=$DIR/parley.yml
PIDFILE=$DIR/parleyd.pid

find_top() {
    local here t
    here=$(cd "$(dirname "$0")" && pwd)
    if [ -n "${PARLEY_TOP:-}" ]; then
        echo "$PARLEY_TOP"
        return
    fi
    t=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || true)
    if [ -n "$t" ] && [ -x "$t/parleyd" ]; then
        echo "$t"
        return
    fi
    echo "$here/.."
}
TOP=$(cd "$(find_top)" && pwd)
PARLEYD=$TOP/parleyd
PARLEYCTL=$TOP/parleyctl
export PARLEY_SQL_DIR=${PARLEY_SQL_DIR:-$TOP/sql}   # schema of a new database
need_binaries() {
    if [ ! -x "$PARLEYD" ] || [ ! -x "$PARLEYCTL" ]; then
        echo "parley.sh: no parleyd/parleyctl in $TOP (build Parley, or set PARLEY_TOP)" >&2
        exit 1
    fi
}

cert_files() {   # prints "CERT KEY"
    if [ "${BENCH_CERT_KIND:-rsa}" = ecdsa ]; then
        mkdir -p "$DIR"
        if [ ! -s "$DIR/ecdsa.crt" ]; then
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
                -subj "/CN=$BENCH_DOMAIN" -addext "subjectAltName=DNS:$BENCH_DOMAIN" \
                -keyout "$DIR/ecdsa.key" -out "$DIR/ecdsa.crt" 2>/dev/null
        fi
        echo "$DIR/ecdsa.crt $DIR/ecdsa.key"
    else
        bench_cert
        echo "$PEER_ROOT/certs/bench.crt $PEER_ROOT/certs/bench.key"
    fi
}

storage_config() {
    if [ -n "${PARLEY_BENCH_DSN:-}" ]; then
        printf 'storage:\n  driver: pgsql\n  dsn: "%s"\n' "$PARLEY_BENCH_DSN"
        if [ -n "${PARLEY_BENCH_DB_PASSWORD_FILE:-}" ]; then
            printf '  password_file: %s\n' "$PARLEY_BENCH_DB_PASSWORD_FILE"
        fi
    else
        printf 'storage:\n  driver: sqlite\n  path: parley.db\n'
    fi
}

muc_config() {
    local want=${PARLEY_BENCH_MUC:-}
    if [ -z "$want" ]; then
        if [ -d "$TOP/modules/muc" ]; then want=1; else want=0; fi
    fi
    [ "$want" = 1 ] || return 0
    # anyone may create rooms, up to 2000 occupants (new rooms too), no flood
    # limit, 20 messages of history kept: as bench/peers/ejabberd-muc.sh has it
    printf '  muc: { hosts: ["conference.@HOST@"], access_create: anyone, max_occupants: 2000, default_max_users: 2000, message_rate: 0, history_size: 20 }\n'
}

mam_config() {
    if [ "${PARLEY_BENCH_MAM:-0}" = 1 ]; then
        printf '  mam: %s\n' "${PARLEY_BENCH_MAM_OPTS:-{ default: always \}}"
    elif [ -f "$TOP/modules/mod_mam.c" ]; then
        printf '  mam: false\n'
    fi
}

write_config() {
    local cert key
    read -r cert key < <(cert_files)
    mkdir -p "$DIR"
    cat > "$CFG" <<EOC
# written by bench/parley.sh
loglevel: warning
log_file: parleyd.log
pidfile: parleyd.pid
control:
  socket: parley.sock
limits:
  max_connections_per_ip: 0
  idle_timeout: 0
tls:
  certificate: $cert
  key: $key
$(storage_config)
auth:
  methods: [internal]
listen:
  - port: $PORT
    address: 127.0.0.1
    module: c2s
    starttls: ${PARLEY_BENCH_STARTTLS:-required}
    backlog: 1024
modules:
  disco: {}
  version: {}
  ping: {}
  time: {}
  roster: {}
  register: { open: false }
$(muc_config)
$(mam_config)
${PARLEY_BENCH_MODULES:-}
hosts:
  $BENCH_DOMAIN: {}
EOC
}

pids() {
    if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then cat "$PIDFILE"; fi
}

case "$1" in
start)
    need_binaries
    write_config
    p=$(pids)
    if [ -n "$p" ]; then kill_pids "$p"; fi
    ulimit -n 20000 2>/dev/null || true
    taskset -c "$SERVER_CPU" "$PARLEYD" -d -c "$CFG"
    wait_port "$PORT" 30
    for _ in $(seq 50); do [ -n "$(pids)" ] && break; sleep 0.1; done
    pin_pids "$(pids)"
    echo "parley started: pids $(pids)"
    ;;
stop)
    p=$(pids)
    if [ -n "$p" ]; then kill_pids "$p"; fi
    rm -f "$PIDFILE"
    echo "parley stopped"
    ;;
adduser)
    N=${2:?N}
    need_binaries
    [ -f "$CFG" ] || write_config
    MARK=$DIR/users.count
    [ -n "${PARLEY_BENCH_DSN:-}" ] || [ -s "$DIR/parley.db" ] || rm -f "$MARK"
    have=$(cat "$MARK" 2>/dev/null || echo 0)
    if [ "$have" -ge "$N" ]; then
        echo "accounts: $have (already provisioned)"
        exit 0
    fi
    # one parleyctl for all of them (online through the control socket when
    # parleyd runs, on the database directly when it does not)
    seq 1 "$N" | sed "s/.*/u&:$BENCH_PASS/" | "$PARLEYCTL" -c "$CFG" import-users "$BENCH_DOMAIN"
    echo "$N" > "$MARK"
    echo "accounts: $N"
    ;;
import-xep0227)
    F=${2:?FILE}
    need_binaries
    [ -f "$CFG" ] || write_config
    if [ -n "$(pids)" ]; then echo "parley.sh: import-xep0227 needs parleyd stopped" >&2; exit 1; fi
    "$PARLEYCTL" -c "$CFG" import-xep0227 "$F"
    ;;
pids) pids; echo ;;
info) echo "host=127.0.0.1 port=$PORT domain=$BENCH_DOMAIN" ;;
*) echo "usage: $0 start|stop|adduser N|pids|info|import-xep0227 FILE" >&2; exit 2 ;;
esac
