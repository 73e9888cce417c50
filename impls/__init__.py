"""Three backends with one contract: ``numpy`` (from scratch), ``torch`` and ``tensorflow``.

Every backend is a subpackage with the same module and function names (see docs/api.md).
The subpackages are named after the frameworks they wrap, so never put ``impls/`` itself on
``sys.path`` and never run a file inside it as a script: ``import torch`` would then find
``impls/torch``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

BACKENDS = ("numpy", "torch", "tensorflow")

# The framework each backend needs besides NumPy (None: nothing beyond NumPy).
_REQUIRES = {"numpy": None, "torch": "torch", "tensorflow": "tensorflow"}


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"name: got {name!r}, expected one of {', '.join(BACKENDS)}")
    return name


def is_available(name: str) -> bool:
    """Whether backend ``name`` can be imported (its framework is installed)."""
    framework = _REQUIRES[_check_name(name)]
    return framework is None or importlib.util.find_spec(framework) is not None


def available() -> list[str]:
    """The backends whose framework is installed, in the canonical order."""
    return [name for name in BACKENDS if is_available(name)]


def load(name: str) -> ModuleType:
    """Import and return backend ``name`` ("numpy", "torch" or "tensorflow").

    Raises ValueError for an unknown name and ImportError, naming the missing framework and
    how to install it, when the framework is not installed.
    """
    name = _check_name(name)
    if not is_available(name):
        raise ImportError(
            f"backend {name!r} needs the {_REQUIRES[name]!r} package, which is not installed; "
            f"install it with: pip install 'cnn-rosetta[{name}]'"
        )
    return importlib.import_module(f"impls.{name}")
