#!/usr/bin/env bash
# vs-mpi4py.sh - hpxpy beside mpi4py + NumPy on this machine, in one command.
#
#   bash python/bench/vs-mpi4py.sh                      # 2 and 4 processes
#   NPS="2" N=2000000 REPS=3 bash python/bench/vs-mpi4py.sh
#
# Runs python/bench/vs_mpi4py.py under `python -m hpxpy.run -l NP ... hpx`
# and under `mpirun -np NP ... mpi` (Open MPI, shared memory: btl
# vader,self) for every NP, alternating, and prints one Markdown table:
# microseconds per call of each, and hpxpy / mpi4py.
#
# - Installs Open MPI with apt-get when mpirun is missing, and maturin,
#   NumPy and mpi4py into the virtualenv target/pyenv (the one
#   scripts/test-all.sh uses); builds hpxpy there with --release.
# - Raw output goes to $WORK/logs, the table also to $WORK/results.md.
#
# Environment: NPS (default "2 4"), N float64 elements (default 2*10^7),
# REPS timed repetitions per case (default 5), WORK (default
# /tmp/vs-mpi4py), BUILD=0 skips building hpxpy.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NPS=${NPS:-"2 4"}
N=${N:-20000000}
REPS=${REPS:-5}
WORK=${WORK:-/tmp/vs-mpi4py}
BUILD=${BUILD:-1}
VENV=$ROOT/target/pyenv
PY=$VENV/bin/python

say() { printf '== %s\n' "$*" >&2; }

if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
    say "installing Open MPI (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev
fi
[ -x "$PY" ] || python3 -m venv "$VENV"
if ! "$PY" -c 'import mpi4py, numpy, maturin' 2>/dev/null; then
    say "installing maturin, numpy and mpi4py into $VENV"
    "$PY" -m pip install -q "maturin>=1.5,<2" "numpy>=1.22" mpi4py
fi
if [ "$BUILD" != 0 ]; then
    say "building hpxpy (release)"
    (cd "$ROOT/python" && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release --quiet)
fi

mkdir -p "$WORK/logs"
SCRIPT=$HERE/vs_mpi4py.py
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe --mca oob_tcp_if_include lo --mca pml ob1 --mca btl vader,self)
: > "$WORK/rows.tsv"
for np in $NPS; do
    say "np=$np: mpi4py"
    "${MPIRUN[@]}" -np "$np" "$PY" "$SCRIPT" mpi --n "$N" --reps "$REPS" \
        > "$WORK/logs/mpi-$np.log" 2>&1 || say "mpi4py run failed: $WORK/logs/mpi-$np.log"
    say "np=$np: hpxpy"
    (cd "$ROOT" && PATH="$VENV/bin:$PATH" "$PY" -m hpxpy.run -l "$np" "$SCRIPT" hpx --n "$N" --reps "$REPS") \
        > "$WORK/logs/hpx-$np.log" 2>&1 || say "hpxpy run failed: $WORK/logs/hpx-$np.log"
    for impl in mpi hpx; do
        sed -n 's/^\(\[L0\] \)\{0,1\}RESULT \([a-z_0-9A-Z]*\) \([0-9]*\) \([0-9.]*\)$/\2\t\3\t'"$impl"'\t\4/p' \
            "$WORK/logs/$impl-$np.log" >> "$WORK/rows.tsv"
    done
done

"$PY" - "$WORK/rows.tsv" "$N" "$REPS" <<'EOF' | tee "$WORK/results.md"
import sys
rows, n, reps = sys.argv[1], sys.argv[2], sys.argv[3]
got = {}
order, nps = [], []
for line in open(rows):
    case, np_, impl, us = line.split("\t")
    got[(case, np_, impl)] = float(us)
    if case not in order:
        order.append(case)
    if np_ not in nps:
        nps.append(np_)
def fmt(us):
    return "NA" if us is None else (f"{us:.2f} us" if us < 1000 else f"{us / 1000:.2f} ms")
head = "| case | " + " | ".join(f"hpxpy {p} | mpi4py {p} | ratio {p}" for p in nps) + " |"
print(f"hpxpy vs mpi4py + NumPy, n = {n} float64, median of {reps} repetitions (slowest process)\n")
print(head)
print("|" + "---|" * (1 + 3 * len(nps)))
for case in order:
    cells = []
    for p in nps:
        h, m = got.get((case, p, "hpx")), got.get((case, p, "mpi"))
        ratio = f"{h / m:.2f}x" if h and m else "NA"
        cells += [fmt(h), fmt(m), ratio]
    print(f"| {case} | " + " | ".join(cells) + " |")
EOF
