"""Import-only stand-ins for packages axolotl imports unconditionally but a bf16 LoRA run never uses.

axolotl 0.19 imports ``bitsandbytes`` (4/8-bit quantisation; its wheel is ~43 MB) and ``wandb`` (logging;
~20 MB) at module level.  The benchmark runs neither quantisation nor wandb logging, and the device's
wheel budget is 64 MiB a call, so ``bench/stubs`` is put on ``PYTHONPATH`` *on the device only*: every
attribute of a stub module is a distinct empty class, so ``isinstance(x, bnb.nn.Linear4bit)`` is False
and ``from bitsandbytes.nn import Params4bit`` succeeds.  Calling anything real raises.  The stubs carry
no package metadata, so ``transformers`` (which asks ``importlib.metadata``) reports both as absent.
Never put this folder on the path of a run that quantises or logs to wandb.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types


class StubModule(types.ModuleType):
    """A module whose unknown attributes are empty classes (or, for known submodules, stub modules)."""

    def __init__(self, name: str, submodules: tuple[str, ...] = ()):
        super().__init__(name)
        self.__version__ = "0.0.0+bench.stub"
        self.__path__ = []  # a package, so `import a.b` finds a.b in sys.modules
        self.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)  # find_spec() works
        for sub in submodules:
            mod = StubModule(f"{name}.{sub}")
            sys.modules[mod.__name__] = mod
            setattr(self, sub, mod)

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        cls = type(attr, (), {"__module__": self.__name__, "__init__": _refuse})
        setattr(self, attr, cls)
        return cls


def _refuse(self, *args, **kwargs):
    raise RuntimeError(f"{type(self).__module__}.{type(self).__name__} is a benchmark stub (bench/stubs)")


def install(name: str, submodules: tuple[str, ...]) -> StubModule:
    mod = StubModule(name, submodules)
    mod.__file__ = getattr(sys.modules.get(name), "__file__", None)
    sys.modules[name] = mod
    return mod
