#!/usr/bin/env bash
# Downloads (here, where Debian's registry is reachable) the .debs that scripts/device_build.sh unpacks on the GPU
# machine, into .deps/debs (ignored by git, carried by the device tool).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps/debs && cd .deps/debs
apt-get download libtomlplusplus-dev libtomlplusplus3 libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 \
  libpcre2-posix3 libutf8proc-dev libutf8proc2 libboost-program-options1.81-dev libboost-program-options1.81.0 \
  libboost1.81-dev
