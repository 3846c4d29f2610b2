#!/usr/bin/env bash
# Fuzzes loft's parsers (recipe + validator, safetensors, checkpoint index, tokenizer.json, encoding, JSONL, plugin
# manifests) with libFuzzer + ASan + UBSan: builds the targets with clang into build-fuzz/ and runs each for SECONDS
# (default 300; the test suite runs 10). Crashes are written to build-fuzz/tests/fuzz/artifacts/; copy each into
# tests/fuzz/regressions/<target>/ so every build replays it. Usage: bash scripts/fuzz.sh [SECONDS] [ctest -R regex]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-300}
FILTER=${2:-.}
VENV=${LOFT_VENV:-/opt/loft/venv}
JOBS=${LOFT_JOBS:-$(nproc)}
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ is not installed; run scripts/setup.sh (it installs clang) or: sudo apt-get install clang" >&2
  exit 2
fi
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  echo "[fuzz] configuring build-fuzz/ (clang, libFuzzer, address+undefined sanitizers)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLOFT_PYTHON="$VENV/bin/python" -DTORCH_CUDA_ARCH_LIST="7.5;9.0" -DLOFT_FUZZ=ON \
    -DLOFT_SANITIZE=address,undefined >/dev/null 2>&1
fi
cmake -S . -B build-fuzz -DLOFT_FUZZ_SECONDS="$SECONDS_EACH" >/dev/null 2>&1
echo "[fuzz] building the fuzz targets (jobs: $JOBS)"
cmake --build build-fuzz --target loft_fuzzers -j "$JOBS"
echo "[fuzz] fuzzing each target for $SECONDS_EACH s"
# Leaks are checked per input by libFuzzer; torch's and the registry's process-lifetime objects are not leaks.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
  ctest --test-dir build-fuzz -L fuzz -R "$FILTER" --output-on-failure -j "$JOBS"
