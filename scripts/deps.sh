#!/bin/bash
# Install the Debian 12 packages Parley needs, and only those that are missing.
#
#   scripts/deps.sh build        compilers, autotools and the libraries configure looks for
#   scripts/deps.sh test         what the test suites need on top (slixmpp, pytest, ...)
#   scripts/deps.sh build test   both
#
# Idempotent: packages already installed are not touched, and `apt-get update`
# runs (once) only when something has to be installed.  Installing needs
# root: started as another user, it re-runs itself through sudo when sudo
# exists, and otherwise stops saying to run the command as root (a fresh
# Debian container has no sudo).
set -euo pipefail

BUILD_PKGS=(autoconf automake libtool pkg-config make gcc libc6-dev
    libev-dev libexpat1-dev libssl-dev zlib1g-dev libidn-dev libyaml-dev
    libsqlite3-dev libjansson-dev libpq-dev libmariadb-dev unixodbc-dev libldap-dev libpam0g-dev
    libcmocka-dev libc-ares-dev openssl libhttp-parser-dev libwslay-dev
    # msgfmt builds the web admin's translations (po/*.po -> .mo)
    gettext)
TEST_PKGS=(python3 python3-slixmpp python3-pytest sqlite3 procps iproute2
    postgresql mariadb-server unixodbc odbc-postgresql odbc-mariadb slapd ldap-utils libpam-wrapper util-linux groff-base
    profanity tmux coturn python3-pytest-xdist prosody python3-websockets python3-prometheus-client
    clang-14 libclang-rt-14-dev
    biboumi ngircd ejabberd python3-dnslib python3-aiohttp chromium nodejs npm
    mmdebstrap debhelper dpkg-dev
    lua-dbi-sqlite3 lua-dbi-postgresql lua-dbi-mysql
    # ejabberd's PostgreSQL and MySQL drivers (recommended, not pulled in
    # without recommends): test_import_ejabberd_sql.py runs ejabberd on SQL
    erlang-p1-pgsql
    erlang-p1-mysql)
# prosody is the remote side of the federation interop test
# (tests/integration/test_s2s_prosody.py, run privately on loopback; the
# package's own service is not used); ejabberd likewise for
# tests/integration/test_s2s_ejabberd.py (own node, cookie and
# distribution port, so no epmd).  python3-dnslib serves SRV and address
# records from the tests (parleytest.TestDNS: test_s2s_dns.py for parleyd,
# test_s2s_ejabberd.py for ejabberd).
# clang-14 builds the libFuzzer targets (scripts/fuzz.sh); libclang-rt-14-dev,
# which holds libFuzzer and the sanitizer runtimes, is only a Recommends of
# it, so it is named here (apt-get --no-install-recommends leaves it out).
# biboumi (an XMPP-IRC gateway run as an external component) and ngircd
# (the IRC server) serve tests/integration/test_irc.py.
# lua-dbi-sqlite3, lua-dbi-postgresql and lua-dbi-mysql let the private Prosody of
# tests/integration/test_import_prosody_sql.py keep its data in SQL
# (storage = "sql"), which parleyctl import-prosody-sql then reads.
# mmdebstrap, debhelper and dpkg-dev build the Debian package and the clean
# Debian 12 chroot it is installed into (tests/package/run.sh).

usage() {
    echo "usage: $0 build|test [build|test ...]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
wanted=()
for set in "$@"; do
    case "$set" in
    build) wanted+=("${BUILD_PKGS[@]}") ;;
    test) wanted+=("${TEST_PKGS[@]}") ;;
    *) usage ;;
    esac
done

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${wanted[@]}"; do
    # A nodejs from another source (NodeSource's packages) brings its own
    # npm and conflicts with Debian's: an npm on the PATH is enough.
    if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then
        continue
    fi
    installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all packages for '$*' are installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        echo "deps: need root to install ${missing[*]}; re-running through sudo"
        exec sudo -- "$0" "$@"
    fi
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: installing them needs root, and there is no sudo here: run the same command again" \
        "as root (for example after 'su -'), or install them as root with: apt-get install ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=600 -q)
echo "deps: installing ${missing[*]}"
"${APT[@]}" update
"${APT[@]}" install -y "${missing[@]}" </dev/null

still=()
for p in "${missing[@]}"; do
    installed "$p" || still+=("$p")
done
if [ ${#still[@]} -ne 0 ]; then
    echo "deps: could not install: ${still[*]}" >&2
    exit 1
fi
echo "deps: done"
