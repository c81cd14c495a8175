"""mtlkit: multi-task learning toolkit.

Importing ``mtlkit`` is cheap: the subpackages (and the names re-exported here) load on first
use (PEP 562 module ``__getattr__``), so ``mtlkit --help`` never imports torch; so does
``__version__`` (read from the installed package's metadata). To export a new name, add it to
``_EXPORTS`` (name -> module); do not import heavy modules at the top of this file.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBPACKAGES = (
    "analysis",
    "config",
    "data",
    "distributed",
    "linear",
    "models",
    "runs",
    "tasks",
    "training",
    "weighting",
)
_EXPORTS: dict[str, str] = {
    "load": "mtlkit.runs",
    "mtl_backward": "mtlkit.weighting",
}

__all__ = ["__version__", *_SUBPACKAGES, *_EXPORTS]


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("mtlkit")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()["__version__"] = version = _version()
        return version
    if name in _SUBPACKAGES:
        return importlib.import_module(f"mtlkit.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mtlkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
