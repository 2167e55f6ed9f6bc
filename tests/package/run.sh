#!/bin/bash
# The Debian package, end to end (not part of make check):
#   0. runs the postinst's upgrade steps with stubs (tests/package/postinst.sh);
#   1. builds it with dpkg-buildpackage -us -uc -b in a scratch copy of the
#      tree (build-pkg/src);
#   2. makes a clean Debian 12 chroot (mmdebstrap, minbase) and installs the
#      .deb there with apt, which brings its dependencies;
#   3. starts parleyd in it the way the unit's ExecStart does (as the parley
#      user, no new privileges, only CAP_NET_BIND_SERVICE in the bounding
#      set; systemd does not run in a chroot), after the unit's config check;
#   4. creates accounts with parleyctl as root and as a member of the parley
#      group (and checks that a user outside the group is refused);
#   5. logs in from the host with slixmpp (the chroot shares the network
#      namespace) and exchanges a message (tests/package/login.py);
#   6. reloads with the unit's ExecReload, rotates the log with the
#      package's logrotate file, checks that
#      parleyd writes to the new file, and stops parleyd;
#   7. takes the database back one schema version and reinstalls the
#      package, whose postinst must migrate it (after a run where it
#      cannot, which must warn without failing), then starts parleyd and
#      logs in again, and reinstalls once more with parleyd running;
#   8. checks the installed unit with systemd-analyze verify, and purges
#      the package.
#
#   tests/package/run.sh        (as root: debootstrapping and chroot need it)
#
# Work files stay in build-pkg/ (the chroot is made again at each run).
# PARLEY_PKG_MIRROR: the Debian mirror (default http://deb.debian.org/debian).
# Prints the time taken; exits non-zero on the first failure.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        echo "package test: needs root (mmdebstrap, chroot); re-running through sudo"
        exec sudo -- "$TOP/tests/package/run.sh" "$@"
    fi
    echo "package test: run this as root (mmdebstrap and chroot need it)" >&2
    exit 1
fi
# Mounts made for the chroot (/proc, /dev) live in a mount namespace of
# this script's own, so they go away with it, whatever happens.
if [ -z "${PARLEY_PKG_UNSHARED:-}" ]; then
    export PARLEY_PKG_UNSHARED=1
    exec unshare --mount --propagation private -- "$TOP/tests/package/run.sh" "$@"
fi

