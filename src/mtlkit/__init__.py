"""mtlkit: multi-task learning toolkit.

Importing ``mtlkit`` is cheap: the subpackages (and the names re-exported here) load on first
use (PEP 562 module ``__getattr__``), so ``mtlkit --help`` never imports torch. To export a new
name, add it to ``_EXPORTS`` (name -> module); do not import heavy modules at the top of this file.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

try:
    __version__: str = metadata.version("mtlkit")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_SUBPACKAGES = (
    "analysis",
    "config",
    "data",
    "distributed",
    "linear",
    "models",
    "tasks",
    "training",
    "weighting",
)
_EXPORTS: dict[str, str] = {
    "mtl_backward": "mtlkit.weighting",
}

__all__ = ["__version__", *_SUBPACKAGES, *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"mtlkit.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mtlkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
