#!/usr/bin/env bash
# `loft run` when it is interrupted or something goes wrong, on the demo model (random init, CPU, fp32, a few steps):
#   signals         SIGINT / SIGTERM after a step: exit 130 / 143, a checkpoint of that step, a printed resume command
#                   that continues to the same weights and metrics as an uninterrupted run
#   second_signal   a second SIGINT while the first is being honoured ends the process at once, without a checkpoint
#   killed_resume   SIGKILL after the last checkpoint: the resumed run writes every step's metrics record once
#   nonfinite       NaN steps are skipped, or stop the run (train.max_nonfinite_steps), nothing non-finite is written
#   metrics_full    metrics.jsonl cannot be written (/dev/full, a file-size limit): exit 1, no torn record, the last
#                   checkpoint kept
# Fault hooks: LOFT_FAULT_HOLD_AFTER_STEP, LOFT_FAULT_HANG_AFTER_STEP, LOFT_FAULT_NONFINITE_STEPS (trainer.h).
set -euo pipefail
loft=$1 here=$2 work=$3 case=$4
rm -rf "$work"; mkdir -p "$work"
export OMP_NUM_THREADS=1
fail() { echo "FAIL ($case): $*"; exit 1; }
# The small run every case uses: $loft "${small[@]}" output.name=NAME [more overrides or flags].
small=(run "$here/good_recipe.toml" model.init=random dataset.max_length=64 train.batch_size=2 train.max_steps=8
       train.lr=2e-3 "output.dir=\"$work\"")
train() { local name=$1; shift; "$loft" "${small[@]}" "output.name=\"$name\"" "$@"; }
# A run in the background: its pid in $pid. Whatever happens, none outlives the test.
background=()
start() {  # start LOG NAME [overrides...]
  local log=$1 name=$2; shift 2
  "$loft" "${small[@]}" "output.name=\"$name\"" "$@" > "$log" 2>&1 &
  pid=$!
  background+=("$pid")
}
cleanup() { for p in "${background[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'cleanup; exit 1' TERM INT  # ctest's timeout
wait_for() {  # wait_for FILE REGEX: until FILE has a line matching REGEX (the test's own timeout bounds it)
  until grep -Eq -- "$2" "$1" 2>/dev/null; do sleep 0.1; done
}
# metrics.jsonl without what differs between runs of the same steps (timings, memory).
strip() { sed -E 's/,"peak_[a-z_]+":[0-9.e+-]+//g; s/,"tokens_per_s":[0-9.e+-]+//' "$1"; }
steps() { sed -E 's/.*"step":([0-9]+).*/\1/' "$1" | tr '\n' ' '; }
same_training() {  # same_training RUN_A RUN_B: byte-identical weights, equal metrics
  cmp "$work/$1/model/model.safetensors" "$work/$2/model/model.safetensors" || fail "$1 and $2 trained different weights"
  diff <(strip "$work/$1/metrics.jsonl") <(strip "$work/$2/metrics.jsonl") || fail "$1 and $2 logged different metrics"
}
set -m  # background jobs in their own process group, with SIGINT not ignored (as a terminal runs them)

case $case in
signals)
  train straight > "$work/straight.log" 2>&1
  for sig in INT TERM; do
    run="$work/$sig" hold=3
    [ $sig = TERM ] && hold=5
    LOFT_FAULT_HOLD_AFTER_STEP=$hold start "$work/$sig.log" $sig
    wait_for "$run/metrics.jsonl" "\"step\":$hold,"
    kill -$sig $pid
    rc=0; wait $pid || rc=$?
    want=130; [ $sig = TERM ] && want=143
    [ $rc = $want ] || { cat "$work/$sig.log"; fail "SIG$sig: exit $rc, want $want"; }
    grep -q "stopped by SIG$sig after step $hold of 8 with a checkpoint in $run/checkpoints/step-00000$hold" \
      "$work/$sig.log" || { cat "$work/$sig.log"; fail "SIG$sig: no stop message"; }
    [ "$(cat "$run/checkpoints/latest")" = "step-00000$hold" ] || fail "SIG$sig: latest is $(cat "$run/checkpoints/latest")"
    [ -f "$run/checkpoints/step-00000$hold/trainable.pt" ] || fail "SIG$sig: no checkpoint of step $hold"
    [ ! -e "$run/model" ] || fail "SIG$sig: an interrupted run wrote model/"
    # The printed command, run as printed.
    resume=$(grep -A1 'continue with:' "$work/$sig.log" | tail -1)
    [[ $resume == *" run $run/recipe.toml --resume $run" ]] || fail "SIG$sig: unexpected resume command: $resume"
    eval "$resume" > "$work/$sig.resume.log" 2>&1 || { cat "$work/$sig.resume.log"; fail "SIG$sig: the resume failed"; }
    grep -q "resumed from .*step-00000$hold at step $hold" "$work/$sig.resume.log" || fail "SIG$sig: did not resume at $hold"
    same_training straight $sig
    echo "ok: SIG$sig after step $hold: exit $rc, checkpoint, resumed with the printed command to the same weights"
  done
  ;;
