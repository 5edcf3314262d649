#!/usr/bin/env bash
# vs-mpi.sh - hpx-rs beside MPI on this machine, in one command.
#
#   bash bench/scripts/vs-mpi.sh                          # every case, 3 launches each
#   REPS=5 CASES="pingpong allreduce1" bash bench/scripts/vs-mpi.sh
#
# Runs the tests of shared/baselines/mpibench.c (Open MPI, shared memory:
# btl vader,self) and their hpx-rs mirror, bench/src/bin/vs_mpi.rs (same
# sizes, warm-ups, iteration counts and timing rules), case by case, and
# prints one Markdown table of medians and ratios against the goals.
#
# - Installs Open MPI with apt-get when mpicc or mpirun is missing.
# - Builds mpibench with `mpicc -O2` into $WORK, and vs_mpi and hpxrun with
#   cargo --release (BUILD=0 skips cargo).
# - Every case runs $REPS separate launches of each program, alternating
#   MPI and hpx-rs; each launch does its own warm-up and ONE timed
#   repetition (`... TEST 1`). The figure is the median over the launches:
#   run-to-run variance between launches is larger than inside one.
# - Raw output of every launch goes to $WORK/logs, the table (with the
#   machine and the exact commands) to $WORK/results.md as well.
# - All traffic stays on loopback: Open MPI's bootstrap is pinned to `lo`
#   and its data go through shared memory; hpxrun starts local children
#   that talk over loopback (and shared memory).
#
# Environment:
#   CASES          subset of: pingpong bw allreduce1 barrier allreduceM bcast gather
#                  (default: all; bw also runs hpx-rs's bwshared and bwget)
#   REPS           launches per program and case (default 3)
#   WORK           work directory (default /tmp/vs-mpi)
#   MPIBENCH_SRC   mpibench.c (default: shared/baselines/mpibench.c beside the checkout)
#   BUILD          0 to skip the cargo build (default 1)
#
# Exit status: 0 when every launch gave its result, 1 otherwise (the table
# is printed either way, with NA where results are missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MPIBENCH_SRC=${MPIBENCH_SRC:-$HERE/../../../shared/baselines/mpibench.c}
WORK=${WORK:-/tmp/vs-mpi}
REPS=${REPS:-3}
CASES=${CASES:-"pingpong bw allreduce1 barrier allreduceM bcast gather"}
BUILD=${BUILD:-1}
LOGS=$WORK/logs
ROWS=$WORK/rows.tsv
CMDS=$WORK/commands.txt
FAILED=0

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'vs-mpi.sh: %s\n' "$*" >&2; exit 2; }

