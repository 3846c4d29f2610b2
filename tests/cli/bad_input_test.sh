#!/usr/bin/env bash
# Bad input, as a user meets it: `loft validate` and `loft run` exit 2 with one line that names the recipe key or the
# file (and no C++ backtrace), for every class of mistake in the recipe, the files it names and the plugins on the
# path. Then `loft plugins describe SECTION` prints every key of the framework schema.
set -uo pipefail
loft=$1 here=$2 testing_plugins=$3 schema_source=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $1"; sed 's/^/    /' <<<"$2"; failures=$((failures + 1)); }

# one_line_error <regex> -- command...: exit 2, exactly one line of output, matching <regex>, no backtrace.
one_line_error() {
  local pattern=$1; shift 2
  local out rc lines
  out=$("$@" 2>&1); rc=$?
  lines=$(printf '%s\n' "$out" | grep -c .)
  if [ "$rc" != 2 ] || [ "$lines" != 1 ] || ! grep -Eq -- "$pattern" <<<"$out" ||
     grep -Eq -- 'Exception raised from|frame #[0-9]|\(most recent call first\)|terminate called' <<<"$out"; then
    fail "$* -> exit $rc, $lines lines (want exit 2, one line matching: $pattern)" "$out"
  else
    echo "ok: ${*:2}"
  fi
}

recipe=$here/good_recipe.toml
run_args=(train.max_steps=1 "output.dir=\"$work/runs\"" --log-level error)

# Fixtures: model folders missing a piece, dataset files, plugin folders with a bad manifest.
mkdir -p "$work/empty_model" "$work/no_tokenizer" "$work/bad_config"
cp "$here/../../models/demo/config.json" "$work/no_tokenizer/"
echo '{"model_type": "qwen2"}' >"$work/bad_config/config.json"
cp "$here/../../models/demo/tokenizer.json" "$work/bad_config/"
printf '{"prompt": "p", "response": "r"}\n{"prompt": "p", "response": \n' >"$work/malformed.jsonl"
printf '{"prompt": "p", "response": "r"}\n{"prompt": "p"}\n' >"$work/no_response.jsonl"
printf '{"problem": "p", "solution": "\\\\boxed{1}", "level": "Level 1", "type": "Algebra"}\n' >"$work/math.jsonl"
printf '{"prompt": "Say hi.", "response": "hi"}\n' >"$work/no_answer.jsonl"
: >"$work/empty.jsonl"
none_library=$(find "$(dirname "$loft")/../lib/loft/plugins/quantizer/none" -name '*.so' | head -1)
mkdir -p "$work/outside" && cp "$none_library" "$work/outside/libescape.so"
escape_manifest() {  # escape_manifest <folder> <library value>
  mkdir -p "$1"
  printf 'name = "escape"\nkind = "quantizer"\nversion = "1"\nsdk_abi = 2\nlibrary = "%s"\n' "$2" >"$1/plugin.toml"
}
escape_manifest "$work/p_dotdot/escape" "../../outside/libescape.so"
escape_manifest "$work/p_absolute/escape" "$work/outside/libescape.so"
escape_manifest "$work/p_symlink/escape" "libescape.so"
ln -s "$work/outside/libescape.so" "$work/p_symlink/escape/libescape.so"
mkdir -p "$work/p_shadow/synthetic"
printf 'name = "synthetic"\nkind = "dataset"\nversion = "9"\nsdk_abi = 2\nlibrary = "libx.so"\n' \
  >"$work/p_shadow/synthetic/plugin.toml"

