#!/usr/bin/env bash
# Run folders and `loft merge --out` as a user meets them: a second run on a folder that a running one holds is
# refused with its pid, whatever the flags; a finished run's folder is refused unless --resume or --overwrite;
# --overwrite replaces only a run folder; --resume refuses recipe changes that break exactness (every one listed,
# nothing written) and records the allowed ones; train.keep_last < 1 is refused; `loft merge --out` refuses the base
# model's folder (however spelled), the run folder, and a non-empty folder unless --overwrite.
set -uo pipefail
loft=$1 recipes=$2 work=$3
rm -rf "$work"; mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# A copy of the demo model: merge tests must never be able to touch the checkout's models/demo.
mkdir -p "$work/base"; cp "$recipes/../models/demo/"* "$work/base/"
common=(model.device=cpu "model.path=\"$work/base\"" dataset.limit=32 train.batch_size=2 train.max_steps=4
        train.save_every=2 "output.dir=\"$work/runs\"")
run() { "$loft" run "$recipes/demo.toml" "${common[@]}" "$@"; }
expect() {  # expect <exit code> <regex> <log name> -- command...: runs it, checks exit code and output
  local want=$1 pattern=$2 log="$work/$3.log"; shift 4
  "$@" >"$log" 2>&1
  local rc=$?
  if [ "$rc" != "$want" ] || ! grep -Eq -- "$pattern" "$log"; then
    fail "$* -> exit $rc (want $want), output:"; sed 's/^/    /' "$log"; echo "    expected to match: $pattern"
  else
    echo "ok: $*"
  fi
}
snapshot() { (cd "$1" && find . -type f ! -name .loft.lock -exec md5sum {} + | sort); }

# 1. Same name again: refused, the first run untouched; --overwrite replaces it; --overwrite and --resume conflict.
expect 0 'done: 4 steps' first -- run output.name=a
before=$(snapshot "$work/runs/a")
expect 2 "run folder .*/runs/a already exists .*--resume .*--overwrite" again -- run output.name=a
[ "$(snapshot "$work/runs/a")" = "$before" ] || fail "a refused rerun changed the first run's folder"
echo stale > "$work/runs/a/stale.txt"
expect 0 'deleted the earlier run in .*/runs/a' overwrite -- run output.name=a --overwrite
[ -e "$work/runs/a/stale.txt" ] && fail "--overwrite left the earlier run's files"
[ "$(wc -l < "$work/runs/a/metrics.jsonl")" = 1 ] || fail "--overwrite: metrics.jsonl mixes two runs"
# Killed while --overwrite deletes: the half-deleted folder is still a run folder (refused without --overwrite,
# replaced with it).
LOFT_FAULT_POINT=overwrite.clearing run output.name=a --overwrite >"$work/overwrite_kill.log" 2>&1
rc=$?
[ $rc = 137 ] || fail "--overwrite was not killed at overwrite.clearing (exit $rc)"
expect 2 'already exists' after_kill -- run output.name=a
expect 0 'deleted the earlier run' overwrite_again -- run output.name=a --overwrite
expect 2 'exclude each other' both -- run output.name=a --overwrite --resume "$work/runs/a"
mkdir -p "$work/runs/notes"; echo keep > "$work/runs/notes/todo.txt"
expect 2 'not a loft run folder' overwrite_other -- run output.name=notes --overwrite
[ -f "$work/runs/notes/todo.txt" ] || fail "--overwrite deleted a folder that was no run folder"

# 2. A running run holds its folder: stopped right after its step-2 checkpoint (LOFT_FAULT_POINT ...:stop), every
# other start on the folder is refused with its pid, and it then finishes as if alone.
# (A simple command, not the `run` function: $! is then loft's own pid.)
LOFT_FAULT_POINT=checkpoint.published@2:stop "$loft" run "$recipes/demo.toml" "${common[@]}" output.name=busy \
  >"$work/busy.log" 2>&1 &
holder=$!
stopped() { [ "$(ps -o stat= -p "$1" | cut -c1)" = T ]; }
# Until it has stopped itself or ended: a wait for a state, not a timing (ctest's TIMEOUT bounds it).
while kill -0 $holder 2>/dev/null && ! stopped $holder; do sleep 0.2; done
if ! stopped $holder; then
  fail "the holder did not reach its stop point"; sed 's/^/    /' "$work/busy.log"
else
  held=$(snapshot "$work/runs/busy")
  expect 2 "run folder .*/runs/busy is in use by another loft process \(pid $holder\)" busy_new -- run output.name=busy
  expect 2 "in use by another loft process \(pid $holder\)" busy_overwrite -- run output.name=busy --overwrite
  expect 2 "in use by another loft process \(pid $holder\)" busy_resume -- run output.name=busy --resume "$work/runs/busy"
  [ "$(snapshot "$work/runs/busy")" = "$held" ] || fail "a refused run changed the folder of the running one"
  kill -CONT $holder
fi
wait $holder; rc=$?
[ $rc = 0 ] || { fail "the held run exited $rc after being continued"; sed 's/^/    /' "$work/busy.log"; }
cmp -s "$work/runs/a/model/model.safetensors" "$work/runs/busy/model/model.safetensors" ||
  fail "the run that others tried to enter trained a different model"
# Default names: two runs stopped in the same place at once each got a folder of their own.
pids=()
for i in 1 2; do
  LOFT_FAULT_POINT=run.locked:stop "$loft" run "$recipes/demo.toml" "${common[@]}" "output.dir=\"$work/default\"" \
    >"$work/default$i.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null && ! stopped "$p"; do sleep 0.2; done; done
