#!/usr/bin/env bash
# [budget] through `loft run` on the CPU: a host cap too small ends the run with one line naming the categories
# (exit 1, no backtrace); a GPU cap on an explicit CPU run is refused (exit 2); a roomy host cap trains.
set -uo pipefail
loft=$1 source=$2 mode=${3:-cpu}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
failures=0
run() {  # run <want exit> <regex> <name> overrides...
  local want=$1 pattern=$2 name=$3; shift 3
  local out rc
  out=$("$loft" run "$source/recipes/demo.toml" train.max_steps=2 train.log_every=1 dataset.limit=64 \
        output.dir="$work" output.name="$name" "$@" 2>&1); rc=$?
  local errors; errors=$(grep -c '^E ' <<<"$out")
  if [ "$rc" != "$want" ] || ! grep -Eq -- "$pattern" <<<"$out" || grep -q 'Exception raised from\|frame #' <<<"$out"; then
    echo "FAIL: $name $* -> exit $rc (want $want), output:"; echo "$out" | sed 's/^/    /'
    echo "    expected to match: $pattern"
    failures=$((failures + 1))
  elif [ "$want" != 0 ] && [ "$errors" != 1 ]; then
    echo "FAIL: $name: want exactly one error line, got $errors:"; echo "$out" | sed 's/^/    /'
    failures=$((failures + 1))
  else
    echo "ok: $name: $(grep -E -- "$pattern" <<<"$out" | head -1)"
  fi
}
if [ "$mode" = gpu ]; then
  # On a GPU: a cap that holds the context but not the demo's training ends the run with the by-category report.
  if ! nvidia-smi -L >/dev/null 2>&1; then echo "no CUDA device visible: GPU test skipped"; exit 77; fi
  run 1 'GPU memory \(a request for .* failed\) over budget\.gpu_memory = 640\.0 MiB: .* in use; largest: .*context' \
    tiny_gpu model.device=cuda budget.gpu_memory=640MiB
  run 0 'step 2/2 loss' roomy_gpu model.device=cuda budget.gpu_memory=4GiB
  exit $failures
fi
run 1 'host memory after loading the model: over budget\.host_memory = 32\.0 MiB: .* in use; largest: .*other heap' \
  tiny_host budget.host_memory=32MiB
run 2 'budget\.gpu_memory = 1\.00 GiB but model\.device = "cpu"' gpu_on_cpu model.device=cpu budget.gpu_memory=1GiB
run 0 'step 2/2 loss' roomy budget.host_memory=64GiB
exit $failures
