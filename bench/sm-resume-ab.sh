#!/bin/bash
# Two Parley builds side by side in one interleaved run of bench/sm-resume.sh
# (rep 1: old, new; rep 2: old, new; ...), for a change's effect on the
# cost of a resume and of a login on a shared, noisy machine.
#   bench/sm-resume-ab.sh [REPS] OLD_TOP NEW_TOP
# OLD_TOP, NEW_TOP: built checkouts (with ./parleyd, ./parleyctl and sql/);
# the servers are named parley-old and parley-new in the results.  Every
# sm-resume.sh setting (SM_VARIANTS, SM_USERS, SM_ROUNDS, SM_RECORD, ...)
# applies; REPS 3.  Results: BENCH_WORK/results/sm-ab-DATE.jsonl, its .log
# (the load average before each run) and the .md table of sm-summary.py.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPS=${1:-3}
OLD=${2:?usage: sm-resume-ab.sh [REPS] OLD_TOP NEW_TOP}
NEW=${3:?usage: sm-resume-ab.sh [REPS] OLD_TOP NEW_TOP}
W=${BENCH_WORK:-/tmp/xmppbench}
mkdir -p "$W/results"
OUT=results/sm-ab-$(date +%Y%m%d-%H%M%S).jsonl
for rep in $(seq "$REPS"); do
    for b in old new; do
        top=$OLD
        [ "$b" = new ] && top=$NEW
        echo "## rep $rep parley-$b ($top) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$W/${OUT%.jsonl}.log"
        OUT=$OUT PARLEY_TOP=$top SM_TAG=$b SM_REP=$rep "$HERE/sm-resume.sh" 1 parley | grep '^\[sm\]' || true
    done
done
python3 "$HERE/sm-summary.py" "$W/$OUT" | tee "$W/${OUT%.jsonl}.md"
echo "raw results: $W/$OUT, table: $W/${OUT%.jsonl}.md"
