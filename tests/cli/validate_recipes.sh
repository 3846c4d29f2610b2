#!/usr/bin/env bash
# Every recipe shipped under recipes/ must validate (exit 0).
set -euo pipefail
loft=$1 dir=$2
mapfile -t recipes < <(find "$dir" -name '*.toml' | sort)
[ ${#recipes[@]} -gt 0 ] || { echo "no recipes under $dir"; exit 1; }
"$loft" validate "${recipes[@]}"
