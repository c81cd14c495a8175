"""Run configuration: schema, YAML loading and flag overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mtlkit.config.schema import Config, ConfigError, from_dict, merge


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file, unchecked (:func:`from_dict` checks it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(
            f"config file {str(path)!r} is not valid YAML: {yaml_problem(err)}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: expected a mapping at the top level")
    return data


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: what is wrong and where (``line L, column C``)."""
    problem = getattr(err, "problem", None) or str(err).strip().splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML config (or start from defaults) and apply dotted-key ``overrides``."""
    data = read_config_file(path) if path is not None else {}
    return from_dict(Config, merge(data, overrides or {}))


def with_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """A copy of ``config`` with dotted-key ``overrides`` applied (and checked)."""
    return from_dict(Config, merge(config.to_dict(), dict(overrides)))


__all__ = [
    "Config",
    "ConfigError",
    "from_dict",
    "load_config",
    "merge",
    "read_config_file",
    "with_overrides",
    "yaml_problem",
]
