"""Build hook: an installed wheel carries the lm-eval tasks and the axolotl recipes as ``shop_eval/_data/``
(``shop-eval tasks path`` / ``shop-eval recipes ls`` find them there).  In the repository they stay at the top,
``lm_eval_tasks/`` and ``recipes/``, where lm-eval and axolotl users expect them; an editable install reads them
from there.  Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
RESOURCES = ("lm_eval_tasks", "recipes")


class BuildWithResources(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in RESOURCES:
            shutil.copytree(
                ROOT / name,
                Path(self.build_lib) / "shop_eval" / "_data" / name,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )


setup(cmdclass={"build_py": BuildWithResources})