START=$(date +%s)
WORK=$TOP/build-pkg
R=$WORK/chroot
MIRROR=${PARLEY_PKG_MIRROR:-http://deb.debian.org/debian}
DOMAIN=localhost
step() { printf '\n==> package test: %s (%ss)\n' "$*" "$(($(date +%s) - START))"; }
fail() {
    echo "package test: FAILED: $*" >&2
    if [ -f "$R/var/log/parley/parley.log" ]; then
        echo "---- parley.log (last lines)" >&2
        tail -n 40 "$R/var/log/parley/parley.log" >&2
    fi
    exit 1
}
in_chroot() { chroot "$R" "$@"; }

daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

step "dependencies"
bash scripts/deps.sh build test

step "the postinst's upgrade steps, with systemd and parleyctl stubbed"
sh tests/package/postinst.sh || fail "tests/package/postinst.sh"

# ---- 1. build -----------------------------------------------------------------
step "dpkg-buildpackage in build-pkg/src"
mkdir -p "$WORK"
rm -f "$WORK"/*.deb "$WORK"/*.buildinfo "$WORK"/*.changes
bash scripts/copy-source.sh "$WORK/src"
(cd "$WORK/src" && DEB_BUILD_OPTIONS="parallel=${JOBS:-2} nocheck" \
    dpkg-buildpackage -us -uc -b >"$WORK/dpkg-buildpackage.log" 2>&1) ||
    { tail -n 40 "$WORK/dpkg-buildpackage.log" >&2; fail "dpkg-buildpackage (log: $WORK/dpkg-buildpackage.log)"; }
debs=("$WORK"/parley_*.deb)
[ -f "${debs[0]}" ] || fail "no parley_*.deb in $WORK"
DEB=${debs[0]}
dpkg-deb --contents "$DEB" >"$WORK/contents.txt"
for f in ./usr/sbin/parleyd ./usr/bin/parleyctl ./usr/libexec/parley/parley-pam-helper \
    ./lib/systemd/system/parley.service ./etc/parley/parley.yml ./etc/logrotate.d/parley \
    ./usr/share/parley/sql/pgsql.sql ./usr/share/man/man8/parleyd.8.gz ./usr/share/doc/parley/copyright; do
    grep -q " $f\$" "$WORK/contents.txt" || fail "$f is not in $(basename "$DEB")"
done
dpkg-deb --info "$DEB" conffiles | grep -qx /etc/parley/parley.yml ||
    fail "/etc/parley/parley.yml is not a conffile"
echo "built $(basename "$DEB") ($(du -k "$DEB" | cut -f1) KiB)"

# ---- 2. a clean Debian 12 chroot, the package installed with apt ----------------
step "mmdebstrap bookworm (minbase)"
[ ! -d "$R" ] || rm -rf --one-file-system "$R"
# (the package lists are kept: apt installs the dependencies from them)
mmdebstrap --quiet --variant=minbase --skip=cleanup/apt/lists bookworm "$R" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/mmdebstrap.log" >&2; fail "mmdebstrap (log: $WORK/mmdebstrap.log)"; }
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
cp /etc/resolv.conf "$R/etc/resolv.conf"
cp "$DEB" "$R/tmp/"

# install_deb LOG [APT-OPTION...]: the .deb with apt in the chroot, its
# output (the maintainer scripts' lines among it) in $WORK/LOG.
install_deb() {
    local log=$1
    shift
    in_chroot env DEBIAN_FRONTEND=noninteractive apt-get -q -y install "$@" "/tmp/$(basename "$DEB")" \
        >"$WORK/$log" 2>&1 || { tail -n 30 "$WORK/$log" >&2; fail "installing the package ($WORK/$log)"; }
}
step "apt-get install ./$(basename "$DEB") in the chroot"
install_deb install.log
grep -E '^parley:' "$WORK/install.log" || true
in_chroot getent passwd parley >/dev/null || fail "no parley user"
in_chroot getent group parley >/dev/null || fail "no parley group"
perm() { in_chroot stat -c '%U:%G %a' "$1"; }
[ "$(perm /etc/parley/parley.yml)" = "root:parley 640" ] ||
    fail "/etc/parley/parley.yml is $(perm /etc/parley/parley.yml), not root:parley 640"
[ "$(perm /etc/parley/key.pem)" = "parley:parley 600" ] ||
    fail "/etc/parley/key.pem is $(perm /etc/parley/key.pem), not parley:parley 600"
[ "$(perm /var/lib/parley)" = "parley:parley 750" ] || fail "/var/lib/parley is $(perm /var/lib/parley)"
[ -L "$R/etc/systemd/system/multi-user.target.wants/parley.service" ] ||
    fail "parley.service is not enabled"

# ---- 3. parleyd as the unit starts it --------------------------------------------
step "parleyd started as the unit's ExecStart does"
read -r PORT TLS_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
# The listeners of the packaged configuration on free ports (other servers
# may be using 5222/5223 on this machine).
sed -i -e "s/^  - port: 5222 /  - port: $PORT /" -e "s/^  - port: 5223\$/  - port: $TLS_PORT/" \
    "$R/etc/parley/parley.yml"
grep -q "port: $TLS_PORT" "$R/etc/parley/parley.yml" || fail "could not set the ports"
unit=$R/lib/systemd/system/parley.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
exec_check=$(sed -n 's/^ExecStartPre=//p' "$unit")
if [ -z "$exec_start" ] || [ -z "$exec_check" ]; then fail "no ExecStart/ExecStartPre in the unit"; fi
# What systemd makes for the unit (RuntimeDirectory=, StateDirectory=,
# LogsDirectory=; mode 0750, owned by User=/Group=).
install -d -o "$(in_chroot id -u parley)" -g "$(in_chroot id -g parley)" -m 0750 "$R/run/parley"
# shellcheck disable=SC2054 # the commas belong to setpriv's options
AS_PARLEY=(setpriv --reuid=parley --regid=parley --init-groups --no-new-privs
    --inh-caps=-all --bounding-set=-all,+net_bind_service)
# The unit's ExecStartPre check, then ExecStart in the background.
start_parleyd() {
    # shellcheck disable=SC2086 # the unit's command lines, split as systemd does
    in_chroot "${AS_PARLEY[@]}" $exec_check || fail "the unit's ExecStartPre ($exec_check)"
    # shellcheck disable=SC2086
    chroot "$R" "${AS_PARLEY[@]}" $exec_start >"$WORK/parleyd.out" 2>&1 &
    daemon_pid=$!
    local deadline=$(($(date +%s) + 60))
    until in_chroot parleyctl status >/dev/null 2>&1; do
        kill -0 "$daemon_pid" 2>/dev/null || { cat "$WORK/parleyd.out" >&2; fail "parleyd exited"; }
        [ "$(date +%s)" -lt "$deadline" ] || fail "parleyctl status did not answer within 60 s"
        sleep 0.2
    done
}
stop_parleyd() {
    kill -TERM "$daemon_pid"
    local rc=0
    wait "$daemon_pid" || rc=$?
    daemon_pid=
    [ $rc -eq 0 ] || fail "parleyd exited $rc on SIGTERM"
}
start_parleyd
[ "$(perm /run/parley/parley.sock)" = "parley:parley 660" ] ||
    fail "the control socket is $(perm /run/parley/parley.sock), not parley:parley 660"
grep -q 'parleyd ready' "$R/var/log/parley/parley.log" || fail "no 'parleyd ready' in parley.log"
# chroot and setpriv exec parleyd: the pid started here is parleyd's.
[ "$(stat -c %u "/proc/$daemon_pid")" = "$(in_chroot id -u parley)" ] ||
    fail "parleyd does not run as the parley user"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$daemon_pid/status" || fail "parleyd may gain privileges"

# ---- 4. parleyctl as root, as a parley group member, as an outsider ------------------
step "parleyctl as root and as a member of the parley group"
PW1=pw-$RANDOM$RANDOM
PW2=pw-$RANDOM$RANDOM
in_chroot parleyctl register alice "$DOMAIN" "$PW1" || fail "parleyctl register as root"
in_chroot useradd --create-home --groups parley chatops
in_chroot useradd --create-home stranger
in_chroot setpriv --reuid=chatops --regid=chatops --init-groups parleyctl register bob "$DOMAIN" "$PW2" ||
    fail "parleyctl register as a member of the parley group"
in_chroot setpriv --reuid=chatops --regid=chatops --init-groups parleyctl registered-users "$DOMAIN" |
    grep -qx bob || fail "registered-users as a group member does not list bob"
if in_chroot setpriv --reuid=stranger --regid=stranger --init-groups parleyctl status >/dev/null 2>&1; then
    fail "parleyctl status worked for a user outside the parley group"
fi

# ---- 5. a real client from the host -------------------------------------------------
step "slixmpp logins from the host"
/usr/bin/python3 tests/package/login.py "$PORT" "$TLS_PORT" "$DOMAIN" alice "$PW1" bob "$PW2" ||
    fail "logging in from the host"

# ---- 6. reload, logrotate, stop ---------------------------------------------------
step "the unit's ExecReload, logrotate, stop"
exec_reload=$(sed -n 's/^ExecReload=//p' "$unit")
# shellcheck disable=SC2086
in_chroot "${AS_PARLEY[@]}" $exec_reload || fail "the unit's ExecReload ($exec_reload)"
in_chroot logrotate -f /etc/logrotate.d/parley || fail "logrotate"
[ -f "$R/var/log/parley/parley.log.1" ] || fail "logrotate did not rotate parley.log"
# postrotate sends SIGHUP (through the pid file here, as systemd does not
# run): parleyd notes it in the old file, then writes to the new one.
deadline=$(($(date +%s) + 30))
until grep -q 'SIGHUP' "$R/var/log/parley/parley.log.1" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "parleyd got no SIGHUP from logrotate's postrotate"
    sleep 0.2
done
stop_parleyd
grep -q 'parleyd stopped' "$R/var/log/parley/parley.log" ||
    fail "no 'parleyd stopped' in the new parley.log: the log was not reopened after rotation"
[ -s "$R/var/lib/parley/parley.db" ] || fail "no database in /var/lib/parley"

# ---- 7. an upgrade over a database of the previous schema version ---------------------
# The package's postinst applies the migrations on an upgrade (a reinstall
# runs it the same way: configure with the version configured before).
# The database goes back one schema version first; a migration that cannot
# be applied must warn without failing the upgrade.
step "an upgrade migrates the database (and warns when it cannot)"
DB=$R/var/lib/parley/parley.db
want=$(sed -n 's/^#define SQL_SCHEMA_VERSION \([0-9]*\).*/\1/p' storage/sql.h)
# (sqlite3 from the host's python3, as root: each connection is closed, so
# that no -wal or -shm file of root's is left, and the files are given back
# to the parley user after a write.)
sql_db() {
    python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
row = db.execute(sys.argv[2]).fetchone()
db.close()
print(row[0] if row else "")' "$DB" "$1"
}
schema_version() { sql_db "SELECT version FROM schema_version"; }
db_mode=$(stat -c %a "$DB")
[ "$(schema_version)" = "$want" ] || fail "the database is at schema version $(schema_version), not $want"
case $want in
15)
    sql_db "ALTER TABLE roster_items DROP COLUMN ask_in_stanza" >/dev/null
    sql_db "ALTER TABLE roster_items DROP COLUMN in_roster" >/dev/null
    sql_db "UPDATE schema_version SET version = 14" >/dev/null
    ;;