[ "$(ls "$work/default" | grep -c '^demo-[0-9]\{8\}-[0-9]\{6\}')" = 2 ] || fail "two default-named runs share a folder: $(ls "$work/default")"
for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
wait "${pids[@]}" 2>/dev/null

# 3. --resume checks the recipe against the run's own: changes that break exactness are refused, all listed, and
# nothing is written; the safe ones are recorded and the saved recipe follows them.
saved=$(cat "$work/runs/a/recipe.toml")
expect 2 'train\.lr: 0\.002 -> 0\.001' resume_lr -- run output.name=a --resume "$work/runs/a" train.lr=1e-3 \
  train.batch_size=4 model.dtype=bf16 dataset.limit=64 peft.type=lora
for key in 'train\.batch_size: 2 -> 4' 'model\.dtype: "fp32" -> "bf16"' 'dataset\.limit: 32 -> 64' \
           'peft\.type: "full" -> "lora"'; do
  grep -Eq -- "$key" "$work/resume_lr.log" || fail "the refusal does not list $key"
done
grep -Eq '^  (train\.max_steps|peft\.r):' "$work/resume_lr.log" && fail "the refusal lists an unchanged key, or the options of a plugin it replaced"
[ "$(cat "$work/runs/a/recipe.toml")" = "$saved" ] || fail "a refused --resume changed recipe.toml"
[ -e "$work/runs/a/resumes.jsonl" ] && fail "a refused --resume wrote resumes.jsonl"
expect 2 'cannot be shortened below its checkpoint' resume_short -- run output.name=a --resume "$work/runs/a" train.max_steps=2
expect 0 'resumed from .*step-000004 at step 4' resume_more -- run output.name=a --resume "$work/runs/a" \
  train.max_steps=6 train.save_every=3 train.log_every=2
grep -q '"key":"train.max_steps","new":"6","old":"4"' "$work/runs/a/resumes.jsonl" || fail "resumes.jsonl lacks max_steps"
grep -q '"key":"train.save_every","new":"3","old":"2"' "$work/runs/a/resumes.jsonl" || fail "resumes.jsonl lacks save_every"
grep -q '^max_steps = 6$' "$work/runs/a/recipe.toml" || fail "recipe.toml does not say max_steps = 6 after the resume"
grep -q '^name = "a"$' "$work/runs/a/recipe.toml" || fail "recipe.toml lost its [output] name"
expect 0 'resumed from .*step-000006 at step 6' resume_same -- run output.name=a --resume "$work/runs/a" \
  train.max_steps=6 train.save_every=3 train.log_every=2
[ "$(wc -l < "$work/runs/a/resumes.jsonl")" = 2 ] || fail "resumes.jsonl should hold one line per resume"

# 4. train.keep_last: at least 1.
for bad in 0 -1; do
  expect 2 'train\.keep_last' keep_$bad -- "$loft" validate "$recipes/demo.toml" train.keep_last=$bad
done

# 5. loft merge --out: never the base model's folder or the run folder, a non-empty folder only with --overwrite.
ln -s "$work/base" "$work/base_link"
base_before=$(snapshot "$work/base")
for out in "$work/base" "$work/base_link" "$work/base/../base/" "$work"; do
  for flag in "" --overwrite; do
    expect 2 "base model's folder" merge_base -- "$loft" merge "$work/runs/a" --out "$out" $flag
  done
done
[ "$(snapshot "$work/base")" = "$base_before" ] || fail "a refused merge changed the base model's folder"
expect 2 'is the run folder' merge_run -- "$loft" merge "$work/runs/a" --out "$work/runs/a" --overwrite
mkdir -p "$work/merged"; echo old > "$work/merged/config.json"; echo old > "$work/merged/stale.safetensors"
expect 2 'exists and is not empty; add --overwrite' merge_full -- "$loft" merge "$work/runs/a" --out "$work/merged"
[ "$(cat "$work/merged/config.json")" = old ] || fail "a refused merge changed --out"
LOFT_FAULT_POINT=merge.staged "$loft" merge "$work/runs/a" --out "$work/merged" --overwrite >"$work/merge_kill.log" 2>&1
rc=$?
[ $rc = 137 ] && grep -q 'fault point merge.staged reached' "$work/merge_kill.log" || fail "merge was not killed at merge.staged (exit $rc)"
[ "$(cat "$work/merged/config.json")" = old ] && [ -f "$work/merged/stale.safetensors" ] ||
  fail "a merge killed before it was complete changed --out"
expect 0 'merged .* into' merge_over -- "$loft" merge "$work/runs/a" --out "$work/merged" --overwrite
[ -f "$work/merged/model.safetensors" ] && [ ! -e "$work/merged/stale.safetensors" ] ||
  fail "--overwrite did not replace --out with the merged model: $(ls "$work/merged")"
ls -a "$work" | grep -q '^\.merged\.partial' && fail "a merge left its staging folder behind: $(ls -a "$work")"
mkdir -p "$work/notes"; echo keep > "$work/notes/todo.txt"
expect 2 'not a model folder' merge_notes -- "$loft" merge "$work/runs/a" --out "$work/notes" --overwrite
mkdir -p "$work/empty"
expect 0 'merged .* into' merge_empty -- "$loft" merge "$work/runs/a" --out "$work/empty"
[ $failures -eq 0 ] || { echo "$failures run-folder checks failed"; exit 1; }
