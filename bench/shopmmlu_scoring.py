"""Scoring throughput on a Shopping MMLU-shaped folder (CPU).

Builds a synthetic ``data/`` folder of ``--rows`` questions (default 20,000) in the authors' layouts — multiple
choice CSVs (with the rating task), generation / NER / ranking / retrieval JSON Lines, the generation metrics
chosen by task name — and one synthetic response per row, then times the commands a user runs:

1. ``shop-eval convert DATA out.jsonl``                       rows/s of reading the folder
2. ``shop-eval score DATA preds --no-embeddings``             the three protocols, every metric but the embeddings
3. ``shop-eval score DATA preds``                             the same with the sentence-transformer cosines

The embeddings are reported apart (3 − 2): they dominate.  Results go to ``bench/results/shopmmlu_scoring.json``.

    .venv/bin/python bench/shopmmlu_scoring.py [--rows 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORDS = ("red", "steel", "cotton", "bottle", "chair", "lamp", "cable", "charger", "kettle", "boots", "wooden", "small",
         "large", "wireless", "travel", "kitchen", "garden", "office", "sports", "premium")  # fmt: skip

#: (task type folder, task name, share of the rows)
TASKS = (
    [("multiple_choice", f"mc_task_{i:02d}", 0.6 / 30) for i in range(29)]
    + [("multiple_choice", "review_rating_prediction", 0.6 / 30)]
    + [
        ("generation", name, 0.2 / 8)
        for name in (
            "attribute_value_extraction",
            "review_keyphrase_extraction",
            "title_translation_ES",
            "title_translation_JP",
            "multilingual_explain",
            "multilingual_summary",
            "pt_name_explain",
            "product_summary",
        )
    ]  # fmt: skip
    + [("named_entity_recognition", f"ner_task_{i}", 0.075 / 4) for i in range(4)]
    + [("ranking", f"ranking_task_{i}", 0.0625 / 5) for i in range(5)]
    + [("retrieval", f"retrieval_task_{i}", 0.0625 / 5) for i in range(5)]
)


def _text(rng: random.Random, k: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(k))


def build(folder: Path, rows: int, seed: int = 0) -> list[str]:
    """Write the folder; return one response per row in load order (files sorted by path)."""
    rng = random.Random(seed)
    responses: dict[Path, list[str]] = {}
    for folder_name, task, share in TASKS:
        n = max(1, round(rows * share))
        d = folder / folder_name
        d.mkdir(parents=True, exist_ok=True)
        resp: list[str] = []
        if folder_name == "multiple_choice":
            path = d / f"{task}_dataset.csv"
            with path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["question", "choices", "answer"])
                for _ in range(n):
                    if task == "review_rating_prediction":
                        w.writerow([f"Review: {_text(rng, 20)}\nWhat rating (1-5)?", "[]", rng.randint(1, 5)])
                        resp.append(str(rng.randint(1, 5)))
                    else:
                        choices = [_text(rng, 3) + (", 'x'" if rng.random() < 0.1 else "") for _ in range(4)]
                        w.writerow([f"Which is {_text(rng, 8)}?", str(choices), rng.randint(0, 3)])
                        resp.append(rng.choice(["0", "1", "2", "3", " 2", "\n1", "The answer is 3"]))
        else:
            path = d / f"{task}_dataset.json"
            with path.open("w", encoding="utf-8") as fh:
                for _ in range(n):
                    if folder_name == "generation":
                        truth = _text(rng, 6)
                        prompt = f"Instructions: {_text(rng, 12)}\nInput: {_text(rng, 30)}\nOutput: "
                        r = truth if rng.random() < 0.3 else _text(rng, rng.randint(3, 15))
                    elif folder_name == "named_entity_recognition":
                        truth = [_text(rng, 2) for _ in range(rng.randint(1, 3))]
                        prompt = f"Extract entities.\nQuery: {' '.join(truth)} {_text(rng, 4)}\nOutput: "
                        r = ", ".join(truth[: rng.randint(0, len(truth))])
                    elif folder_name == "ranking":
                        k = 5
                        truth = [rng.choice([0, 0.01, 0.1, 1]) for _ in range(k)]
                        prompt = "Rank the products.\n" + "".join(f"{i}. {_text(rng, 5)}\n" for i in range(1, k + 1))
                        r = ", ".join(map(str, rng.sample(range(1, k + 1), k)))
                    else:
                        truth = sorted(rng.sample(range(1, 16), 3))
                        prompt = "Select 3.\n" + "".join(f"{i}. {_text(rng, 4)}\n" for i in range(1, 16)) + "Output: "
                        r = ", ".join(map(str, rng.sample(range(1, 16), 3)))
                    fh.write(json.dumps({"input_field": prompt, "target_field": truth}) + "\n")
                    resp.append(r)
        responses[path] = resp
    return [r for p in sorted(responses) for r in responses[p]]


def _timed(cmd: list[str]) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "shopmmlu_scoring.json"))
    args = ap.parse_args()
    shop = str(BIN / "shop-eval")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        responses = build(data, args.rows)
        preds = Path(tmp) / "preds.jsonl"
        preds.write_text("".join(json.dumps({"response": r}) + "\n" for r in responses))
        n = len(responses)
        runs: dict[str, list[float]] = {"convert": [], "score_no_embeddings": [], "score": []}
        for _ in range(args.repeat):
            runs["convert"].append(_timed([shop, "convert", str(data), str(Path(tmp) / "out.jsonl")]))
            runs["score_no_embeddings"].append(
                _timed([shop, "score", str(data), str(preds), "--out", str(Path(tmp) / "r.json"), "--no-embeddings"])
            )
            runs["score"].append(_timed([shop, "score", str(data), str(preds), "--out", str(Path(tmp) / "r2.json")]))
        result = json.loads((Path(tmp) / "r2.json").read_text())
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    out = {
        "rows": n,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "seconds": runs,
        "median_seconds": med,
        "rows_per_second": {k: round(n / v, 1) for k, v in med.items()},
        "embeddings_seconds": round(med["score"] - med["score_no_embeddings"], 2),
        "unavailable_metrics": result.get("unavailable_metrics", {}),
        "note": "wall clock of the whole command (start-up and loading included); score runs the three protocols",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(
        json.dumps({k: out[k] for k in ("rows", "median_seconds", "rows_per_second", "embeddings_seconds")}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
