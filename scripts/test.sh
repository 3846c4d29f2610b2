#!/usr/bin/env bash
# Set up (idempotent), build, and run the whole test suite. GPU tests skip with a reason on machines without one.
# With no arguments, also fuzzes every parser for 10 s each under libFuzzer + ASan + UBSan (scripts/fuzz.sh) when
# clang is installed (setup.sh installs it). Arguments go to ctest and skip the fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j "${LOFT_JOBS:-$(nproc)}" "$@"
if [ $# -eq 0 ]; then
  if command -v clang++ >/dev/null; then
    bash scripts/fuzz.sh "${LOFT_FUZZ_SECONDS:-10}"
  else
    echo "[test] libFuzzer run skipped: clang++ is not installed (the fuzz targets' corpus replays ran above)"
  fi
fi
