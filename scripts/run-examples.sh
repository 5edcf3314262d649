#!/usr/bin/env bash
# Runs every example as a user would, through the launcher, on 1 and on 3
# and 4 localities, each run under a deadline; any failure fails the script.
#
#   - every Rust example (examples/*.rs) with `hpxrun -l N`;
#   - every Python example (python/examples/*.py) with `python -m hpxpy.run -l N`;
#   - the runnable code blocks of README.md and python/README.md: each
#     ```python block is run as a script; each ```rust block holding a whole
#     program (`#[hpx::main]`) must appear, line for line, in an example
#     under examples/, so that running the examples runs it.
#
# Usage: scripts/run-examples.sh [PROFILE_DIR] [PYTHON]
#   PROFILE_DIR  where the built examples and hpxrun are (default target/debug,
#                what `cargo nextest run --workspace` builds)
#   PYTHON       an interpreter with hpxpy installed (default target/pyenv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/debug}
python=${2:-target/pyenv/bin/python}
counts=(1 3 4)
deadline=120 # seconds for one run, start-up and shut-down included

for tool in "$bin/hpxrun" "$python"; do
    [ -x "$tool" ] || { echo "run-examples: $tool is missing (build first)" >&2; exit 2; }
done

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

passed=0
failed=0
failures=()

# run NAME N COMMAND...: one run under the deadline; its output is kept and
# shown when it fails. A run passes when it exits 0 and locality 0 spoke.
run() {
    local name=$1 n=$2
    shift 2
    local log="$scratch/run.log" started=$SECONDS rc=0
    timeout -k 10 "$deadline" "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] && grep -q '^\[L0\] ' "$log"; then
        passed=$((passed + 1))
        printf 'PASS %-40s -l %d  %3ds\n' "$name" "$n" $((SECONDS - started))
    else
        failed=$((failed + 1))
        failures+=("$name -l $n")
        if [ "$rc" -eq 124 ]; then
            echo "FAIL $name -l $n: no end within ${deadline}s"
        elif [ "$rc" -ne 0 ]; then
            echo "FAIL $name -l $n: exit code $rc"
        else
            echo "FAIL $name -l $n: exit code 0, but locality 0 printed nothing"
        fi
        sed 's/^/    /' "$log" | tail -n 40
    fi
}

for src in examples/*.rs; do
    name=$(basename "$src" .rs)
    [ -x "$bin/examples/$name" ] || { echo "run-examples: $bin/examples/$name is not built" >&2; exit 2; }
    for n in "${counts[@]}"; do
        run "examples/$name" "$n" "$bin/hpxrun" -l "$n" --timeout "$deadline" "$bin/examples/$name"
    done
done

for script in python/examples/*.py; do
    for n in "${counts[@]}"; do
        run "$script" "$n" "$python" -m hpxpy.run -l "$n" --timeout "$deadline" "$script"
    done
done

# The fenced blocks of a Markdown file whose info string is LANG, one file
# per block, under DIR: block_<line>.<ext>.
extract_blocks() {
    local doc=$1 lang=$2 dir=$3 ext=$4
    mkdir -p "$dir"
    awk -v lang="$lang" -v dir="$dir" -v ext="$ext" '
        /^```/ && !inside { inside = 1; keep = ($0 == "```" lang); out = dir "/block_" NR "." ext; next }
        /^```/ && inside  { inside = 0; if (keep) close(out); next }
        inside && keep    { print > out }
    ' "$doc"
}

for doc in README.md python/README.md; do
    dir="$scratch/$(echo "$doc" | tr '/.' '__')"
    extract_blocks "$doc" python "$dir/py" py
    for block in "$dir"/py/*.py; do
        [ -e "$block" ] || continue
        line=$(basename "$block" .py | cut -d_ -f2)
        for n in "${counts[@]}"; do
            run "$doc:$line (python block)" "$n" "$python" -m hpxpy.run -l "$n" --timeout "$deadline" "$block"
        done
    done
    extract_blocks "$doc" rust "$dir/rs" rs
    for block in "$dir"/rs/*.rs; do
        [ -e "$block" ] || continue
        grep -q '#\[hpx::main' "$block" || continue
        line=$(basename "$block" .rs | cut -d_ -f2)
        home=""
        for src in examples/*.rs; do
            if "$python" - "$block" "$src" <<'EOF'; then home=$src; break; fi
import sys
block, src = (open(p, encoding="utf-8").read() for p in sys.argv[1:])
sys.exit(0 if block.strip() and block.strip() in src else 1)
EOF
        done
        if [ -n "$home" ]; then
            passed=$((passed + 1))
            echo "PASS $doc:$line (rust program) is $home, run above"
        else
            failed=$((failed + 1))
            failures+=("$doc:$line (rust program)")
            echo "FAIL $doc:$line: this program is in no example under examples/, so nothing runs it"
        fi
    done
done

echo
if [ "$failed" -gt 0 ]; then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
