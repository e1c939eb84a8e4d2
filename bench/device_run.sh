#!/usr/bin/env bash
# Run the benchmarks on the lent GPU machine (the `device` tool), from the repository root, with `.whl`
# and `bench/_carry` carried (bench/README.md).  Stages, in order given:
#   install  pip-install the carried wheels into /tmp/site (--no-deps, --target; never torch & co.)
#   check    import check + versions + nvidia-smi
#   probe    SDPA cost per call with new vs repeated sequence lengths, cuDNN backend on/off
#   smoke    8-layer Yi-shape training ($SMOKE_PATHS, default padded,fixed,ours)
#   evalsmoke  8-layer evaluation, 24 examples a task type
#   train    48-layer training: $PATHS (default padded,fixed,ours) + $LEVERS (comma list)
#   levers   48-layer axolotl variants only ($LEVERS)
#   eval     48-layer evaluation throughput (defaults vs ours)
# Logs and result JSONs go to $OUT (what comes back), results also to bench/results/ there.
#   bash bench/device_run.sh install check smoke
set -uo pipefail
OUT=${OUT:-/tmp/bench_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  AXOLOTL_DO_NOT_TRACK=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false DO_NOT_TRACK=1
export PYTHONPATH=/tmp/site:$PWD/bench/stubs:$PWD
TAG=${TAG:-h100}
for stage in "$@"; do
  echo "=== $stage $(date -u +%T)"
  case $stage in
    install)
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        2>&1 | grep -v "WARNING: Target directory" | tail -5 ;;
    check)
      nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv
      python3 - <<'EOF' 2>&1 | tail -15
import importlib, importlib.metadata as m
for mod in ["torch", "transformers", "peft", "accelerate", "triton", "datasets", "trl", "axolotl", "liger_kernel",
            "deepspeed", "lm_eval", "pydantic", "torchao"]:
    try:
        x = importlib.import_module(mod)
        print(mod, getattr(x, "__version__", "?"), (getattr(x, "__file__", "") or "")[:40])
    except Exception as exc:
        print("FAIL", mod, repr(exc)[:300])
import torch; print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0))
EOF
      ;;
    probe)
      python3 bench/sdpa_probe.py 2>&1 | tail -6 ;;
    smoke)
      python3 bench/train_throughput.py --shape yi9b --layers 8 --examples 2000 --steps 6 --warmup 2 \
        --paths "${SMOKE_PATHS:-padded,fixed,ours}" --ours-steps 12 --ours-warmup 3 --work /tmp/bt8 \
        --logdir "$OUT" --out "$OUT/train_smoke8.json" 2>&1 | grep -v Warning | tail -12 ;;
    evalsmoke)
      python3 bench/eval_throughput.py --shape yi9b --layers 8 --per-type 24 --default-per-type 3 \
        --out "$OUT/eval_smoke8.json" > "$OUT/eval_smoke8.log" 2>&1
      grep -E '^\{"setting|eval_ratio|Error|error' "$OUT/eval_smoke8.log" | cut -c1-220 | tail -14 ;;
    train)
      python3 bench/train_throughput.py --shape yi9b --paths "${PATHS:-padded,fixed,ours}" --levers "${LEVERS:-}" \
        --work /tmp/bt48 --logdir "$OUT" --out "$OUT/train_$TAG.json" 2>&1 | grep -v Warning | tail -14 ;;
    levers)
      python3 bench/train_throughput.py --shape yi9b --paths "" --levers "${LEVERS:?}" --timeout "${LEVER_TIMEOUT:-240}" \
        --work /tmp/bt48 --logdir "$OUT" --out "$OUT/train_levers_$TAG.json" 2>&1 | grep -v Warning | tail -10 ;;
    eval)
      python3 bench/eval_throughput.py --shape yi9b --per-type "${PER_TYPE:-100}" --settings "${SETTINGS:-defaults,ours}" \
        --default-per-type "${DEFAULT_PER_TYPE:-4}" --out "$OUT/eval_$TAG.json" > "$OUT/eval_$TAG.log" 2>&1
      grep -E '^\{"setting|eval_ratio|Error|error' "$OUT/eval_$TAG.log" | cut -c1-220 | tail -14 ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
echo "=== done $(date -u +%T)"
