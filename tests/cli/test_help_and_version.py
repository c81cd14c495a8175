"""``mtlkit --version``, a ``--help`` that imports nothing heavy, and ``--threads``."""

import importlib.metadata
import json
import subprocess
import sys

import pytest
import torch

import mtlkit
from mtlkit.cli.main import COMMANDS, build_parser, main
from mtlkit.cli.threads import MAX_DEFAULT_THREADS, choose_threads, configure_threads

HEAVY = ("torch", "pandas", "matplotlib", "sklearn", "scipy")


def test_version_is_the_installed_distribution_version(capsys):
    assert mtlkit.__version__ == importlib.metadata.version("mtlkit")
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mtlkit {mtlkit.__version__}"


def test_every_registered_command_has_a_parser():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert set(choices) == set(COMMANDS)


def test_python_m_mtlkit_help_imports_no_heavy_module():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mtlkit", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: mtlkit" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "mtlkit.cli.main" in imported  # the timing lines were read
    assert not imported & set(HEAVY)


# Parses `<command> --help` and a bad flag for every registered command in one fresh process.
_PARSE_ALL = """
import contextlib, io, json, sys
from mtlkit.cli.main import COMMANDS, build_parser
codes = {}
for command in COMMANDS:
    for argv in ([command, "--help"], [command, "--no-such-flag"]):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                build_parser().parse_args(argv)
            except SystemExit as exit:
                codes[" ".join(argv)] = exit.code
print(json.dumps({"codes": codes, "modules": sorted(sys.modules)}))
"""


def test_help_and_argument_errors_of_every_command_import_no_heavy_module():
    done = subprocess.run(
        [sys.executable, "-c", _PARSE_ALL], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["codes"] == {
        **{f"{c} --help": 0 for c in COMMANDS},
        **{f"{c} --no-such-flag": 2 for c in COMMANDS},
    }
    assert not set(report["modules"]) & set(HEAVY)


@pytest.mark.parametrize(
    ("cpus", "load", "physical", "expected"),
    [
        (2, 0.1, 2, 2),  # idle 2-core machine: both cores
        (2, 3.5, 2, 1),  # busy machine: never below one thread
        (2, 1.2, 2, 1),  # one core taken
        (16, 0.0, 8, MAX_DEFAULT_THREADS),  # idle big machine: capped
        (16, 13.6, 8, 2),  # 2.4 idle cores round to 2
        (8, 0.0, 3, 3),  # fewer physical cores than the cap
    ],
)
def test_default_threads_are_the_idle_cores_capped(cpus, load, physical, expected):
    assert choose_threads(cpus, load, physical) == expected


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_flag_sets_torch_threads(restore_torch_threads):
    args = build_parser().parse_args(["evaluate", "some_run", "--threads", "3"])
    assert args.threads == 3
    assert configure_threads(args.threads) == 3 == torch.get_num_threads()


def test_default_leaves_an_explicit_omp_num_threads_alone(monkeypatch, restore_torch_threads):
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert configure_threads(None) == 2


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_threads_must_be_a_positive_integer(command, value, capsys):
    argv = [command] + (["run_dir"] if command in ("evaluate", "predict") else [])
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*argv, "--threads", value])
    assert exit_info.value.code == 2
    assert "--threads: expected an integer >= 1" in capsys.readouterr().err


def test_importing_mtlkit_is_light_and_its_subpackages_load_on_use():
    code = (
        "import json, sys, mtlkit; light = sorted(sys.modules); "
        "tasks = mtlkit.tasks.Task; analysis = mtlkit.analysis.delta_m; "
        "print(json.dumps({'light': light, 'names': dir(mtlkit)}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert not set(report["light"]) & set(HEAVY)
    assert {"__version__", "tasks", "analysis", "mtl_backward"} <= set(report["names"])
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mtlkit.nope


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (
            ["predict", "run", "--input", "x.csv", "--output", "y.csv", "--chunk-rows", "0"],
            "--chunk-rows",
        ),
        (["demo", "--quick", "--epochs", "0"], "--epochs"),
    ],
)
def test_a_count_below_one_is_a_usage_error_naming_the_option_typed(argv, option, capsys):
    """``predict --chunk-rows 0`` was refused naming data.stream_chunk_rows, a config field the
    user never typed; ``demo --epochs 0`` trained the demo's default epochs."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert f"argument {option}: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_predict_reads_as_many_rows_at_a_time_as_a_stream_by_default():
    from mtlkit.config.schema import DataConfig
    from mtlkit.data.stream.source import DEFAULT_CHUNK_ROWS

    args = build_parser().parse_args(["predict", "run", "--input", "x", "--output", "y"])
    assert args.chunk_rows == DataConfig().stream_chunk_rows == DEFAULT_CHUNK_ROWS
