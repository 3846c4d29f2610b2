#!/usr/bin/env python3
"""Writes models/demo/tokenizer.json (+ tokenizer_config.json): a small byte-level BPE with Qwen2's exact
normaliser, pre-tokeniser and decoder and DeepSeek-R1-Distill-Qwen's added tokens, trained on the synthetic MATH-style
problems that dataset/synthetic generates. Run once by a developer; the result is committed (Python is not in loft's
run path):  build/bin/loft data recipes/demo.toml --limit 0 | /opt/loft/venv/bin/python tools/make_demo_tokenizer.py
"""
import json
import pathlib
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                 r"|\s+(?!\S)|\s+")
# DeepSeek-R1-Distill-Qwen's added tokens, in its order: (content, special).
ADDED = [("<｜end▁of▁sentence｜>", True), ("<｜User｜>", False), ("<｜Assistant｜>", False),
         ("<｜begin▁of▁sentence｜>", True), ("<|EOT|>", True), ("<think>", False), ("</think>", False)]
VOCAB_SIZE = 1024  # an upper bound: the synthetic corpus saturates at 564 merges+bytes


def main() -> None:
    texts = []
    for line in sys.stdin:
        record = json.loads(line)
        texts.extend(m["content"] for m in record["messages"])
    if not texts:
        sys.exit("no samples on stdin: pipe `loft data recipes/demo.toml --limit 0` into this script")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in ADDED])
    out = pathlib.Path(__file__).resolve().parent.parent / "models" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config = {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>",
              "pad_token": "<｜end▁of▁sentence｜>", "add_bos_token": True, "add_eos_token": False,
              "model_max_length": 2048, "tokenizer_class": "LlamaTokenizerFast"}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}/tokenizer.json: {tok.get_vocab_size()} tokens from {len(texts)} texts")


if __name__ == "__main__":
    main()