*) fail "tests/package/run.sh cannot take a database back from schema version $want: add that case" ;;
esac
chown --reference="$R/var/lib/parley" "$DB"*
[ "$(schema_version)" = $((want - 1)) ] || fail "could not take the database back one version"
chmod 0440 "$DB"
install_deb reinstall-readonly.log --reinstall
grep -q '^parley: a database could not be brought up' "$WORK/reinstall-readonly.log" ||
    { cat "$WORK/reinstall-readonly.log" >&2; fail "no warning when the migration could not be applied"; }
[ "$(schema_version)" = $((want - 1)) ] || fail "a failed migration changed the schema version"
# (the failed try left the -wal and -shm files with the file's mode: an
# operator mends all three)
chmod "$db_mode" "$DB"*
install_deb reinstall.log --reinstall
grep -E '^parley: +applied .*/usr/share/parley/sql/migrations/sqlite/0*'"$want"'-' "$WORK/reinstall.log" ||
    { cat "$WORK/reinstall.log" >&2; fail "the postinst applied no migration"; }
[ "$(schema_version)" = "$want" ] || fail "the database is at schema version $(schema_version) after the upgrade"
[ "$(perm /var/lib/parley/parley.db)" = "parley:parley $db_mode" ] ||
    fail "the migrated database is $(perm /var/lib/parley/parley.db), not parley:parley $db_mode"
