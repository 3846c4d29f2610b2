#!/usr/bin/env bash
# Set up (idempotent), build, and run the whole test suite. GPU tests skip with a reason on machines without one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j "${LOFT_JOBS:-$(nproc)}" "$@"
