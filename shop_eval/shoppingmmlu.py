"""Shopping MMLU (Jin et al., NeurIPS 2024 Datasets & Benchmarks; the public release of ShopBench): its
``data/`` folder, as the authors ship it in ``data.zip``, read into :class:`~shop_eval.records.Record`\\ s.

Layouts (../shared/docs/shopping-mmlu-format.md):

* ``skills/<skill>.json`` — JSON Lines of ShopBench records without ``track``: the rendered prompts of one skill.
  The skill (the file's stem, e.g. ``skill1_concept``) becomes the track.
* ``multiple_choice/<task>_dataset.csv`` — a CSV with a header and three columns read by position: question,
  choices (a Python-literal list, read with ``ast.literal_eval``), answer (0–3).  The prompt is rendered as the
  authors do: the question, ``"\\n0. <c0>\\n1. <c1>\\n2. <c2>\\n3. <c3>"``, then ``"\\nAnswer: "``; the task
  ``review_rating_prediction`` appends no choices and its answer is the rating itself (1–5).
* ``generation/``, ``named_entity_recognition/``, ``ranking/``, ``retrieval/`` ``<task>_dataset.json`` — JSON Lines
  whose first field is the prompt and last field the truth, whatever their names.  A generation task's metric
  comes from its name as in the authors' code: ``extraction`` → ``rougel``; ``translation`` → ``bleu``
  (``jp-bleu`` when the name contains ``JP``); ``multilingual`` → ``multilingual-sent-transformer``; otherwise
  ``sent-transformer``.

A folder with ``skills/`` is read from its skill files (the authors' skill-wise evaluation set); a folder without
is read from its task-wise files.  A task-wise row's skill comes from the skill files when they are there (the
skill whose file holds the task name), else from :data:`SKILL_OF_TASK` and :func:`skill_of` (a documented
mapping; a task it does not know goes to the track ``unassigned``).
"""

from __future__ import annotations

import ast
import csv
import io as _io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import DataError
from .io import iter_json_lines, read_text
from .records import make_record

TYPE_FOLDERS = {
    "multiple_choice": "multiple-choice",
    "generation": "generation",
    "named_entity_recognition": "named_entity_recognition",
    "ranking": "ranking",
    "retrieval": "retrieval",
}
METRIC_OF_TYPE = {
    "multiple-choice": "accuracy",
    "retrieval": "hit rate@3",
    "ranking": "ndcg",
    "named_entity_recognition": "micro f1",
}
#: the four skills: number -> the name used for tracks when no skill file names them
SKILLS = {
    1: "skill1_concept",
    2: "skill2_reasoning",
    3: "skill3_behavior",
    4: "skill4_multilingual",
}
SKILL_TITLES = {
    1: "shopping concept understanding",
    2: "shopping knowledge reasoning",
    3: "user behavior alignment",
    4: "multi-lingual abilities",
}
#: task name -> skill number, for task-wise files read without skill files (docs/shoppingmmlu.md)
SKILL_OF_TASK: dict[str, int] = {
    "applicable_attribute_selection": 1,
    "attribute_synonym": 1,
    "attribute_value_extraction": 1,
    "pt_selection_from_asin": 1,
    "query_product_type_selection": 1,
    "compatible_attribute_value_selection": 1,
    "pt_name_explain": 1,
    "query_named_entity_recognition": 1,
    "product_keyphrase_retrieval": 1,
    "asin_compatibility": 2,
    "commonsense": 2,
    "product_numeric_reasoning": 2,
    "unit_conversion": 2,
    "query_product_ranking": 3,
    "review_rating_prediction": 3,
}
UNASSIGNED = "unassigned"
RATING_TASK = "review_rating_prediction"
_MULTILINGUAL = re.compile(r"multilingual|translation|(?:^|_)(?:JP|ES|DE|FR|IT)(?:_|$)")


