#!/usr/bin/env bash
# matmul.sh - hpxpy's a @ b beside NumPy's, in one sitting.
#
#   bash python/bench/matmul.sh                 # N=4096, 1 and 2 localities
#   N=2048 NPS="1 2 4" REPS=3 bash python/bench/matmul.sh
#
# Runs python/bench/bench_matmul.py with NumPy alone, then under
# `python -m hpxpy.run -l NP` for every NP, and prints seconds, GFLOP/s and
# NumPy / hpxpy (higher is better for hpxpy; the goal is >= 0.8). Uses the
# virtualenv target/pyenv with hpxpy built (scripts/test-all.sh makes it).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=$ROOT/target/pyenv/bin/python
N=${N:-4096}
NPS=${NPS:-"1 2"}
REPS=${REPS:-3}
numpy=$("$PY" "$HERE/bench_matmul.py" numpy "$N" "$REPS" | awk '/^RESULT/ { print $5, $6 }')
echo "| who | localities | N | seconds (median of $REPS) | GFLOP/s | NumPy time / this |"
echo "|---|---:|---:|---:|---:|---:|"
read -r nt ng <<<"$numpy"
echo "| NumPy (its BLAS) | 1 | $N | $nt | $ng | 1.00 |"
for np_ in $NPS; do
    line=$("$PY" -m hpxpy.run -l "$np_" "$HERE/bench_matmul.py" hpx "$N" "$REPS" \
        | sed 's/^\[L0\] //' | awk '/^RESULT/ { print $5, $6 }')
    read -r ht hg <<<"$line"
    ratio=$(awk -v a="$nt" -v b="$ht" 'BEGIN { printf "%.2f", a / b }')
    echo "| hpxpy | $np_ | $N | $ht | $hg | $ratio |"
done
