#!/usr/bin/env bash
# A run killed at any point of checkpointing can be resumed, and ends as if it had never been killed: for every
# fault point of publish_checkpoint (LOFT_FAULT_POINT, see the README) at every checkpoint of a 4-step run that saves
# every 2 steps (so the last save_every step is also the end), the killed run plus `--resume` leaves the same
# model.safetensors as a straight run, `latest` names a complete step-4 folder and nothing stale is left. Also: no
# checkpoint step is ever written twice (max_steps a multiple of save_every, --stop-after on one, --resume of a
# finished run).
set -uo pipefail
loft=$1 recipes=$2 work=$3
rm -rf "$work"; mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
common=(model.device=cpu dataset.limit=32 train.batch_size=2 train.max_steps=4 train.save_every=2 train.keep_last=1
        train.log_every=1 "output.dir=\"$work\"")
run() {  # run <name> <log> [args...]: loft run on the demo recipe; returns its exit code
  local name=$1 log=$2; shift 2
  "$loft" run "$recipes/demo.toml" "${common[@]}" output.name="$name" "$@" >"$log" 2>&1
}
written() { grep -c "checkpoint .*/$2 written" "$1"; }  # written <log> <step folder>: how many times it was written

run straight "$work/straight.log" || fail "straight run exited $?"
[ "$(written "$work/straight.log" step-000004)" = 1 ] || fail "max_steps a multiple of save_every: step 4 written $(written "$work/straight.log" step-000004) times"
reference="$work/straight/model/model.safetensors"
[ -f "$reference" ] || { fail "no $reference"; exit 1; }

# --stop-after on a save_every step writes it once; --resume of a finished run writes nothing (the fault point of
# the first thing a checkpoint write does is never reached).
run stopped "$work/stopped.log" --stop-after 2 || fail "--stop-after 2 exited $?"
[ "$(written "$work/stopped.log" step-000002)" = 1 ] || fail "--stop-after 2: step 2 written $(written "$work/stopped.log" step-000002) times"
LOFT_FAULT_POINT=checkpoint.staged run straight "$work/finished.log" --resume "$work/straight"
rc=$?
[ $rc = 0 ] || { fail "--resume of a finished run wrote a checkpoint (exit $rc)"; sed 's/^/    /' "$work/finished.log"; }

for step in 2 4; do
  for point in checkpoint.staged checkpoint.placed checkpoint.published checkpoint.pruning; do
    [ "$point@$step" = checkpoint.pruning@2 ] && continue  # nothing older to prune at the first checkpoint
    name="kill-${point#checkpoint.}-$step"
    LOFT_FAULT_POINT="$point@$step" run "$name" "$work/$name.log"
    rc=$?
    if [ $rc != 137 ] || ! grep -q "fault point $point reached" "$work/$name.log"; then
      fail "$point@$step: expected a kill at the point (exit 137), got exit $rc"; sed 's/^/    /' "$work/$name.log"; continue
    fi
    run "$name" "$work/$name.resume.log" --resume "$work/$name"
    rc=$?
    if [ "$point@$step" = checkpoint.staged@2 ]; then
      # Killed before any checkpoint existed: nothing to resume, said so; --overwrite starts it again.
      [ $rc = 2 ] && grep -q "no complete checkpoint" "$work/$name.resume.log" ||
        { fail "$point@$step: --resume should refuse (no checkpoint), exit $rc"; sed 's/^/    /' "$work/$name.resume.log"; }
      run "$name" "$work/$name.resume.log" --overwrite
      rc=$?
    fi
    if [ $rc != 0 ]; then
      fail "$point@$step: the killed run did not resume (exit $rc)"; sed 's/^/    /' "$work/$name.resume.log"; continue
    fi
    cmp -s "$reference" "$work/$name/model/model.safetensors" || fail "$point@$step: the resumed run's model differs"
    [ "$(cat "$work/$name/checkpoints/latest")" = step-000004 ] || fail "$point@$step: latest is $(cat "$work/$name/checkpoints/latest")"
    left=$(ls "$work/$name/checkpoints" | tr '\n' ' ')
    [ "$left" = "latest step-000004 " ] || fail "$point@$step: checkpoints/ holds [$left], keep_last = 1 wants [latest step-000004]"
    for f in trainable.pt optimizer.pt rng_cpu.pt trainer.json; do
      [ -f "$work/$name/checkpoints/step-000004/$f" ] || fail "$point@$step: step-000004 lacks $f"
    done
    echo "ok: killed at $point@$step, resumed: same model, latest = step-000004, nothing stale"
  done
done
[ $failures -eq 0 ] || { echo "$failures checkpoint kill-point checks failed"; exit 1; }
