#!/usr/bin/env bash
# Run the benchmarks on a GPU machine without network, from the repository root, with `.whl` (the pinned
# wheels, bench/wheels.txt + bench/fetch_bnb.sh) and `bench/_carry` (make_lengths.py's tokenizer) beside it
# (bench/README.md).  Stages, in the order given:
#   install  pip-install the wheels into /tmp/site (--no-deps, --target; never torch & co.)
#   check    versions + nvidia-smi
#   probe    SDPA cost per call with new vs repeated sequence lengths, cuDNN backend on/off
#   runs     bench/train_throughput.py --runs "$RUNS" --memory-cap-gib "$CAP" (default 23.5; 0 = none), the
#            whole stage inside $RUNS_BUDGET seconds (default 480) so its logs still come back; $RUN_ARGS: more
#            options (e.g. --together --steps-cap 3)
#   packing  bench/packing_check.py on the GPU (the varlen path) with bench/_carry/tiny_full (a tiny model)
#   smoke    8-layer Yi-shape training ($SMOKE_RUNS, default fixed_b2,sft)
#   eval     48-layer evaluation throughput (defaults vs ours)
# Result JSONs go to $OUT; the axolotl logs to /tmp/bench_logs, packed into $OUT/train_logs_$TAG.tgz.
#   RUNS=fixed_b2,sft,cpt,merge:sft,sft_80gb@78 bash bench/device_run.sh install check runs
set -uo pipefail
OUT=${OUT:-/tmp/bench_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  AXOLOTL_DO_NOT_TRACK=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false DO_NOT_TRACK=1
export PYTHONPATH=/tmp/site:$PWD/bench/stubs:$PWD
TAG=${TAG:-h200}
LOGS=/tmp/bench_logs/$TAG
mkdir -p /tmp/bench_logs
pack_logs() { mkdir -p "$LOGS"; tar czf "$OUT/train_logs_$TAG.tgz" -C "$LOGS" . 2>/dev/null; }
for stage in "$@"; do
  echo "=== $stage $(date -u +%T)"
  case $stage in
    install)
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        2>&1 | grep -v "WARNING: Target directory" | tail -5 ;;
    check)
      nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv
      python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, torch.cuda.get_device_name(0), round(torch.cuda.get_device_properties(0).total_memory / 2**30, 2), 'GiB')" ;;
    probe)
      python3 bench/sdpa_probe.py 2>&1 | tail -6 ;;
    runs)
      mkdir -p "$LOGS"
      timeout "${RUNS_BUDGET:-480}" python3 bench/train_throughput.py --shape yi9b --runs "${RUNS:?}" \
        --memory-cap-gib "${CAP:-23.5}" --timeout "${RUN_TIMEOUT:-240}" --work /tmp/bt48 --logdir "$LOGS" \
        --out "$OUT/train_$TAG.json" ${RUN_ARGS:-} 2>&1 | grep -v -i "warn" | grep -E '^\{"path|^run |^[a-z_0-9@.]+ +[0-9]|rror|Traceback' | cut -c1-400
      pack_logs ;;
    packing)
      python3 bench/packing_check.py --model bench/_carry/tiny_full --work /tmp/packing --out "$OUT/packing_$TAG.json" \
        > "$LOGS.packing.log" 2>&1; echo "packing rc=$?"; grep '^{"recipe' "$LOGS.packing.log" | cut -c1-600 ;;
    smoke)
      python3 bench/train_throughput.py --shape yi9b --layers 8 --examples 2000 --runs "${SMOKE_RUNS:-fixed_b2,sft}" \
        --work /tmp/bt8 --logdir "$LOGS" --out "$OUT/train_smoke8_$TAG.json" 2>&1 | grep -v Warning | tail -12 ;;
    eval)
      python3 bench/eval_throughput.py --shape yi9b --per-type "${PER_TYPE:-100}" --settings "${SETTINGS:-defaults,ours}" \
        --default-per-type "${DEFAULT_PER_TYPE:-4}" --out "$OUT/eval_$TAG.json" > "$OUT/eval_$TAG.log" 2>&1
      grep -E '^\{"setting|eval_ratio|Error|error' "$OUT/eval_$TAG.log" | cut -c1-220 | tail -14 ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
echo "=== done $(date -u +%T)"
