#!/usr/bin/env bash
# The loft CLI as a user drives it: exit codes (0 ok, 1 runtime, 2 usage/recipe) and what the messages say.
set -uo pipefail
loft=$1 here=$2 testing_plugins=$3
failures=0
expect() {  # expect <exit code> <regex that the output must match> -- command...
  local want=$1 pattern=$2; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$want" ] || ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL: $* -> exit $rc (want $want), output:"; echo "$out" | sed 's/^/    /'
    echo "    expected to match: $pattern"
    failures=$((failures + 1))
  else
    echo "ok: $*"
  fi
}
expect 0 '^loft [0-9]+\.[0-9]+\.[0-9]+' -- "$loft" --version
expect 0 'commands:' -- "$loft" --help
expect 2 'usage' -- "$loft"
expect 2 "unknown command 'trian'" -- "$loft" trian
for cmd in run validate plugins data eval merge; do expect 0 "usage: loft $cmd" -- "$loft" "$cmd" --help; done
expect 2 'unrecognised option|unrecognized option' -- "$loft" validate --bogus "$here/bad_recipe.toml"

# plugins list: every built-in plugin with kind and version, from manifests.
expect 0 'quantizer +none +0\.1\.0' -- "$loft" plugins list
expect 0 'dataset +synthetic +0\.1\.0' -- "$loft" plugins list
expect 0 'peft +full' -- "$loft" plugins list
expect 0 'offload +none' -- "$loft" plugins list
expect 0 'optimizer +adamw +0\.1\.0' -- "$loft" plugins list
expect 0 'optimizer +adamw_cpu +0\.1\.0' -- "$loft" plugins list
expect 0 'max_level +int +default 5, >= 1, <= 5' -- "$loft" plugins describe dataset/synthetic
expect 2 'no plugin or section named' -- "$loft" plugins describe nope
# describe lists options in the manifest's order (not alphabetically): peft/lora declares r before alpha.
describe=$("$loft" plugins describe peft/lora 2>&1)
manifest=$(sed -n 's/^manifest: //p' <<<"$describe")
want=$(sed -n 's/^\[options\.\([a-z0-9_]*\)\]$/\1/p' "$manifest" | tr '\n' ' ')
got=$(awk '/^options:/ {on = 1; next} /^host options/ {on = 0} on && /^  [a-z0-9_]+ / {print $1}' <<<"$describe" | tr '\n' ' ')
sorted=$(tr ' ' '\n' <<<"$want" | sed '/^$/d' | sort | tr '\n' ' ')
if [ -z "$want" ] || [ "$want" = "$sorted" ] || [ "$got" != "$want" ]; then
  echo "FAIL: plugins describe peft/lora lists options as [$got], manifest $manifest declares [$want]"
  failures=$((failures + 1))
else
  echo "ok: plugins describe peft/lora lists options in manifest order: $got"
fi

# data: the dataset's samples as JSON lines, in MATH's shape.
expect 0 '"level":"Level [1-5]".*"problem":.*"solution":.*boxed.*"type":' -- "$loft" data "$here/good_recipe.toml" --limit 2

