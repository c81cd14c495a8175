"""Config validation and the components agree: one declaration per option, driven by registries."""

from __future__ import annotations

import dataclasses
import inspect
from numbers import Integral, Real

import pytest

from mtlkit._param_validation import Interval, Options, validate_params
from mtlkit.config import ConfigError, from_dict, merge
from mtlkit.config.schema import Config, choices
from mtlkit.models.architectures import ARCHITECTURE_CLASSES, ARCHITECTURES
from mtlkit.weighting.registry import ENGINE_CONSTRAINTS, WEIGHTINGS, make_weighting

NOT_OPTIONS = {"self", "encoder", "encoder_factory", "tasks", "num_tasks"}


def _options(cls: type) -> dict[str, inspect.Parameter]:
    params = inspect.signature(cls.__init__).parameters
    return {n: p for n, p in params.items() if n not in NOT_OPTIONS}


def _outside(interval: Interval) -> list:
    """Values just outside ``interval`` (of its own type)."""
    step = 1 if interval.type is Integral else 1e-3
    values = []
    if interval.low is not None:
        left_in = interval.closed in ("both", "left")
        values.append(interval.low - step if left_in else interval.low)
    if interval.high is not None:
        right_in = interval.closed in ("both", "right")
        values.append(interval.high + step if right_in else interval.high)
    return values


def test_every_architecture_and_strategy_is_registered_with_a_declaration():
    assert set(ARCHITECTURE_CLASSES) == set(ARCHITECTURES)
    for name, cls in [*ARCHITECTURE_CLASSES.items(), *WEIGHTINGS.items()]:
        assert isinstance(cls.__dict__.get("_parameter_constraints", None) or {}, dict), name
        assert hasattr(cls, "_parameter_constraints"), f"{name} declares no constraints"


@pytest.mark.parametrize("arch", sorted(ARCHITECTURE_CLASSES))
def test_architecture_declares_exactly_its_options_and_its_defaults_are_valid(arch):
    cls = ARCHITECTURE_CLASSES[arch]
    options = _options(cls)
    assert set(cls._parameter_constraints) == set(options), arch
    defaults = {n: p.default for n, p in options.items() if p.default is not inspect._empty}
    validate_params(cls._parameter_constraints, defaults, "model.arch_options")


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_strategy_declares_exactly_its_options_and_its_defaults_are_valid(name):
    cls = WEIGHTINGS[name]
    options = _options(cls)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in options.values()):
        return  # a wrapper (mgda_ub): forwards its options to the strategy it wraps
    assert set(cls._parameter_constraints) == set(options), name
    defaults = {n: p.default for n, p in options.items() if p.default is not inspect._empty}
    validate_params(cls._parameter_constraints, defaults, "weighting.options")


def _bad_values(constraints: dict[str, list]) -> list[tuple[str, object]]:
    """``(option, value)`` pairs outside an option's only numeric interval or choices."""
    cases = []
    for option, allowed in constraints.items():
        for constraint in allowed:
            if isinstance(constraint, Interval) and len(allowed) == 1:
                cases += [(option, value) for value in _outside(constraint)]
            if isinstance(constraint, Options) and len(allowed) == 1:
                cases.append((option, "no-such-choice"))
    return cases


STRATEGY_CASES = [
    (name, option, value)
    for name in sorted(WEIGHTINGS)
    for option, value in _bad_values(
        {**WEIGHTINGS[name]._parameter_constraints, **ENGINE_CONSTRAINTS}
    )
]
ARCH_CASES = [
    (arch, option, value)
    for arch in sorted(ARCHITECTURE_CLASSES)
    for option, value in _bad_values(ARCHITECTURE_CLASSES[arch]._parameter_constraints)
]


@pytest.mark.parametrize(("name", "option", "value"), STRATEGY_CASES)
def test_config_and_registry_refuse_the_same_strategy_option(name, option, value):
    raw = {"weighting": {"name": name, "options": {option: value}}}
    with pytest.raises(ConfigError, match=rf"weighting.options.{option}: expected"):
        from_dict(Config, raw)
    with pytest.raises(ValueError, match=rf"weighting.options.{option}: expected"):
        make_weighting(name, 3, **{option: value})


@pytest.mark.parametrize(("arch", "option", "value"), ARCH_CASES)
def test_config_refuses_an_out_of_range_architecture_option(arch, option, value):
    raw = {"model": {"arch": arch, "arch_options": {option: value}}}
    with pytest.raises(ConfigError, match=rf"model.arch_options.{option}: expected"):
        from_dict(Config, raw)


def test_declared_choices_build():
    """Every value a strategy declares as a choice is one its constructor accepts."""
    built = 0
    for name, cls in WEIGHTINGS.items():
        for option, allowed in cls._parameter_constraints.items():
            for constraint in allowed:
                if isinstance(constraint, Options):
                    for value in constraint.values:
                        make_weighting(name, 3, **{option: value})
                        built += 1
    assert built >= 5  # cagrad.rescale and aligned_mtl.scale_mode at least