second_signal)
  LOFT_FAULT_HANG_AFTER_STEP=2 start "$work/twice.log" twice
  wait_for "$work/twice/metrics.jsonl" '"step":2,'
  kill -INT $pid
  wait_for "$work/twice.log" 'SIGINT: finishing the current step'
  kill -INT $pid
  rc=0; wait $pid || rc=$?
  [ $rc = 130 ] || { cat "$work/twice.log"; fail "exit $rc after two SIGINTs, want 130"; }
  grep -q 'second signal: stopping at once' "$work/twice.log" || { cat "$work/twice.log"; fail "no 'stopping at once'"; }
  ! grep -q 'continue with' "$work/twice.log" || fail "a resume command after stopping at once"
  [ ! -e "$work/twice/checkpoints" ] || fail "a checkpoint was written after the second signal"
  echo "ok: a second SIGINT stops at once (exit $rc, no checkpoint)"
  ;;
killed_resume)
  train straight > "$work/straight.log" 2>&1
  LOFT_FAULT_HANG_AFTER_STEP=6 start "$work/killed.log" killed train.save_every=4
  wait_for "$work/killed/metrics.jsonl" '"step":6,'
  kill -KILL $pid
  wait $pid || true
  [ "$(steps "$work/killed/metrics.jsonl")" = "1 2 3 4 5 6 " ] || fail "before the resume: $(steps "$work/killed/metrics.jsonl")"
  [ "$(cat "$work/killed/checkpoints/latest")" = step-000004 ] || fail "latest is not step-000004"
  printf '{"step":7,"lo' >> "$work/killed/metrics.jsonl"  # and a record torn by the kill
  "$loft" run "$work/killed/recipe.toml" --resume "$work/killed" > "$work/resume.log" 2>&1 || { cat "$work/resume.log"; fail "resume"; }
  grep -q 'dropped 3 record(s) after step 4' "$work/resume.log" || { cat "$work/resume.log"; fail "no 'dropped' line"; }
  [ "$(steps "$work/killed/metrics.jsonl")" = "1 2 3 4 5 6 7 8 " ] || fail "after the resume: $(steps "$work/killed/metrics.jsonl")"
  same_training straight killed
  echo "ok: killed after step 6, resumed from step 4: each step's record once, same weights as straight"
  ;;
