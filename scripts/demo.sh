#!/usr/bin/env bash
# Set up (idempotent), build, and run the bundled demo recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build/bin/loft validate recipes/demo.toml
build/bin/loft plugins list
