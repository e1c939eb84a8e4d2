#!/usr/bin/env bash
# Evaluation benchmark of the hf-fast backend (shop_eval/hf_fast.py) on the GPU machine, run from the
# repository root (or from a copy of it) with the wheels of bench/wheels.txt and bench/_carry there
# (bench/README.md).  Stages, in the order given:
#   install  pip-install the wheels ($WHEELS, default .whl) into /tmp/site (--no-deps, --target)
#   check    versions + nvidia-smi
#   main     bench/eval_throughput.py: the tiny-model equivalence (hf vs hf-fast), the profile of one
#            generation batch, $SETTINGS on the mixed sample, the continuous-batching probe -> $OUT/eval_$TAG.json
# Logs and result JSONs go to $OUT.
#   bash bench/device_eval.sh install check main
set -uo pipefail
OUT=${OUT:-/tmp/eval_out}
WHEELS=${WHEELS:-.whl}
TAG=${TAG:-h200}
SETTINGS=${SETTINGS:-ours_stop,fast_stop,ours_nocudnn_stop}
MAIN_ARGS=${MAIN_ARGS:---profile --equiv-tiny --cb-probe}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=/tmp/site:$PWD/bench/stubs:$PWD
for stage in "$@"; do
  echo "=== $stage $(date -u +%T)"
  case $stage in
    install)
      $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
        2>&1 | grep -v "WARNING: Target directory" | tail -5 ;;
    check)
      nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv
      $PY -c "import torch, transformers, lm_eval, peft; print(torch.__version__, transformers.__version__, \
lm_eval.__version__ if hasattr(lm_eval, '__version__') else '?', peft.__version__, torch.cuda.get_device_name(0))" 2>&1 | tail -3 ;;
    main)
      # shellcheck disable=SC2086
      $PY bench/eval_throughput.py --shape "${SHAPE:-yi9b}" --per-type "${PER_TYPE:-100}" --settings "$SETTINGS" $MAIN_ARGS \
        --out "$OUT/eval_$TAG.json" > "$OUT/eval_$TAG.log" 2>&1
      echo "rc $?"
      grep -E '^\{"(setting|profile|equiv_tiny|cb_probe|equivalence)|eval_ratio|Error|error' "$OUT/eval_$TAG.log" | cut -c1-400 | tail -40 ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
echo "=== done $(date -u +%T)"
