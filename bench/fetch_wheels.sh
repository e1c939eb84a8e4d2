#!/usr/bin/env bash
# Download exactly the wheels in bench/wheels.txt into .whl/ (Python 3.12, manylinux x86_64, --no-deps),
# building the sdist-only ones here with `pip wheel --no-deps`.  Reproducible: pinned versions, no
# resolver.  Then carry `.whl` to the device and install with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD/bench/stubs:$PWD
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-python3 -m pip}
DEST=.whl
mkdir -p "$DEST"
plat=()
for p in manylinux_2_39_x86_64 manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 \
  manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64 manylinux1_x86_64; do plat+=(--platform "$p"); done
binary=() sdist=()
while read -r spec kind _; do
  [[ -z "$spec" || "$spec" == \#* ]] && continue
  if [[ "${kind:-}" == sdist ]]; then sdist+=("$spec"); else binary+=("$spec"); fi
done < bench/wheels.txt
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
  -d "$DEST" "${binary[@]}"
for spec in "${sdist[@]}"; do
  name=${spec%%==*}
  ls "$DEST" | grep -qi "^${name//-/_}-${spec##*==}-" && continue
  DS_BUILD_OPS=0 $PIP wheel -q --no-deps -w "$DEST" "$spec"
done
du -sh "$DEST"
ls "$DEST" | wc -l
