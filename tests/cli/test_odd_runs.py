"""A corpus of odd configs, command lines, run directories and interruptions for ``train``.

Every case ends either in success with the right result (checked), or in exit code 2 with ONE
line on stderr naming the culprit (field, flag or file), no traceback and nothing written; an
interruption ends in one line, exit 130/143 and a run that ``--resume`` finishes exactly. The
CLI runs in-process on the penguins data for one or two epochs. Add a case by adding a row.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
import yaml

import mtlkit.training.checkpoint as checkpoint_module
from mtlkit.cli.main import main
from mtlkit.training.trainer import Trainer

QUICK = ["--dataset", "penguins", "--epochs", "1", "--no-progress", "--batch-size", "64"]
RUN_FILES = ("config.yaml", "tasks.json", "metrics.jsonl", "checkpoint.pt", "model.pt")


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _assert_one_line_error(code: int, err: str, culprit: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert culprit in lines[0], lines[0]


def _strict(path: Path) -> object:
    """Parse JSON refusing NaN/Infinity (not JSON)."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{path.name} holds {token}")

    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]
    return json.loads(text, parse_constant=refuse)


def _snapshot(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished 2-epoch penguins run (copied by the tests that change it)."""
    out = tmp_path_factory.mktemp("odd") / "done"
    code, _, err = _cli("train", *QUICK, "--epochs", "2", "--out", str(out))
    assert code == 0, err
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


# ------------------------------------------------------------ bad config / command line: exit 2
BAD_FLAGS = [
    # malformed --set YAML
    (["--set", "optim.lr=[1"], "--set 'optim.lr=[1'"),
    (["--set", "model.encoder_options={hidden: [8"], "--set 'model.encoder_options="),
    (["--set", "optim.options=a: b: c"], "--set 'optim.options=a: b: c'"),
    (["--set", "training.epochs='3"], '--set "training.epochs=\'3"'),
    (["--set", "nonsense"], "expected KEY=VALUE"),
    (["--set", "=3"], "expected KEY=VALUE"),
    # floats: NaN/inf and meaningless non-positive values
    (["--set", "optim.lr=.nan"], "optim.lr: expected a finite number"),
    (["--set", "optim.lr=.inf"], "optim.lr: expected a finite number"),
    (["--set", "optim.lr=-.inf"], "optim.lr: expected a finite number"),
    (["--lr", "nan"], "optim.lr: expected a finite number"),
    (["--lr", "inf"], "optim.lr: expected a finite number"),
    (["--lr", "0"], "optim.lr: expected a value > 0"),
    (["--lr", "-0.1"], "optim.lr: expected a value > 0"),
    (["--set", "training.grad_clip=.nan"], "training.grad_clip: expected a finite number"),
    (["--set", "training.grad_clip=0"], "training.grad_clip: expected a value > 0"),
    (["--set", "training.grad_clip=-1"], "training.grad_clip: expected a value > 0"),
    (["--set", "regularization.strength=.nan"], "regularization.strength: expected a finite"),
    (["--set", "regularization.strength=.inf"], "regularization.strength: expected a finite"),
    (["--set", "regularization.strength=-1"], "regularization.strength: expected a value >= 0"),
    (["--set", "tasks.sex.weight=.nan"], "tasks.sex.weight: expected a finite number"),
    (["--set", "tasks.sex.weight=-1"], "tasks.sex.weight"),
    (["--set", "data.val_size=.nan"], "data.val_size: expected a finite number"),
    # integers and choices
    (["--epochs", "0"], "training.epochs: expected a value >= 1"),
    (["--batch-size", "0"], "data.batch_size: expected a value >= 1"),
    (["--patience", "0"], "training.patience: expected a value >= 1"),
    (["--set", "data.batch_size=1e9"], "data.batch_size: expected an integer"),
    (["--set", "threads=0"], "threads: expected a value >= 1"),
    (["--set", "training.on_nonfinite=maybe"], "training.on_nonfinite: expected one of"),
    (["--set", "training.tensorboard=maybe"], "training.tensorboard: expected true or false"),
    (["--set", "training.mode=jiont"], "did you mean 'joint'"),
    (["--set", "seed=abc"], "seed: expected an integer"),
    (["--set", "optim.lrr=1"], "optim.lrr: unknown key"),
    (["--set", "select_tasks=[nope]"], "select_tasks: unknown task 'nope'"),
    # devices
    (["--device", "mps"], "device: 'mps' requested but MPS"),
    (["--device", "tpu"], "device: expected auto, cpu, cuda, cuda:N or mps"),
    (["--device", "cpu:x"], "device: expected auto, cpu, cuda, cuda:N or mps"),
    (["--device", "meta"], "device: expected auto, cpu, cuda, cuda:N or mps"),
    # model: widths, options, names
    (["--set", "model.encoder_options.hidden=[-3]"], "model: cannot build 'hps'"),
    (["--set", "model.encoder_options.hidden=[16, -1]"], "model: cannot build 'hps'"),
    (["--set", "model.encoder_options.hidden=[0]"], "layer widths must be >= 1"),
    (["--set", "model.encoder_options.hidden=[]"], "model.hidden"),
    (["--set", "model.encoder_options.hidden=abc"], "model: cannot build 'hps'"),
    (["--set", "model.encoder_options.dropout=2"], "model: cannot build 'hps'"),
    (["--set", "model.encoder_options.nonsense=1"], "model.encoder_options"),
    (["--set", "model.encoder=lenet"], "model: cannot build 'hps' with encoder 'lenet'"),
    (["--arch", "hsp"], "did you mean 'hps'"),
    (["--arch", "mmoe", "--set", "model.arch_options.num_experts=-1"], "num_experts"),
    (["--weighting", "nope"], "unknown strategy 'nope'"),
    (["--set", "weighting.options.nonsense=1"], "weighting 'ew'"),
    (["--optimizer", "nope"], "optim.name: unknown optimizer 'nope'"),
    (["--optimizer", "sgd", "--set", "optim.options.momentum=abc"], "optim.options"),
    (["--set", "optim.scheduler=nope"], "optim.scheduler: unknown scheduler"),
    (["--set", "optim.scheduler=steplr"], "optim.scheduler_options"),
    (["--set", "training.monitor=species:mse"], "training.monitor"),
    # files named by the config
    (["--init-from", "/nonexistent/run"], "model.init_from"),
    (["--set", "model.pretrained_encoder=/nonexistent.pt"], "model.pretrained_encoder"),
    (["--dataset", "pengiuns"], "did you mean 'penguins'"),
]


@pytest.mark.parametrize("flags, culprit", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flags_fail_in_one_line_and_write_nothing(tmp_path, flags, culprit):
    out = tmp_path / "out"
    code, _, err = _cli("train", *QUICK, "--out", str(out), *flags)
    _assert_one_line_error(code, err, culprit)
    assert not out.exists()


@pytest.mark.parametrize(
    "text, culprit",
    [
        ("optim: {lr: .nan}\n", "optim.lr: expected a finite number"),
        ("optim:\n  lr: [1\n", "not valid YAML"),
        ("- 1\n- 2\n", "mapping at the top level"),
        ("training: 3\n", "training: expected a mapping"),
        ("model: {encoder_options: {hidden: [-4]}}\n", "model: cannot build"),
    ],
)
def test_bad_config_files_fail_in_one_line(tmp_path, text, culprit):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    out = tmp_path / "out"
    code, _, err = _cli("train", *QUICK, "--config", str(config), "--out", str(out))
    _assert_one_line_error(code, err, culprit)
    assert not out.exists()


def test_missing_config_file(tmp_path):
    code, _, err = _cli("train", "--config", str(tmp_path / "nope.yaml"))
    _assert_one_line_error(code, err, "nope.yaml")


# ----------------------------------------------------------------------------- --out and files
def test_out_naming_a_file_is_refused(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    code, _, err = _cli("train", *QUICK, "--out", str(target), "--overwrite")
    _assert_one_line_error(code, err, "is a file, not a directory")
    assert target.read_text() == "keep me"


def test_out_below_a_file_is_refused(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    code, _, err = _cli("train", *QUICK, "--out", str(tmp_path / "file.txt" / "run"))
    _assert_one_line_error(code, err, "not writable")


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    code, _, err = _cli("train", *QUICK, "--out", str(folder), "--overwrite")
    _assert_one_line_error(code, err, "not a run directory")
    assert (folder / "thesis.tex").read_text() == "precious"


def test_existing_run_needs_overwrite_and_says_resume(run_copy):
    before = _snapshot(run_copy)
    code, _, err = _cli("train", *QUICK, "--out", str(run_copy))
    _assert_one_line_error(code, err, "--overwrite")
    assert "--resume" in err and _snapshot(run_copy) == before


def test_unwritable_output_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("mtlkit.runs.rundir.os.access", lambda path, mode: False)
    code, _, err = _cli("train", *QUICK, "--out", str(tmp_path / "out"))
    _assert_one_line_error(code, err, "not writable")
    assert not (tmp_path / "out").exists()


def test_missing_optional_dependency_is_found_before_writing(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    out = tmp_path / "out"
    code, _, err = _cli("train", *QUICK, "--out", str(out), "--set", "training.tensorboard=true")
    _assert_one_line_error(code, err, "training.tensorboard: needs the tensorboard package")
    assert not out.exists()
    monkeypatch.undo()
    code, _, err = _cli("train", *QUICK, "--out", str(out))  # the retry is not blocked
    assert code == 0, err


def test_overwrite_removes_a_stale_baseline_folder(run_copy):
    (run_copy / "stl").mkdir()
    (run_copy / "stl" / "config.yaml").write_text("stale")
    (run_copy / ".checkpoint.pt.abc.tmp").write_bytes(b"half")
    code, _, err = _cli("train", *QUICK, "--out", str(run_copy), "--overwrite")
    assert code == 0, err
    assert not (run_copy / "stl").exists()
    assert not list(run_copy.glob(".*.tmp")) and not (run_copy / ".lock").exists()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        code, _, err = _cli("train", *QUICK, "--out", str(tmp_path / "out"))
    finally:
        os.umask(previous)
    assert code == 0, err
    for name in (*RUN_FILES, "summary.json"):
        assert (tmp_path / "out" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_run_files_are_strict_json(finished_run):
    records = _strict(finished_run / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    assert set(_strict(finished_run / "summary.json")["test"]) == {"species", "sex", "body_mass"}
    _strict(finished_run / "tasks.json")


# ------------------------------------------------------------------------------------- resume
RESUME_CHANGES = [
    (["--lr", "0.5"], "optim.lr: 0.001 -> 0.5"),
    (["--seed", "3"], "seed: 0 -> 3"),
    (["--weighting", "uw"], "weighting.name: 'ew' -> 'uw'"),
    (["--batch-size", "16"], "data.batch_size: 64 -> 16"),
    (["--set", "optim.lr=0.1"], "optim.lr: 0.001 -> 0.1"),
    (["--set", "regularization.kind=l2"], "regularization.kind: 'none' -> 'l2'"),
    (["--arch", "mmoe"], "model.arch: 'hps' -> 'mmoe'"),
    (["--dataset", "digits"], "data.dataset: 'penguins' -> 'digits'"),
    (["--baselines"], "baselines: False -> True"),
    (["--optimizer", "sgd"], "optim.name: 'adam' -> 'sgd'"),
    (["--lr", "0.5", "--seed", "2"], "optim.lr: 0.001 -> 0.5; seed: 0 -> 2"),
    (["--set", "optim.lr=[1"], "--set 'optim.lr=[1'"),
    (["--config", "x.yaml"], "drop --config"),
    (["--out", "elsewhere"], "drop --out"),
    (["--overwrite"], "drop --overwrite"),
]


@pytest.mark.parametrize(
    "flags, culprit", RESUME_CHANGES, ids=[" ".join(f) for f, _ in RESUME_CHANGES]
)
def test_resume_refuses_flags_that_would_change_the_run(run_copy, flags, culprit):
    before = _snapshot(run_copy)
    code, _, err = _cli("train", "--resume", str(run_copy), *flags)
    _assert_one_line_error(code, err, culprit)
    assert _snapshot(run_copy) == before


def test_resume_accepts_flags_equal_to_the_run(run_copy):
    code, _, err = _cli("train", "--resume", str(run_copy), "--lr", "0.001", "--no-progress")
    assert code == 0, err


def test_resume_with_fewer_epochs_than_done_keeps_config(run_copy):
    before = _snapshot(run_copy)
    code, _, err = _cli("train", "--resume", str(run_copy), "--epochs", "1")
    _assert_one_line_error(code, err, "--epochs 1: the run has already trained 2 epochs")
    assert _snapshot(run_copy) == before


def test_resume_to_more_epochs_continues_and_records_them(run_copy):
    code, _, err = _cli("train", "--resume", str(run_copy), "--epochs", "3", "--no-progress")
    assert code == 0, err
    assert [r["epoch"] for r in _strict(run_copy / "metrics.jsonl")] == [1, 2, 3]
    assert yaml.safe_load((run_copy / "config.yaml").read_text())["training"]["epochs"] == 3


@pytest.mark.parametrize(
    "damage, culprit",
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "truncated"),
        (lambda p: p.write_text("not a checkpoint"), "truncated or not a file saved by mtlkit"),
        (lambda p: torch.save({"weights": 1}, p), "not an mtlkit training checkpoint"),
        (lambda p: torch.save([1, 2], p), "not an mtlkit training checkpoint"),
    ],
    ids=["empty", "truncated", "text", "other-dict", "list"],
)
def test_damaged_checkpoint_is_a_one_line_error(run_copy, damage, culprit):
    damage(run_copy / "checkpoint.pt")
    code, _, err = _cli("train", "--resume", str(run_copy))
    _assert_one_line_error(code, err, culprit)
    assert "checkpoint.pt" in err


@pytest.mark.parametrize(
    "damage, culprit",
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "truncated"),
        (lambda p: torch.save({"encoder.x": torch.zeros(2)}, p), "does not hold the weights"),
    ],
    ids=["empty", "truncated", "foreign-weights"],
)
def test_damaged_model_is_a_one_line_error_at_evaluate(run_copy, damage, culprit):
    damage(run_copy / "model.pt")
    code, _, err = _cli("evaluate", str(run_copy))
    _assert_one_line_error(code, err, culprit)
    assert "model.pt" in err


def test_damaged_tasks_json_is_a_one_line_error(run_copy):
    (run_copy / "tasks.json").write_text("{")
    code, _, err = _cli("train", "--resume", str(run_copy))
    _assert_one_line_error(code, err, "tasks.json")


@pytest.mark.parametrize("target", ["missing", "not-a-run"])
def test_resume_of_something_that_is_not_a_run(tmp_path, target):
    path = tmp_path / target
    if target == "not-a-run":
        path.mkdir()
    code, _, err = _cli("train", "--resume", str(path))
    _assert_one_line_error(code, err, "is not a run directory")


def test_run_killed_before_its_first_checkpoint_restarts_from_scratch(run_copy, finished_run):
    for name in ("checkpoint.pt", "model.pt", "summary.json"):
        (run_copy / name).unlink()
    (run_copy / "metrics.jsonl").write_text('{"epoch": 1, "half a line')
    (run_copy / ".checkpoint.pt.x1.tmp").write_bytes(b"partial")
    (run_copy / ".lock").write_text("999999999 " + os.uname().nodename + "\n")  # dead process
    code, out, err = _cli("train", "--resume", str(run_copy))
    assert code == 0, err
    assert "from scratch" in out
    assert not list(run_copy.glob(".*.tmp")) and not (run_copy / ".lock").exists()
    mine, reference = _strict(run_copy / "metrics.jsonl"), _strict(finished_run / "metrics.jsonl")
    assert [r["train_loss"] for r in mine] == [r["train_loss"] for r in reference]


def test_a_second_process_on_the_same_run_is_refused(run_copy):
    (run_copy / ".lock").write_text(f"{os.getpid()} {os.uname().nodename}\n")  # alive: us
    before = _snapshot(run_copy)
    code, _, err = _cli("train", "--resume", str(run_copy))
    _assert_one_line_error(code, err, f"is in use by process {os.getpid()}")
    assert _snapshot(run_copy) == before


# ---------------------------------------------------------------- disk full and interruptions
def _fail_on_call(n: int, exc: BaseException, target=torch.save):
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return target(*args, **kwargs)

    return wrapper


def test_disk_full_mid_run_keeps_the_checkpoint_and_resumes(tmp_path, monkeypatch, finished_run):
    out = tmp_path / "run"
    full = OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint_module.torch, "save", _fail_on_call(2, full))
    code, _, err = _cli("train", *QUICK, "--epochs", "2", "--out", str(out))
    _assert_one_line_error(code, err, "No space left on device")
    assert "checkpoint.pt" in err and "--resume" in err
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 1  # intact
    monkeypatch.undo()
    code, _, err = _cli("train", "--resume", str(out))
    assert code == 0, err
    _assert_same_model(out, finished_run)


def _assert_same_model(run: Path, reference: Path) -> None:
    mine = torch.load(run / "model.pt", weights_only=True)
    theirs = torch.load(reference / "model.pt", weights_only=True)
    for name, value in theirs.items():
        torch.testing.assert_close(mine[name], value, rtol=0, atol=0)


INTERRUPTIONS = {
    # where: (object, attribute, n-th call that is interrupted)
    "checkpoint-write-epoch-1": (checkpoint_module.torch, "save", 1),
    "checkpoint-write-epoch-2": (checkpoint_module.torch, "save", 2),
    "validation-epoch-2": (Trainer, "evaluate", 2),
    "final-test-evaluation": (Trainer, "evaluate", 3),
    "train-step-5": (Trainer, "_update", 5),  # the 5th optimizer step
    "model-write": (checkpoint_module.torch, "save", 3),
}


@pytest.mark.parametrize("where", list(INTERRUPTIONS))
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interruption_leaves_a_resumable_run(tmp_path, monkeypatch, finished_run, where, signum):
    owner, name, n = INTERRUPTIONS[where]
    original = getattr(owner, name)

    def interrupt():
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)  # the CLI's handler raises in this thread

    calls = {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            interrupt()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, patched)
    out = tmp_path / "run"
    code, _, err = _cli("train", *QUICK, "--epochs", "2", "--out", str(out))
    monkeypatch.undo()
    assert code == 128 + signum, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"; resume with mtlkit train --resume {out}" in lines[0]
    assert "interrupted at epoch" in lines[0] or "interrupted after epoch" in lines[0]
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()
    if (out / "checkpoint.pt").exists():
        torch.load(out / "checkpoint.pt", weights_only=False)  # whole
    code, _, err = _cli("train", "--resume", str(out))
    assert code == 0, err
    _assert_same_model(out, finished_run)
    assert [r["epoch"] for r in _strict(out / "metrics.jsonl")] == [1, 2]


def test_only_the_main_rank_adds_the_baselines_to_summary(tmp_path, monkeypatch):
    """Under torchrun every rank trains the baselines; rank 0 alone rewrites summary.json."""
    import dataclasses

    from mtlkit.cli import train as train_module

    real = train_module.train_run

    def as_rank_1(config, out, **kwargs):
        result = real(config, out, **kwargs)
        return dataclasses.replace(result, is_main=config.model.arch == "stl")

    monkeypatch.setattr(train_module, "train_run", as_rank_1)
    out = tmp_path / "run"
    code, printed, err = _cli("train", *QUICK, "--out", str(out), "--baselines")
    assert code == 0, err
    assert "Δm" in printed and (out / "stl" / "summary.json").is_file()
    assert "delta_m" not in _strict(out / "summary.json")  # written by "rank 0" only
    monkeypatch.undo()
    out2 = tmp_path / "run2"
    code, _, err = _cli("train", *QUICK, "--out", str(out2), "--baselines")
    assert code == 0, err
    summary = _strict(out2 / "summary.json")
    assert set(summary["baseline_test"]) == set(summary["test"]) and "delta_m" in summary


def test_resume_finishes_interrupted_baselines(tmp_path, monkeypatch):
    """Interrupted while the single-task baselines train, ``--resume`` completes them and Δm."""
    from mtlkit.cli import train as train_module

    real = train_module.train_run

    def interrupt_baseline(config, out, **kwargs):
        if config.model.arch == "stl":
            monkeypatch.setattr(Trainer, "_update", _raise_keyboard_interrupt)  # optimizer step
        return real(config, out, **kwargs)

    monkeypatch.setattr(train_module, "train_run", interrupt_baseline)
    out = tmp_path / "run"
    code, _, err = _cli("train", *QUICK, "--out", str(out), "--baselines")
    assert code == 130 and err.strip().endswith(f"; resume with mtlkit train --resume {out}")
    monkeypatch.undo()
    code, printed, err = _cli("train", "--resume", str(out))
    assert code == 0, err
    assert "delta_m" in _strict(out / "summary.json") and "Δm" in printed


def _raise_keyboard_interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_skipped_batches_are_reported_and_an_all_skipped_epoch_stops(tmp_path):
    out = tmp_path / "run"
    skip = ["--set", "training.on_nonfinite=skip", "--lr", "1e30", "--out", str(out)]
    code, printed, err = _cli("train", *QUICK, *skip)  # the first step blows the weights up
    assert code == 0, err
    skipped = _strict(out / "summary.json")["skipped_batches"]
    assert skipped >= 1 and f"skipped {skipped} batch(es) with a non-finite loss" in printed
    code, _, err = _cli("train", *QUICK, *skip, "--epochs", "3", "--overwrite")
    assert code == 1 and "every batch of epoch" in err and len(err.strip().splitlines()) == 1
    assert _strict(out / "metrics.jsonl")  # the epochs before it are logged and checkpointed


def test_baselines_keep_only_the_options_stl_has(tmp_path):
    """``--arch mmoe`` options (num_experts) are mmoe's; the stl baselines keep head_hidden."""
    out = tmp_path / "run"
    options = ["--set", "model.arch_options={num_experts: 2, head_hidden: 4}"]
    mmoe = ["--arch", "mmoe", *options, "--baselines", "--epochs", "2"]
    code, _, err = _cli("train", *QUICK, *mmoe, "--out", str(out))
    assert code == 0, err
    stl = yaml.safe_load((out / "stl" / "config.yaml").read_text())["model"]
    assert stl["arch"] == "stl" and stl["arch_options"] == {"head_hidden": 4}
    summary = _strict(out / "summary.json")
    assert "baseline_test" in summary
    # Δm is a number, or null with the reason (a baseline metric of 0 after 2 epochs)
    assert isinstance(summary["delta_m"], float) or summary["delta_m_left_out"]


@pytest.mark.parametrize("failing_write", [1, 2], ids=["tasks.json", "config.yaml"])
def test_disk_full_while_starting_leaves_nothing_behind(tmp_path, monkeypatch, failing_write):
    real = os.fsync
    monkeypatch.setattr(
        checkpoint_module.os, "fsync", _fail_on_call(failing_write, OSError(28, "full"), real)
    )
    out = tmp_path / "run"
    code, _, err = _cli("train", *QUICK, "--out", str(out))
    _assert_one_line_error(code, err, "cannot write")
    assert not out.exists() or not any(out.iterdir())
    monkeypatch.undo()
    code, _, err = _cli("train", *QUICK, "--out", str(out))  # the retry is not blocked
    assert code == 0, err


@pytest.mark.parametrize("command", ["init-from", "pretrained-encoder", "predict"])
def test_damaged_weights_named_by_other_commands(run_copy, tmp_path, command):
    (run_copy / "model.pt").write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "out"
    if command == "init-from":
        argv = ["train", *QUICK, "--init-from", str(run_copy), "--out", str(out)]
    elif command == "pretrained-encoder":
        weights = f"model.pretrained_encoder={run_copy / 'model.pt'}"
        argv = ["train", *QUICK, "--set", weights, "--out", str(out)]
    else:
        rows = tmp_path / "rows.csv"
        rows.write_text("bill_length_mm,bill_depth_mm,flipper_length_mm,island\n39,18,181,Dream\n")
        argv = ["predict", str(run_copy), "--input", str(rows), "--output", str(out)]
    code, _, err = _cli(*argv)
    _assert_one_line_error(code, err, "model.pt")
    assert "truncated or not a file saved by mtlkit" in err and not out.exists()


def test_a_lock_from_another_host_is_not_taken_over(run_copy):
    (run_copy / ".lock").write_text("123 some-other-node\n")  # cannot check that pid from here
    code, _, err = _cli("train", "--resume", str(run_copy))
    _assert_one_line_error(code, err, "is in use by process 123 on some-other-node")
    assert (run_copy / ".lock").read_text() == "123 some-other-node\n"


@pytest.mark.parametrize("change", ["deleted", "edited"])
def test_resume_refuses_a_data_file_that_is_gone_or_changed(tmp_path, change):
    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n" + "".join(f"{i},{i % 7},{2 * i}\n" for i in range(40)))
    out = tmp_path / "run"
    code, _, err = _cli(
        "train", "--data", str(table), "--task", "y:regression:y", *QUICK[2:], "--out", str(out)
    )
    assert code == 0, err
    checkpoint = out / "checkpoint.pt"
    checkpoint.unlink()  # as if killed before it: --resume would train from scratch
    if change == "deleted":
        table.unlink()
    else:
        table.write_text(table.read_text().replace("3,3,6", "3,3,7"))
    code, _, err = _cli("train", "--resume", str(out))
    _assert_one_line_error(code, err, "gone" if change == "deleted" else "changed")
    assert not checkpoint.exists()
