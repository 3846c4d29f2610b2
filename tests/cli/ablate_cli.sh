#!/usr/bin/env bash
# `loft ablate` on the demo model (CPU, random init, a few steps per variant):
#   cpu_grid    tests/cli/ablate_cpu_grid.toml: every variant in its own run folder with summary.json; a variant
#               predicted over its budget is recorded as does_not_fit and never runs; a variant that fails at run time
#               is recorded with its reason while the variants after it finish; results.jsonl holds all of it; a
#               re-run reuses the finished variants (says so, leaves their folders alone) and runs the failed ones
#               again, from their last checkpoint
#   shipped     recipes/ablations/*.toml validate and plan with `--dry-run` (a folder with the 1.5B's config.json
#               stands in for the model) and write nothing
#   bad_grid    malformed grids and invalid variants: exit 2, every problem at once naming the variants, nothing
#               written
#   interrupt   SIGINT to loft ablate: the running variant stops with a checkpoint, the grid stops (exit 130), the
#               rest stay pending; a re-run resumes the variant exactly where it stopped. loft ablate killed: its
#               variant stops with a checkpoint too (SIGTERM from the kernel), and a re-run resumes it
#   crash       every variant killed (SIGKILL, as the OOM killer does): each recorded failed with the signal, the grid
#               goes on; a re-run starts them over
#   lock        a second loft ablate on a grid folder in use is refused, naming the first one's pid
set -euo pipefail
loft=$1 here=$(realpath "$2") recipes=$(realpath "$3") work=$(realpath -m "$4") python=$5 case=$6
rm -rf "$work"; mkdir -p "$work"
export OMP_NUM_THREADS=1
fail() { echo "FAIL ($case): $*"; exit 1; }
background=()
cleanup() { for p in "${background[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'cleanup; exit 1' TERM INT  # ctest's timeout
wait_for() {  # wait_for FILE REGEX [PID]: until FILE has a line matching REGEX, while PID (if given) lives
  until grep -Eq -- "$2" "$1" 2>/dev/null; do
    [ -z "${3:-}" ] || kill -0 "$3" 2>/dev/null || fail "process $3 ended before $1 matched '$2'"
    sleep 0.1
  done
}
# A two-variant grid (written here) whose runs log every step.
small_grid() {
  cat > "$work/small.toml" <<EOF
base = "$here/good_recipe.toml"
[set]
dataset.max_length = 64
train.batch_size = 2
train.max_steps = 4
train.log_every = 1
[axes]
train.lr = [1e-3, 2e-3]
EOF
}
# metrics.jsonl without what differs between runs of the same steps (timings, memory).
strip() { sed -E 's/,"peak_[a-z_]+":[0-9.e+-]+//g; s/,"tokens_per_s":[0-9.e+-]+//' "$1"; }
set -m  # background jobs in their own process group, with SIGINT not ignored (as a terminal runs them)

case $case in
cpu_grid)
  out=$work/grid
  rc=0; LOFT_FAULT_NONFINITE_STEPS=2 "$loft" ablate "$here/ablate_cpu_grid.toml" --out "$out" > "$work/first.txt" 2>&1 || rc=$?
  cat "$work/first.txt"
  [ "$rc" = 1 ] || fail "exit $rc with failed variants, want 1"
  [ "$(grep -c '^\[[1-8]/8\] ' "$work/first.txt")" = 8 ] || fail "not one progress line per variant"
  grep -Eq '^\[1/8\] method-full,seed-1: finished in [0-9]+:[0-9]{2}, [0-9]+ tokens/s, .*; grid ETA [0-9]+:[0-9]{2} \(5 left\)' \
    "$work/first.txt" || fail "no progress line with the grid's ETA"
  "$python" - "$out" <<'PY' || fail "results.jsonl"
