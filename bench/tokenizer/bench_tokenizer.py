#!/usr/bin/env python3
"""loft::Tokenizer vs HF tokenizers, single-threaded, on ~5 MB of MATH-style text. Validates before it times: the
C++ driver's token count and id checksum must equal HF's. Prints MB/s for both and the ratio."""
import os

os.environ["RAYON_NUM_THREADS"] = "1"          # before tokenizers is imported: one Rust thread
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "tokenizer"))
import make_goldens  # noqa: E402  (the corpus generator the parity tests use)


def fnv(ids_per_doc):
    h = 1469598103934665603
    for ids in ids_per_doc:
        for i in ids:
            h = ((h ^ (i & 0xFFFFFFFF)) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench-binary", required=True, type=Path, help="the compiled tokenizer_bench.cpp")
    p.add_argument("--tokenizer", required=True, type=Path, help="tokenizer.json (e.g. the qwen fixture)")
    p.add_argument("--mb", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work", type=Path, default=Path("/tmp/loft_tokenizer_bench"))
    p.add_argument("--text-files", type=Path, default=None,
                   help="instead of generated MATH-style text, use the *.py/*.txt/*.md files under this folder "
                        "(one document each) as a less repetitive corpus")
    args = p.parse_args()

    docs, size = [], 0
    if args.text_files:
        for f in sorted(args.text_files.rglob("*")):
            if size >= args.mb * 1e6:
                break
            if f.suffix in (".py", ".txt", ".md", ".rst") and f.is_file():
                doc = f.read_text("utf-8", errors="replace").replace("\x1e", " ")
                docs.append(doc)
                size += len(doc.encode("utf-8"))
    else:
        rng = random.Random(1234)
        while size < args.mb * 1e6:
            doc = make_goldens.math_problem(rng)
            docs.append(doc)
            size += len(doc.encode("utf-8"))
    args.work.mkdir(parents=True, exist_ok=True)
    corpus = args.work / "corpus.txt"
    corpus.write_bytes("\x1e".join(docs).encode("utf-8"))
    mb = corpus.stat().st_size / 1e6

    from tokenizers import Tokenizer
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(str(args.tokenizer))
    hf_load = time.perf_counter() - t0
    hf_best, hf_ids = 1e30, None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ids = [tok.encode(d, add_special_tokens=False).ids for d in docs]
        hf_best = min(hf_best, time.perf_counter() - t0)
        hf_ids = ids
    hf_tokens, hf_fnv = sum(len(i) for i in hf_ids), fnv(hf_ids)

    out = subprocess.run([str(args.bench_binary), str(args.tokenizer), str(corpus), str(args.repeats)],
                         check=True, capture_output=True, text=True).stdout
    loft = json.loads(out)
    if loft["tokens"] != hf_tokens or loft["fnv"] != hf_fnv:
        print(f"MISMATCH: loft {loft['tokens']} tokens fnv {loft['fnv']}, HF {hf_tokens} tokens fnv {hf_fnv}")
        return 1
    print(f"corpus: {len(docs)} docs, {mb:.2f} MB, {hf_tokens} tokens (ids identical: checksum {hf_fnv:#x})")
    print(f"HF tokenizers (1 thread, encode per doc): {mb / hf_best:7.2f} MB/s  ({hf_best:.3f} s, load {hf_load:.2f} s)")
    print(f"loft::Tokenizer (1 thread):               {mb / loft['encode_s']:7.2f} MB/s  "
          f"({loft['encode_s']:.3f} s, load {loft['load_s']:.2f} s)")
    print(f"ratio loft / HF: {hf_best / loft['encode_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