def skill_of(task: str) -> str:
    """The track of a task-wise file's rows when no skill file names its task: :data:`SKILL_OF_TASK`, then
    multilingual for names with ``multilingual``, ``translation`` or a language code, else ``unassigned``."""
    if task in SKILL_OF_TASK:
        return SKILLS[SKILL_OF_TASK[task]]
    if _MULTILINGUAL.search(task):
        return SKILLS[4]
    return UNASSIGNED


def skill_number(track: str) -> int | None:
    """1–4 for a skill track (``skill2_...``), else None."""
    m = re.match(r"skill([1-4])(?:_|$)", track)
    return int(m.group(1)) if m else None


def generation_metric(task: str) -> str:
    """The authors' choice of a generation task's metric from its name."""
    if "extraction" in task:
        return "rougel"
    if "translation" in task:
        return "jp-bleu" if "JP" in task else "bleu"
    if "multilingual" in task:
        return "multilingual-sent-transformer"
    return "sent-transformer"


def render_mc(task: str, question: str, choices: list[str]) -> str:
    """The authors' multiple-choice prompt (``format_example`` in their task-wise code)."""
    prompt = question
    if RATING_TASK not in task:
        for j in range(4):
            prompt += f"\n{j}. {choices[j]}"
    return prompt + "\nAnswer: "


def task_name_of(path: Path) -> str:
    return path.name.removesuffix(".csv").removesuffix(".json").removesuffix("_dataset")


# --------------------------------------------------------------------------- detection


def is_shoppingmmlu_folder(path: Path) -> bool:
    if (path / "skills").is_dir():
        return True
    return any((path / folder).is_dir() and any((path / folder).glob("*_dataset.*")) for folder in TYPE_FOLDERS) or (
        path.name in TYPE_FOLDERS and any(path.glob("*_dataset.*"))
    )


def is_shoppingmmlu_file(path: Path) -> bool:
    return (
        (path.suffix == ".csv")
        or (path.name.endswith("_dataset.json") and path.parent.name in TYPE_FOLDERS)
        or (path.parent.name == "skills" and path.suffix == ".json")
    )


# --------------------------------------------------------------------------- rows


def _csv_rows(text: str, source: str) -> Iterator[tuple[str, list[str]]]:
    """("line L", cells) per data row of a CSV (the header skipped); L is the row's first line."""
    reader = csv.reader(_io.StringIO(text, newline=""))
    try:
        start = 1
        header = next(reader, None)
        if header is None:
            return
        start = reader.line_num + 1
        for cells in reader:
            yield f"line {start}", cells
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(source, f"line {start}", None, f"invalid CSV: {exc}") from None