import json, os, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "results.jsonl"))]
names = [r["variant"] for r in rows]
assert names == [f"method-{m},seed-{s}" for s in (1, 2) for m in ("full", "lora", "tiny_budget", "nan_stops")], names
assert [r["index"] for r in rows] == list(range(8))
by = {r["variant"]: r for r in rows}
for s in (1, 2):
    for m in ("full", "lora"):
        r = by[f"method-{m},seed-{s}"]
        assert r["status"] == "finished" and r["reason"] == "" and not r["reused"], r
        assert r["seed"] == s and r["run_dir"] == f"runs/{r['variant']}", r
        summary = r["summary"]
        on_disk = json.load(open(os.path.join(out, r["run_dir"], "summary.json")))
        assert summary == on_disk, (summary, on_disk)
        assert summary["format"] == "loft-run-summary" and summary["status"] == "finished" and summary["steps"] == 4
        for key in ("tokens_per_s", "step_time_s", "final_loss", "wall_s"):
            assert isinstance(summary[key], float) and summary[key] > 0, (key, summary)
        assert summary["peak_host_bytes"] > 0 and summary["planned"]["host_bytes"] > 0, summary
        assert summary["planned"]["gpu_bytes"] == 0 and summary["planned"]["host_by_category"]["other"] > 0
        assert summary["trainable_params"] > 0 and summary["adapter_bytes"] > 0, summary
        assert summary["val_loss"] is None and summary["eval_accuracy"] is None
    assert by[f"method-lora,seed-{s}"]["overrides"] == {"peft.type": "lora", "peft.r": 4}
    assert by[f"method-full,seed-{s}"]["overrides"] == {"peft.type": "full"}
    lora, full = by[f"method-lora,seed-{s}"]["summary"], by[f"method-full,seed-{s}"]["summary"]
    assert lora["trainable_params"] < full["trainable_params"] and lora["adapter_bytes"] < full["adapter_bytes"]
    r = by[f"method-tiny_budget,seed-{s}"]
    assert r["status"] == "does_not_fit" and r["summary"] is None, r
    assert "predicted host peak" in r["reason"] and "> budget.host_memory 64.0 MiB" in r["reason"], r
    assert not os.path.exists(os.path.join(out, r["run_dir"])), "a variant that does not fit ran"
    r = by[f"method-nan_stops,seed-{s}"]
    assert r["status"] == "failed" and r["summary"] is None, r
    assert r["reason"].startswith("exit 1: step 2: loss nan") and "non-finite" in r["reason"], r
    assert f"logs/{r['variant']}.log" in r["reason"], r
# The seeds differ: the same method trains differently.
assert by["method-full,seed-1"]["summary"]["final_loss"] != by["method-full,seed-2"]["summary"]["final_loss"]
PY
  # The tables: one Markdown row per variant (seeds aggregated), one CSV row per variant x seed, only the keys that
  # differ as columns, the failed and unfitting variants with their status.
  "$python" - "$out" <<'PY' || fail "results.md / results.csv"
import csv, os, sys
out = sys.argv[1]
md = open(os.path.join(out, "results.md")).read().splitlines()
table = [l for l in md if l.startswith("|")]
header = [c.strip() for c in table[0].strip("|").split("|")]
body = table[2:]
assert len(body) == 4, f"want one row per variant (4), got {len(body)}: {body}"
assert "peft.type" in header and "status" in header, header
assert "train.max_steps" not in header and "train.log_every" not in header, f"a key set alike is a column: {header}"
text = "\n".join(body)
for name in ("| full |", "| lora | 4 |", "| 64MiB |", "| 0 |"):  # each variant's differing values
    assert name in text, f"{name} missing from results.md"
assert "does_not_fit" in text and "failed" in text, text
rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
assert len(rows) == 8, f"want one CSV row per variant x seed (8), got {len(rows)}"
print("ok: results.md and results.csv")
PY
  [ -f "$out/grid.toml" ] && cmp "$out/grid.toml" "$here/ablate_cpu_grid.toml" || fail "grid.toml is not a copy of the grid"
  grep -q '^seed = 2$' "$out/recipes/method-lora,seed-2.toml" || fail "the variant's recipe does not set its seed"
  # A re-run reuses the finished variants and says so; their folders stay as they were; the failed ones run again.
  rc=0; LOFT_FAULT_NONFINITE_STEPS=2 "$loft" ablate "$here/ablate_cpu_grid.toml" --out "$out" > "$work/second.txt" 2>&1 || rc=$?
  cat "$work/second.txt"
  [ "$rc" = 0 ] || fail "re-run: exit $rc, want 0"
  grep -q '8 variants in .*: 2 to run, 4 reused, 2 not run' "$work/second.txt" || fail "re-run: no plan of what runs"
  [ "$(grep -c ': reused (finished earlier), ' "$work/second.txt")" = 4 ] || fail "re-run: not 4 variants reused"
  # The injected NaN was step 2: resumed after its checkpoint, each failed variant now finishes.
  [ "$(grep -Ec '^\[[0-9]/8\] method-nan_stops,seed-[12]: finished \(resumed\) in ' "$work/second.txt")" = 2 ] ||
    fail "re-run: failed variants not resumed"
  [ "$(find "$out/runs" -type f -newer "$work/first.txt" ! -path '*nan_stops*' | wc -l)" = 0 ] || fail "re-run: a reused variant's folder changed"
  [ "$(grep -c '^==== loft ablate: variant' "$out/logs/method-nan_stops,seed-1.log")" = 2 ] || fail "re-run: the log lost the first attempt"
  "$python" - "$out" <<'PY' || fail "results.jsonl after the re-run"
