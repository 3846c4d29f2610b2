#!/usr/bin/env bash
# Set up (idempotent), build, and run the bundled demo recipe (extra arguments are recipe overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build/bin/loft run recipes/demo.toml "$@"
