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
# The tree may be building beside this copy (test-all.sh starts the fuzz
# and package runs while the first make check builds its test programs):
# a build output that changes while it is read makes the reading tar exit
# 1 ("file changed as we read it").  Those outputs are left out below;
# the sources do not change, so that status is not a failure here.
set +o pipefail
tar -C "$TOP" -cf - --warning=no-file-changed --exclude=./.git "${excl[@]}" --exclude=./run \
    --exclude=./autom4te.cache --exclude='*.o' --exclude='*.a' --exclude=.deps --exclude=.dirstamp \
    --exclude='*.trs' --exclude='*.log' --exclude='*.mo' --exclude=__pycache__ --exclude=./Makefile \
    --exclude=./config.status --exclude=./parleyd --exclude=./parleyctl --exclude=./parley-pam-helper \
    --exclude=./stamp-h1 . |
    tar -C "$DEST" -xf -
status=("${PIPESTATUS[@]}")
set -o pipefail
if [ "${status[0]}" -gt 1 ] || [ "${status[1]}" -ne 0 ]; then
    echo "copy-source: copying $TOP to $DEST failed (tar exit ${status[0]}, ${status[1]})" >&2
    exit 1
fi
# unit test and fuzz binaries sit next to their sources
{ find "$DEST/tests" "$DEST/fuzz" -type f \( -name 'test-*' -o -name 'fuzz-*' \) 2>/dev/null || true; } |
    while IFS= read -r f; do
        case "$f" in
        *.[ch] | *.py | *.sh | *.md | *.dict | *.supp) ;;
        *) if [ -x "$f" ]; then rm -f "$f"; fi ;;
        esac
    done
exit 0
