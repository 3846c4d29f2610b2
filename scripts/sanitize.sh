#!/usr/bin/env bash
# The CPU test suite under AddressSanitizer + UndefinedBehaviorSanitizer (loft's code instrumented, torch not):
# configures build-asan/ with LOFT_SANITIZE=address,undefined, builds everything and runs every test but the GPU ones.
# Extra arguments go to ctest (e.g. -L unit). Takes a full build; on 16 cores about as long as the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LOFT_VENV:-/opt/loft/venv}
JOBS=${LOFT_JOBS:-$(nproc)}
if [ ! -f build-asan/CMakeCache.txt ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOFT_PYTHON="$VENV/bin/python" \
    -DTORCH_CUDA_ARCH_LIST="7.5;9.0" -DLOFT_SANITIZE=address,undefined -DLOFT_BUILD_BENCH=ON
fi
cmake --build build-asan -j "$JOBS"
# Plugins stay loaded and torch keeps process-lifetime singletons: leak checking at exit would report those.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build-asan --output-on-failure -j "$JOBS" -LE gpu "$@"
