#!/usr/bin/env bash
# [eval] in `loft run` and `loft eval`, on the demo model (random init, CPU, fp32, LoRA with dropout, a few steps):
#   - validation records {"step", "val_loss", "val_label_tokens"} every eval.every steps and at the last one, and
#     eval.json/eval.jsonl at the end; the training records and the adapter are byte-identical to a run without [eval]
#   - offload/checkpoint and offload/zero3 measure the same validation losses as offload/none
#   - --stop-after + --resume writes the same metrics.jsonl and eval.json as a straight run; eval.every may change on
#     resume (recorded in resumes.jsonl), the held-out set may not (exit 2, the key named)
#   - `loft eval RECIPE` grades [eval.dataset] with eval.limit / eval.max_new_tokens unless flags say otherwise
#   - `loft validate` warns (one line) when [eval.dataset] is the training [dataset]
set -uo pipefail
loft=$1 here=$2 work=$3
rm -rf "$work"; mkdir -p "$work"
export OMP_NUM_THREADS=1
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
small=("$here/good_recipe.toml" model.init=random dataset.max_length=64 train.batch_size=2 train.max_steps=6
       train.lr=2e-3 peft.type=lora peft.dropout=0.1 "output.dir=\"$work\"")
eval_keys=(eval.every=2 eval.accuracy=true eval.limit=3 eval.max_new_tokens=8 eval.dataset.type=synthetic
           eval.dataset.seed=7 eval.dataset.limit=6)
train() {  # train NAME [overrides or flags...]: a run in $work/NAME, its output in $work/NAME.log
  local name=$1; shift
  "$loft" run "${small[@]}" "output.name=\"$name\"" "$@" >"$work/$name.log" 2>&1 ||
    { cat "$work/$name.log"; fail "run $name exited $?"; }
}
# metrics.jsonl's training records without what differs between runs of the same steps (timings, memory).
training_records() { grep -v '"val_loss"' "$1" | sed -E 's/,"peak_[a-z_]+":[0-9.e+-]+//g; s/,"tokens_per_s":[0-9.e+-]+//'; }
val_records() { grep '"val_loss"' "$1"; }
val_steps() { val_records "$1" | sed -E 's/.*"step":([0-9]+).*/\1/' | tr '\n' ' '; }

# 1. With and without [eval]: the same training, bit for bit; val records where they belong; eval files at the end.
train plain
train evaled "${eval_keys[@]}"
cmp "$work/plain/adapter/adapter_model.safetensors" "$work/evaled/adapter/adapter_model.safetensors" ||
  fail "[eval] changed the trained adapter"
diff <(training_records "$work/plain/metrics.jsonl") <(training_records "$work/evaled/metrics.jsonl") ||
  fail "[eval] changed the training records"
[ "$(val_steps "$work/evaled/metrics.jsonl")" = "2 4 6 " ] || fail "val records at steps $(val_steps "$work/evaled/metrics.jsonl"), want 2 4 6"
val_records "$work/evaled/metrics.jsonl" | grep -Evq '^\{"step":[0-9]+,"val_label_tokens":[0-9]+,"val_loss":[0-9.e+-]+\}$' &&
  fail "a val record is not {step, val_label_tokens, val_loss}: $(val_records "$work/evaled/metrics.jsonl")"
grep -q '"val_loss"' "$work/plain/metrics.jsonl" && fail "a run without [eval] wrote val records"
[ -e "$work/plain/eval.json" ] && fail "a run without [eval] wrote eval.json"
grep -q '"total": 3' "$work/evaled/eval.json" || fail "eval.json does not grade eval.limit = 3 problems"
[ "$(wc -l <"$work/evaled/eval.jsonl")" = 3 ] || fail "eval.jsonl does not hold 3 problems"
grep -q 'step 6: validation loss [0-9.]* over [0-9]* held-out label tokens' "$work/evaled.log" ||
  fail "no validation log line for step 6"
echo "ok: [eval] leaves training bit-identical; val records at steps $(val_steps "$work/evaled/metrics.jsonl"); eval.json written"