import json, os, sys
rows = [json.loads(l) for l in open(os.path.join(sys.argv[1], "results.jsonl"))]
reused = [r["variant"] for r in rows if r["reused"]]
assert reused == ["method-full,seed-1", "method-lora,seed-1", "method-full,seed-2", "method-lora,seed-2"], reused
assert all(r["summary"]["steps"] == 4 for r in rows if r["reused"])
assert [r["status"] for r in rows] == ["finished", "finished", "does_not_fit", "finished"] * 2
PY
  ;;
shipped)
  # The 1.5B's config.json (public shapes) with the demo tokenizer and an empty weights file: enough to validate and
  # plan, which read no weight.
  model=$work/r1-1.5b
  mkdir -p "$model"
  cat > "$model/config.json" <<'EOF'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
 "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
 "max_position_embeddings": 131072, "rope_theta": 10000.0, "rms_norm_eps": 1e-06, "hidden_act": "silu",
 "tie_word_embeddings": false, "use_sliding_window": false, "bos_token_id": 151646, "eos_token_id": 151643,
 "torch_dtype": "bfloat16"}
EOF
  cp "$recipes/../models/demo/tokenizer.json" "$model/"
  : > "$model/model.safetensors"
  echo '{"problem": "What is 1 + 1?", "solution": "$\boxed{2}$", "level": "Level 1", "type": "Algebra"}' > "$work/math.jsonl"
  grids=("$recipes"/ablations/*.toml)
  [ ${#grids[@]} -ge 2 ] || fail "no shipped grids under $recipes/ablations"
  for grid in "${grids[@]}"; do
    name=$(basename "$grid" .toml)
    "$loft" ablate --dry-run "$grid" model.path="$model" dataset.path="$work/math.jsonl" --out "$work/$name" \
      > "$work/$name.txt" 2>&1 || { cat "$work/$name.txt"; fail "$grid does not validate"; }
    [ ! -e "$work/$name" ] || fail "--dry-run wrote $work/$name"
  done
  cat "$work/t4_memory.txt"
  grep -q '36 variants' "$work/t4_memory.txt" || fail "t4_memory: not 3 quantizers x 3 offloads x 4 micro-batches"
  grep -q 'quantizer-nf4,offload-zero3,micro_batch-8' "$work/t4_memory.txt" || fail "t4_memory: variant names"
  grep -q 'planned peak GPU .* of 15.00 GiB, host .* of 12.00 GiB: would run' "$work/t4_memory.txt" || fail "t4_memory: nothing fits"
  grep -q 'does_not_fit: predicted GPU peak .* > budget.gpu_memory 15.00 GiB' "$work/t4_memory.txt" || fail "t4_memory: everything fits"
  cat "$work/peft_methods.txt"
  grep -q '15 variants' "$work/peft_methods.txt" || fail "peft_methods: not 5 methods x 3 seeds"
  for m in lora rslora dora lora_plus full; do
    for s in 1 2 3; do grep -q "^\[[0-9]*/15\] method-$m,seed-$s$" "$work/peft_methods.txt" || fail "peft_methods: no $m seed $s"; done
  done
  grep -q 'peft.type="lora" peft.lora_plus_ratio=16.0' "$work/peft_methods.txt" || fail "peft_methods: LoRA+"
  grep -q 'peft.type="lora" peft.rslora=true' "$work/peft_methods.txt" || fail "peft_methods: rsLoRA"
  grep -q "without the base's peft.alpha, peft.dropout, peft.r, peft.targets (options of peft/lora that peft/full" \
    "$work/peft_methods.txt" || fail "peft_methods: full fine-tuning keeps LoRA's options"
  ;;
