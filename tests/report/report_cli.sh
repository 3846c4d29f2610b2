#!/usr/bin/env bash
# `loft report` on bad input: a missing folder, a folder that is neither a grid nor a run, a run that logged
# nothing, a damaged metrics.jsonl or results.jsonl, an --out folder that does not exist, no path. Each: exit 2 and one
# line naming the file (and line). A torn *last* metrics line is a run being written: the report is made.
set -uo pipefail
loft=$1 work=$2
rm -rf "$work"; mkdir -p "$work"
fail=0
expect_bad() {  # message-pattern args...
  local pattern=$1; shift
  "$loft" report "$@" > "$work/out.txt" 2> "$work/err.txt"; local rc=$?
  local lines; lines=$(wc -l < "$work/err.txt")
  if [ "$rc" != 2 ] || [ "$lines" != 1 ] || ! grep -q -- "$pattern" "$work/err.txt"; then
    echo "FAIL: loft report $* -> exit $rc, $lines lines (want 2, 1 line matching '$pattern'):"; cat "$work/err.txt"
    fail=1
  else
    echo "ok: $(cat "$work/err.txt")"
  fi
}
good='{"step":1,"loss":2.5,"tokens_per_s":100,"peak_host_bytes":1000}'
mkdir -p "$work/empty" "$work/fresh" "$work/torn_middle" "$work/torn_last" "$work/grid"
: > "$work/fresh/metrics.jsonl"
printf '%s\n{"step":2,"lo\n%s\n' "$good" "$good" > "$work/torn_middle/metrics.jsonl"
printf '%s\n{"step":2,"loss":2.1' "$good" > "$work/torn_last/metrics.jsonl"
printf '{"variant":"a","status":"finished"}\nnot json\n' > "$work/grid/results.jsonl"

expect_bad "nowhere: no such folder" "$work/nowhere"
expect_bad "neither results.jsonl" "$work/empty"
expect_bad "no training step logged yet" "$work/fresh"
expect_bad "torn_middle/metrics.jsonl:2: not a JSON record" "$work/torn_middle"
expect_bad "grid/results.jsonl:2: not a JSON object" "$work/grid"
expect_bad "no such folder for the report" "$work/torn_last" --out "$work/absent/r.html"
# Usage errors: the problem on the first line, then the usage line (as every loft command).
expect_usage() {  # message-pattern args...
  local pattern=$1; shift
  "$loft" report "$@" > "$work/out.txt" 2> "$work/err.txt"; local rc=$?
  if [ "$rc" != 2 ] || ! head -1 "$work/err.txt" | grep -q -- "$pattern"; then
    echo "FAIL: loft report $* -> exit $rc (want 2, first line matching '$pattern'):"; cat "$work/err.txt"; fail=1
  else
    echo "ok: $(head -1 "$work/err.txt")"
  fi
}
expect_usage "name at least one"
expect_usage "unrecognised option\|unrecognized option" "$work/torn_last" --frobnicate
# Several paths: the first bad one is named, nothing is written.
expect_bad "nowhere: no such folder" "$work/torn_last" "$work/nowhere"
[ ! -e "$work/torn_last/report.html" ] || { echo "FAIL: a report was written despite the error"; fail=1; }

"$loft" report "$work/torn_last" > "$work/out.txt" 2>&1 || { echo "FAIL: torn last line refused:"; cat "$work/out.txt"; fail=1; }
grep -q "wrote $work/torn_last/report.html" "$work/out.txt" || { echo "FAIL: no 'wrote' line"; cat "$work/out.txt"; fail=1; }
grep -q 'id="chart-train-loss"' "$work/torn_last/report.html" || { echo "FAIL: no loss chart"; fail=1; }
exit $fail
