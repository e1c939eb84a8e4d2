"""Stub of wandb for the benchmark device (see bench/stubs/_stub.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _stub import install  # noqa: E402

_mod = install(__name__, ("sdk", "sdk.lib", "util", "apis", "errors", "integration", "integration.lightning"))
_mod.run = None
