#!/usr/bin/env bash
# Every recipe shipped under recipes/ must validate (exit 0); the demo, whose model is shipped, with its files too.
# The ablation grids under recipes/ablations/ are no recipes: `ctest -R cli.ablate.shipped` validates them.
set -euo pipefail
loft=$1 dir=$2
mapfile -t recipes < <(find "$dir" -name '*.toml' -not -path "$dir/ablations/*" | sort)
[ ${#recipes[@]} -gt 0 ] || { echo "no recipes under $dir"; exit 1; }
# Against the schemas: the shipped recipes name models and data sets that a checkout does not hold.
"$loft" validate --schema-only "${recipes[@]}"
# In full (files, targets against config.json, plugins) where the checkout holds what the recipe names.
"$loft" validate "$dir/demo.toml"
