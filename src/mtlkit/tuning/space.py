"""The search space of ``mtlkit tune``: config fields and the values a trial may give them.

A space maps dotted config fields to a range or a list of choices::

    optim.lr: {low: 1.0e-4, high: 1.0e-1, log: true}        # float, log-uniform
    model.arch_options.num_experts: {low: 2, high: 8}       # integer (both bounds integers)
    weighting.name: [ew, uw, upgrad]                        # categorical (short form)
    regularization.strength: {low: 1.0e-6, high: 1.0e-2, log: true,
                              when: {regularization.kind: [l1, l2]}}

``when`` makes a parameter conditional: it is sampled only in trials where each named
parameter (listed before it) took one of the given values; otherwise the field keeps the base
config's value. Every key is checked against :class:`~mtlkit.config.Config` and every bound
and choice is checked as a config value before any trial runs, so a mistake is reported as
``tune.space.<key>: ...`` instead of failing a trial halfway through the study.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtlkit.config import Config, ConfigError, from_dict, merge

DEFAULT_SPACE: dict[str, Any] = {
    "optim.lr": {"low": 1e-4, "high": 1e-1, "log": True},
    "weighting.name": {"choices": ["ew", "uw", "dwa", "upgrad"]},
    "regularization.kind": {"choices": ["none", "l2"]},
    "regularization.strength": {
        "low": 1e-6,
        "high": 1e-2,
        "log": True,
        "when": {"regularization.kind": ["l2"]},
    },
}
"""The space searched when the config has no ``tune.space``: learning rate, strategy, L2."""

_NOT_TUNABLE = {
    "seed": "the seed is not a hyper-parameter",
    "out": "the output folder is not a hyper-parameter",
    "device": "the device is not a hyper-parameter",
    "threads": "the thread count is not a hyper-parameter",
    "training.monitor": "set the objective with tune.metric",
    "training.progress": "progress bars are off in trials",
}
_SPEC_KEYS = ("low", "high", "log", "step", "choices", "when", "type")


@dataclass(frozen=True)
class Param:
    """One searched config field: a float or integer range, or a list of choices."""

    key: str
    kind: str
    """``float``, ``int`` or ``categorical``."""
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for this field's value."""
        if self.kind == "categorical":
            return _decode(trial.suggest_categorical(self.key, [_encode(c) for c in self.choices]))
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def distribution(self) -> Any:
        """The Optuna distribution this parameter is sampled from."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution([_encode(c) for c in self.choices])
        if self.kind == "int":
            step = int(self.step or 1)
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=step)
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def candidates(self) -> list[Any]:
        """Values that must all be valid configs: the choices, or both bounds."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether a trial that sampled ``values`` so far samples this parameter."""
        return all(key in values and values[key] in allowed for key, allowed in self.when.items())


def _encode(choice: Any) -> Any:
    # Optuna stores only scalar choices; lists and mappings (e.g. hidden sizes) travel as JSON.
    return json.dumps(choice) if isinstance(choice, list | dict) else choice


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def suggest(trial: Any, space: list[Param]) -> dict[str, Any]:
    """One trial's dotted-key config overrides (a conditional parameter only where it applies)."""
    values: dict[str, Any] = {}
    for param in space:
        if param.applies(values):
            values[param.key] = param.suggest(trial)
    return values


def field_type(key: str) -> Any:
    """The declared type of the dotted config field ``key`` (``Any`` inside option mappings)."""
    tp: Any = Config
    walked: list[str] = []
    for part in key.split("."):
        tp = _strip_optional(tp)
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            if part not in hints:
                names = [f.name for f in dataclasses.fields(tp)]
                close = difflib.get_close_matches(part, names, n=1)
                where = ".".join([*walked, part])
                hint = (
                    f"; did you mean '{'.'.join([*walked, close[0]])}'?"
                    if close
                    else f"; fields here: {', '.join(names)}"
                )
                raise ConfigError(f"tune.space.{key}: {where!r} is not a config field{hint}")
            tp = hints[part]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif tp is not Any:
            raise ConfigError(f"tune.space.{key}: {'.'.join(walked)!r} is a value, not a section")
        walked.append(part)
    tp = _strip_optional(tp)
    if dataclasses.is_dataclass(tp) or typing.get_origin(tp) in (dict, list):
        raise ConfigError(f"tune.space.{key}: a section, not a value; name one field inside it")
    return tp


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _number(value: Any, where: str) -> float:
    # PyYAML reads 1e-4 (no dot) as a string; accept it as the number it means
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return number


