#!/usr/bin/env bash
# `loft run` / `loft validate` with [quantizer] skip and cache_dir on a tiny transformers-written Qwen2: a skip list
# trains (its sites reported dense), a bad entry is exit 2 at its line and column, the cache is written then used with
# the same losses, another option misses, and a corrupt cache file is a warning followed by a correct run.
set -uo pipefail
loft=$1 model=$2 work=$3 testing_plugins=$4
rm -rf "$work"; mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
cat > "$work/recipe.toml" <<TOML
[model]
path = "$model"
device = "cpu"
dtype = "fp32"

[quantizer]
type = "testing_absmax"
skip = ["lm_head", "mlp.down_proj",
        "re:model\\\\.layers\\\\.0\\\\.self_attn\\\\.q_proj"]
cache_dir = "qcache"

[peft]
type = "lora"
r = 4

[dataset]
type = "synthetic"
limit = 16
max_length = 96

[train]
batch_size = 4
max_steps = 2
lr = 1e-3

[output]
dir = "runs"
TOML
run() {  # run <name> [overrides...]: trains; the log in $work/<name>.log; returns loft's exit code
  local name=$1; shift
  "$loft" run "$work/recipe.toml" --plugin-path "$testing_plugins" output.name="$name" "$@" >"$work/$name.log" 2>&1
}
losses() { sed -E 's/.*"loss":([0-9.e+-]+).*/\1/' "$work/runs/$1/metrics.jsonl" | tr '\n' ' '; }
expect_log() {  # expect_log <name> <regex>
  grep -Eq -- "$2" "$work/$1.log" || { fail "$1.log does not match: $2"; sed 's/^/    /' "$work/$1.log"; }
}

# 1. Skip list + cache miss: trains 2 steps; the skipped sites are dense, the rest quantized; the cache is written.
run first || fail "first run exited $?"
expect_log first 'quantizer/testing_absmax: 11 layers quantized .* 0 loaded from cache .*3 kept dense by quantizer\.skip \(model\.layers\.0\.self_attn\.q_proj, model\.layers\.0\.mlp\.down_proj, model\.layers\.1\.mlp\.down_proj\)'
expect_log first 'quantizer cache: wrote 11 quantized layers .*qcache/tiny_qwen2\.testing_absmax\.[0-9a-f]{16}\.safetensors'
[ "$(wc -l < "$work/runs/first/metrics.jsonl")" = 2 ] || fail "first run: expected 2 metric lines"
[ "$(ls "$work/qcache" | wc -l)" = 1 ] || fail "expected one cache file"

# 2. Cache hit: nothing quantized, the file named, the same losses.
run second || fail "second run exited $?"
expect_log second 'quantizer cache: loading 11 quantized layers from .*qcache/tiny_qwen2\.testing_absmax\.'
expect_log second '0 layers quantized .* 11 loaded from cache'
[ "$(losses first)" = "$(losses second)" ] || fail "losses differ with the cache: $(losses first) vs $(losses second)"

# 3. Another option: a miss and a second file.
run bits4 quantizer.bits=4 || fail "bits4 run exited $?"
expect_log bits4 'quantizer cache: no entry for this checkpoint'
expect_log bits4 '11 layers quantized'
[ "$(ls "$work/qcache" | wc -l)" = 2 ] || fail "expected a second cache file for bits=4"

# 4. Corrupt (one flipped byte), truncated and garbage files: a warning naming the file, then the same losses as
#    without the cache, and a good file again.
for damage in flip truncate garbage; do
  file=$(grep -o '[^ ]*qcache/[^ ]*\.safetensors' "$work/first.log" | head -1)
  case $damage in
    flip)
      at=$(($(stat -c %s "$file") - 7)); byte=$(od -An -tu1 -j $at -N1 "$file" | tr -d ' ')
      printf "\\x$(printf %02x $(((byte + 1) % 256)))" | dd of="$file" bs=1 seek=$at conv=notrunc status=none ;;
    truncate) truncate -s 100 "$file" ;;
    garbage) printf 'xx' > "$file" ;;
  esac
  run "$damage" || fail "run with a $damage cache file exited $?"
  expect_log "$damage" "W .*quantizer cache unusable \\(.*qcache/tiny_qwen2\\.testing_absmax\\.[0-9a-f]{16}\\.safetensors.*\\); quantizing again and rewriting it"
  expect_log "$damage" 'quantizer cache: wrote 11 quantized layers'
  [ "$(losses first)" = "$(losses $damage)" ] || fail "losses differ after a $damage cache: $(losses first) vs $(losses $damage)"
done
expect_log flip 'fails its checksum'
run again || fail "run after the rewrite exited $?"
expect_log again '11 loaded from cache'
[ "$(losses first)" = "$(losses again)" ] || fail "losses differ after rewriting the cache"

# 5. A skip entry that names no module: exit 2 before any weight is read, with the entry's line and column.
sed 's/"mlp.down_proj",/"mlp.down_prj",/' "$work/recipe.toml" > "$work/bad.toml"
for cmd in run validate; do
  out=$("$loft" $cmd "$work/bad.toml" --plugin-path "$testing_plugins" 2>&1); rc=$?
  [ $rc = 2 ] || fail "$cmd bad.toml: exit $rc, want 2"
  grep -Eq "bad\.toml:8:20: error: quantizer\.skip entry \"mlp\.down_prj\" names no module of the model \(did you mean 'mlp\.down_proj'\?\)" <<<"$out" \
    || { fail "$cmd bad.toml: message"; echo "$out" | sed 's/^/    /'; }
done
out=$("$loft" run "$work/bad.toml" --plugin-path "$testing_plugins" 2>&1)
grep -q 'qwen2:' <<<"$out" && fail "run bad.toml read the model before reporting the entry"
out=$("$loft" validate "$work/recipe.toml" --plugin-path "$testing_plugins" 'quantizer.skip=["model.layers.2.mlp.up_proj"]' 2>&1); rc=$?
[ $rc = 2 ] && grep -q 'the model has 2 layers (0-1)' <<<"$out" || { fail "layer out of range: exit $rc"; echo "$out"; }
"$loft" validate "$work/recipe.toml" --plugin-path "$testing_plugins" >/dev/null 2>&1 || fail "validate recipe.toml"

# 6. The keys are documented where users look.
out=$("$loft" plugins describe quantizer/testing_absmax --plugin-path "$testing_plugins" 2>&1)
grep -q 'host options of \[quantizer\]' <<<"$out" && grep -q 'skip  *string_list  *default \[\]' <<<"$out" \
  && grep -q 'lm_head is always dense' <<<"$out" && grep -q 'cache_dir  *string' <<<"$out" \
  || { fail "plugins describe"; echo "$out"; }

[ $failures -eq 0 ] || { echo "$failures quantizer host checks failed"; exit 1; }
echo "all quantizer host checks passed"
