#!/usr/bin/env bash
# A report of real runs: the demo recipe trained twice with LoRA (r 4 and 8, a few steps), then `loft report` on the
# two run folders. The page compares them (peft.r is the one differing key), draws both loss curves, the throughput,
# host memory measured beside planned (planned from each run's recipe.toml) and the breakdown by category; where
# Chromium is installed its DOM is checked as in report.chromium_dom.
set -euo pipefail
loft=$1 recipes=$2 here=$3 work=$4
rm -rf "$work"; mkdir -p "$work"
for r in 4 8; do
  "$loft" run "$recipes/demo.toml" peft.type=lora peft.r=$r train.max_steps=6 train.log_every=1 output.dir="$work" \
    output.name=r$r > "$work/r$r.log" 2>&1 || { cat "$work/r$r.log"; exit 1; }
done
"$loft" report "$work/r4" "$work/r8" --out "$work/report.html" | tee "$work/report.txt"
grep -q "wrote $work/report.html" "$work/report.txt"
html="$work/report.html"
for id in chart-train-loss chart-throughput chart-host-memory chart-memory-breakdown results-table; do
  grep -q "id=\"$id\"" "$html" || { echo "missing #$id"; exit 1; }
done
# The table's columns: the differing key only (not lora's other keys, not the seed), then the measured metrics.
grep -q '<th scope="col" class="key">peft.r</th>' "$html"
[ "$(grep -c 'class="key">peft.type<' "$html")" = 0 ] || { echo "peft.type does not differ"; exit 1; }
[ "$(grep -c '<path class="curve"' "$html")" = 2 ] || { echo "expected two loss curves"; exit 1; }
grep -q 'data-series="planned"' "$html" || { echo "no planned memory (loft plan of the runs' recipes)"; exit 1; }
chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$chromium" ]; then
  "$chromium" --headless --no-sandbox --disable-gpu --user-data-dir="$work/profile" --dump-dom "file://$html" \
    > "$work/dom.html" 2> "$work/chromium.log"
  python3 "$here/check_report_dom.py" --dom "$work/dom.html" --chart chart-train-loss --chart chart-throughput \
    --chart chart-host-memory --chart chart-memory-breakdown --variant r4 --variant r8 --key peft.r --bands 0
else
  echo "chromium not installed: the DOM check is skipped (report.chromium_dom covers it where installed)"
fi
echo "recipe.report_demo_runs: ok"