# Mistakes that validation catches: the same line from `validate` and from `run` (which validates first).
cases=(
  'model.path = "/nonexistent" does not exist|model.path=/nonexistent'
  "model.path = \"$work/empty_model\" has no config.json|model.path=$work/empty_model"
  "model.path = \"$work/no_tokenizer\" has no tokenizer.json|model.path=$work/no_tokenizer"
  "model.path = \"$work/bad_config\" has an unusable config.json|model.path=$work/bad_config"
  'model.path = .*models/demo" has no model.safetensors|model.init=pretrained'
  'peft.targets entry "no_such_module" names no module|peft.type=lora|peft.targets=["no_such_module"]'
  "peft.targets entry \"q_prj\" names no module of the model \(did you mean 'q_proj'\?\)|peft.type=dora|peft.targets=[\"q_prj\"]"
  'peft.targets entry "lm_head" names lm_head, which loft does not adapt|peft.type=lora|peft.targets=["lm_head"]'
  'peft.targets entry "re:.*foo" matches no module|peft.type=lora|peft.targets=["re:.*foo"]'
  'peft.targets entry "model.layers.9.mlp.up_proj" names no module|peft.type=lora|peft.targets=["model.layers.9.mlp.up_proj"]'
  'peft.layers = "0-5" names layer 5, but the model has 4 decoder layers|peft.type=lora|peft.layers="0-5"'
  'dataset.path = "/nope.jsonl" does not exist|dataset.type=jsonl|dataset.limit=0|dataset.path=/nope.jsonl'
  'dataset.path = "/nope/math.jsonl" does not exist|dataset.type=math|dataset.limit=0|dataset.path=/nope/math.jsonl'
  'peft.adapter_path = "/no/adapter" does not exist|peft.adapter_path=/no/adapter'
  'dataset/synthetic calls it `limit` now; write dataset.limit instead|dataset.size=3'
  "unknown key 'max_level' in \[dataset\] \(plugin dataset/math\): \`max_level\` is an option of dataset plugin synthetic|dataset.type=math|dataset.limit=0|dataset.path=$work/math.jsonl|dataset.max_level=2"
  "unknown key 'levels' in \[dataset\] \(plugin dataset/synthetic\): \`levels\` is an option of dataset plugin math|dataset.levels=[\"Level 1\"]"
  "unknown key 'levels' in \[eval.dataset\] \(plugin dataset/synthetic\): \`levels\` is an option of dataset plugin math|eval.dataset.type=synthetic|eval.dataset.levels=[\"Level 1\"]"
  'eval.dataset.path = "/nope.jsonl" does not exist|eval.dataset.type=jsonl|eval.dataset.path=/nope.jsonl'
  '\[eval\] needs an \[eval.dataset\] section|eval.every=2'
  'eval.limit is used only with eval.accuracy = true|eval.dataset.type=synthetic|eval.limit=4'
  "unknown key 'evry' in \[eval\] \(did you mean 'every'\?\)|eval.dataset.type=synthetic|eval.evry=2"
)
for c in "${cases[@]}"; do
  IFS='|' read -r -a parts <<<"$c"
  pattern=${parts[0]} overrides=("${parts[@]:1}")
  one_line_error "$pattern" -- "$loft" validate "$recipe" "${overrides[@]}"
  one_line_error "$pattern" -- "$loft" run "$recipe" "${overrides[@]}" "${run_args[@]}"
done

# Plugins: a library that does not load, a manifest whose library escapes its folder (each way), a manifest that
# shadows a built-in plugin the recipe uses.
one_line_error 'plugin quantizer/wrong_abi: wrong SDK ABI version in .*libloft_testing_wrong_abi.so' -- \
  "$loft" validate "$recipe" quantizer.type=wrong_abi --plugin-path "$testing_plugins"
one_line_error 'plugin quantizer/missing_entry: .*has no entry point' -- \
  "$loft" run "$recipe" quantizer.type=missing_entry --plugin-path "$testing_plugins" "${run_args[@]}"
for way in dotdot absolute symlink; do
  for cmd in validate run; do
    extra=(); [ $cmd = run ] && extra=("${run_args[@]}")
    one_line_error "plugin quantizer/escape cannot be used: $work/p_$way/escape/plugin.toml:5: library = .*only name a library in its own folder" -- \
      "$loft" $cmd "$recipe" quantizer.type=escape --plugin-path "$work/p_$way" "${extra[@]}"
  done
done
for cmd in validate run; do
  extra=(); [ $cmd = run ] && extra=("${run_args[@]}")
  one_line_error "plugin dataset/synthetic is defined by more than one manifest: $work/p_shadow/synthetic/plugin.toml and .*synthetic/plugin.toml" -- \
    "$loft" $cmd "$recipe" --plugin-path "$work/p_shadow" "${extra[@]}"
