#!/bin/sh
# The man pages in doc/ render without a single groff warning (-ww: every
# warning) and name the commands and options the programs have.
# Exit 77 (skipped) when groff is not installed (scripts/deps.sh test
# installs groff-base).
srcdir=${top_srcdir:-$(dirname "$0")/../..}
builddir=${top_builddir:-.}
if ! command -v groff >/dev/null 2>&1; then
    echo "SKIP: groff is not installed (apt-get install groff-base)"
    exit 77
fi
rc=0
for page in "$srcdir"/doc/parleyd.8 "$srcdir"/doc/parleyctl.8 "$srcdir"/doc/parley.yml.5; do
    out=$(groff -man -ww -z "$page" 2>&1)
    if [ -n "$out" ]; then
        echo "FAIL: $page: groff warnings:"
        echo "$out"
        rc=1
    fi
done
# every parleyctl command in the table is in parleyctl.8
if [ -x "$builddir/parleyctl" ]; then
    cmds=$("$builddir/parleyctl" -c /nonexistent/parley.yml --json list-commands |
           sed -n 's/.*"name": "\([a-z0-9-]*\)".*/\1/p')
    if [ -z "$cmds" ]; then
        echo "FAIL: parleyctl list-commands listed nothing"
        rc=1
    fi
    for cmd in $cmds; do
        if ! grep -q -- "$(echo "$cmd" | sed 's/-/\\\\-/g')" "$srcdir/doc/parleyctl.8"; then
            echo "FAIL: parleyctl.8 does not describe '$cmd'"
            rc=1
        fi
    done
fi
# every parleyd option is in parleyd.8
for opt in c d t V; do
    grep -q "^\.B.* \\\\-$opt" "$srcdir/doc/parleyd.8" || grep -q "^\.BI \\\\-$opt" "$srcdir/doc/parleyd.8" ||
        { echo "FAIL: parleyd.8 does not describe -$opt"; rc=1; }
done
[ $rc -eq 0 ] && echo "man pages: ok"
exit $rc
