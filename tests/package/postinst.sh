#!/bin/sh
# The upgrade part of debian/parley.postinst (migrate_databases) under
# dash and set -e, with systemd, deb-systemd-invoke, parleyctl and runuser
# replaced by stubs that log their calls: the cases a chroot without
# systemd cannot show (tests/package/run.sh runs the rest on a real
# install).  Needs no root; run by tests/package/run.sh.
#   tests/package/postinst.sh
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/bin" "$W/systemd" "$W/conf"
: >"$W/conf/parley.yml"

# The function alone, with the systemd folder it looks for moved here.
sed -n '/^migrate_databases() {$/,/^}$/p' "$TOP/debian/parley.postinst" |
    sed "s|/run/systemd/system|$W/systemd|" >"$W/migrate.sh"
grep -q "^migrate_databases() {" "$W/migrate.sh" || { echo "postinst.sh: no migrate_databases in the postinst" >&2; exit 1; }

# Stubs: each logs its arguments; STUB_* choose the answers.
for c in systemctl deb-systemd-invoke parleyctl runuser; do
    cat >"$W/bin/$c" <<EOF
#!/bin/sh
echo "$c \$*" >>"$W/calls"
case "$c \$*" in
"systemctl is-active parley.service") echo "\$STUB_STATE"; [ "\$STUB_STATE" = active ] ;;
"systemctl is-active --quiet parley.service") [ "\$STUB_STATE" = active ] ;;
"systemctl is-enabled --quiet parley.service") [ "\$STUB_ENABLED" = yes ] ;;
"parleyctl -c $W/conf/parley.yml status") [ "\$STUB_RUNNING" = yes ] ;;
"runuser -u parley -- parleyctl -c $W/conf/parley.yml db migrate")
    echo "store sqlite:/var/lib/parley/parley.db (hosts: localhost)"
    if [ "\$STUB_MIGRATE" = ok ]; then echo "  applied 014-offline-token.sql: now version 14"; else echo "  migration: FAILED"; exit 1; fi ;;
esac
EOF
    chmod +x "$W/bin/$c"
done

failures=0
# check NAME STATE ENABLED RUNNING MIGRATE PATTERN...: run it, then check
# the stubs' calls (+PATTERN: one matches, -PATTERN: none does) and what it
# printed (>PATTERN: a line matches).
check() {
    name=$1 state=$2 enabled=$3 running=$4 migrate=$5
    shift 5
    : >"$W/calls"
    if ! out=$(cd "$W" && PATH="$W/bin:$PATH" STUB_STATE=$state STUB_ENABLED=$enabled \
        STUB_RUNNING=$running STUB_MIGRATE=$migrate dash -c \
        "set -e; CONF=$W/conf; . ./migrate.sh; migrate_databases; echo finished" 2>&1); then
        echo "FAIL $name: migrate_databases failed under set -e: $out"
        failures=$((failures + 1))
        return
    fi
    ok=yes
    printf '%s\n' "$out" | grep -q '^finished$' || ok=no
    for p in "$@"; do
        case $p in
        +*) grep -q -- "${p#+}" "$W/calls" || ok=no ;;
        -*) if grep -q -- "${p#-}" "$W/calls"; then ok=no; fi ;;
        \>*) printf '%s\n' "$out" | grep -q -- "${p#>}" || ok=no ;;
        esac
    done
    if [ $ok = yes ]; then
        echo "ok   $name"
    else
        echo "FAIL $name"
        sed 's/^/     call: /' "$W/calls"
        printf '%s\n' "$out" | sed 's/^/     out:  /'
        failures=$((failures + 1))
    fi
}

check "enabled and running: stopped, migrated, left to the systemd section" active yes no ok \
    "+deb-systemd-invoke stop parley.service" "+db migrate" ">^parley:   applied" "-systemctl start"
check "running without being enabled: stopped, migrated, started again" active no no ok \
    "+deb-systemd-invoke stop parley.service" "+db migrate" "+systemctl start parley.service"
check "waiting to start again after a failure: stopped too" activating yes no ok \
    "+deb-systemd-invoke stop parley.service" "+db migrate"
check "not running: migrated, not started" inactive no no ok \
    "-deb-systemd-invoke" "+db migrate" "-systemctl start"
check "still answering (outside systemd): left alone, with a message" inactive no yes ok \
    "-db migrate" ">parleyd is still running"
check "a migration that fails: a warning, the upgrade goes on" active yes no fail \
    "+db migrate" ">^parley:   migration: FAILED" ">could not be brought up"
rm -r "$W/systemd"
check "no systemd: nothing stopped" active yes no ok \
    "-systemctl" "-deb-systemd-invoke" "+db migrate"

if [ $failures -gt 0 ]; then
    echo "postinst.sh: $failures case(s) failed" >&2
    exit 1
fi
echo "postinst.sh: all cases passed"