[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, got '$REPS'"
KNOWN=" pingpong bw allreduce1 barrier allreduceM bcast gather "
for c in $CASES; do
    [[ "$KNOWN" == *" $c "* ]] || die "unknown case '$c' (known:$KNOWN)"
done
want() { [[ " $CASES " == *" $1 "* ]]; }
[ -f "$MPIBENCH_SRC" ] || die "no mpibench.c at $MPIBENCH_SRC (set MPIBENCH_SRC)"
MPIBENCH_SRC=$(cd "$(dirname "$MPIBENCH_SRC")" && pwd)/$(basename "$MPIBENCH_SRC")

mkdir -p "$WORK" "$LOGS"
: >"$ROWS"
: >"$CMDS"

# ------------------------------------------------------------ install ----
if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null; then
    say "installing Open MPI (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev
fi

# -------------------------------------------------------------- build ----
say "building mpibench ($MPIBENCH_SRC)"
mpicc -O2 -o "$WORK/mpibench" "$MPIBENCH_SRC"
cd "$ROOT"
if [ "$BUILD" != 0 ]; then
    say "building vs_mpi and hpxrun (cargo --release)"
    cargo build --release -q -p hpx-bench --bin vs_mpi
    cargo build --release -q -p hpx --bin hpxrun
fi
[ -x target/release/vs_mpi ] && [ -x target/release/hpxrun ] ||
    die "target/release/vs_mpi or target/release/hpxrun is missing (run without BUILD=0)"

MPIRUN="mpirun --allow-run-as-root --oversubscribe --mca oob_tcp_if_include lo --mca pml ob1 --mca btl vader,self"
mpi_cmd() { echo "$MPIRUN -np $2 $WORK/mpibench $1 1"; }
hpx_cmd() { echo "target/release/hpxrun -l $2 --timeout 300 target/release/vs_mpi $1 1"; }

# ---------------------------------------------------------- measuring ----
# launch LOG CMD: one launch, output appended to LOG; a failure is recorded,
# not fatal.
launch() {
    local log=$1 cmd=$2 rc=0
    echo "### $cmd" >>"$log"
    # shellcheck disable=SC2086 # the command is split into words on purpose
    $cmd >>"$log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        echo "FAILED (exit $rc): $cmd (see $log)" >&2
        tail -n 5 "$log" >&2
        FAILED=1
    fi
}

# median LOG TEST: the median of the values of the "RESULT TEST ..." lines
# of LOG (hpxrun's "[L0] " prefix allowed), NA if there are none.
median() {
    awk -v t="$2" '{ for (i = 1; i <= NF - 4; i++) if ($i == "RESULT" && $(i + 1) == t) { print $(i + 4); break } }' "$1" |
        sort -g | awk '{ a[NR] = $1 }
            END { if (NR == 0) { print "NA"; exit }
                  print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# row MEASURE NP UNIT HPX_TEST MPI_TEST GOAL_OP GOAL: the medians of the
#   logs of case_run/hpx_only for those tests at NP. GOAL_OP is "le"
#   (hpx/MPI at most GOAL: times) or "ge" (at least GOAL: bandwidths).
row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
        "$(median "$LOGS/hpx-$4-np$2.log" "$4")" "$(median "$LOGS/mpi-$5-np$2.log" "$5")" \
        "$6" "$7" >>"$ROWS"
}

# case_run TEST NP: REPS launches of both programs, alternating; logs in
# $LOGS/{mpi,hpx}-TEST-npNP.log.
case_run() {
    local test=$1 np=$2 r
    local mpi hpx
    mpi=$(mpi_cmd "$test" "$np")
    hpx=$(hpx_cmd "$test" "$np")
    : >"$LOGS/mpi-$test-np$np.log"
    : >"$LOGS/hpx-$test-np$np.log"
    printf '%s\n%s\n' "$mpi" "$hpx" >>"$CMDS"
    for r in $(seq "$REPS"); do
        say "$test np=$np launch $r/$REPS"
        launch "$LOGS/mpi-$test-np$np.log" "$mpi"
        launch "$LOGS/hpx-$test-np$np.log" "$hpx"
    done
}

# hpx_only TEST NP: REPS launches of hpx-rs alone (bwshared and bwget have no
# MPI twin).
hpx_only() {
    local test=$1 np=$2 r hpx
    hpx=$(hpx_cmd "$test" "$np")
    : >"$LOGS/hpx-$test-np$np.log"
    echo "$hpx" >>"$CMDS"
    for r in $(seq "$REPS"); do
        say "$test np=$np launch $r/$REPS"
        launch "$LOGS/hpx-$test-np$np.log" "$hpx"
    done
}

if want pingpong; then
    case_run pingpong 2
    row "round trip 8 B 0→1→0 (pingpong)" 2 us pingpong pingpong le 1.2
fi
if want bw; then
    case_run bw 2
    hpx_only bwshared 2
    hpx_only bwget 2
    row "bandwidth 64 MiB 0→1: action argument (bw)" 2 GB/s bw bw ge 1.0
    row "bandwidth 64 MiB 0→1: SharedBytes argument, read in place (bwshared) vs MPI bw" 2 GB/s bwshared bw ge 1.0
    row "bandwidth 64 MiB 1→0: array to_vec (bwget) vs MPI bw" 2 GB/s bwget bw ge 1.0
fi
if want allreduce1; then
    for np in 2 4 8; do
        case_run allreduce1 "$np"
        row "all_reduce 1 f64 (allreduce1)" "$np" us allreduce1 allreduce1 le 1.5
    done
fi
if want barrier; then
    for np in 2 4 8; do
        case_run barrier "$np"
        row "barrier" "$np" us barrier barrier le 1.5
    done
fi
if want allreduceM; then
    for np in 2 4; do
        case_run allreduceM "$np"
        row "all_reduce 2^20 f64 = 8 MiB (allreduceM)" "$np" ms allreduceM allreduceM le 1.0
    done
fi
if want bcast; then
    case_run bcast 4
    row "broadcast 8 MiB from 0 (bcast)" 4 ms bcast bcast le 1.0
fi
if want gather; then
    case_run gather 4
    row "gather 2^20 f64 per locality to 0 (gather)" 4 ms gather gather le 1.0
fi

# -------------------------------------------------------------- table ----
# Every row's values must be present for the run to count as complete.
if awk -F'\t' '$4 == "NA" || $5 == "NA" { bad = 1 } END { exit !bad }' "$ROWS"; then
    FAILED=1
fi

{
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
    echo "Open MPI $(mpirun --version 2>/dev/null | head -n 1 | awk '{ print $NF }'); launches per program and case: $REPS, each one warm-up + 1 timed repetition; medians over the launches"
    echo
    echo "| measure | np | hpx-rs (median of launches) | MPI shm (median) | hpx-rs / MPI | goal |"
    echo "|---|---:|---:|---:|---:|---|"
    awk -F'\t' '
        function num(v) {
            if (v == "NA") return v
            a = (v < 0) ? -v : v
            if (a >= 1000) return sprintf("%.0f", v)
            if (a >= 100) return sprintf("%.1f", v)
            if (a >= 10) return sprintf("%.2f", v)
            return sprintf("%.3f", v)
        }
        function cell(v, unit) { return (v == "NA") ? v : num(v) " " unit }
        {
            measure = $1; np = $2; unit = $3; h = $4; m = $5; op = $6; goal = $7
            if (h == "NA" || m == "NA" || m + 0 == 0) { ratio = "NA"; verdict = "no result" }
            else {
                r = h / m; ratio = sprintf("%.2f", r)
                met = (op == "le") ? (r <= goal + 0) : (r >= goal + 0)
                verdict = met ? "met" : "MISSED"
            }
            g = (op == "le") ? sprintf("≤ %.1f× (lower is better)", goal) : sprintf("≥ %.1f× (higher is better)", goal)
            printf "| %s | %s | %s | %s | %s | %s: %s |\n", measure, np, cell(h, unit), cell(m, unit), ratio, g, verdict
        }' "$ROWS"
    echo
    echo "hpx-rs / MPI is hpx-rs's figure divided by MPI's: for times (us, ms) lower is"
    echo "better and the goal is an upper bound; for bandwidths (GB/s = 1e9 bytes/s) it is"
    echo "hpx-rs's bandwidth over MPI's, higher is better and the goal is a lower bound."
    echo
    echo "Commands (run from $ROOT; each launched $REPS time(s)):"
    echo
    echo '```text'
    cat "$CMDS"
    echo '```'
    echo
    echo "Raw logs: $LOGS"
} | tee "$WORK/results.md"
exit "$FAILED"