start_parleyd
in_chroot parleyctl db status >/dev/null || fail "parleyctl db status after the upgrade"
/usr/bin/python3 tests/package/login.py "$PORT" "$TLS_PORT" "$DOMAIN" alice "$PW1" bob "$PW2" ||
    fail "logging in after the upgrade"
# Without systemd, a running parleyd is left alone (it would answer
# parleyctl for its own schema), with a message.
install_deb reinstall-running.log --reinstall
grep -q '^parley: parleyd is still running' "$WORK/reinstall-running.log" ||
    { cat "$WORK/reinstall-running.log" >&2; fail "no message about the running parleyd"; }
kill -0 "$daemon_pid" 2>/dev/null || fail "the reinstall stopped a parleyd not under systemd"
stop_parleyd

# ---- 8. the installed unit, then purge ------------------------------------------------
# systemd (for systemd-analyze and the targets the unit names) and man-db
# (Documentation=) are added to the chroot for this check only.
step "systemd-analyze verify parley.service (in the chroot)"
in_chroot env DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends systemd man-db \
    >"$WORK/systemd.log" 2>&1 || { tail -n 20 "$WORK/systemd.log" >&2; fail "installing systemd in the chroot"; }
in_chroot systemd-analyze verify parley.service || fail "systemd-analyze verify parley.service"
in_chroot systemd-analyze security --offline=yes parley.service 2>/dev/null | tail -n 1 || true

step "apt-get purge parley"
in_chroot env DEBIAN_FRONTEND=noninteractive apt-get -q -y purge parley >"$WORK/purge.log" 2>&1 ||
    { tail -n 20 "$WORK/purge.log" >&2; fail "apt-get purge parley"; }
for p in /var/lib/parley /etc/parley /usr/sbin/parleyd /var/log/parley; do
    [ ! -e "$R$p" ] || fail "$p is still there after the purge"
done

step "passed in $(($(date +%s) - START)) s"
