"""Where the lm-eval tasks and the axolotl recipes are: ``lm_eval_tasks/`` and ``recipes/`` at the top of a
checkout (editable install), or ``shop_eval/_data/`` inside an installed wheel (setup.py copies them there)."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError

_PACKAGE = Path(__file__).resolve().parent


def _root(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise UsageError(f"the {name} folder is not installed with shop_eval (looked in {_PACKAGE / '_data'})")


def tasks_dir() -> Path:
    """The folder to pass to ``lm_eval --include_path``."""
    return _root("lm_eval_tasks")


def recipes_dir() -> Path:
    return _root("recipes")


def task_names() -> list[str]:
    """The task and group names defined in the tasks folder (``task:`` / ``group:`` of each YAML)."""
    import yaml

    names = []
    for f in sorted(tasks_dir().glob("*.yaml")):
        for line in f.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition(":")
            if sep and key in ("task", "group") and value.strip() and not value.strip().startswith("-"):
                names.append(yaml.safe_load(value))
                break
    return names


def recipe_names() -> list[str]:
    """Every recipe and config file, relative to the recipes folder (``sft.yml``, ``tiny/sft.yml``, ...)."""
    root = recipes_dir()
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".yml", ".yaml", ".json", ".sh", ".sbatch") and "__pycache__" not in p.parts
    )


def recipe_path(name: str) -> Path:
    names = recipe_names()
    if name not in names:
        stem_matches = [n for n in names if Path(n).stem == name or n == f"{name}.yml"]
        if len(stem_matches) == 1:
            name = stem_matches[0]
        else:
            raise UsageError(f"no recipe {name!r} (shop-eval recipes ls lists them)")
    return recipes_dir() / name
