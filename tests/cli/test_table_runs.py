"""Training on a user's table, exact resume after SIGKILL, and clean errors on bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtlkit.cli.main import main

TASK_FLAGS = [
    "--task",
    "grade:multiclass:grade",
    "--task",
    "passed:binary:passed",
    "--task",
    "score:regression:score",
]


def _table(n=200, seed=0, missing=0.2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    score = x @ np.array([1.0, -0.5, 0.3, 0.0]) + 0.1 * rng.normal(size=n)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["city"] = rng.choice(["x", "y", "z"], n)
    frame["grade"] = np.select([score < -0.5, score < 0.5], ["C", "B"], "A")
    frame["passed"] = np.where(score > 0, "yes", "no")
    frame["score"] = score * 10 + 50
    frame = frame.astype(object)
    for column in ("grade", "passed", "score", "b"):
        frame.loc[rng.random(n) < missing, column] = None
    frame.insert(0, "row_id", np.arange(n))
    return frame


def test_csv_train_report_predict_round_trip(tmp_path, capsys):
    _table().to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "t.csv"),
            *TASK_FLAGS,
            "--id-column",
            "row_id",
            "--epochs",
            "3",
            "--no-progress",
            "--out",
            str(out),
            "--split",
            "stratified",
            "--stratify",
            "grade",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "grade (multiclass): labelled train" in printed and "range [" in printed
    assert json.loads((out / "tasks.json").read_text())["preprocessor"]["indicators"] == ["b"]
    new = _table(n=7, seed=5, missing=0.0).drop(columns=["grade", "passed", "score"])
    new.to_csv(tmp_path / "new.csv", index=False)
    assert (
        main(
            [
                "predict",
                str(out),
                "--input",
                str(tmp_path / "new.csv"),
                "--output",
                str(tmp_path / "p.csv"),
                "--id-column",
                "row_id",
            ]
        )
        == 0
    )
    pred = pd.read_csv(tmp_path / "p.csv")
    assert pred["row_id"].tolist() == list(range(7))
    assert set(pred["grade"]) <= {"A", "B", "C"} and set(pred["passed"]) <= {"yes", "no"}
    assert {"grade_probability", "passed_probability", "score"} <= set(pred.columns)


def test_yaml_table_config_with_split_column(tmp_path):
    frame = _table()
    frame["part"] = np.where(
        np.arange(len(frame)) % 5 == 0,
        "test",
        np.where(np.arange(len(frame)) % 5 == 1, "val", "train"),
    )
    frame.to_parquet(tmp_path / "t.parquet")
    (tmp_path / "c.yaml").write_text(
        f"data:\n  path: {tmp_path / 't.parquet'}\n  split: column\n  split_column: part\n"
        "  id_column: row_id\n  tasks:\n    - {name: score, kind: regression}\n"
        "    - {name: pass, kind: binary, column: passed}\n"
        "training: {epochs: 1, progress: false}\n"
    )
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert set(summary["test"]) == {"score", "pass"}


def _train_cmd(csv, out, epochs):
    return [
        sys.executable,
        "-m",
        "mtlkit",
        "train",
        "--data",
        str(csv),
        *TASK_FLAGS,
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--no-progress",
        "--out",
        str(out),
        "--set",
        "model.encoder_options={hidden: [64, 64], dropout: 0.1}",
        "--set",
        "optim.scheduler=steplr",
        "--set",
        "optim.scheduler_options={step_size: 2}",
    ]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    _table(n=3000).to_csv(tmp_path / "t.csv", index=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    epochs = 6
    subprocess.run(
        _train_cmd(tmp_path / "t.csv", tmp_path / "a", epochs),
        env=env,
        check=True,
        capture_output=True,
    )

    victim = subprocess.Popen(
        _train_cmd(tmp_path / "t.csv", tmp_path / "b", epochs),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "b" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    time.sleep(0.2)  # into the middle of the next epoch
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = len(log.read_text().splitlines())
    assert 2 <= done < epochs

    resumed = subprocess.run(
        [sys.executable, "-m", "mtlkit", "train", "--resume", str(tmp_path / "b")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == epochs
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    best_a = torch.load(tmp_path / "a" / "model.pt")
    best_b = torch.load(tmp_path / "b" / "model.pt")
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))


def test_resume_refuses_a_changed_data_file(tmp_path, capsys):
    _table().to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "r"
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "t.csv"),
                *TASK_FLAGS,
                "--epochs",
                "1",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    _table(seed=9).to_csv(tmp_path / "t.csv", index=False)
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 2
    assert "changed since the run started" in capsys.readouterr().err


def test_non_finite_values_and_losses(tmp_path, capsys):
    frame = _table()
    frame["score"] = frame["score"].astype(object)
    frame.loc[5, "score"] = "inf"
    frame.to_csv(tmp_path / "t.csv", index=False)
    args = [
        "train",
        "--data",
        str(tmp_path / "t.csv"),
        "--task",
        "score:regression:score",
        "--epochs",
        "1",
        "--no-progress",
    ]
    assert main([*args, "--out", str(tmp_path / "inf")]) == 2
    assert "task 'score': column 'score', line 7" in capsys.readouterr().err

    _table().to_csv(tmp_path / "t.csv", index=False)
    code = main([*args, "--lr", "1e30", "--optimizer", "sgd", "--out", str(tmp_path / "nan")])
    err = capsys.readouterr().err
    assert code == 1
    assert "training stopped: task 'score': non-finite loss at epoch 1, step" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_checkpoint_survives_a_later_non_finite_loss(tmp_path):
    from mtlkit.data import MultiTaskDataset, make_loader
    from mtlkit.models import make_encoder, make_model
    from mtlkit.tasks import Task
    from mtlkit.training import NonFiniteLossError, Trainer, TrainingOptions, atomic_save

    tasks = [Task("r", "regression")]
    x = torch.randn(64, 3)
    data = MultiTaskDataset(x, {"r": x.sum(1)})
    model = make_model("hps", lambda: make_encoder("mlp", (3,), hidden=[8]), tasks)
    trainer = Trainer(model, tasks, options=TrainingOptions(progress=False))
    path = tmp_path / "checkpoint.pt"
    trainer.fit(
        make_loader(data, 16), epochs=1, on_epoch_end=lambda t, r: atomic_save(t.state_dict(), path)
    )
    saved = {k: v.clone() for k, v in torch.load(path, weights_only=False)["model"].items()}
    data.targets["r"][3] = float("inf")
    with pytest.raises(NonFiniteLossError, match="task 'r'"):
        trainer.fit(
            make_loader(data, 16),
            epochs=2,
            on_epoch_end=lambda t, r: atomic_save(t.state_dict(), path),
        )
    after = torch.load(path, weights_only=False)
    assert after["epoch"] == 1
    assert all(torch.equal(saved[k], after["model"][k]) for k in saved)
    assert not list(tmp_path.glob(".checkpoint.pt.*"))

    skipping = Trainer(model, tasks, options=TrainingOptions(progress=False, on_nonfinite="skip"))
    skipping.fit(make_loader(data, 16), epochs=1)
    assert skipping.skipped_batches == 1


def test_tensorboard_logging(tmp_path):
    """The per-epoch scalars, the strategy's task weights among them, reach TensorBoard and
    metrics.jsonl (tensorboard is in the dev extra: no skip)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    assert (
        main(
            [
                "train",
                "--dataset",
                "penguins",
                "--epochs",
                "2",
                "--no-progress",
                "--out",
                str(out),
                "--set",
                "training.tensorboard=true",
            ]
        )
        == 0
    )
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    tasks = list(records[0]["train_loss"])
    for task in tasks:
        logged = [e.value for e in events.Scalars(f"task_weight/{task}")]
        assert logged == pytest.approx([r["task_weights"][task] for r in records])
        assert [e.step for e in events.Scalars(f"train_loss/{task}")] == [1, 2]


