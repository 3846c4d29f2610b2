#!/usr/bin/env bash
# What including <torch/torch.h> costs a translation unit: compiles framework/src/train/trainer.cpp and
# chunked_loss.cpp as they are (specific ATen/torch headers) and with <torch/torch.h> added in front, 3 times each, with
# the build's own compile line (no ccache), and prints the median user+sys CPU seconds of each.
# Usage (after a configured build in build/): bash bench/build_time/torch_header_cost.sh [build]
set -euo pipefail
build=${1:-build}
tmp=$(mktemp -d)
python3 - "$build" "$tmp" <<'PY'
import json, os, re, subprocess, sys, resource, statistics
build, tmp = sys.argv[1], sys.argv[2]
commands = json.load(open(os.path.join(build, "compile_commands.json")))
def cpu_seconds(cmd, cwd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=cwd, shell=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
for suffix in ("framework/src/train/trainer.cpp", "framework/src/train/chunked_loss.cpp"):
    entry = next(e for e in commands if e["file"].endswith(suffix))
    source = open(entry["file"]).read()
    variant = os.path.join(tmp, "with_torch_h_" + os.path.basename(suffix))
    open(variant, "w").write("#include <torch/torch.h>\n" + source)
    results = {}
    for label, path in (("as built", entry["file"]), ("+ <torch/torch.h>", variant)):
        cmd = re.sub(r" -o \S+", " -o " + os.path.join(tmp, "out.o"), entry["command"]).replace(entry["file"], path)
        times = [cpu_seconds(cmd, entry["directory"]) for _ in range(3)]
        results[label] = statistics.median(times)
        print(f"{suffix}: {label}: median {results[label]:.1f} s CPU (runs: {', '.join(f'{t:.1f}' for t in times)})", flush=True)
    print(f"{suffix}: <torch/torch.h> costs {results['+ <torch/torch.h>'] - results['as built']:.1f} s CPU "
          f"({results['+ <torch/torch.h>'] / results['as built']:.2f}x)", flush=True)
PY
rm -rf "$tmp"
