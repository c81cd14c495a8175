import pytest

from mtlkit.config import Config, ConfigError, load_config


def test_defaults_and_overrides():
    config = load_config(overrides={"optim.lr": 0.5, "data.dataset": "digits"})
    assert isinstance(config, Config)
    assert config.optim.lr == 0.5 and config.data.dataset == "digits"
    assert config.training.epochs == 10


def test_yaml_file_and_flags_override_it(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  arch: stl\ntraining:\n  epochs: 3\ntasks:\n  a:\n    weight: 2\n")
    config = load_config(path, {"training.epochs": 5})
    assert config.model.arch == "stl" and config.training.epochs == 5
    assert config.tasks["a"].weight == 2.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"optim.lrr": 1}, r"optim.lrr: unknown key; did you mean 'lr'\?"),
        ({"trainig": {}}, r"trainig: unknown key; did you mean 'training'\?"),
        ({"training.epochs": "ten"}, "training.epochs: expected an integer, got 'ten'"),
        ({"training.epochs": 0}, "training.epochs: expected a value >= 1"),
        ({"optim.lr": -1.0}, "optim.lr: expected a value > 0"),
        (
            {"regularization.l1_ratio": 2.0},
            r"regularization.l1_ratio: expected a value in \[0.0, 1.0\]",
        ),
        (
            {"training.mode": "jiont"},
            "training.mode: expected one of joint, alternating, got 'jiont'",
        ),
        ({"data.batch_size": True}, "data.batch_size: expected an integer"),
        ({"tasks": {"a": {"wieght": 1}}}, r"tasks.a.wieght: unknown key; did you mean 'weight'\?"),
    ],
)
def test_config_errors_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(listy)


@pytest.mark.parametrize("field", ["optim.lr", "training.grad_clip", "regularization.strength"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "nan", "-Infinity"])
def test_config_floats_reject_nan_and_inf(field, value):
    with pytest.raises(ConfigError, match=f"{field}: expected a finite number"):
        load_config(overrides={field: value})


def test_yaml_nan_is_refused_with_the_field(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: .nan\n")
    with pytest.raises(ConfigError, match="optim.lr: expected a finite number"):
        load_config(path)


@pytest.mark.parametrize(
    "field, value",
    [("optim.lr", 0.0), ("training.grad_clip", 0.0), ("training.grad_clip", -1.0)],
)
def test_non_positive_values_are_refused_where_meaningless(field, value):
    with pytest.raises(ConfigError, match=f"{field}: expected a value > 0"):
        load_config(overrides={field: value})


def test_task_weight_must_be_finite():
    with pytest.raises(ConfigError, match="tasks.a.weight: expected a finite number"):
        load_config(overrides={"tasks": {"a": {"weight": float("nan")}}})


@pytest.mark.parametrize(
    "field, value",
    [("regularization.strength", 0.0), ("optim.trunk_lr_scale", 0.0), ("training.grad_clip", None)],
)
def test_zero_or_null_stays_valid_where_it_means_off(field, value):
    load_config(overrides={field: value})


def test_a_flag_cannot_silently_replace_a_wrong_section(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training: 3\n")
    with pytest.raises(ConfigError, match="training: expected a mapping, got 3"):
        load_config(path, {"training.epochs": 2})


@pytest.mark.parametrize("value", [-1, 2**64])
def test_seed_outside_what_the_generators_take_is_refused_with_the_field(value):
    """numpy and torch take seeds in [0, 2**64 - 1]; outside, the run died later on a message
    that did not name the field ("expected non-negative integer", "Overflow ...")."""
    with pytest.raises(ConfigError, match="seed: expected a value in"):
        load_config(overrides={"seed": value})
    load_config(overrides={"seed": 2**64 - 1})
