#!/usr/bin/env bash
# Installs the SDK from this build, builds tests/out_of_tree/plugin against it with find_package(loft), and has
# `loft` list, describe and validate a recipe that uses it.
set -euo pipefail
build=$1 src=$2 loft=$3 torch_dir=$4
work="$build/tests/out_of_tree"
rm -rf "$work"; mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" -DTorch_DIR="$torch_dir" \
  -DTORCH_CUDA_ARCH_LIST="7.5;9.0" "${launcher[@]}" >"$work/configure.log" 2>&1 \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$loft" plugins list --plugin-path "$work/build/plugins" | tee "$work/list.txt"
grep -Eq '^dataset +hello +1\.0\.0' "$work/list.txt"
cat >"$work/recipe.toml" <<TOML
[model]
path = "unused"
[peft]
type = "full"
[dataset]
type = "hello"
count = 5
TOML
"$loft" validate "$work/recipe.toml" --plugin-path "$work/build/plugins"
# The plugin's code runs: `loft data` loads it through the registry and prints its samples.
"$loft" data "$work/recipe.toml" --limit 0 model.device=cpu --plugin-path "$work/build/plugins" | tee "$work/data.txt"
[ "$(grep -c '"content":"Hello!"' "$work/data.txt")" = 5 ]
echo "out-of-tree plugin built against the installed SDK and loaded"
