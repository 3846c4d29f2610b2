#!/usr/bin/env python3
"""HF tokenizers' normalisation and encoding of the probe texts normalization_parity_test.cpp writes.

Usage: hf_normalization_reference.py OUT_DIR INPUT
INPUT: first line K, then one probe text a line ("\\n" never occurs inside a probe, and no normaliser produces it).
Writes into OUT_DIR:
  NFC.tsv NFD.tsv NFKC.tsv NFKD.tsv   "index<TAB>normalised" for every probe the form changes (the others stay as they are)
  encode.txt                           the ids of each of the first K probes, space-separated, one probe a line, from
                                       models/demo/tokenizer.json (Qwen2's pipeline: NFC normalizer) with
                                       add_special_tokens=False, as loft::Tokenizer::encode is compared with
  reference.json                       versions and counts (written last: its presence marks a complete run)
"""
import json
import os
import sys
from pathlib import Path

SEPARATOR = "\n"


def main():
    out, source = Path(sys.argv[1]), Path(sys.argv[2])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import tokenizers
    from tokenizers import Tokenizer, normalizers

    data = source.read_bytes().decode("utf-8")
    head, _, body = data.partition(SEPARATOR)
    n_encode = int(head)
    probes = body.split(SEPARATOR)
    out.mkdir(parents=True, exist_ok=True)
    changed = {}
    for name, normalizer in (("NFC", normalizers.NFC()), ("NFD", normalizers.NFD()), ("NFKC", normalizers.NFKC()),
                             ("NFKD", normalizers.NFKD())):
        result = normalizer.normalize_str(body).split(SEPARATOR)
        if len(result) != len(probes):
            sys.exit("%s changed the number of lines (%d -> %d)" % (name, len(probes), len(result)))
        lines = ["%d\t%s\n" % (i, r) for i, (p, r) in enumerate(zip(probes, result)) if r != p]
        (out / ("%s.tsv" % name)).write_bytes("".join(lines).encode("utf-8"))
        changed[name] = len(lines)

    tokenizer_json = Path(__file__).resolve().parents[2] / "models" / "demo" / "tokenizer.json"
    tok = Tokenizer.from_file(str(tokenizer_json))
    encodings = tok.encode_batch(probes[:n_encode], add_special_tokens=False)
    (out / "encode.txt").write_text("".join(" ".join(map(str, e.ids)) + "\n" for e in encodings), "utf-8")

    meta = {"tokenizers": tokenizers.__version__, "probes": len(probes), "encoded": n_encode, "changed": changed,
            "tokenizer_json": str(tokenizer_json), "normalizer": json.loads(tok.to_str()).get("normalizer")}
    (out / "reference.json").write_text(json.dumps(meta, indent=2), "utf-8")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
