"""``shop-eval tasks path|ls`` and ``shop-eval recipes ls|cp``: the packaged lm-eval tasks and axolotl recipes
(as torchtune's ``tune ls`` / ``tune cp``), wherever shop_eval is installed.

    lm_eval --include_path "$(shop-eval tasks path)" --tasks 'shop_*' ...
    shop-eval recipes cp sft.yml my_sft.yml
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import resources
from ..errors import UsageError
from ..io import Outputs
from .args import add_command, option


@dataclass
class NoOptions:
    pass


@dataclass
class CopyOptions:
    name: str = option(help="recipe name as `shop-eval recipes ls` prints it (e.g. sft.yml, tiny/sft.yml)",
                       positional=True)  # fmt: skip
    dest: str | None = option(None, help="file or folder to copy to (default: the current folder)", positional=True)
    force: bool = option(False, help="overwrite an existing file")


def register(sub) -> None:
    t = sub.add_parser("tasks", help="the packaged lm-eval tasks: their include path, their names")
    tsub = t.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")
    add_command(
        tsub,
        "path",
        NoOptions,
        lambda o: print(resources.tasks_dir()),
        "print the folder to pass to lm_eval --include_path",
    )
    add_command(
        tsub, "ls", NoOptions, lambda o: print("\n".join(resources.task_names())), "list the task and group names"
    )

    r = sub.add_parser("recipes", help="the packaged axolotl recipes: list them, copy one out to edit")
    rsub = r.add_subparsers(dest="recipes_command", required=True, metavar="ACTION")
    add_command(
        rsub,
        "ls",
        NoOptions,
        lambda o: print("\n".join(resources.recipe_names())),
        "list the recipes and their configs",
    )
    add_command(rsub, "cp", CopyOptions, copy_recipe, "copy a recipe to a file or folder")


def copy_recipe(opts: CopyOptions) -> int:
    src = resources.recipe_path(opts.name)
    dest = Path(opts.dest or ".")
    if dest.is_dir():
        dest = dest / src.name
    if dest.exists() and not opts.force:
        raise UsageError(f"{dest} exists (--force overwrites it)")
    with Outputs(inputs=[src], dest=dest) as out, out.open("dest", "wb") as fh, open(src, "rb") as s:
        shutil.copyfileobj(s, fh)
    print(dest)
    return 0
