#!/usr/bin/env bash
# Downloads (here, where Debian's registry and PyPI are reachable) the .debs that scripts/device_build.sh unpacks on
# the GPU machine, into .deps/debs, and the Python wheels it lacks, into .deps/wheels (both ignored by git, carried by
# the device tool; scripts/device_wheels.sh installs the wheels there).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps/debs
(cd .deps/debs && apt-get download libtomlplusplus-dev libtomlplusplus3 libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 \
  libpcre2-posix3 libutf8proc-dev libutf8proc2 libxxhash-dev libxxhash0 libboost-program-options1.81-dev libboost-program-options1.81.0 \
  libboost1.81-dev )

# bitsandbytes for bench/e2e/quant_vs_bnb.sh's peer: a py3-none manylinux wheel (one file for any CPython >= 3.10,
# the GPU machine's Ubuntu 24.04 python3 included) carrying libbitsandbytes_cuda130.so for torch 2.11+cu130. Its
# dependencies (torch, numpy, packaging) are already there.
python=${LOFT_VENV:-/opt/loft/venv}/bin/python
[ -x "$python" ] || python=$(command -v python3)
mkdir -p .deps/wheels
[ -f .deps/wheels/bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl ] ||
"$python" -m pip download -q bitsandbytes==0.50.2 --no-deps --only-binary=:all: --platform manylinux_2_24_x86_64 \
  --python-version 3.12 --implementation cp -d .deps/wheels
# The wheel carries native libraries for every CUDA, ROCm and XPU release (43 MB); the device tool carries at most
# 64 MiB, so keep only the CPU and CUDA 13 ones (and drop the others from RECORD, so the wheel stays consistent).
"$python" - .deps/wheels/bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl <<'PY'
import os, re, sys, zipfile
path = sys.argv[1]
keep = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")
drop = lambda name: "libbitsandbytes_" in name and not keep.search(name)
with zipfile.ZipFile(path) as src:
    names = src.namelist()
    if not any(drop(n) for n in names):
        sys.exit(0)
    with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if drop(info.filename):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = "".join(l for l in data.decode().splitlines(True) if not drop(l.split(",")[0])).encode()
            dst.writestr(info, data)
os.replace(path + ".tmp", path)
print(f"fetch_device_debs: {os.path.basename(path)} trimmed to {os.path.getsize(path) / 1e6:.1f} MB (CPU + CUDA 13 libraries)")
PY

# DeepSpeed for bench/e2e/zero3_vs_resident.sh's ZeRO-3 peer (../shared/peers/ds_zero3_lora.py): an sdist, built here
# into a py3-none wheel with CUDA recorded as its accelerator and no ops prebuilt (DeepSpeedCPUAdam JIT-builds on the GPU
# machine; the bench uses --optimizer torch), plus its dependencies the GPU machine's Python 3.12 may lack.
if ! ls .deps/wheels/deepspeed-*.whl >/dev/null 2>&1; then
  ds=$(mktemp -d)
  "$python" -m pip download -q --no-deps --no-binary=:all: deepspeed==0.19.8 -d "$ds"
  "$python" -m pip install -q wheel
  DS_ACCELERATOR=cuda DS_BUILD_OPS=0 "$python" -m pip wheel -q --no-deps --no-build-isolation "$ds"/deepspeed-*.tar.gz -w .deps/wheels
  rm -rf "$ds"
fi
"$python" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d .deps/wheels hjson py-cpuinfo msgpack einops psutil pydantic pydantic_core annotated_types typing_inspection \
  typing_extensions ninja
