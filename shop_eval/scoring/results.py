"""Typed scoring results (``to_json`` gives the documented JSON; docs/scoring.md has the schema)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "shop-eval/score/v2"


@dataclass
class Cell:
    """One aggregate: a task, a task type, a metric, a track or an overall number."""

    n: int
    score: float | None
    stderr: float | None
    parse_failures: int = 0
    n_tasks: int = 1
    #: some rows could not be scored (an embedding model is unavailable)
    incomplete: bool = False
    #: no rows of this kind in the data (task types only)
    absent: bool = False

    @property
    def parse_failure_rate(self) -> float:
        return self.parse_failures / self.n if self.n else 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "score": self.score,
            "stderr": self.stderr,
            "parse_failures": self.parse_failures,
            "parse_failure_rate": self.parse_failure_rate,
            "n_tasks": self.n_tasks,
        }
        if self.incomplete:
            out["incomplete"] = True
        if self.absent:
            out["absent"] = True
        return out


@dataclass
class TaskCell(Cell):
    """A task name: its first row's metric decides the aggregation (pooled F1 for ``micro f1``)."""

    metric: str = ""
    metrics: list[str] = field(default_factory=list)
    task_type: str = ""
    task_types: list[str] = field(default_factory=list)
    track: str = ""

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        del out["n_tasks"]
        out.update(metric=self.metric, task_type=self.task_type, track=self.track)
        if len(self.metrics) > 1:
            out["metrics"] = list(self.metrics)
        if len(self.task_types) > 1:
            out["task_types"] = list(self.task_types)
        return out


@dataclass
class TypeCell(Cell):
    """A task type: the mean over its task names (each scored on its rows of this type)."""

    metrics: list[str] = field(default_factory=list)
    by_metric: dict[str, Cell] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["metrics"] = list(self.metrics)
        if len(self.by_metric) > 1:
            out["by_metric"] = {k: v.to_json() for k, v in self.by_metric.items()}
        return out


@dataclass
class ProtocolResult:
    """Every view of one protocol's scores."""

    #: the all-around score: the mean of the track scores (the challenge's Track 5)
    mean_of_tracks: Cell
    #: the kit's printed "Overall Score": the mean of the task scores over all task names
    mean_of_tasks: Cell
    tracks: dict[str, Cell]
    task_types: dict[str, TypeCell]
    metrics: dict[str, Cell]
    tasks: dict[str, TaskCell]
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "mean_of_tracks": {**self.mean_of_tracks.to_json(), "n_tracks": len(self.tracks)},
            "mean_of_tasks": self.mean_of_tasks.to_json(),
            "tracks": {k: v.to_json() for k, v in self.tracks.items()},
            "task_types": {k: v.to_json() for k, v in self.task_types.items()},
            "metrics": {k: v.to_json() for k, v in self.metrics.items()},
            "tasks": {k: v.to_json() for k, v in self.tasks.items()},
            "seconds": self.seconds,
        }


@dataclass
class ScoreResult:
    """``shop-eval score``'s result: per protocol, every view; what could not be scored."""

    n: int
    protocols: dict[str, ProtocolResult]
    unavailable_metrics: dict[str, str] = field(default_factory=dict)
    #: where the data and the predictions came from, timings (filled by the caller)
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "n": self.n,
            "protocols": {k: v.to_json() for k, v in self.protocols.items()},
            "unavailable_metrics": dict(self.unavailable_metrics),
            **self.info,
        }
