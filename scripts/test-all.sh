#!/usr/bin/env bash
# Every test of the project: the Rust workspace (nextest), then HPXPy's
# pytest suites, run as real jobs of 1-5 localities, then every example (Rust,
# Python and the READMEs' runnable blocks) through the launcher on 1, 3 and
# 4 localities. Python's tools
# (maturin, numpy, pytest) go into a virtualenv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked

cargo nextest run --workspace

venv=target/pyenv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "maturin>=1.5,<2" "numpy>=1.22" "pytest>=7"
# Builds the extension (dev profile, sharing the workspace's build) and
# installs hpxpy into the virtualenv.
(cd python && VIRTUAL_ENV="$PWD/../$venv" PATH="$PWD/../$venv/bin:$PATH" maturin develop --quiet)
"$venv/bin/python" -m pytest python/tests -q
# The examples, as a user runs them (the binaries nextest built above).
bash scripts/run-examples.sh target/debug "$venv/bin/python"
