#!/usr/bin/env bash
# Makes the Python wheels in .deps/wheels (see scripts/fetch_device_debs.sh) importable on the GPU machine, which has
# no internet and a system Python: installed with pip --target (unpacked as zip files where pip is missing) into
# /tmp/loft-pydeps, never into the system. Prints that folder on stdout, notes on stderr; nothing to do prints nothing.
# Usage: pydeps=$(bash scripts/device_wheels.sh) && export PYTHONPATH="$pydeps${PYTHONPATH:+:$PYTHONPATH}"
set -euo pipefail
cd "$(dirname "$0")/.."
target=/tmp/loft-pydeps
python=${LOFT_DEVICE_PYTHON:-$(command -v python3)}
shopt -s nullglob
wheels=(.deps/wheels/*.whl)
[ ${#wheels[@]} -gt 0 ] || { echo "device_wheels: no wheels in .deps/wheels (run scripts/fetch_device_debs.sh where PyPI is reachable)" >&2; exit 0; }
mkdir -p "$target"
for w in "${wheels[@]}"; do
  stamp="$target/.installed-$(basename "$w")"
  [ -f "$stamp" ] && continue
  if "$python" -m pip --version >/dev/null 2>&1; then
    PIP_ROOT_USER_ACTION=ignore "$python" -m pip install -q --no-index --no-deps --upgrade --target "$target" "$w" >&2
  else
    "$python" -m zipfile -e "$w" "$target"
  fi
  touch "$stamp"
  echo "device_wheels: $(basename "$w") -> $target" >&2
done
echo "$target"
