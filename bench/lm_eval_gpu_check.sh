#!/usr/bin/env bash
# The shop_* lm-eval tasks on one GPU through the real command line, and the equality check against
# `shop-eval score` on the run's samples (the same check as tests/test_lm_eval_tasks.py, on CUDA).
# On the lent GPU machine, from the repository root, with the lead's `.whl` carried
# (bench/device_run.sh install), e.g.:  bash bench/device_run.sh install && bash bench/lm_eval_gpu_check.sh
# The image has no MeCab (jp-bleu) and no copy of all-MiniLM-L6-v2 (sent-transformer): the rows with those
# metrics are left out of the data here.  Writes $OUT/lm_eval_gpu_check.json and the lm-eval log.
set -uo pipefail
OUT=${OUT:-/tmp/lm_eval_gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=/tmp/site:$PWD/bench/stubs:$PWD
W=/tmp/lm_eval_gpu
rm -rf "$W" && mkdir -p "$W"
python3 - "$W" <<'EOF'
import json, sys
from pathlib import Path
from shop_eval.tiny import build_tiny_model
w = Path(sys.argv[1])
rows = [json.loads(x) for x in Path("lm_eval_tasks/data/sample.jsonl").read_text().splitlines() if x.strip()]
keep = [r for r in rows if r["metric"] not in ("jp-bleu", "sent-transformer", "multilingual-sent-transformer")]
(w / "data.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))
build_tiny_model(w / "tiny", seed=0, quick=True)
EOF
SECONDS=0
SHOP_EVAL_DATA=$W/data.jsonl python3 -m lm_eval --model hf --model_args "pretrained=$W/tiny,dtype=bfloat16" \
  --device cuda:0 --batch_size 32 --include_path "$PWD/lm_eval_tasks" --tasks 'shop_*' \
  --log_samples --output_path "$W/out" > "$OUT/lm_eval_gpu.log" 2>&1
rc=$?
secs=$SECONDS
python3 - "$W" "$rc" "$secs" "$OUT" <<'EOF'
import json, sys
from pathlib import Path
from shop_eval.loaders import load
from shop_eval.scorer import read_predictions, score_responses
w, rc, secs, out = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
summary = {"lm_eval_rc": rc, "lm_eval_seconds": round(secs, 1), "checks": [], "max_abs_diff": None}
files = list((w / "out").rglob("results_*.json"))
if rc == 0 and files:
    res = json.loads(files[0].read_text())
    stamp = files[0].name[len("results_"):-len(".json")]
    summary["device"] = res.get("config", {}).get("device")
    from shop_eval import lm_eval_bridge as b
    type_of = {f"shop_{s}": t for t, s in b.SHORT_NAMES.items()} | {"shop_multiple_choice_ll": "multiple-choice"}
    diffs = []
    for task, nums in sorted(res["results"].items()):
        samples = files[0].parent / f"samples_{task}_{stamp}.jsonl"
        records = load(w / "data.jsonl")  # what `shop-eval score DATA SAMPLES` does
        idx, responses = read_predictions([samples], records)
        s = score_responses([records[i] for i in idx], responses)
        for filt in (["none"] if task.endswith("_ll") else ["official", "flexible"]):
            ext = "official" if filt == "none" else filt
            ours = s["extractors"][ext]["task_types"][type_of[task]]["score"]
            diffs.append(abs(nums[f"shop_score,{filt}"] - ours))
            summary["checks"].append({"task": task, "filter": filt, "lm_eval": nums[f"shop_score,{filt}"], "shop_eval_score": ours})
    summary["max_abs_diff"] = max(diffs)
(out / "lm_eval_gpu_check.json").write_text(json.dumps(summary, indent=1))
print(json.dumps({k: v for k, v in summary.items() if k != "checks"}), len(summary["checks"]), "checks")
EOF
tail -3 "$OUT/lm_eval_gpu.log"