# validate: all three mistakes at once, each with its line.
expect 2 'bad_recipe.toml:6:6: error: train.lr must be a float' -- "$loft" validate "$here/bad_recipe.toml"
expect 2 "bad_recipe.toml:7:14: error: unknown key 'bacth_size' in \[train\] \(did you mean 'batch_size'\?\)" -- "$loft" validate "$here/bad_recipe.toml"
expect 2 "bad_recipe.toml:10:8: error: unknown quantizer plugin 'int9'" -- "$loft" validate "$here/bad_recipe.toml"
expect 2 '3 errors' -- "$loft" validate "$here/bad_recipe.toml"
# Overrides fix them from the command line.
expect 2 "unknown key 'bacth_size'" -- "$loft" validate "$here/bad_recipe.toml" train.lr=1e-4 quantizer.type=none
expect 2 'must look like section.key=value' -- "$loft" validate "$here/bad_recipe.toml" lr=1
# NaN and infinities are refused wherever a number is read, with the key named.
expect 2 'train.lr must be a finite number, got inf' -- "$loft" validate "$here/good_recipe.toml" train.lr=inf
expect 2 'train.max_grad_norm must be a finite number, got nan' -- "$loft" validate "$here/good_recipe.toml" train.max_grad_norm=nan
expect 2 'peft.alpha must be a finite number, got -inf' -- "$loft" validate "$here/good_recipe.toml" peft.type=lora peft.alpha=-inf
expect 2 "budget.gpu_memory: 'inf GiB' is not a finite size" -- "$loft" validate "$here/good_recipe.toml" 'budget.gpu_memory="inf GiB"'
expect 2 'train.lr must be a finite number, got inf' -- "$loft" run "$here/good_recipe.toml" train.lr=inf
expect 2 'no such recipe file' -- "$loft" validate /nonexistent.toml
# [optimizer]: a misspelled plugin and an option the plugin does not declare, each with where and a suggestion.
expect 2 "error: unknown optimizer plugin 'adamww' \(did you mean 'adamw'\?\); available: adamw, adamw_cpu" -- \
  "$loft" validate "$here/good_recipe.toml" optimizer.type=adamww
expect 2 "error: unknown key 'betas' in \[optimizer\] \(plugin optimizer/adamw_cpu\)" -- \
  "$loft" validate "$here/good_recipe.toml" optimizer.type=adamw_cpu optimizer.betas=0.9
expect 2 "error: optimizer.type must be a string naming an optimizer plugin" -- \
  "$loft" validate "$here/good_recipe.toml" optimizer.type=3
expect 0 ': ok' -- "$loft" validate "$here/good_recipe.toml" optimizer.type=adamw_cpu
expect 2 'name one run folder and --out' -- "$loft" merge
expect 2 'no such recipe file.*a loft run folder' -- "$loft" merge /nonexistent --out /tmp/never

# A plugin library that cannot be loaded is bad input found before the run (validate loads the recipe's plugins):
# exit 2 with the plugin's file named. A factory that fails for another reason than its options is a runtime
# failure: exit 1.
expect 0 ': ok' -- "$loft" validate "$here/good_recipe.toml"
expect 2 'libloft_testing_wrong_abi.so: got version 9999, this loft supports version 2' -- "$loft" run \
  "$here/good_recipe.toml" quantizer.type=wrong_abi --plugin-path "$testing_plugins"
expect 1 'failed to start: fixture refuses to start' -- "$loft" run "$here/good_recipe.toml" \
  quantizer.type=throws_on_create --plugin-path "$testing_plugins"
expect 2 'has no entry point' -- "$loft" run "$here/good_recipe.toml" quantizer.type=missing_entry \
  --plugin-path "$testing_plugins"
# No error reaches the user with a C++ backtrace, whichever layer raised it (TORCH_CHECK inside a plugin or the host).
no_backtrace() {  # no_backtrace -- command...: fails with a non-zero exit, and prints no stack frames
  shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" = 0 ] || grep -Eq -- 'Exception raised from|frame #[0-9]|\(most recent call first\)' <<<"$out"; then
    echo "FAIL (backtrace or exit 0): $* -> exit $rc, output:"; echo "$out" | sed 's/^/    /'
    failures=$((failures + 1))
  else
    echo "ok (no backtrace): $*"
  fi
}
no_backtrace -- "$loft" run "$here/good_recipe.toml" peft.type=lora 'peft.targets=["no_such_module"]' \
  "output.dir=\"$(mktemp -d)\""
no_backtrace -- "$loft" run "$here/good_recipe.toml" quantizer.type=throws_on_create --plugin-path "$testing_plugins"
[ $failures -eq 0 ] || { echo "$failures CLI checks failed"; exit 1; }
