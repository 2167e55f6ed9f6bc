#!/bin/bash
# Run the shared benchmark suite with Parley interleaved with its peers.
#   bench/run.sh                      3 reps, parley vs ejabberd
#   REPS=1 PEERS="ejabberd prosody" bench/run.sh
#   PEERS= bench/run.sh               parley alone
# env: BENCH_SRC   the harness (default: ../shared/bench beside the checkout)
#      BENCH_WORK  the working copy (default: /tmp/xmppbench; results/ is kept there)
#      PARLEY_TOP  the built checkout (default: this one)
#      plus the harness's own (IDLE_SIZES, IDLE_BIG, USERS, BENCH_CERT_KIND for parley.sh, ...)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))
SRC=${BENCH_SRC:-$TOP/../shared/bench}
WORK=${BENCH_WORK:-/tmp/xmppbench}
REPS=${REPS:-3}
PEERS=${PEERS-ejabberd}
export PARLEY_TOP=${PARLEY_TOP:-$TOP}

if [ ! -d "$SRC" ]; then
    echo "run.sh: no benchmark harness at $SRC (set BENCH_SRC)" >&2
    exit 1
fi
if [ ! -x "$PARLEY_TOP/parleyd" ] || [ ! -x "$PARLEY_TOP/parleyctl" ]; then
    echo "run.sh: build Parley first (./configure && make in $PARLEY_TOP)" >&2
    exit 1
fi
for p in $PEERS; do
    case $p in
    ejabberd) need=ejabberdctl ;;
    prosody) need=prosodyctl ;;
    jabberd2) need=/usr/sbin/jabberd2-c2s ;;
    *) need= ;;
    esac
    if [ -n "$need" ] && ! command -v "$need" >/dev/null 2>&1; then
        echo "run.sh: peer $p is not installed: apt-get install $p (see $SRC/README.md)" >&2
        exit 1
    fi
done

# a writable copy of the harness (the shared one may be read-only); keep old results
mkdir -p "$WORK"
cp -r "$SRC/." "$WORK/"
chmod -R u+w "$WORK"
cp "$HERE/parley.sh" "$WORK/peers/parley.sh"
chmod +x "$WORK/peers/"*.sh "$WORK/"*.sh
make -s -C "$WORK/loadgen"

cd "$WORK"
OUT=results/raw-parley-$(date +%Y%m%d-%H%M%S).jsonl
mkdir -p results
# shellcheck disable=SC2086  # PEERS is a list
OUT=$OUT ./run-suite.sh "$REPS" parley $PEERS
python3 summarize.py "$OUT" | tee "${OUT%.jsonl}.md"
echo "raw results: $WORK/$OUT, table: $WORK/${OUT%.jsonl}.md"
