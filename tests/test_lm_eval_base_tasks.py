"""lm-eval's own task tests — the ``BaseTasks`` class of ``tests/test_tasks.py`` in the pinned lm-eval
release (``make setup`` fetches its sdist into ``.venv/lm-eval-sdist``) — run on every ``shop_*`` and
``shopchat_*`` task: download, splits, prompts (no trailing white space before a white-space delimiter),
choices, targets, and building / constructing requests for 10 docs."""

from __future__ import annotations

import ast
from itertools import islice
from pathlib import Path

import pytest
from lm_eval.api.task import ConfigurableTask
from lm_eval.evaluator_utils import get_task_list
from lm_eval.tasks import TaskManager, get_task_dict

REPO = Path(__file__).resolve().parents[1]
LM_EVAL_TESTS = REPO / ".venv" / "lm-eval-sdist" / "lm_eval-0.4.11" / "tests" / "test_tasks.py"


def _their_base_class():
    """``BaseTasks`` as lm-eval wrote it (its module-level task lists need the hub, so only the class is taken)."""
    if not LM_EVAL_TESTS.is_file():
        raise FileNotFoundError(f"{LM_EVAL_TESTS}: run `make setup` (it fetches lm-eval's own tests)")
    tree = ast.parse(LM_EVAL_TESTS.read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BaseTasks"]
    cls.decorator_list = []
    namespace = {"islice": islice, "pytest": pytest, "ConfigurableTask": ConfigurableTask}
    limit = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "limit")  # their fixture
    exec(compile(ast.Module(body=[limit, cls], type_ignores=[]), str(LM_EVAL_TESTS), "exec"), namespace)  # noqa: S102
    return namespace["BaseTasks"], namespace["limit"]


def _shop_tasks() -> list[ConfigurableTask]:
    tm = TaskManager(include_path=str(REPO / "lm_eval_tasks"))
    names = sorted(t for t in tm.all_subtasks if t.startswith(("shop_", "shopchat_")))
    return [x.task for x in get_task_list(get_task_dict(names, tm))]


BaseTasks, limit = _their_base_class()  # their class and their `limit` fixture (10 docs)


@pytest.mark.parametrize("task_class", _shop_tasks(), ids=lambda t: t.config.task)
class TestShopTasks(BaseTasks):
    pass