def parse_param(key: str, spec: Any, earlier: Mapping[str, Param]) -> Param:
    """Read one entry of ``tune.space`` (a mapping, or a list of choices)."""
    where = f"tune.space.{key}"
    if key in _NOT_TUNABLE:
        raise ConfigError(f"{where}: cannot be searched ({_NOT_TUNABLE[key]})")
    declared = field_type(key)
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{where}: expected {{low: ..., high: ...}} or {{choices: [...]}}, got {spec!r}"
        )
    for name in spec:
        if name not in _SPEC_KEYS:
            close = difflib.get_close_matches(str(name), _SPEC_KEYS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; keys: {', '.join(_SPEC_KEYS)}"
            raise ConfigError(f"{where}.{name}: unknown key{hint}")
    when = _parse_when(key, spec.get("when"), earlier)
    if "choices" in spec:
        extra = [k for k in ("low", "high", "log", "step") if k in spec]
        if extra:
            raise ConfigError(f"{where}: give either choices or low/high, not both ({extra[0]})")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices: expected a non-empty list, got {choices!r}")
        return Param(key, "categorical", choices=tuple(choices), when=when)
    for bound in ("low", "high"):
        if bound not in spec:
            raise ConfigError(f"{where}: needs {bound} (or a list of choices)")
    low, high = _number(spec["low"], f"{where}.low"), _number(spec["high"], f"{where}.high")
    if not low < high:
        raise ConfigError(f"{where}: low ({low:g}) must be below high ({high:g})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low:g}")
    step = _number(spec["step"], f"{where}.step") if spec.get("step") is not None else None
    if step is not None and (step <= 0 or log):
        raise ConfigError(f"{where}.step: expected a positive step and no log scale")
    kind = _range_kind(key, spec, declared)
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f"{where}: an integer field needs integer bounds, got {low:g}, {high:g}")
    return Param(key, kind, low=low, high=high, log=log, step=step, when=when)


def _range_kind(key: str, spec: Mapping[str, Any], declared: Any) -> str:
    where = f"tune.space.{key}"
    if "type" in spec:
        if spec["type"] not in ("int", "float"):
            raise ConfigError(f"{where}.type: expected int or float, got {spec['type']!r}")
        return str(spec["type"])
    if declared is int:
        return "int"
    if declared is float:
        return "float"
    if declared is Any:
        bounds = [spec["low"], spec["high"], spec.get("step", 1)]
        return (
            "int"
            if all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
            else "float"
        )
    raise ConfigError(f"{where}: a {declared.__name__} field takes a list of choices, not a range")


def _parse_when(key: str, when: Any, earlier: Mapping[str, Param]) -> dict[str, tuple[Any, ...]]:
    where = f"tune.space.{key}.when"
    if when is None:
        return {}
    if not isinstance(when, dict) or not when:
        raise ConfigError(f"{where}: expected a mapping {{parameter: [values]}}, got {when!r}")
    result = {}
    for name, allowed in when.items():
        if name not in earlier:
            raise ConfigError(f"{where}: {name!r} is not a parameter listed before {key!r}")
        result[name] = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        choices = earlier[name].choices
        for value in result[name]:
            if earlier[name].kind == "categorical" and value not in choices:
                listed = ", ".join(map(str, choices))
                raise ConfigError(f"{where}: {value!r} is not a choice of {name!r} ({listed})")
    return result


def parse_space(spec: Any, base: Mapping[str, Any]) -> list[Param]:
    """Read and check ``tune.space`` against the base config (a dict from ``Config.to_dict``)."""
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"tune.space: expected a mapping of config fields, got {spec!r}")
    params: dict[str, Param] = {}
    for key, item in spec.items():
        params[str(key)] = parse_param(str(key), item, params)
    space = list(params.values())
    for param in space:
        for value in param.candidates():
            check_value(param, value, params, base)
    return space


def conditions_met(param: Param, params: Mapping[str, Param]) -> dict[str, Any]:
    """Overrides under which ``param`` is sampled (the first allowed value of each condition)."""
    overrides: dict[str, Any] = {}
    for name, allowed in param.when.items():
        overrides |= conditions_met(params[name], params)
        overrides[name] = allowed[0]
    return overrides


def check_value(
    param: Param, value: Any, params: Mapping[str, Param], base: Mapping[str, Any]
) -> Config:
    """The base config with ``param`` set to ``value``; a :class:`ConfigError` names the key."""
    overrides = conditions_met(param, params) | {param.key: value}
    try:
        return from_dict(Config, merge(dict(base), overrides))
    except ConfigError as err:
        raise ConfigError(
            f"tune.space.{param.key}: {value!r} is not a valid value ({err})"
        ) from None
