#!/usr/bin/env python3
"""Writes framework/src/tokenizer/hf_normalization_table.inc: the code points that HF tokenizers' normalisers treat as
plain starters (canonical combining class 0, no decomposition, in no composition) while utf8proc gives them
normalisation behaviour.

HF tokenizers normalises with the Rust crate unicode-normalization-alignments, whose Unicode tables predate the marks
and letters added in later Unicode versions; utf8proc (the library loft calls) knows them. On text containing such a
code point the two disagree (e.g. NFC("x\\u0301\\u0899"): utf8proc puts U+0899, class 220 since Unicode 14, before
U+0301; HF leaves it). A code point the reference treats as a plain starter splits normalisation: nothing reorders
across it and nothing composes with it, so loft normalises the text between such code points with utf8proc and keeps
them in place, which reproduces HF exactly (tests/tokenizer/normalization_parity_test.cpp checks every code point).

Both libraries are asked the same questions, by behaviour only, for every code point X (batched, one probe a line):
  decomposes     NFD(X) != X (NFKD for the compatibility table)
  combines       NFD(X + U+0334) or NFD("x" + U+0345 + X) reorders, i.e. X has a non-zero combining class
  composes       X occurs in the canonical decomposition of some code point (only those take part in compositions)
X is listed when HF answers no to all three and utf8proc answers yes to one.

Usage: make_hf_normalization_table.py [--out PATH]   (needs the tokenizers package and libutf8proc.so)
"""
import argparse
import ctypes
import ctypes.util
import sys
from pathlib import Path

SEPARATOR = "\n"
CODE_POINTS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and chr(c) != SEPARATOR]


class Utf8proc:
    def __init__(self):
        name = ctypes.util.find_library("utf8proc") or "libutf8proc.so"
        self.lib = ctypes.CDLL(name)
        self.lib.utf8proc_version.restype = ctypes.c_char_p
        self.lib.utf8proc_unicode_version.restype = ctypes.c_char_p
        self.lib.utf8proc_map.restype = ctypes.c_ssize_t
        self.lib.utf8proc_map.argtypes = [ctypes.c_char_p, ctypes.c_ssize_t, ctypes.POINTER(ctypes.c_void_p),
                                          ctypes.c_int]
        self.libc = ctypes.CDLL(None)
        self.libc.free.argtypes = [ctypes.c_void_p]
        self.version = self.lib.utf8proc_version().decode()
        self.unicode = self.lib.utf8proc_unicode_version().decode()

    def normalize(self, text, form):
        # The options loft's normalize_utf8 passes: STABLE plus COMPOSE / DECOMPOSE, and COMPAT for NFK*.
        stable, compat, compose, decompose = 1 << 1, 1 << 2, 1 << 3, 1 << 4
        options = stable | (compose if form in ("NFC", "NFKC") else decompose) | (compat if "K" in form else 0)
        data = text.encode("utf-8")
        out = ctypes.c_void_p()
        n = self.lib.utf8proc_map(data, len(data), ctypes.byref(out), options)
        if n < 0:
            raise RuntimeError("utf8proc_map failed: %d" % n)
        result = ctypes.string_at(out.value, n).decode("utf-8")
        self.libc.free(out)
        return result


class Hf:
    def __init__(self):
        import tokenizers
        from tokenizers import normalizers
        self.version = tokenizers.__version__
        self.forms = {"NFC": normalizers.NFC(), "NFD": normalizers.NFD(), "NFKC": normalizers.NFKC(),
                      "NFKD": normalizers.NFKD()}

    def normalize(self, text, form):
        return self.forms[form].normalize_str(text)


def batch(lib, form, texts):
    out = lib.normalize(SEPARATOR.join(texts), form).split(SEPARATOR)
    assert len(out) == len(texts), "a normaliser added or removed a line separator"
    return out


def active(lib, decompose_form):
    """Code points with normalisation behaviour under `lib` (canonical: NFD, compatibility: NFKD)."""
    singles = [chr(c) for c in CODE_POINTS]
    decomposed = batch(lib, decompose_form, singles)
    result = {c for c, x, d in zip(CODE_POINTS, singles, decomposed) if d != x}
    # Compositions come from canonical decompositions only, in both families.
    canonical = decomposed if decompose_form == "NFD" else batch(lib, "NFD", singles)
    for c, d in zip(CODE_POINTS, canonical):
        if d != chr(c):
            result.update(ord(ch) for ch in d)
    for pattern in ("{}\u0334", "x\u0345{}"):
        texts = [pattern.format(chr(c)) for c in CODE_POINTS]
        result.update(c for c, t, d in zip(CODE_POINTS, texts, batch(lib, "NFD", texts)) if d != t)
    return result


def ranges(code_points):
    out = []
    for c in sorted(code_points):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def emit(name, code_points, comment):
    lines = ["// %s (%d code points)" % (comment, len(code_points)),
             "constexpr CodePointRange %s[] = {" % name]
    row = []
    for first, last in ranges(code_points):
        row.append("{0x%04X, 0x%04X}," % (first, last))
        if len(row) == 4:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines.append("};")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parents[2] / "framework/src/tokenizer/hf_normalization_table.inc"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    hf, up = Hf(), Utf8proc()
    tables = {}
    for family, decompose_form in (("canonical", "NFD"), ("compatibility", "NFKD")):
        hf_active, up_active = active(hf, decompose_form), active(up, decompose_form)
        only_hf = hf_active - up_active
        if only_hf:
            sys.exit("HF gives normalisation behaviour to code points utf8proc does not (%s): a table of starters "
                     "cannot express that" % " ".join("U+%04X" % c for c in sorted(only_hf)[:20]))
        tables[family] = up_active - hf_active
        print("%s: %d code points" % (family, len(tables[family])))
    if min(tables["compatibility"]) < min(tables["canonical"]):
        sys.exit("hf_normalizes_as_plain_starter (text_utf8.cpp) returns early below the canonical table's first code "
                 "point; the compatibility table now starts lower: adjust that fast path")
    header = (
        "// Generated by tests/tokenizer/make_hf_normalization_table.py; do not edit. Reference: HF tokenizers %s;\n"
        "// utf8proc %s (Unicode %s). Code points HF tokenizers' normalisers treat as plain starters (class 0, no\n"
        "// decomposition, no composition) that utf8proc normalises: loft splits normalisation at them.\n"
        % (hf.version, up.version, up.unicode))
    body = [
        header,
        emit("kHfStartersCanonical", tables["canonical"], "NFC and NFD"),
        "",
        emit("kHfStartersCompatibility", tables["compatibility"], "NFKC and NFKD"),
        "",
    ]
    args.out.write_text("\n".join(body))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
