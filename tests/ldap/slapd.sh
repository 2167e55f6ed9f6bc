#!/bin/bash
# A throw-away OpenLDAP server for Parley's tests, in a directory of its own
# on a loopback port (never the system's slapd):
#
#   tests/ldap/slapd.sh start DIR PORT    write slapd.conf, a self-signed
#                                         certificate (StartTLS) and the test
#                                         directory into DIR, start slapd
#   tests/ldap/slapd.sh stop DIR          stop it (the data stays)
#   tests/ldap/slapd.sh kill DIR          kill it at once (SIGKILL), like a crash
#   tests/ldap/slapd.sh restart DIR       start it again on the same port
#
# The directory (suffix dc=parley,dc=test):
#   cn=admin,dc=parley,dc=test              rootdn, password admin-secret
#   cn=parley,ou=services,...               service account, parley-secret
#                                           (reads everything, writes userPassword)
#   uid=ann, uid=ben (mail: benny)          users, passwords ann-secret, ben-secret
#   uid=k+r\,o(o)*                          a user whose name needs escaping in
#                                           filters and DNs, password odd-secret
#   uid=dan                                 employeeType: disabled (the tests'
#                                           filter leaves such users out), dan-secret
#   uid=twin, mail=twin (another entry)     two entries for one name
#   uid=cleo                                userPassword in clear (method compare)
#   cn=Eve Example (uid: eve)               a user whose DN does not hold the uid,
#                                           password eve-secret
#   cn=staff,ou=groups (groupOfNames)       members ann, ben (shared roster groups)
#   cn=ops,ou=groups (groupOfNames)         members cleo, eve (by the cn DN) and a
#                                           DN without an entry
#   cn=unix,ou=groups (posixGroup)          memberUid ann, cleo
# Anonymous users may only bind (auth); they cannot search.  Unauthenticated
# binds (DN, empty password) succeed as anonymous.
# Needs slapd, slapadd and slappasswd (Debian: slapd, ldap-utils).
set -euo pipefail

SUFFIX='dc=parley,dc=test'
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "slapd.sh: $*" >&2; exit 1; }

find_slapd() {
    for p in "$(command -v slapd 2>/dev/null || true)" /usr/sbin/slapd; do
        [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return; }
    done
    die "slapd not found (apt-get install slapd ldap-utils)"
}

hash_pw() { slappasswd -h '{SSHA}' -s "$1"; }

write_conf() {
    local dir=$1
    cat >"$dir/slapd.conf" <<CONF
# written by tests/ldap/slapd.sh
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
TLSCertificateFile $dir/cert.pem
TLSCertificateKeyFile $dir/key.pem
# Accept unauthenticated binds (a DN with an empty password), as some
# servers do: a client that sent one would be let in as anonymous, so the
# tests show that Parley never sends one.
allow bind_anon_dn
loglevel none

database mdb
maxsize 20971520
suffix "$SUFFIX"
rootdn "cn=admin,$SUFFIX"
rootpw $(hash_pw admin-secret)
directory $dir/db
access to attrs=userPassword
    by dn.exact="cn=parley,ou=services,$SUFFIX" write
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="cn=parley,ou=services,$SUFFIX" read
    by self read
    by * none
CONF
}

write_cert() {
    local dir=$1
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=127.0.0.1' \
        -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 ||
        die "openssl could not make a certificate"
    cp "$dir/cert.pem" "$dir/ca.pem"
}