done
# A refused manifest stays out of `loft plugins list` (a warning names it).
out=$("$loft" plugins list --plugin-path "$work/p_dotdot" 2>&1)
if grep -Eq '^quantizer +escape' <<<"$out" || ! grep -q "warning: $work/p_dotdot/escape/plugin.toml:5" <<<"$out"; then
  fail "plugins list shows an escaping manifest, or does not warn about it" "$out"
else
  echo "ok: plugins list refuses the escaping manifest"
fi

# Mistakes in the data that only reading it shows: `run` and `data` still exit 2 with one line.
data_cases=(
  "all 16 dropped: .*dataset.max_length = 8 .*raise dataset.max_length to at least [0-9]+|dataset.max_length=8"
  "$work/malformed.jsonl:2:[0-9]+: malformed JSON|dataset.type=jsonl|dataset.limit=0|dataset.path=$work/malformed.jsonl"
  "$work/no_response.jsonl:2: the record has no \"response\" field|dataset.type=jsonl|dataset.limit=0|dataset.path=$work/no_response.jsonl"
  "$work/empty.jsonl: the file has no records|dataset.type=jsonl|dataset.limit=0|dataset.path=$work/empty.jsonl"
  "$work/math.jsonl: no record is left after filtering|dataset.type=math|dataset.limit=0|dataset.path=$work/math.jsonl|dataset.levels=[\"Level 5\"]"
  'types = \[\] names no problem type|dataset.types=[]'
  "\[eval.dataset\] plugin dataset/jsonl failed to start: $work/malformed.jsonl:2:[0-9]+: malformed JSON|eval.dataset.type=jsonl|eval.dataset.path=$work/malformed.jsonl"
  "eval.accuracy = true, but the first sample of \[eval.dataset\] \(dataset/jsonl\) has no reference answer|eval.dataset.type=jsonl|eval.dataset.path=$work/no_answer.jsonl|eval.accuracy=true"
)
for c in "${data_cases[@]}"; do
  IFS='|' read -r -a parts <<<"$c"
  pattern=${parts[0]} overrides=("${parts[@]:1}")
  one_line_error "$pattern" -- "$loft" run "$recipe" "${overrides[@]}" "${run_args[@]}"
done
one_line_error "all 16 dropped" -- "$loft" data "$recipe" dataset.max_length=8 --tokens --log-level error
one_line_error "$work/malformed.jsonl:2:" -- "$loft" data "$recipe" dataset.type=jsonl dataset.limit=0 \
  "dataset.path=$work/malformed.jsonl" --log-level error

# --schema-only: a recipe for another machine (its files absent here) validates against the schemas alone.
out=$("$loft" validate --schema-only "$recipe" model.path=/elsewhere dataset.type=jsonl dataset.limit=0 \
  dataset.path=/elsewhere.jsonl 2>&1); rc=$?
[ $rc = 0 ] || fail "validate --schema-only with absent files -> exit $rc" "$out"

# describe: every framework section, and every key of recipe_schema.cpp printed with its type.
described=""
for section in model train budget output quantizer peft offload dataset optimizer eval eval.dataset; do
  out=$("$loft" plugins describe "$section" 2>&1); rc=$?
  if [ $rc != 0 ] || ! grep -q "^\[$section\]" <<<"$out"; then fail "plugins describe $section -> exit $rc" "$out"; fi
  described+=$out$'\n'
done
mapfile -t keys < <(grep -oE 'opt\("[a-z0-9_]+"' "$schema_source" | sed -E 's/opt\("(.*)"/\1/' | sort -u)
[ ${#keys[@]} -gt 20 ] || fail "found only ${#keys[@]} keys in $schema_source" ""
for key in "${keys[@]}"; do
  grep -Eq "^  $key +(bool|int|float|string|string_list) +(default|required)" <<<"$described" ||
    fail "no line for schema key '$key' in loft plugins describe SECTION" "$(grep -- "$key" <<<"$described")"
done
grep -Eq '^  save_every +int +default 0, >= 0' <<<"$("$loft" plugins describe train)" ||
  fail "plugins describe train does not show save_every" ""
one_line_error "no plugin or section named 'trian'.*train" -- "$loft" plugins describe trian

[ $failures -eq 0 ] || { echo "$failures bad-input checks failed"; exit 1; }
echo "all bad-input checks passed"
