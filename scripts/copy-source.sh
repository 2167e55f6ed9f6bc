#!/bin/bash
# Copy the sources of the checkout, without anything a build made in it,
# into DEST (emptied first):
#
#   scripts/copy-source.sh DEST
#
# configure refuses a separate build directory while the checkout itself
# is configured, so the extra builds (build-asan/ of scripts/test-all.sh,
# build-fuzz/ of scripts/fuzz.sh) build from such a copy.  DEST must be a
# build-* directory of the checkout (it is left out of the copy).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
TOP=$(cd "$(dirname "$0")/.." && pwd)
DEST=$1
cd "$TOP"
rm -rf "$DEST"
mkdir -p "$DEST"
excl=()
for d in build-*/; do     # build directories, but not build-aux/ (autotools' scripts)
    [ -d "$d" ] && [ "$d" != build-aux/ ] && excl+=("--exclude=./${d%/}")
done
tar -C "$TOP" -cf - --exclude=./.git "${excl[@]}" --exclude=./run \
    --exclude=./autom4te.cache --exclude='*.o' --exclude='*.a' --exclude=.deps --exclude=.dirstamp \
    --exclude='*.trs' --exclude='*.log' --exclude=__pycache__ --exclude=./Makefile \
    --exclude=./config.status --exclude=./parleyd --exclude=./parleyctl --exclude=./parley-pam-helper \
    --exclude=./stamp-h1 . |
    tar -C "$DEST" -xf -
# unit test and fuzz binaries sit next to their sources
{ find "$DEST/tests" "$DEST/fuzz" -type f \( -name 'test-*' -o -name 'fuzz-*' \) 2>/dev/null || true; } |
    while IFS= read -r f; do
        case "$f" in
        *.[ch] | *.py | *.sh | *.md | *.dict | *.supp) ;;
        *) if [ -x "$f" ]; then rm -f "$f"; fi ;;
        esac
    done
exit 0