bad_grid)
  out=$work/out
  # The grid itself: every problem at once, located.
  cat > "$work/g1.toml" <<EOF
base = "$here/good_recipe.toml"
sed = [1]
[set]
train.lr = 1e-3
[axes]
train.lr = [1e-3, 2e-3]
peft.r = []
EOF
  rc=0; "$loft" ablate "$work/g1.toml" --out "$out" 2> "$work/g1.txt" || rc=$?
  cat "$work/g1.txt"
  [ "$rc" = 2 ] || fail "a malformed grid: exit $rc, want 2"
  grep -q "g1.toml:2:1: error: unknown key 'sed' in an ablation grid (did you mean 'set'?)" "$work/g1.txt" || fail "unknown grid key"
  grep -q "g1.toml:6:7: error: train.lr is set in axis train.lr and in \[set\]" "$work/g1.txt" || fail "axis key in [set]"
  grep -q "g1.toml:7:6: error: axis peft.r must be a non-empty list" "$work/g1.txt" || fail "empty axis"
  grep -q "g1.toml: 3 errors" "$work/g1.txt" || fail "not every error"
  # Variants whose recipes are invalid: each problem once, naming the variants it concerns, located in the grid.
  cat > "$work/g2.toml" <<EOF
base = "$here/good_recipe.toml"
seeds = [1, 2]
[set]
train.max_stepz = 4
[paired]
method = [{name = "ok", peft.type = "lora"}, {name = "bad_r", peft.type = "lora", peft.r = 0}, {name = "q", quantizer.type = "int9"}]
EOF
  rc=0; "$loft" ablate "$work/g2.toml" --out "$out" 2> "$work/g2.txt" || rc=$?
  cat "$work/g2.txt"
  [ "$rc" = 2 ] || fail "invalid variants: exit $rc, want 2"
  grep -q "^every variant: .*g2.toml:4:7: error: unknown key 'max_stepz' in \[train\] (did you mean 'max_steps'?)" "$work/g2.txt" || fail "unknown recipe key"
  grep -q "^variants 'method-bad_r,seed-1', 'method-bad_r,seed-2': .*g2.toml:6:.*: error: peft.r = 0 is out of range" "$work/g2.txt" || fail "a bad value in a block"
  grep -q "^variants 'method-q,seed-1', 'method-q,seed-2': .*g2.toml:6:.*: error: unknown quantizer plugin 'int9'" "$work/g2.txt" || fail "a bad plugin"
  grep -q "3 problems in the grid's variants; nothing ran" "$work/g2.txt" || fail "no count"
  # A command-line override may not set what an axis varies.
  small_grid
  rc=0; "$loft" ablate "$work/small.toml" train.lr=5e-3 --out "$out" 2> "$work/g3.txt" || rc=$?
  [ "$rc" = 2 ] && grep -q "override 'train.lr=5e-3' sets train.lr, which the grid .* varies" "$work/g3.txt" || fail "override of an axis"
  rc=0; "$loft" ablate "$work/missing.toml" 2> "$work/g4.txt" || rc=$?
  [ "$rc" = 2 ] && grep -q "missing.toml: no such grid file" "$work/g4.txt" || fail "missing grid"
  [ ! -e "$out" ] || fail "a refused grid wrote $out"
  ;;
interrupt)
  small_grid
  out=$work/grid
  LOFT_FAULT_HOLD_AFTER_STEP=2 "$loft" ablate "$work/small.toml" --out "$out" > "$work/first.txt" 2>&1 &
  pid=$!; background+=("$pid")
  wait_for "$out/runs/lr-0.001/metrics.jsonl" '"step":2,' $pid
  kill -INT $pid
  rc=0; wait $pid || rc=$?
  cat "$work/first.txt"
  [ $rc = 130 ] || fail "SIGINT: exit $rc, want 130"
  grep -q '^\[1/2\] lr-0.001: interrupted in .*: stopped by SIGINT after a checkpoint; a re-run continues it' "$work/first.txt" || fail "no interrupted line"
  grep -q 'continue the grid with:' "$work/first.txt" || fail "no command to continue"
  [ "$(cat "$out/runs/lr-0.001/checkpoints/latest")" = step-000002 ] || fail "no checkpoint of step 2"
  [ ! -e "$out/runs/lr-0.002" ] || fail "the grid went on after SIGINT"
  "$python" - "$out" <<'PY' || fail "results.jsonl after SIGINT"
