#!/usr/bin/env bash
# The bundled demo recipe trains: the run folder holds the resolved recipe, metrics and a checkpoint, and the loss
# of the last logged step is well below the first. Then a resumed run continues from that checkpoint.
set -euo pipefail
loft=$1 recipes=$2 work=$3 python=$4 here=$(dirname "$0")
rm -rf "$work"; mkdir -p "$work"
"$loft" run "$recipes/demo.toml" train.max_steps=40 train.log_every=1 output.dir="$work" output.name=demo 2>&1 | tee "$work/log.txt"
run="$work/demo"
for f in recipe.toml metrics.jsonl checkpoints/latest checkpoints/step-000040/trainable.pt model/model.safetensors \
         model/config.json model/tokenizer.json; do
  [ -e "$run/$f" ] || { echo "missing $run/$f"; exit 1; }
done
first=$(head -1 "$run/metrics.jsonl" | sed -E 's/.*"loss":([0-9.e+-]+).*/\1/')
last=$(tail -1 "$run/metrics.jsonl" | sed -E 's/.*"loss":([0-9.e+-]+).*/\1/')
echo "loss: first step $first, step 40 $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.6 * a) }' || { echo "loss did not fall enough"; exit 1; }
# eval: generation on held-out-style problems, graded; eval.json in the run folder.
"$loft" eval "$recipes/demo.toml" --run "$run" --limit 4 --max-new-tokens 24 2>&1 | tee "$work/eval.txt"
grep -Eq '^accuracy [0-4]/4' "$work/eval.txt"
grep -q '"total": 4' "$run/eval.json"
# The fine-tuned model is a Hugging Face folder: transformers loads it, weights equal.
"$python" "$here/check_hf_outputs.py" model "$run/model"
# A LoRA run leaves a PEFT adapter that PEFT loads with every tensor.
"$loft" run "$recipes/demo.toml" peft.type=lora train.max_steps=3 output.dir="$work" output.name=lora
"$python" "$here/check_hf_outputs.py" adapter "$work/lora/adapter" "$recipes/../models/demo"
# merge: the LoRA run's base + adapter as a Hugging Face folder that transformers loads.
"$loft" merge "$work/lora" --out "$work/merged"
"$python" "$here/check_hf_outputs.py" model "$work/merged"
# --resume: same recipe, more steps; continues at step 41 in the same folder.
"$loft" run "$recipes/demo.toml" train.max_steps=45 train.log_every=1 output.dir="$work" output.name=demo \
  --resume "$run" 2>&1 | tee "$work/resume.txt"
grep -q 'resumed from .*step-000040 at step 40' "$work/resume.txt"
[ "$(wc -l < "$run/metrics.jsonl")" = 45 ] || { echo "expected 45 metric lines after resuming"; exit 1; }
# A run folder that is not one: exit 2 with a message.
set +e
"$loft" run "$recipes/demo.toml" --resume "$work/nowhere" 2>"$work/err.txt"; rc=$?
set -e
[ $rc = 2 ] && grep -q 'no such folder' "$work/err.txt"
