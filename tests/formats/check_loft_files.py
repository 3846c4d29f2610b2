"""Python side of SafetensorsParity.PythonReadsLoftFiles: reads the files loft wrote into --dir with
safetensors.torch.load_file / transformers and checks them; exits non-zero with a message on the first difference.

spec.json lists each file's tensors (name, dtype, shape, salt); the values are regenerated with pattern(), the same
formula as pattern_tensor() in formats_test_support.h.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "U16": torch.uint16,
    "I32": torch.int32, "U32": torch.uint32, "I64": torch.int64, "U64": torch.uint64, "F16": torch.float16,
    "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64, "C64": torch.complex64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}


def pattern(dtype: torch.dtype, shape: list, salt: int) -> torch.Tensor:
    numel = 1
    for d in shape:
        numel *= d
    ints = (torch.arange(numel, dtype=torch.int64) * 37 + salt) % 251 - 125
    if dtype == torch.bool:
        out = ints > 0
    elif dtype.is_floating_point or dtype.is_complex:
        out = (ints.to(torch.float64) / 8.0).to(dtype)
    else:
        out = ints.to(dtype)
    return out.reshape(shape)


def raw(t: torch.Tensor) -> bytes:
    t = t.contiguous()
    return b"" if t.numel() == 0 else t.reshape(-1).view(torch.uint8).numpy().tobytes()


def fail(message: str) -> None:
    print("FAIL:", message)
    sys.exit(1)


def check_single_files(folder: str) -> None:
    with open(os.path.join(folder, "spec.json"), encoding="utf-8") as f:
        spec = json.load(f)
    identical = 0
    for entry in spec:
        path = os.path.join(folder, entry["file"])
        expected = {t["name"]: pattern(DTYPES[t["dtype"]], t["shape"], t["salt"]) for t in entry["tensors"]}
        loaded = load_file(path)
        if set(loaded) != set(expected):
            fail(f"{path}: names {sorted(loaded)} != {sorted(expected)}")
        for name, want in expected.items():
            got = loaded[name]
            if got.dtype != want.dtype or list(got.shape) != list(want.shape) or raw(got) != raw(want):
                fail(f"{path}: tensor {name!r} differs: {got.dtype} {list(got.shape)} vs {want.dtype} {list(want.shape)}")
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
        if metadata != entry["metadata"]:
            fail(f"{path}: metadata {metadata} != {entry['metadata']}")
        if len(entry["metadata"]) <= 1:  # several keys: the Rust crate orders them by hash
            with tempfile.TemporaryDirectory() as tmp:
                ref = os.path.join(tmp, "ref.safetensors")
                save_file(expected, ref, metadata=entry["metadata"] or None)
                with open(ref, "rb") as a, open(path, "rb") as b:
                    if a.read() != b.read():
                        fail(f"{path}: bytes differ from safetensors.torch.save_file's")
            identical += 1
    print(f"python read {len(spec)} loft files; {identical} byte-identical to save_file")


def check_sharded_qwen(folder: str, fixtures: str) -> None:
    from transformers import Qwen2ForCausalLM
    loft_dir = os.path.join(folder, "qwen")
    shutil.copy(os.path.join(fixtures, "qwen", "config.json"), loft_dir)
    ours = Qwen2ForCausalLM.from_pretrained(loft_dir).state_dict()
    reference = Qwen2ForCausalLM.from_pretrained(os.path.join(fixtures, "qwen"))
    theirs = reference.state_dict()
    if set(ours) != set(theirs):
        fail(f"{loft_dir}: state_dict names differ: {sorted(set(ours) ^ set(theirs))}")
    for name in theirs:
        if not torch.equal(ours[name], theirs[name]):
            fail(f"{loft_dir}: tensor {name!r} differs after from_pretrained")
    # The same split done the way save_pretrained does it (huggingface_hub's splitter over the state_dict in the
    # fixture model's order, save_file with {"format": "pt"}, the index as json.dumps(indent=2, sort_keys=True)):
    # identical bytes. (save_pretrained itself is not called on `reference`: for a model loaded by from_pretrained,
    # transformers 5 may hand the splitter a reordered state_dict.)
    from huggingface_hub import split_torch_state_dict_into_shards
    with open(os.path.join(fixtures, "reference.json"), encoding="utf-8") as f:
        order = [t["name"] for t in json.load(f)["qwen"]["tensors"]]
    state_dict = {name: theirs[name].contiguous() for name in order}
    split = split_torch_state_dict_into_shards(state_dict, max_shard_size=30_000)
    mine = sorted(f for f in os.listdir(loft_dir) if ".safetensors" in f)
    expected_files = sorted(list(split.filename_to_tensors) + (["model.safetensors.index.json"] if split.is_sharded else []))
    if mine != expected_files:
        fail(f"{loft_dir}: files {mine} != huggingface_hub's split {expected_files}")
    with tempfile.TemporaryDirectory() as tmp:
        for filename, names in split.filename_to_tensors.items():
            save_file({n: state_dict[n] for n in names}, os.path.join(tmp, filename), metadata={"format": "pt"})
        if split.is_sharded:
            index = {"metadata": {"total_parameters": reference.num_parameters(), **split.metadata},
                     "weight_map": split.tensor_to_filename}
            with open(os.path.join(tmp, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
                f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
        for name in expected_files:
            with open(os.path.join(tmp, name), "rb") as a, open(os.path.join(loft_dir, name), "rb") as b:
                if a.read() != b.read():
                    fail(f"{loft_dir}/{name}: bytes differ from the save_pretrained procedure's")
    print(f"transformers loaded loft's sharded Qwen2 ({len(mine)} files, byte-identical to the save_pretrained procedure)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    check_single_files(args.dir)
    check_sharded_qwen(args.dir, args.fixtures)


if __name__ == "__main__":
    main()
