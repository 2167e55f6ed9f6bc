#!/bin/bash
# Build Parley and run it in the foreground with a ready-made configuration.
#
#   ./scripts/quickstart.sh
#
# Run it as root, or as any user: only installing missing packages needs
# root, and scripts/deps.sh asks for it through sudo when there is sudo and
# otherwise says to run the command as root (a fresh Debian container has
# no sudo).
# Installs the build dependencies (Debian 12), builds in the checkout, and
# keeps everything the server needs in ./run/ under the checkout:
#   run/cert.pem, run/key.pem   self-signed ECDSA P-256 certificate for the domain
#   run/parley.yml              the configuration (written once; edit it freely)
#   run/parley.db               the SQLite database
#   run/parley.sock             the control socket for parleyctl
#   run/admin-password          the generated password of admin@DOMAIN (mode 600)
# then starts ./parleyd in the foreground (Ctrl-C stops it).  Running it again
# reuses all of that; a database an older checkout made is first brought up
# to this checkout's schema version (parleyctl db migrate).
#
# Environment:
#   PARLEY_DOMAIN          the virtual host (default: localhost)
#   PARLEY_ADMIN_PASSWORD  password for admin@DOMAIN (default: generated once)
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
DOMAIN=${PARLEY_DOMAIN:-localhost}
RUN=$TOP/run

say() { printf '\n==> %s\n' "$*"; }

say "dependencies"
bash scripts/deps.sh build

say "building"
if [ ! -x configure ]; then
    ./autogen.sh
fi
if [ ! -f Makefile ] || [ configure -nt Makefile ]; then
    ./configure
fi
make -j"$(nproc)"

mkdir -p "$RUN"
# a new database gets its schema from the checkout's sql/
export PARLEY_SQL_DIR=$TOP/sql
chmod 700 "$RUN"

if [ ! -s "$RUN/cert.pem" ] || [ ! -s "$RUN/key.pem" ]; then
    say "self-signed certificate for $DOMAIN"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
        -keyout "$RUN/key.pem" -out "$RUN/cert.pem" 2>/dev/null
    chmod 600 "$RUN/key.pem"
fi

if [ ! -f "$RUN/parley.yml" ]; then
    say "writing run/parley.yml"
    cat > "$RUN/parley.yml" <<EOF
# Written by scripts/quickstart.sh; edit freely (it is not overwritten).
# Relative paths are relative to this file's directory.
# See doc/configuration.md for every option and etc/parley.yml for an example.
loglevel: info
control:
  socket: parley.sock
  mode: "0600"
tls:
  certificate: cert.pem
  key: key.pem
storage:
  driver: sqlite
  path: parley.db
auth:
  methods: [internal]
listen:
  - port: 5222
    module: c2s
    starttls: required
  - port: 5223
    module: c2s
    direct_tls: true
modules:
  disco: {}
  version: {}
  ping: {}
  time: {}
  register: { open: false }
  roster: {}
hosts:
  $DOMAIN:
    admins: [admin@$DOMAIN]
EOF
elif ! grep -q "^  $DOMAIN:" "$RUN/parley.yml"; then
    echo "note: run/parley.yml exists and has no host '$DOMAIN'; it is used as it is" >&2
fi

say "checking the configuration"
./parleyd -c "$RUN/parley.yml" -t

# the first account
PWFILE=$RUN/admin-password
if [ -n "${PARLEY_ADMIN_PASSWORD:-}" ]; then
    PASSWORD=$PARLEY_ADMIN_PASSWORD
    PWNOTE="(from PARLEY_ADMIN_PASSWORD)"
elif [ -s "$PWFILE" ]; then
    PASSWORD=$(cat "$PWFILE")
    PWNOTE="(saved in run/admin-password)"
else
    PASSWORD=$(openssl rand -base64 24 | tr -d '/+=\n' | cut -c1-20)
    (umask 077 && printf '%s\n' "$PASSWORD" > "$PWFILE")
    PWNOTE="(generated, saved in run/admin-password)"
fi

# a database made by an earlier checkout: up to this one's schema version
if [ -s "$RUN/parley.db" ] && ! ./parleyctl -c "$RUN/parley.yml" db status >/dev/null 2>&1; then
    say "updating run/parley.db to this version's schema"
    ./parleyctl -c "$RUN/parley.yml" db migrate
fi

say "account admin@$DOMAIN"
set +e
err=$(./parleyctl -c "$RUN/parley.yml" register admin "$DOMAIN" "$PASSWORD" 2>&1 >/dev/null)
rc=$?
set -e
if [ $rc -eq 0 ]; then
    echo "created admin@$DOMAIN"
elif [ $rc -eq 1 ] && printf '%s' "$err" | grep -q exists; then
    echo "admin@$DOMAIN exists already (password unchanged; change it with:"
    echo "  ./parleyctl -c run/parley.yml passwd admin $DOMAIN NEWPASSWORD)"
    PWNOTE="$PWNOTE; only valid if it was not changed since"
else
    echo "parleyctl register failed (exit $rc): $err" >&2
    exit 1
fi

cat <<EOF

Parley is starting for the domain $DOMAIN.
  user:      admin@$DOMAIN
  password:  $PASSWORD   $PWNOTE
  ports:     5222 (STARTTLS), 5223 (direct TLS)
Connect with Gajim, Profanity or Conversations as admin@$DOMAIN (set the
server/host to this machine if $DOMAIN does not resolve to it) and accept the
self-signed certificate.
Admin tool:  ./parleyctl -c run/parley.yml status | connected-users | register USER $DOMAIN PASSWORD
Stop:        Ctrl-C here, or ./parleyctl -c run/parley.yml stop

EOF
exec ./parleyd -c "$RUN/parley.yml"
