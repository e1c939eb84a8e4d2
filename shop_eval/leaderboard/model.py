"""The leaderboard's typed results: a :class:`Board` of :class:`ModelRun` rows (``to_json`` gives the
documented JSON, docs/evaluation.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import task_types
from ..scoring import ProtocolResult

SCHEMA = "shop-eval/leaderboard/v2"
#: lm-eval task-name prefixes of the families, longest first
FAMILIES = {"shopchat": "shopchat_", "shopmmlu": "shopmmlu_", "shop": "shop_"}
FAMILY_TITLES = {
    "shop": "ShopBench, the kit's decoding (`shop_*`)",
    "shopchat": "ShopBench, chat budget of 512 new tokens (`shopchat_*`)",
    "shopmmlu": "Shopping MMLU, the authors' decoding (`shopmmlu_*`)",
}
LL_SUFFIX = "_ll"
AGREEMENT_TOLERANCE = 1e-6


@dataclass
class TaskRun:
    """One lm-eval task of a run: what lm-eval reported and where its samples are."""

    family: str
    task_type: str | None
    n: int | None
    lm_eval: dict[str, dict[str, float | None]]
    samples: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, "task_type": self.task_type, "n": self.n, "lm_eval": self.lm_eval,
                "samples": self.samples}  # fmt: skip


@dataclass
class FamilyScores:
    """One family's scores: from the samples (every protocol, every view), or lm-eval's per-task numbers."""

    source: str  #: "samples" or "lm-eval"
    protocols: dict[str, ProtocolResult] = field(default_factory=dict)
    #: lm-eval's numbers when there are no samples: protocol -> task type -> {"score", "parse_failure_rate", "n"}
    lm_eval: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    unavailable_metrics: dict[str, str] = field(default_factory=dict)

    def type_score(self, protocol: str, ttype: str) -> tuple[float | None, float | None, bool]:
        """(score, stderr, absent) of a task type."""
        if self.source == "samples":
            res = self.protocols.get(protocol)
            cell = res.task_types.get(ttype) if res else None
            return (None, None, True) if cell is None or cell.absent else (cell.score, cell.stderr, False)
        entry = self.lm_eval.get(protocol, {}).get(ttype)
        return (None, None, True) if entry is None else (entry.get("score"), None, False)

    def present_types(self) -> set[str]:
        if self.source == "samples":
            res = next(iter(self.protocols.values()), None)
            return {t for t, c in (res.task_types.items() if res else ()) if not c.absent}
        return {t for types in self.lm_eval.values() for t in types}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        if self.source == "samples":
            out["protocols"] = {k: v.to_json() for k, v in self.protocols.items()}
        else:
            out["protocols"] = self.lm_eval
        if self.unavailable_metrics:
            out["unavailable_metrics"] = dict(self.unavailable_metrics)
        return out


@dataclass
class ModelRun:
    """One leaderboard row: one lm-eval run of one model (and adapter)."""

    name: str
    results_file: str
    backend: str | None
    model_args: dict[str, Any]
    lm_eval_version: str | None
    git_hash: str | None
    date: str | None
    config_hash: str
    chat_template: bool
    system_instruction: Any
    limit: Any
    tasks: dict[str, TaskRun] = field(default_factory=dict)
    scores: dict[str, FamilyScores] = field(default_factory=dict)
    data_hash: str | list[str] | None = None
    agreement: dict[str, Any] = field(default_factory=dict)
    contamination: dict[str, Any] | None = None

    @property
    def pretrained(self) -> Any:
        return self.model_args.get("pretrained")

    @property
    def adapter(self) -> Any:
        return self.model_args.get("peft") or self.model_args.get("lora_local_path")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "model_args": self.model_args,
            "pretrained": self.pretrained,
            "adapter": self.adapter,
            "lm_eval_version": self.lm_eval_version,
            "git_hash": self.git_hash,
            "date": self.date,
            "config_hash": self.config_hash,
            "chat_template": self.chat_template,
            "system_instruction": self.system_instruction,
            "limit": self.limit,
            "results_file": self.results_file,
            "tasks": {k: v.to_json() for k, v in self.tasks.items()},
            "scores": {k: v.to_json() for k, v in self.scores.items()},
            "data_hash": self.data_hash,
            "lm_eval_agreement": self.agreement,
            "contamination": self.contamination,
        }


@dataclass
class Board:
    models: list[ModelRun]
    generated: str
    contamination: dict[str, Any] | None = None
    comparable: dict[str, bool] = field(default_factory=dict)

    def types(self, family: str) -> list[str]:
        """The task types any model of the board has in ``family``, in the registry's order."""
        present: set[str] = set()
        for m in self.models:
            if family in m.scores:
                present |= m.scores[family].present_types()
        return [t for t in task_types.TASK_TYPES if t in present]

    def metric_label(self, family: str, ttype: str) -> str:
        """The metrics a task type's rows carry, for a column header ("bleu, rougel")."""
        metrics: set[str] = set()
        for m in self.models:
            fs = m.scores.get(family)
            res = fs.protocols.get("official") if fs and fs.source == "samples" else None
            cell = res.task_types.get(ttype) if res else None
            if cell is not None and not cell.absent:
                metrics |= set(cell.metrics)
        tt = task_types.get(ttype)
        return (
            ", ".join(sorted(metrics)) if metrics else (tt.default_metric if len(tt.metrics) == 1 else "per-row metric")
        )

    def families(self) -> list[str]:
        seen = {f for m in self.models for f in m.scores}
        order = [*FAMILY_TITLES, *(f + LL_SUFFIX for f in FAMILY_TITLES)]
        return [f for f in order if f in seen]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "generated": self.generated,
            "models": [m.to_json() for m in self.models],
            "contamination": self.contamination,
            "comparable": self.comparable,
        }
