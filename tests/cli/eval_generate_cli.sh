#!/usr/bin/env bash
# `loft eval --run` writes eval.jsonl (every problem: prompt, generation, extracted answer, reference, verdict) beside
# an unchanged eval.json; `loft generate` prints the reply to one chat message, the same text eval generated for
# that problem, with or without --run; bad input is exit 2 with one line.
set -uo pipefail
loft=$1 recipes=$2 work=$3 python=$4
rm -rf "$work"; mkdir -p "$work"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
demo=(train.max_steps=3 train.log_every=1 output.dir="$work" output.name=demo dataset.seed=7)
"$loft" run "$recipes/demo.toml" "${demo[@]}" >"$work/run.log" 2>&1 || { cat "$work/run.log"; echo "FAIL: training"; exit 1; }
run="$work/demo"

# 1. eval.jsonl: one record per problem, in order, consistent with eval.json (whose keys stay the summary's).
"$loft" eval "$recipes/demo.toml" dataset.seed=7 --run "$run" --limit 3 --batch-size 2 --max-new-tokens 12 \
  >"$work/eval.txt" 2>&1 || fail "eval exited $?"
grep -q "eval.jsonl" "$work/eval.txt" || fail "eval does not say it wrote eval.jsonl"
"$loft" data "$recipes/demo.toml" dataset.seed=7 --limit 3 >"$work/data.jsonl" 2>/dev/null || fail "data exited $?"
"$python" - "$run/eval.jsonl" "$run/eval.json" "$work/data.jsonl" "$work" <<'PY' || fail "eval.jsonl / eval.json content"
import json, sys
records = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
summary = json.load(open(sys.argv[2]))
samples = [json.loads(line) for line in open(sys.argv[3], encoding="utf-8")]
assert len(records) == 3, records
assert set(summary) == {"total", "correct", "accuracy", "by_level", "by_type"}, summary
assert summary["total"] == 3 and summary["correct"] == sum(r["correct"] for r in records), (summary, records)
for i, (r, s) in enumerate(zip(records, samples)):
    assert set(r) == {"index", "level", "type", "prompt", "generation", "predicted", "reference", "correct"}, r
    assert r["index"] == i and isinstance(r["correct"], bool) and isinstance(r["generation"], str), r
    assert r["predicted"] is None or isinstance(r["predicted"], str), r
    user = [m["content"] for m in s["messages"] if m["role"] == "user"][-1]
    assert user in r["prompt"], (user, r["prompt"])             # the templated prompt holds the problem
    assert r["reference"] == s["answer"] if "answer" in s else r["reference"] in s["messages"][-1]["content"], (r, s)
    assert r["level"] == s.get("level", "(none)") and r["type"] == s.get("type", "(none)"), (r, s)
    if r["predicted"] is None:
        assert not r["correct"] and "\\boxed{" not in r["generation"], r
for i, (r, s) in enumerate(zip(records, samples)):
    open(f"{sys.argv[4]}/problem{i}.txt", "w", encoding="utf-8").write([m["content"] for m in s["messages"] if m["role"] == "user"][-1])
    open(f"{sys.argv[4]}/generation{i}.txt", "w", encoding="utf-8").write(r["generation"])
print(f"eval.jsonl: {len(records)} records, {summary['correct']} correct")
PY

# 2. generate: the run's model answers each problem exactly as eval did (greedy, same chat template, same budget).
for i in 0 1 2; do
  problem=$(cat "$work/problem$i.txt")
  "$loft" generate "$recipes/demo.toml" dataset.seed=7 --run "$run" --prompt "$problem" --max-new-tokens 12 \
    >"$work/generate.out" 2>"$work/generate.err" || fail "generate exited $?"
  "$python" - "$work/generate.out" "$work/generation$i.txt" <<'PY' || fail "generate differs from eval's generation $i"
import sys
printed = open(sys.argv[1], encoding="utf-8").read()
expected = open(sys.argv[2], encoding="utf-8").read()
assert printed == expected + "\n", (printed, expected)
PY
done
grep -q "generating with the tensors trained in .*step-000003" "$work/generate.err" || fail "generate --run: no checkpoint line"
# The base model (no --run) also answers, on stdout only.
"$loft" generate "$recipes/demo.toml" --prompt "What is 2 + 3?" --max-new-tokens 4 >"$work/base.out" 2>"$work/base.err" \
  || fail "generate without --run exited $?"
[ "$(wc -l <"$work/base.out")" -ge 1 ] || fail "generate printed nothing"
"$loft" generate --help | grep -q "usage: loft generate" || fail "generate --help"

# 3. Bad input: exit 2, one line saying what.
expect2() {  # expect2 <regex> -- command...
  local pattern=$1; shift 2
  "$@" >"$work/bad.out" 2>"$work/bad.err"; local rc=$?
  [ $rc = 2 ] || fail "exit $rc, not 2: $*"
  grep -Eq -- "$pattern" "$work/bad.err" || { fail "stderr does not match '$pattern': $*"; cat "$work/bad.err"; }
  ! grep -q "Exception raised from\|frame #" "$work/bad.err" || fail "a backtrace: $*"
}
expect2 "--prompt TEXT is required" -- "$loft" generate "$recipes/demo.toml"
expect2 "--prompt is empty" -- "$loft" generate "$recipes/demo.toml" --prompt ""
expect2 "--max-new-tokens must be >= 1" -- "$loft" generate "$recipes/demo.toml" --prompt hi --max-new-tokens 0
expect2 "name exactly one recipe" -- "$loft" generate --prompt hi
expect2 "--run .*nowhere" -- "$loft" generate "$recipes/demo.toml" --prompt hi --run "$work/nowhere"
expect2 "unknown key" -- "$loft" generate "$recipes/demo.toml" train.bacth_size=3 --prompt hi

[ $failures = 0 ] && echo "eval.jsonl and loft generate: ok"
exit $((failures > 0))