def test_unknown_option_names_the_strategy_and_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"weighting 'dwa'.*unknown option 'temp'.*temperature"):
        from_dict(Config, merge({}, {"weighting.name": "dwa", "weighting.options": {"temp": 1}}))


@pytest.mark.parametrize("field", ["data.sampling", "data.split", "training.mode"])
def test_component_choices_are_the_components_own(field):
    from mtlkit.data.loaders import SAMPLING_RULES
    from mtlkit.data.table import SPLIT_METHODS
    from mtlkit.training.trainer import TRAINING_MODES

    owner = {"data.sampling": SAMPLING_RULES, "data.split": SPLIT_METHODS}
    assert choices(field) == tuple(owner.get(field, TRAINING_MODES))
    with pytest.raises(ConfigError, match=rf"{field}: expected one of"):
        from_dict(Config, merge({}, {field: "nonsense"}))


def test_test_size_zero_is_refused_by_the_config_as_by_the_table_reader(tmp_path):
    import pandas as pd

    from mtlkit.data.cells import DataError
    from mtlkit.data.table import TableTask, load_table

    pd.DataFrame({"x": range(20), "y": [0.5] * 20}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="test_size"):
        load_table(tmp_path / "t.csv", [TableTask("y", "regression", ["y"])], test_size=0.0)
    with pytest.raises(ConfigError, match="data.test_size"):
        from_dict(Config, merge({}, {"data.test_size": 0.0}))


# ------------------------------------------------------------- the Trainer's and optimizer's fields


def _declared_fields() -> list[str]:
    from mtlkit.config.schema import _DECLARED

    return sorted(_DECLARED)


def _build_with(field: str, value: object) -> None:
    """Build the component that owns config ``field`` with ``value`` (nothing else changed)."""
    import torch
    from torch import nn

    from mtlkit.config.schema import _DECLARED
    from mtlkit.data import TabularPreprocessor
    from mtlkit.models import SharedTrunk
    from mtlkit.tasks import Task
    from mtlkit.training import Trainer, TrainingOptions
    from mtlkit.training.options import Regularization
    from mtlkit.training.trainer import make_optimizer

    owner, name = _DECLARED[field]
    if owner.endswith(":TrainingOptions"):
        TrainingOptions(**{name: value})
    elif owner.endswith(":Regularization"):
        Regularization(**{name: value})
    elif owner.endswith(":OPTIMIZER_CONSTRAINTS"):
        make_optimizer("sgd", [{"params": [nn.Parameter(torch.zeros(1))]}], **{name: value})
    elif owner.endswith(":TabularPreprocessor"):
        TabularPreprocessor(**{name: value})
    else:
        model = SharedTrunk(nn.Linear(2, 2), heads={"a": nn.Linear(2, 1)})
        tasks = [Task("a", "regression")]
        if owner.endswith(":Trainer"):
            Trainer(model, tasks, **{name: value})
        else:  # Trainer.fit's settings; checked before the data is read
            Trainer(model, tasks).fit([], **{"epochs": 1, name: value})


def test_config_defaults_are_valid_for_the_component_and_no_range_is_stated_twice():
    from mtlkit.config.schema import _CHOICES, _DECLARED, _RANGES, declared
    from mtlkit.training import TrainingOptions
    from mtlkit.training.options import Regularization

    defaults = Config().to_dict()
    for field in _DECLARED:
        section, name = field.split(".")
        value = defaults[section][name]
        assert value is None or value in declared(field), field
    assert not set(_DECLARED) & (set(_RANGES) | set(_CHOICES))
    for cls in (TrainingOptions, Regularization):  # a declaration for every field, no more
        assert set(cls._parameter_constraints) == {f.name for f in dataclasses.fields(cls)}, cls


@pytest.mark.parametrize("field", _declared_fields())
def test_config_and_component_refuse_the_same_out_of_range_value(field):
    from mtlkit.config.schema import declared

    constraint = declared(field)
    bad = _outside(constraint) if isinstance(constraint, Interval) else ["no-such-choice"]
    assert bad, field
    name = field.split(".")[1]
    for value in bad:
        with pytest.raises(ConfigError, match=rf"^{field}: expected"):
            from_dict(Config, merge({}, {field: value}))
        with pytest.raises(ValueError, match=rf"\.{name}: expected"):
            _build_with(field, value)


@pytest.mark.parametrize(
    "interval",
    [Interval(Real, 0.0, None), Interval(Real, None, 1.0), Interval(Real, 0.0, 1.0)],
    ids=str,
)
def test_nan_is_in_no_interval(interval):
    assert float("nan") not in interval


def test_python_api_refuses_a_nan_setting():
    from mtlkit.training import TrainingOptions
    from mtlkit.training.options import Regularization

    with pytest.raises(ValueError, match=r"training\.grad_clip: expected"):
        TrainingOptions(grad_clip=float("nan"))
    with pytest.raises(ValueError, match=r"regularization\.strength: expected"):
        Regularization(kind="l2", strength=float("nan"))
