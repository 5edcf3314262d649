#!/usr/bin/env bash
# Fuzzes the wire decoders for a bounded time each, with cargo-fuzz (libFuzzer
# and AddressSanitizer) on the stable toolchain.
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
#   SECONDS  time per target (default: $FUZZ_SECONDS, else 60)
#   TARGET   parcel_decoder, handshake (default: both)
#
# Exits non-zero if any target crashes, panics, hangs, or allocates more
# than the limits below; the input that did it is left in
# fuzz/artifacts/TARGET/, and `cargo fuzz run --fuzz-dir fuzz TARGET FILE`
# replays it.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${1:-${FUZZ_SECONDS:-60}}"
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(parcel_decoder handshake)
fi
case "$seconds" in
    '' | *[!0-9]*)
        echo "run.sh: SECONDS must be a whole number, not '$seconds'" >&2
        exit 2
        ;;
esac

# cargo-fuzz builds with -Z flags (-Zsanitizer=address); this lets the stable
# compiler accept them.
export RUSTC_BOOTSTRAP=1
# Be gentle with shared machines; override to build faster.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
nice_level="${FUZZ_NICE:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd "$fuzz_dir/.."
status=0
for target in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$target"
    mkdir -p "$corpus"
    echo "== fuzzing $target for ${seconds}s"
    # New inputs go to corpus/ (kept between runs, not checked in); seeds/
    # holds a few valid messages to start from. No input may take 10 s or
    # allocate 64 MiB at once: every input is at most 4 KiB.
    if ! nice -n "$nice_level" cargo fuzz run \
        --fuzz-dir "$fuzz_dir" --target-dir "$fuzz_dir/target" \
        "$target" "$corpus" "$fuzz_dir/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 \
        -malloc_limit_mb=64 -rss_limit_mb=1024 -print_final_stats=1; then
        echo "== $target FAILED; see $fuzz_dir/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
