#!/usr/bin/env bash
# Build loft on the lent GPU machine (H200, Ubuntu 24.04, torch 2.11 in its system Python) and run the test suite
# there. Packages that machine lacks travel as Debian .debs in .deps/debs (see scripts/fetch_device_debs.sh) and are
# unpacked under /tmp/loft-deps, never into /; Python wheels in .deps/wheels go to /tmp/loft-pydeps.
# Usage: bash scripts/device_build.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
deps=/tmp/loft-deps
mkdir -p "$deps"
for f in .deps/debs/*.deb; do dpkg -x "$f" "$deps"; done
lib="$deps/usr/lib/x86_64-linux-gnu"
export PKG_CONFIG_PATH="$lib/pkgconfig:$deps/usr/share/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$deps"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
prefix="$deps/usr"
boost_args=()
if ! ls /usr/lib/x86_64-linux-gnu/libboost_program_options.so >/dev/null 2>&1; then
  boost_args=(-DBoost_DIR="$lib/cmake/Boost-1.81.0" -DBoost_NO_SYSTEM_PATHS=ON)
fi
python=$(command -v python3)
# Python wheels bench/ peers need (bitsandbytes), into /tmp/loft-pydeps; the bench scripts put it on PYTHONPATH.
bash scripts/device_wheels.sh >/dev/null || echo "device_build: .deps/wheels not installed; bench peers that need them will be skipped" >&2
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOFT_PYTHON="$python" \
  -DCMAKE_PREFIX_PATH="$prefix;$("$python" -c 'import torch.utils;print(torch.utils.cmake_prefix_path)')" \
  -DTORCH_CUDA_ARCH_LIST="7.5;9.0" -DLOFT_USE_CCACHE=OFF -DLOFT_BUILD_BENCH=ON "${boost_args[@]}" >/tmp/loft-configure.log 2>&1 \
  || { tail -60 /tmp/loft-configure.log; exit 1; }
cmake --build build -j "$(nproc)" 2>&1 | tail -5
ctest --test-dir build --output-on-failure -j 8 "$@"