# 2. Every offload strategy measures the same held-out loss (all equal offload/none's numbers on the CPU).
for offload in checkpoint zero3; do
  train "$offload" "${eval_keys[@]}" offload.type=$offload
  diff <(val_records "$work/evaled/metrics.jsonl") <(val_records "$work/$offload/metrics.jsonl") ||
    fail "offload/$offload measured other validation losses"
done
echo "ok: offload/checkpoint and offload/zero3 give offload/none's validation losses"

# 3. Stopped and resumed: the same records and eval.json as the straight run.
train resumed "${eval_keys[@]}" --stop-after 3
[ -e "$work/resumed/eval.json" ] && fail "a run stopped by --stop-after graded its model"
train resumed "${eval_keys[@]}" --resume "$work/resumed"
diff <(training_records "$work/evaled/metrics.jsonl") <(training_records "$work/resumed/metrics.jsonl") ||
  fail "the resumed run's training records differ"
diff <(val_records "$work/evaled/metrics.jsonl") <(val_records "$work/resumed/metrics.jsonl") ||
  fail "the resumed run's val records differ"
cmp "$work/evaled/eval.json" "$work/resumed/eval.json" || fail "the resumed run graded differently"
# eval.every may change on resume; the held-out set may not.
train changed "${eval_keys[@]}" --stop-after 3
out=$("$loft" run "${small[@]}" output.name=changed "${eval_keys[@]}" eval.dataset.seed=8 --resume "$work/changed" 2>&1)
rc=$?
[ $rc = 2 ] && grep -q 'eval.dataset.seed: 7 -> 8' <<<"$out" || { echo "$out"; fail "a changed held-out set: exit $rc"; }
train changed "${eval_keys[@]}" eval.every=3 --resume "$work/changed"
[ "$(val_steps "$work/changed/metrics.jsonl")" = "2 6 " ] || fail "after eval.every=3: val steps $(val_steps "$work/changed/metrics.jsonl")"
grep -q '"key":"eval.every","new":"3","old":"2"' "$work/changed/resumes.jsonl" || fail "resumes.jsonl lacks eval.every"
echo "ok: --resume keeps the val records; eval.every may change, eval.dataset may not"

# 4. loft eval: [eval.dataset] with the recipe's limit and budget; the same problems and answers as the run's end.
cp "$work/evaled/eval.jsonl" "$work/run_eval.jsonl"
"$loft" eval "${small[@]}" "${eval_keys[@]}" --run "$work/evaled" >"$work/eval.log" 2>&1 || { cat "$work/eval.log"; fail "eval exited $?"; }
cmp "$work/run_eval.jsonl" "$work/evaled/eval.jsonl" || fail "loft eval graded other problems or answers than the run"
"$loft" eval "${small[@]}" dataset.seed=7 dataset.limit=6 --run "$work/evaled" --limit 3 --max-new-tokens 8 \
  >"$work/eval_dataset.log" 2>&1 || { cat "$work/eval_dataset.log"; fail "eval without [eval] exited $?"; }
cmp "$work/run_eval.jsonl" "$work/evaled/eval.jsonl" || fail "[eval.dataset] is not what loft eval graded"
"$loft" eval "${small[@]}" "${eval_keys[@]}" --run "$work/evaled" --limit 2 >/dev/null 2>&1
[ "$(wc -l <"$work/evaled/eval.jsonl")" = 2 ] || fail "--limit 2 did not override eval.limit"
echo "ok: loft eval grades [eval.dataset] (eval.limit, eval.max_new_tokens unless flags say otherwise)"

# 5. The held-out set is the training set: a one-line warning, still valid.
out=$("$loft" validate "$here/good_recipe.toml" eval.dataset.type=synthetic eval.dataset.limit=16 2>&1); rc=$?
[ $rc = 0 ] && [ "$(grep -c 'warning: \[eval.dataset\] is the training \[dataset\]' <<<"$out")" = 1 ] ||
  { echo "$out"; fail "no held-out warning (exit $rc)"; }
echo "ok: validate warns when [eval.dataset] is [dataset]"

[ $failures = 0 ] || { echo "$failures [eval] checks failed"; exit 1; }
echo "all [eval] checks passed"