# ----------------------------------------------------------------------------- property-based
_COLUMNS = ["a", "b", "city", "grade", "passed", "score"]
_cell = st.one_of(
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(["x", "y", "", "yes", "no", "1e3", "A"]),
    st.none(),
)


@st.composite
def _csv_and_args(draw):
    n = draw(st.integers(0, 30))
    if draw(st.booleans()):
        frame = _table(
            n=max(n, 1),
            seed=draw(st.integers(0, 50)),
            missing=draw(st.sampled_from([0.0, 0.3, 0.95])),
        )
    else:
        frame = pd.DataFrame({c: [draw(_cell) for _ in range(n)] for c in _COLUMNS})
    specs = draw(
        st.lists(
            st.sampled_from(
                [
                    "grade:multiclass:grade",
                    "passed:binary:passed",
                    "score:regression:score",
                    "a:regression:a",
                    "city:binary:city",
                    "x:ordinal:a",
                    "q:regression:nope",
                    "bad",
                ]
            ),
            min_size=0,
            max_size=3,
        )
    )
    args = []
    for spec in specs:
        args += ["--task", spec]
    extra = draw(
        st.sampled_from(
            [
                [],
                ["--features", "a,b"],
                ["--features", "a,zz"],
                ["--set", "optim.lr=-1"],
                ["--set", "training.epochs=0"],
                ["--set", "data.splt=random"],
                ["--split", "stratified"],
                ["--set", "data.val_size=0.95"],
                ["--batch-size", "3"],
            ]
        )
    )
    return frame, args + extra


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_csv_and_args())
def test_any_table_and_flags_end_in_success_or_a_clean_error(tmp_path_factory, case):
    frame, args = case
    tmp = tmp_path_factory.mktemp("prop")
    frame.to_csv(tmp / "d.csv", index=False)
    out = tmp / "run"
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(
            [
                "train",
                "--data",
                str(tmp / "d.csv"),
                *args,
                "--epochs",
                "1",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
    message = err.getvalue().strip()
    assert code in (0, 2), message
    if code == 2:
        assert len(message.splitlines()) == 1 and message.startswith("mtlkit train: error: ")
        assert "Traceback" not in message
        assert not out.exists(), "a failed run must write nothing"
    else:
        assert (out / "summary.json").is_file()
