#!/bin/bash
# Example authentication program for Parley's "external" auth method, in
# bash (see extauth.py for the protocol in full).  It answers "auth" and
# "isuser" from a file of "user@server:password" lines (first argument,
# default ./extauth-users.txt) and says no to everything else.
#
# Framing: each request is a 2-byte big-endian length and that many bytes;
# each reply is the bytes 00 02 and then 00 01 (yes) or 00 00 (no).
# Requests are read with dd, one byte at a time, so nothing past the
# request is consumed; the password never appears in a command line (only
# shell builtins see it).
export LC_ALL=C
users=${1:-extauth-users.txt}

reply() {
    if [ "$1" = 1 ]; then printf '\000\002\000\001'; else printf '\000\002\000\000'; fi
}

while :; do
    # two bytes of length, as decimal numbers
    set -- $(dd bs=1 count=2 2>/dev/null | od -An -tu1)
    [ $# -eq 2 ] || exit 0            # end of input: Parley is done with us
    len=$(( $1 * 256 + $2 ))
    IFS= read -r -N "$len" data || exit 1
    op=${data%%:*}; rest=${data#*:}
    user=${rest%%:*}; rest=${rest#*:}
    server=${rest%%:*}
    password=${rest#*:}               # everything after the third ':'
    ok=0
    case $op in
    auth)
        while IFS= read -r line; do
            if [ "$line" = "$user@$server:$password" ]; then ok=1; break; fi
        done < "$users"
        ;;
    isuser)
        while IFS= read -r line; do
            if [ "${line%%:*}" = "$user@$server" ]; then ok=1; break; fi
        done < "$users"
        ;;
    *)
        echo "operation '$op' is not supported by this example" >&2
        ;;
    esac
    reply $ok
done
