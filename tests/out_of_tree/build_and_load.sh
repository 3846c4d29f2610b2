#!/usr/bin/env bash
# Installs the SDK from this build, then builds out-of-tree plugins against the installed package with
# find_package(loft) and has `loft` load and use them:
#  - plugin/: a dataset plugin against the torch-free SDK core (find_package(loft COMPONENTS core), no LibTorch, no
#    CUDA): its compile lines name no torch include folder and the library needs no torch or CUDA library;
#  - quantizer/: a quantizer plugin against the whole SDK (LibTorch), which a short `loft run` trains on;
#  - lora_plus/: a PEFT plugin (LoRA with LoRA+ learning rates through parameter groups) that trains the demo model.
set -euo pipefail
build=$1 src=$2 loft=$3 torch_dir=$4
src_root=$(cd "$src/.." && pwd)
work="$build/tests/out_of_tree"
rm -rf "$work"; mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
fail() { echo "FAIL: $*"; exit 1; }

# --- the torch-free dataset plugin: only the installed prefix is on the search path, no Torch_DIR.
cmake -S "$src_root/plugin" -B "$work/hello" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "${launcher[@]}" >"$work/hello-configure.log" 2>&1 \
  || { cat "$work/hello-configure.log"; exit 1; }
cmake --build "$work/hello" >"$work/hello-build.log" 2>&1 || { cat "$work/hello-build.log"; exit 1; }
if grep -Eiq 'torch|/cuda' "$work/hello/compile_commands.json"; then
  cat "$work/hello/compile_commands.json"; fail "the torch-free plugin was compiled with torch or CUDA include folders"
fi
lib=$(find "$work/hello/plugins" -name 'libloft_dataset_hello.so')
if readelf -d "$lib" | grep NEEDED | grep -Eiq 'torch|c10|cuda'; then
  readelf -d "$lib" | grep NEEDED; fail "the torch-free plugin links a torch or CUDA library"
fi
echo "torch-free dataset plugin built: $(readelf -d "$lib" | grep NEEDED | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"
"$loft" plugins list --plugin-path "$work/hello/plugins" | tee "$work/list.txt"
grep -Eq '^dataset +hello +1\.0\.0' "$work/list.txt"
cat >"$work/recipe.toml" <<TOML
[model]
path = "$(cd "$src_root/../.." && pwd)/models/demo"
init = "random"
[peft]
type = "full"
[dataset]
type = "hello"
count = 5
TOML
"$loft" validate "$work/recipe.toml" --plugin-path "$work/hello/plugins"
# The plugin's code runs: `loft data` loads it through the registry and prints its samples.
"$loft" data "$work/recipe.toml" --limit 0 model.device=cpu --plugin-path "$work/hello/plugins" | tee "$work/data.txt"
[ "$(grep -c '"content":"Hello!"' "$work/data.txt")" = 5 ] || fail "the dataset plugin did not give its 5 samples"

# --- a quantizer plugin against the whole SDK, used by a short training run of the demo model.
cmake -S "$src_root/quantizer" -B "$work/quantizer" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DTorch_DIR="$torch_dir" -DTORCH_CUDA_ARCH_LIST="7.5;9.0" "${launcher[@]}" >"$work/quantizer-configure.log" 2>&1 \
  || { cat "$work/quantizer-configure.log"; exit 1; }
cmake --build "$work/quantizer" >"$work/quantizer-build.log" 2>&1 || { cat "$work/quantizer-build.log"; exit 1; }
repo=$(cd "$src_root/../.." && pwd)
"$loft" run "$repo/recipes/demo.toml" quantizer.type=oot_half peft.type=lora model.dtype=fp32 model.device=cpu \
  train.max_steps=3 train.log_every=1 "output.dir=\"$work/runs\"" "output.name=\"oot\"" \
  --plugin-path "$work/quantizer/plugins" 2>&1 | tee "$work/run.txt"
grep -q 'quantizer/oot_half' "$work/run.txt" || fail "the run did not use quantizer/oot_half"
[ "$(grep -c '"step"' "$work/runs/oot/metrics.jsonl")" = 3 ] || fail "the run did not train 3 steps"

# --- LoRA+ from outside the tree: its parameter groups reach the optimizer and the loss falls.
cmake -S "$src_root/lora_plus" -B "$work/lora_plus" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DTorch_DIR="$torch_dir" -DTORCH_CUDA_ARCH_LIST="7.5;9.0" "${launcher[@]}" >"$work/lora_plus-configure.log" 2>&1 \
  || { cat "$work/lora_plus-configure.log"; exit 1; }
cmake --build "$work/lora_plus" >"$work/lora_plus-build.log" 2>&1 || { cat "$work/lora_plus-build.log"; exit 1; }
"$loft" run "$repo/recipes/demo.toml" peft.type=oot_lora_plus \
  'peft.targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]' peft.ratio=8 model.dtype=fp32 model.device=cpu \
  train.max_steps=40 train.log_every=1 train.lr=1e-3 "output.dir=\"$work/runs\"" "output.name=\"lora_plus\"" \
  --plugin-path "$work/lora_plus/plugins" 2>&1 | tee "$work/lora_plus.txt"
grep -Eq 'parameter group lora_B: [0-9]+ tensors, lr x 8' "$work/lora_plus.txt" || fail "no lora_B group at lr x 8"
grep -Eq 'parameter group lora_A: [0-9]+ tensors, lr x 1\b' "$work/lora_plus.txt" || fail "no lora_A group at lr x 1"
"${LOFT_PYTHON:-python3}" - "$work/runs/lora_plus/metrics.jsonl" <<'PY' || fail "the LoRA+ run's loss did not fall"
import json, sys
losses = [json.loads(line)["loss"] for line in open(sys.argv[1])]
first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
print(f"LoRA+ (out of tree): mean loss of the first 5 steps {first:.3f}, of the last 5 {last:.3f}")
sys.exit(0 if len(losses) == 40 and last < first - 0.1 else 1)
PY
[ -f "$work/runs/lora_plus/adapter/adapter_model.safetensors" ] || fail "no adapter written"
echo "out-of-tree plugins built against the installed SDK and loaded"