write_ldif() {
    local dir=$1
    # a tiny JPEG (1x1 pixel) for the vCard tests
    local photo=/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8QEBEQCgwSExIQEw8QEBD/yQALCAABAAEBAREA/8wABgAQEAX/2gAIAQEAAD8A0s8g/9k=
    cat >"$dir/data.ldif" <<LDIF
dn: $SUFFIX
objectClass: dcObject
objectClass: organization
dc: parley
o: Parley Test

dn: ou=people,$SUFFIX
objectClass: organizationalUnit
ou: people

dn: ou=services,$SUFFIX
objectClass: organizationalUnit
ou: services

dn: cn=parley,ou=services,$SUFFIX
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: parley
userPassword: $(hash_pw parley-secret)

dn: uid=ann,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: ann
cn: Ann Example
sn: Example
givenName: Ann
displayName: Annie
mail: ann@parley.test
telephoneNumber: +1 555 0100
o: Parley Test
ou: Engineering
title: Directory Keeper
jpegPhoto:: $photo
userPassword: $(hash_pw ann-secret)

dn: uid=ben,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: ben
cn: Ben Example
sn: Example
mail: ben@parley.test
mail: benny
userPassword: $(hash_pw ben-secret)

dn: uid=k\+r\,o(o)*,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: k+r,o(o)*
cn: Odd Name
sn: Name
userPassword: $(hash_pw odd-secret)

dn: uid=dan,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: dan
cn: Dan Disabled
sn: Disabled
employeeType: disabled
userPassword: $(hash_pw dan-secret)

dn: uid=twin,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: twin
cn: Twin One
sn: One
userPassword: $(hash_pw twin-secret)

dn: uid=twin2,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: twin2
mail: twin
cn: Twin Two
sn: Two
userPassword: $(hash_pw twin-secret)

dn: uid=cleo,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: cleo
cn: Cleo Clear
sn: Clear
userPassword: cleo-secret

dn: cn=Eve Example,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: eve
cn: Eve Example
sn: Example
userPassword: $(hash_pw eve-secret)

dn: ou=groups,$SUFFIX
objectClass: organizationalUnit
ou: groups

dn: cn=staff,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: staff
description: everyone at the desk
member: uid=ann,ou=people,$SUFFIX
member: uid=ben,ou=people,$SUFFIX

dn: cn=ops,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: ops
member: uid=cleo,ou=people,$SUFFIX
member: cn=Eve Example,ou=people,$SUFFIX
member: cn=nobody,ou=people,$SUFFIX

dn: cn=unix,ou=groups,$SUFFIX
objectClass: posixGroup
cn: unix
gidNumber: 5000
memberUid: ann
memberUid: cleo
LDIF
}

wait_port() {
    local port=$1 i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

run_slapd() {
    local dir=$1 port
    port=$(cat "$dir/port")
    "$(find_slapd)" -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$port/" >"$dir/slapd.out" 2>&1 ||
        die "slapd did not start: $(cat "$dir/slapd.out")"
    wait_port "$port" || die "slapd does not listen on 127.0.0.1:$port"
}

stop_slapd() {
    local dir=$1 sig=${2:-TERM} pid i
    [ -f "$dir/slapd.pid" ] || return 0
    pid=$(cat "$dir/slapd.pid")
    kill -s "$sig" "$pid" 2>/dev/null || { rm -f "$dir/slapd.pid"; return 0; }
    for i in $(seq 1 200); do
        # gone, or a zombie waiting for a parent that is not us
        case "$(ps -o stat= -p "$pid" 2>/dev/null)" in
        '' | Z*) break ;;
        esac
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/slapd.pid"
}

cmd=${1:-}
case "$cmd" in
start)
    [ $# -eq 3 ] || die "usage: $0 start DIR PORT"
    dir=$(mkdir -p "$2" && cd "$2" && pwd)
    echo "$3" >"$dir/port"
    rm -rf "$dir/db"
    mkdir -p "$dir/db"
    write_cert "$dir"
    write_conf "$dir"
    write_ldif "$dir"
    slapadd -q -f "$dir/slapd.conf" -l "$dir/data.ldif" >"$dir/slapadd.out" 2>&1 ||
        die "slapadd failed: $(cat "$dir/slapadd.out")"
    run_slapd "$dir"
    ;;
restart)
    [ $# -eq 2 ] || die "usage: $0 restart DIR"
    dir=$(cd "$2" && pwd)
    stop_slapd "$dir"
    run_slapd "$dir"
    ;;
stop)
    [ $# -eq 2 ] || die "usage: $0 stop DIR"
    stop_slapd "$2"
    ;;
kill)
    [ $# -eq 2 ] || die "usage: $0 kill DIR"
    stop_slapd "$2" KILL
    ;;
*)
    die "usage: $0 start DIR PORT | stop DIR | kill DIR | restart DIR"
    ;;
esac
