#!/usr/bin/env bash
# `loft report` of a fixture grid (two variants x two seeds, a variant named like markup, one that did not fit; the
# files of issue 12's contract written here directly), rendered by headless Chromium: the charts' elements and labels
# are checked in the DOM it builds (check_report_dom.py), and a screenshot must show something. A single run's
# report too. Exit 77 (skip) when Chromium is not installed.
set -euo pipefail
loft=$1 here=$2 work=$3
chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "SKIP: chromium is not installed (scripts/setup.sh installs Debian's chromium package)"
  exit 77
fi
rm -rf "$work"; mkdir -p "$work"
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
def metrics(start, steps=30, tps=1000.0):
    lines = []
    for s in range(1, steps + 1):
        loss = start / (1 + 0.15 * s)
        lines.append(json.dumps({"step": s, "loss": loss, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_s": tps + s,
                                 "label_tokens": 300, "peak_gpu_bytes": 3.2e9, "peak_host_bytes": 2.1e9,
                                 "skipped": False, "nonfinite": False}))
        if s % 10 == 0:
            lines.append(json.dumps({"step": s, "val_loss": loss * 1.1, "val_label_tokens": 900}))
    return "\n".join(lines) + "\n"
def summary(loss, tps, acc):
    return {"format": "loft-run-summary", "version": 1, "status": "finished", "steps": 30, "wall_s": 61.0,
            "tokens_per_s": tps, "step_time_s": 0.3, "peak_gpu_bytes": 3.2e9, "peak_host_bytes": 2.1e9,
            "planned": {"gpu_bytes": 3.4e9, "host_bytes": 2.4e9,
                        "gpu_by_category": {"context": 5.4e8, "weights": 1.9e9, "adapters": 7e7, "optimizer": 1.4e8,
                                            "activations": 7e8, "loss chunk": 4e7, "workspace": 3.3e7},
                        "host_by_category": {"data": 1e8, "other": 1.3e9}},
            "final_loss": loss, "val_loss": loss * 1.1, "eval_accuracy": acc, "trainable_params": 18464768,
            "adapter_bytes": 73859072}
evil = "<script>alert('x')</script> & co"
rows = []
for i, (name, over, seed, start, tps, acc) in enumerate([
        ("lora-r8", {"peft.type": "lora", "peft.r": 8}, 1, 6.0, 1500, 0.30),
        ("lora-r8", {"peft.type": "lora", "peft.r": 8}, 2, 6.3, 1450, 0.34),
        ("dora-r8", {"peft.type": "dora", "peft.r": 8}, 1, 5.5, 1100, 0.36),
        ("dora-r8", {"peft.type": "dora", "peft.r": 8}, 2, 5.6, 1150, 0.31),
        (evil, {"peft.type": "lora", "peft.r": 16}, 1, 6.6, 1400, 0.28)]):
    run_dir = f"runs/v{i}"
    os.makedirs(os.path.join(work, "grid", run_dir))
    open(os.path.join(work, "grid", run_dir, "metrics.jsonl"), "w").write(metrics(start, tps=tps))
    rows.append({"variant": name, "index": i, "seed": seed, "overrides": dict(over, **{"train.seed": seed}),
                 "status": "finished", "reason": "", "run_dir": run_dir, "reused": i == 0,
                 "summary": summary(start / 5.5, tps, acc)})
rows.append({"variant": "full", "index": 5, "seed": 1, "overrides": {"peft.type": "full", "peft.r": 8, "train.seed": 1},
             "status": "does_not_fit", "reason": "predicted 20.1 GiB > budget.gpu_memory 15 GiB",
             "run_dir": "runs/v5", "reused": False, "summary": None})
open(os.path.join(work, "grid", "results.jsonl"), "w").write("".join(json.dumps(r) + "\n" for r in rows))
os.makedirs(os.path.join(work, "single"))
open(os.path.join(work, "single", "metrics.jsonl"), "w").write(metrics(5.0, steps=12) + '{"step": 13, "loss": 0.')
PY
evil="<script>alert('x')</script> & co"
render() {  # html dom.html shot.png
  "$chromium" --headless --no-sandbox --disable-gpu --user-data-dir="$work/profile" --dump-dom "file://$1" \
    > "$2" 2>> "$work/chromium.log"
  "$chromium" --headless --no-sandbox --disable-gpu --user-data-dir="$work/profile" --hide-scrollbars \
    --window-size=1000,2600 --screenshot="$3" "file://$1" >> "$work/chromium.log" 2>&1
  [ -s "$2" ] && [ -s "$3" ] || { echo "chromium wrote no DOM or screenshot:"; tail -20 "$work/chromium.log"; exit 1; }
}

"$loft" report "$work/grid"
render "$work/grid/report.html" "$work/grid.dom.html" "$work/grid.png"
python3 "$here/check_report_dom.py" --dom "$work/grid.dom.html" --png "$work/grid.png" \
  --chart chart-train-loss --chart chart-val-loss --chart chart-throughput --chart chart-gpu-memory \
  --chart chart-host-memory --chart chart-memory-breakdown --chart chart-accuracy \
  --variant lora-r8 --variant dora-r8 --variant "$evil" --variant full \
  --without-curve full --key peft.type --key peft.r --bands 2
# The markers and statuses a reader needs: the reused run, the variant that did not fit, the overlap marker.
grep -q 'does_not_fit: predicted 20.1 GiB' "$work/grid.dom.html"
grep -q 'finished (reused)' "$work/grid.dom.html"
grep -q 'class="marker"' "$work/grid.dom.html"

# One run, no summary.json, its metrics.jsonl still being written: a report all the same (no accuracy: no chart).
"$loft" report "$work/single" --out "$work/single.html"
render "$work/single.html" "$work/single.dom.html" "$work/single.png"
python3 "$here/check_report_dom.py" --dom "$work/single.dom.html" --png "$work/single.png" \
  --chart chart-train-loss --chart chart-val-loss --chart chart-throughput --chart chart-host-memory \
  --chart chart-gpu-memory --no-chart chart-accuracy --no-chart chart-memory-breakdown --variant single --bands 0
echo "report.chromium_dom: ok"
