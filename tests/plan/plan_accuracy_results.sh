#!/usr/bin/env bash
# Issue 11's planner target, asserted from the H200 bench's results file (bench/e2e/plan_accuracy.sh writes
# bench/results/plan_accuracy.json): at least 12 recipes, every offload part (zero3 params, activations, optimizer;
# checkpoint) and quantizer (none, int8, nf4) among them, each recipe's predicted peak GPU and host memory within
# max(5%, 128 MiB) of the measurement. Skipped, with the reason, until that file exists.
set -euo pipefail
results=$1 python=$2
if [ ! -f "$results" ]; then
  echo "SKIP: $results does not exist yet: run bash bench/e2e/plan_accuracy.sh on a GPU machine and commit its results"
  exit 77
fi
"$python" - "$results" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc["recipes"]
assert len(rows) >= 12, f"{len(rows)} recipes measured, the target needs 12"
text = " ".join(r["overrides"] for r in rows)
for needed in ('quantizer.type="int8"', 'quantizer.type="nf4"', 'offload.type="checkpoint"', 'offload.type="zero3"',
               "offload.params=false", "offload.activations=false", "offload.optimizer=true"):
    assert needed in text, f"no measured recipe has {needed}"
assert any(not any(k in r["overrides"] for k in ("quantizer.type", "offload.type")) for r in rows), "no bf16 resident recipe"
bad = []
for r in rows:
    assert "gpu" in r and "host" in r, f"{r['recipe']}: not measured on a GPU"
    for side in ("gpu", "host"):
        v = r[side]
        if abs(v["predicted_bytes"] - v["measured_bytes"]) > max(0.05 * v["measured_bytes"], 128 * 2**20):
            bad.append(f"{r['recipe']} {side}: predicted {v['predicted_bytes'] / 2**30:.2f} GiB, "
                       f"measured {v['measured_bytes'] / 2**30:.2f} GiB")
assert not bad, "outside max(5%, 128 MiB): " + "; ".join(bad)
print(f"{len(rows)} recipes: every predicted peak within max(5%, 128 MiB) of the H200 measurement ({doc['date']})")
PY