import json, os, sys
rows = [json.loads(l) for l in open(os.path.join(sys.argv[1], "results.jsonl"))]
assert [r["status"] for r in rows] == ["interrupted", "pending"], rows
PY
  rc=0; "$loft" ablate "$work/small.toml" --out "$out" > "$work/second.txt" 2>&1 || rc=$?
  cat "$work/second.txt"
  [ "$rc" = 0 ] || fail "re-run: exit $rc"
  grep -q '^\[1/2\] lr-0.001: finished (resumed) in ' "$work/second.txt" || fail "re-run: not resumed"
  grep -q '"step":2' "$out/runs/lr-0.001/resumes.jsonl" || fail "re-run: not resumed from step 2"
  # Exactly where it stopped: the same records as a grid that was never interrupted.
  "$loft" ablate "$work/small.toml" --out "$work/straight" > "$work/straight.txt" 2>&1 || fail "uninterrupted grid"
  for v in lr-0.001 lr-0.002; do
    diff <(strip "$out/runs/$v/metrics.jsonl") <(strip "$work/straight/runs/$v/metrics.jsonl") || fail "$v: resumed run differs"
  done
  # loft ablate killed outright: its variant is told to stop (SIGTERM), checkpoints, and a re-run resumes it.
  rm -rf "$out"
  LOFT_FAULT_HOLD_AFTER_STEP=3 "$loft" ablate "$work/small.toml" --out "$out" > "$work/killed.txt" 2>&1 &
  pid=$!; background+=("$pid")
  wait_for "$out/runs/lr-0.001/metrics.jsonl" '"step":3,' $pid
  kill -KILL $pid
  wait $pid || true
  wait_for "$out/logs/lr-0.001.log" 'stopped by SIGTERM after step 3'
  until "$loft" ablate "$work/small.toml" --out "$out" > "$work/after_kill.txt" 2>&1 || ! grep -q 'in use' "$work/after_kill.txt"; do
    sleep 0.2  # until the variant has exited (it holds its run folder)
  done
  cat "$work/after_kill.txt"
  grep -q '^\[1/2\] lr-0.001: finished (resumed) in ' "$work/after_kill.txt" || fail "after a kill: not resumed"
  diff <(strip "$out/runs/lr-0.001/metrics.jsonl") <(strip "$work/straight/runs/lr-0.001/metrics.jsonl") || fail "after a kill: differs"
  ;;
crash)
  small_grid
  out=$work/grid
  rc=0; LOFT_FAULT_POINT=run.locked "$loft" ablate "$work/small.toml" --out "$out" > "$work/first.txt" 2>&1 || rc=$?
  cat "$work/first.txt"
  [ "$rc" = 1 ] || fail "exit $rc, want 1"
  [ "$(grep -c ': failed in .*: killed by SIGKILL' "$work/first.txt")" = 2 ] || fail "not both variants recorded as killed"
  grep -q '"status":"failed","reason":"killed by SIGKILL' "$out/results.jsonl" || fail "results.jsonl"
  rc=0; "$loft" ablate "$work/small.toml" --out "$out" > "$work/second.txt" 2>&1 || rc=$?
  cat "$work/second.txt"
  [ "$rc" = 0 ] || fail "re-run: exit $rc"
  [ "$(grep -c ': finished in ' "$work/second.txt")" = 2 ] || fail "re-run: not both started over and finished"
  ;;
lock)
  small_grid
  out=$work/grid
  LOFT_FAULT_HOLD_AFTER_STEP=1 "$loft" ablate "$work/small.toml" --out "$out" > "$work/first.txt" 2>&1 &
  pid=$!; background+=("$pid")
  wait_for "$out/runs/lr-0.001/metrics.jsonl" '"step":1,' $pid
  rc=0; "$loft" ablate "$work/small.toml" --out "$out" 2> "$work/second.txt" || rc=$?
  cat "$work/second.txt"
  [ "$rc" = 2 ] || fail "a second loft ablate on the folder: exit $rc, want 2"
  grep -q "grid folder $out is in use by another loft ablate (pid $pid)" "$work/second.txt" || fail "no pid in the refusal"
  kill -INT $pid
  wait $pid || true
  ;;
*) fail "unknown case" ;;
esac
echo "PASS ($case)"