def _mc_record(task: str, cells: list[str], source: str, where: str, track: str):
    if len(cells) < 3:
        raise DataError(source, where, None, f"expected 3 columns (question, choices, answer), got {len(cells)}")
    question, choices_cell, answer = cells[0], cells[1], cells[-1]
    if RATING_TASK in task:
        choices: list[str] = []
    else:
        try:
            choices = ast.literal_eval(choices_cell.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise DataError(source, where, "choices", f"not a Python list literal: {choices_cell!r:.80}") from None
        if not isinstance(choices, (list, tuple)) or len(choices) < 4 or not all(isinstance(c, str) for c in choices):
            raise DataError(source, where, "choices", f"expected a list of 4 strings, got {choices_cell!r:.80}")
    a = answer.strip()
    if not re.fullmatch(r"\d{1,3}", a):
        raise DataError(source, where, "answer", f"expected an option number, got {answer!r:.40}")
    return make_record(
        {
            "input_field": render_mc(task, question, list(choices)),
            "output_field": int(a),
            "task_name": task,
            "task_type": "multiple-choice",
            "metric": "accuracy",
            "is_multiple_choice": True,
            "track": track,
        },
        source,
        where,
    )


def _json_record(task: str, ttype: str, obj: Any, source: str, where: str, track: str):
    if not isinstance(obj, dict) or len(obj) < 2:
        raise DataError(source, where, None, "expected an object with a prompt field and a truth field")
    values = list(obj.values())
    prompt, truth = values[0], values[-1]
    if not isinstance(prompt, str):
        raise DataError(source, where, next(iter(obj)), f"expected the prompt text, got {type(prompt).__name__}")
    metric = generation_metric(task) if ttype == "generation" else METRIC_OF_TYPE[ttype]
    return make_record(
        {"input_field": prompt, "output_field": truth, "task_name": task, "task_type": ttype, "metric": metric,
         "is_multiple_choice": False, "track": track},
        source, where,
    )  # fmt: skip


def _skill_record(obj: Any, source: str, where: str, track: str, quirks):
    if not isinstance(obj, dict):
        raise DataError(source, where, None, f"expected a JSON object, got {type(obj).__name__}")
    for k in ("input_field", "output_field", "task_type", "task_name", "metric"):
        if k not in obj:
            raise DataError(source, where, k, "missing")
    row = {k: v for k, v in obj.items() if k != "id"}
    row.setdefault("track", track)
    truth = row["output_field"]
    if row["task_type"] == "multiple-choice" and isinstance(truth, str) and truth.strip().isdigit():
        quirks[f"{Path(source).stem}: multiple-choice truth given as a string"] += 1
        row["output_field"] = int(truth.strip())
    return make_record(row, source, where)


def skill_tasks(skills_dir: Path) -> dict[str, str]:
    """task name -> skill (file stem), from the skill files' ``task_name`` fields."""
    out: dict[str, str] = {}
    for f in sorted(skills_dir.glob("*.json")):
        for _, obj in iter_json_lines(read_text(f), str(f)):
            if isinstance(obj, dict) and isinstance(obj.get("task_name"), str):
                out.setdefault(obj["task_name"], f.stem)
    return out


def iter_file(path: Path, quirks, skill_map: dict[str, str] | None = None) -> Iterator[tuple[str, Any]]:
    """("line L", Record or DataError) for every row of one Shopping MMLU file (any layout)."""
    source = str(path)
    text = read_text(path)
    if path.parent.name == "skills" and path.suffix == ".json":
        for where, obj in iter_json_lines(text, source):
            yield (
                where,
                obj if isinstance(obj, DataError) else _guard(_skill_record, obj, source, where, path.stem, quirks),
            )
        return
    task = task_name_of(path)
    if skill_map is None:
        skills = path.parent.parent / "skills"
        skill_map = skill_tasks(skills) if skills.is_dir() else {}
    track = skill_map.get(task) or skill_of(task)
    if path.suffix == ".csv":
        for where, cells in _csv_rows(text, source):
            yield where, _guard(_mc_record, task, cells, source, where, track)
        return
    ttype = TYPE_FOLDERS.get(path.parent.name)
    if ttype is None or ttype == "multiple-choice":
        raise DataError(
            source, "", None, f"not a Shopping MMLU file: expected it under one of {', '.join(TYPE_FOLDERS)}"
        )
    for where, obj in iter_json_lines(text, source):
        yield where, obj if isinstance(obj, DataError) else _guard(_json_record, task, ttype, obj, source, where, track)


def _guard(fn, *args):
    try:
        return fn(*args)
    except DataError as err:
        return err


def files_of(folder: Path) -> list[Path]:
    """The files a Shopping MMLU folder is read from: its skill files if it has them, else its task-wise files."""
    skills = folder / "skills"
    if skills.is_dir():
        found = sorted(skills.glob("*.json"))
        if found:
            return found
    if folder.name in TYPE_FOLDERS:
        return sorted(folder.glob("*_dataset.*"))
    return sorted(f for t in TYPE_FOLDERS for f in (folder / t).glob("*_dataset.*") if f.suffix in (".csv", ".json"))