nonfinite)
  # Skipped: steps 3 and 5 change nothing, are recorded and logged; the run ends normally with finite weights.
  LOFT_FAULT_NONFINITE_STEPS=3,5 train skip train.log_every=4 > "$work/skip.log" 2>&1 || { cat "$work/skip.log"; fail "skip run"; }
  [ "$(steps "$work/skip/metrics.jsonl")" = "3 4 5 8 " ] || fail "recorded steps: $(steps "$work/skip/metrics.jsonl")"
  [ "$(grep -c '"nonfinite":true' "$work/skip/metrics.jsonl")" = 2 ] || fail "non-finite steps not marked"
  grep -q 'step 5: loss nan, gradient norm nan: update skipped (1 in a row' "$work/skip.log" || fail "no skip warning"
  [ -f "$work/skip/model/model.safetensors" ] || fail "the skip run wrote no model"
  # Stopped: more than max_nonfinite_steps in a row -> exit 1, the step named, a checkpoint, no model folder.
  for limit in 0 1; do
    set +e; LOFT_FAULT_NONFINITE_STEPS=3,4 train stop$limit train.max_nonfinite_steps=$limit > "$work/stop$limit.log" 2>&1
    rc=$?; set -e
    last=$((3 + limit))
    [ $rc = 1 ] || { cat "$work/stop$limit.log"; fail "max_nonfinite_steps=$limit: exit $rc, want 1"; }
    grep -q "step $last: loss nan, gradient norm nan: $((limit + 1)) non-finite step(s) in a row (train.max_nonfinite_steps = $limit)" \
      "$work/stop$limit.log" || { cat "$work/stop$limit.log"; fail "no stop message"; }
    [ "$(cat "$work/stop$limit/checkpoints/latest")" = "step-00000$last" ] || fail "no checkpoint of step $last"
    [ ! -e "$work/stop$limit/model" ] || fail "a stopped run wrote model/"
  done
  # Diverging for real (no hook): the learning rate blows the weights up; the run must not end with exit 0 and a
  # non-finite model.
  set +e; train diverge train.lr=1e35 train.max_grad_norm=0 > "$work/diverge.log" 2>&1; rc=$?; set -e
  [ $rc = 1 ] || { cat "$work/diverge.log"; fail "a diverging run: exit $rc, want 1"; }
  grep -Eq 'non-finite step\(s\) in a row|holds NaN or Inf' "$work/diverge.log" || { cat "$work/diverge.log"; fail "diverging run: no reason given"; }
  [ ! -e "$work/diverge/model" ] || fail "a diverging run wrote model/"
  echo "ok: non-finite steps skipped (exit 0) or stopped with a checkpoint (exit 1); a diverging run exits 1"
  ;;
metrics_full)
  # On a full device from the first resumed step: exit 1 with the file and the cause; the latest checkpoint stays.
  train full train.save_every=2 --stop-after 4 > "$work/full.log" 2>&1
  ln -sf /dev/full "$work/full/metrics.jsonl"
  rm -rf "$work/full/model"  # written by --stop-after
  set +e; "$loft" run "$work/full/recipe.toml" --resume "$work/full" > "$work/full.resume.log" 2>&1; rc=$?; set -e
  [ $rc = 1 ] || { cat "$work/full.resume.log"; fail "/dev/full: exit $rc, want 1"; }
  grep -q "cannot write $work/full/metrics.jsonl: No space left on device; training stopped after step 5" \
    "$work/full.resume.log" || { cat "$work/full.resume.log"; fail "/dev/full: no message"; }
  [ "$(cat "$work/full/checkpoints/latest")" = step-000004 ] || fail "/dev/full: latest moved"
  [ ! -e "$work/full/model" ] || fail "/dev/full: model/ written"
  # A file-size limit reached in mid-run (the disk fills): the record that did not fit is cut off again.
  set +e
  ( ulimit -f 4; trap '' XFSZ; exec "$loft" run "$here/good_recipe.toml" model.init=random dataset.max_length=64 \
      train.batch_size=2 train.max_steps=60 "output.dir=\"$work\"" output.name=limit 2>&1 ) | cat > "$work/limit.log"
  rc=${PIPESTATUS[0]}; set -e
  [ "$rc" = 1 ] || { cat "$work/limit.log"; fail "file-size limit: exit $rc, want 1"; }
  grep -q "cannot write $work/limit/metrics.jsonl: File too large; training stopped after step" "$work/limit.log" || \
    { cat "$work/limit.log"; fail "file-size limit: no message"; }
  n=$(wc -l < "$work/limit/metrics.jsonl")
  [ "$n" -gt 1 ] && [ "$n" -lt 60 ] || fail "file-size limit: $n records"
  [ "$(tail -c 1 "$work/limit/metrics.jsonl" | od -An -c | tr -d ' ')" = '\n' ] || fail "file-size limit: torn last record"
  [ "$(grep -c '^{.*}$' "$work/limit/metrics.jsonl")" = "$n" ] || fail "file-size limit: a record is not whole"
  echo "ok: metrics.jsonl write failures stop the run (exit 1), no torn record, checkpoint kept"
  ;;
*) fail "unknown case" ;;
esac
