#!/usr/bin/env bash
# bitsandbytes for the QLoRA measurement (recipes/qlora.yml: NF4 base, paged 8-bit AdamW) on the GPU machine.
# The PyPI wheel (43 MB) holds one native library per CUDA/ROCm/XPU version; this keeps only the CUDA 13.x
# and CPU libraries (the GPU machine's torch is built for CUDA 13.0) and rewrites the wheel's RECORD to match:
# .whl/bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl (7 MB).  Installed beside the other wheels, it shadows bench/stubs/bitsandbytes.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-python3 -m pip}
VERSION=0.50.2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_24_x86_64 -d "$tmp" "bitsandbytes==$VERSION"
mkdir -p .whl
python3 - "$tmp"/bitsandbytes-$VERSION-*.whl .whl <<'PY'
import re, sys, zipfile
from pathlib import Path

src, dest = Path(sys.argv[1]), Path(sys.argv[2]) / Path(sys.argv[1]).name
keep_lib = re.compile(r"libbitsandbytes_(cuda13\d|cpu)\.so$")
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
    dropped = {n for n in zin.namelist() if n.endswith(".so") and not keep_lib.search(n)}
    for info in zin.infolist():
        if info.filename in dropped:
            continue
        data = zin.read(info.filename)
        if info.filename.endswith(".dist-info/RECORD"):
            lines = [ln for ln in data.decode().splitlines() if ln.split(",")[0] not in dropped]
            data = ("\n".join(lines) + "\n").encode()
        zout.writestr(info, data)
print(f"{dest}: {dest.stat().st_size / 1e6:.1f} MB, dropped {len(dropped)} native libraries")
PY
