#!/bin/sh
# Browser tests: the web administration, and Converse.js as a web client
# over WebSocket and BOSH, in Debian's headless Chromium driven by
# playwright-core (both from npm, pinned in package-lock.json).  Run by
# `make check`, or by hand from a build directory:
#   tests/browser/run.sh [pytest args, e.g. -k csrf -x]
# node_modules is installed with `npm ci` into the build dir
# (tests/browser/node-env, reused while package-lock.json is unchanged);
# screenshots go to tests/browser/artifacts there.
# Exit 77 (skipped) when node, npm, chromium, slixmpp or pytest is missing.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/env.sh"
for tool in node npm; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "SKIP: $tool is not installed (apt-get install nodejs npm)"
        exit 77
    fi
done
if [ -z "${CHROMIUM:-}" ]; then
    for c in /usr/lib/chromium/chromium /usr/bin/chromium; do
        [ -x "$c" ] && CHROMIUM=$c && break
    done
fi
if [ -z "${CHROMIUM:-}" ]; then
    echo "SKIP: chromium is not installed (apt-get install chromium)"
    exit 77
fi
export CHROMIUM

PARLEY_BROWSER_ENV=$PARLEY_BUILDDIR/tests/browser/node-env
ARTIFACTS=$PARLEY_BUILDDIR/tests/browser/artifacts
export PARLEY_BROWSER_ENV ARTIFACTS
mkdir -p "$PARLEY_BROWSER_ENV" "$ARTIFACTS"
if ! cmp -s "$here/package-lock.json" "$PARLEY_BROWSER_ENV/package-lock.json" ||
    [ ! -d "$PARLEY_BROWSER_ENV/node_modules/playwright-core" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$PARLEY_BROWSER_ENV/" || exit 99
    echo "installing playwright-core and converse.js (npm ci) in $PARLEY_BROWSER_ENV"
    if ! (cd "$PARLEY_BROWSER_ENV" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); then
        rm -f "$PARLEY_BROWSER_ENV/package-lock.json"
        echo "ERROR: npm ci failed (is the npm registry reachable?)"
        exit 99
    fi
fi
echo "chromium: $($CHROMIUM --version 2>/dev/null | head -n1); node $(node --version)"
echo "screenshots: $ARTIFACTS"
cd "$PARLEY_BUILDDIR" || exit 99
exec "$PY" -m pytest -q -p no:cacheprovider "$@" "$here"
