"""``data.stream`` runs end to end: a Parquet directory trained in chunks, mid-epoch checkpoints,
an exact resume, and MMoE / PLE / HPS on recommender data with masked conversion labels."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import mtlkit.runs.train as run_module
from mtlkit.cli.main import main
from mtlkit.config import Config, ConfigError, from_dict
from mtlkit.data.table import read_table
from mtlkit.runs import load, load_bundle
from mtlkit.runs.stream import STREAM_CHECKPOINT_EVERY_STEPS, StreamBundle, checkpoint_every_steps
from mtlkit.runs.train import RunInterrupted, resume_run, train_run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "recsys"))
from write_parquet import write  # noqa: E402

from mtlkit.data.builtin.recsys_synthetic import RecsysGenerator  # noqa: E402

ROWS_PER_FILE = 300


@pytest.fixture(scope="module")
def recsys_dir(tmp_path_factory) -> Path:
    """Two Parquet files of the synthetic recommender data (600 rows; conversion null where
    click is 0), written in chunks of 100 rows."""
    folder = tmp_path_factory.mktemp("recsys")
    for part in range(2):
        generator = RecsysGenerator(n_users=50, n_items=200, n_contexts=5, seed=part)
        write(str(folder / f"part-{part}.parquet"), ROWS_PER_FILE, generator, 100)
    return folder


def _config(path: Path, **sections) -> Config:
    raw = {
        "data": {
            "path": str(path),
            "stream": True,
            "stream_chunk_rows": 128,
            "shuffle_buffer": 64,
            "batch_size": 32,
            "tasks": [
                {"name": "click", "kind": "binary"},
                {"name": "conversion", "kind": "binary"},
            ],
            "features": ["user_id", "item_id", "context_id", "x0", "x1", "x2", "x3"],
            "categorical": ["user_id", "item_id", "context_id"],
        },
        "model": {"arch": "hps", "encoder_options": {"hidden": [16], "dropout": 0.1}},
        "training": {"epochs": 2, "progress": False},
        "device": "cpu",
        "seed": 1,
    }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return from_dict(Config, raw)


def _records(path: Path) -> list[dict]:
    lines = (path / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


def test_streamed_run_trains_and_writes_a_run_directory(recsys_dir, tmp_path):
    config = _config(recsys_dir)
    result = train_run(config, tmp_path / "run")
    assert isinstance(result.bundle, StreamBundle)
    table = result.bundle.table
    assert table.num_rows("all") == 2 * ROWS_PER_FILE
    assert len(table.units) == 2 * 3  # 3 row groups of 100 rows in each file
    meta = json.loads((tmp_path / "run" / "tasks.json").read_text())
    assert meta["preprocessor"] == table.preprocessor.to_dict()
    assert meta["data_sha256"]
    assert set(result.test) == {"click", "conversion"}
    records = _records(tmp_path / "run")
    steps = -(-table.num_rows("train") // 32)
    assert [r["step"] for r in records] == [steps, 2 * steps]


def test_workers_do_not_change_a_streamed_run(recsys_dir):
    plain = train_run(_config(recsys_dir, training={"epochs": 1}))
    workers = train_run(_config(recsys_dir, training={"epochs": 1}, data={"num_workers": 2}))
    _assert_same_weights(plain.model.state_dict(), workers.model.state_dict())


def test_stream_checkpoints_every_1000_steps_unless_set(recsys_dir):
    assert checkpoint_every_steps(_config(recsys_dir)) == STREAM_CHECKPOINT_EVERY_STEPS
    assert checkpoint_every_steps(_config(recsys_dir, training={"checkpoint_every_steps": 7})) == 7
    in_memory = _config(recsys_dir, data={"stream": False})
    assert checkpoint_every_steps(in_memory) is None


def test_stream_resume_from_a_mid_epoch_checkpoint_is_bit_identical(
    recsys_dir, tmp_path, monkeypatch
):
    config = _config(recsys_dir, training={"checkpoint_every_steps": 3})
    reference = train_run(config, tmp_path / "reference")

    save, seen = run_module.atomic_save, []

    def save_then_interrupt(obj, path):
        save(obj, path)
        if Path(path).name == "checkpoint.pt" and obj["loader"]["batches"] > 0:
            seen.append(obj["step"])
            if obj["epoch"] == 1:  # inside the second epoch: the buffer holds rows
                raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "atomic_save", save_then_interrupt)
    with pytest.raises(RunInterrupted, match="interrupted at epoch 2"):
        train_run(config, tmp_path / "killed")
    state = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1 and state["loader"]["batches"] > 0
    assert len(state["loader"]["buffer"]["inputs"]) > 0
    monkeypatch.undo()
    resumed = resume_run(tmp_path / "killed")

    _assert_same_weights(reference.model.state_dict(), resumed.model.state_dict())
    last = torch.load(tmp_path / "reference" / "checkpoint.pt", weights_only=False)
    again = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    _assert_same_weights(last["model"], again["model"])
    assert _records(tmp_path / "killed") == _records(tmp_path / "reference")


def test_resume_refuses_a_changed_stream(recsys_dir, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for file in recsys_dir.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    config = _config(folder, training={"epochs": 1})
    train_run(config, tmp_path / "run")
    (folder / "part-1.parquet").unlink()
    with pytest.raises(ConfigError, match="changed since the run started"):
        resume_run(tmp_path / "run", {"training.epochs": 2})


@pytest.mark.parametrize(
    ("task", "option"), [("conversion", "pos_weight"), ("click", "class_weight")]
)
def test_balanced_weights_of_a_stream_equal_the_in_memory_ones(recsys_dir, task, option):
    file = sorted(recsys_dir.glob("*.parquet"))[0]  # load_table reads one file
    weights = {"tasks": {task: {option: "balanced"}}}
    streamed = load_bundle(_config(file, **weights))
    in_memory = load_bundle(_config(file, **weights, data={"stream": False, "split": "hash"}))
    fitted = getattr(streamed.task(task), option)
    assert isinstance(fitted, list) and fitted != [1.0, 1.0]
    assert fitted == pytest.approx(getattr(in_memory.task(task), option), rel=1e-12)


def test_stream_refuses_balanced_weights_it_cannot_count(tmp_path):
    frame = pd.DataFrame({"x": np.arange(40.0), "a": [0, 1] * 20, "b": [1, 0, 0, 1] * 10})
    frame.to_csv(tmp_path / "t.csv", index=False)
    raw = {
        "data": {
            "path": str(tmp_path / "t.csv"),
            "stream": True,
            "tasks": [{"name": "ab", "kind": "multilabel", "column": "a+b"}],
        },
        "tasks": {"ab": {"pos_weight": "balanced"}},
    }
    with pytest.raises(ConfigError, match="tasks.ab.pos_weight: 'balanced' is not available"):
        load_bundle(from_dict(Config, raw))


# ---------------------------------------------------------------------------------- predict
@pytest.fixture(scope="module")
def streamed_run(recsys_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "streamed"
    train_run(_config(recsys_dir, training={"epochs": 1}), out)
    return out


def _in_memory_prediction(run, files: list[Path]) -> pd.DataFrame:
    frames = [run.predict(read_table(f), all_probabilities=True) for f in files]
    return pd.concat(frames, ignore_index=True)


def test_predict_file_in_chunks_equals_the_in_memory_prediction(streamed_run, recsys_dir, tmp_path):
    run = load(streamed_run)
    files = sorted(recsys_dir.glob("*.parquet"))
    out = tmp_path / "p.csv"
    counts = run.predict_file(recsys_dir, out, all_probabilities=True, chunk_rows=7)
    assert counts["rows"] == 2 * ROWS_PER_FILE
    expected = _in_memory_prediction(run, files)
    expected.to_csv(tmp_path / "whole.csv", index=False)  # the same CSV writer, in one go
    # labels exact; probabilities up to float32 rounding (the batch size changes the kernels)
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(tmp_path / "whole.csv"), rtol=1e-6)


def test_predict_command_streams_a_csv_in_input_order_with_ids(streamed_run, recsys_dir, tmp_path):
    frame = pd.concat([read_table(f) for f in sorted(recsys_dir.glob("*.parquet"))])
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.insert(0, "row", range(len(frame)))
    frame.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "p.csv"
    args = ["predict", str(streamed_run), "--input", str(tmp_path / "new.csv"), "--output"]
    assert main([*args, str(out), "--id-column", "row", "--chunk-rows", "50"]) == 0
    written = pd.read_csv(out)
    assert written["row"].tolist() == list(range(len(frame)))
    run = load(streamed_run)
    expected = run.predict(read_table(tmp_path / "new.csv"))
    expected.insert(0, "row", frame["row"])
    expected.to_csv(tmp_path / "whole.csv", index=False)
    pd.testing.assert_frame_equal(written, pd.read_csv(tmp_path / "whole.csv"), rtol=1e-6)


def test_predict_file_leaves_no_partial_output_on_a_bad_row(streamed_run, recsys_dir, tmp_path):
    frame = read_table(sorted(recsys_dir.glob("*.parquet"))[0])
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[250, "x1"] = "oops"  # in the third chunk of 100
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="x1"):
        load(streamed_run).predict_file(tmp_path / "bad.csv", tmp_path / "p.csv", chunk_rows=100)
    assert not (tmp_path / "p.csv").exists()
    assert not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------- recommender architectures from the CLI
@pytest.mark.parametrize("arch", ["hps", "mmoe", "ple"])
def test_recommender_architectures_train_from_the_cli_on_streamed_parquet(
    arch, recsys_dir, tmp_path, capsys
):
    out = tmp_path / arch
    flags = ["--data", str(recsys_dir), "--stream", "--arch", arch, "--out", str(out)]
    flags += ["--task", "click:binary:click", "--task", "conversion:binary:conversion"]
    flags += ["--categorical", "user_id,item_id,context_id", "--batch-size", "64"]
    flags += ["--epochs", "1", "--no-progress", "--set", "model.encoder_options={hidden: [8]}"]
    assert main(["train", *flags]) == 0
    report = capsys.readouterr().out
    # conversion is labelled only where click is 1: its labelled training rows are the clicks
    click = re.search(
        r"click \(binary\): labelled training rows ([\d,]+): 0 [\d,]+, 1 ([\d,]+)", report
    )
    conversion = re.search(r"conversion \(binary\): labelled training rows ([\d,]+)", report)
    assert click and conversion, report
    assert int(conversion[1].replace(",", "")) == int(click[2].replace(",", ""))
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == {"click", "conversion"}
    for metrics in summary["test"].values():
        assert all(v is None or np.isfinite(v) for v in metrics.values())
    assert load(out).config.model.arch == arch  # the saved run loads back


# --------------------------------------------------------------------------------- evaluate
def test_evaluate_a_streamed_runs_own_split_gives_its_test_metrics(streamed_run):
    summary = json.loads((streamed_run / "summary.json").read_text())
    again = load(streamed_run).evaluate()
    assert again.keys() == summary["test"].keys()
    for task, metrics in summary["test"].items():
        for name, value in metrics.items():
            assert again[task][name] == pytest.approx(value, rel=1e-5, nan_ok=True), (task, name)


def test_evaluate_data_in_chunks_equals_the_in_memory_evaluation(streamed_run, recsys_dir):
    run = load(streamed_run)
    frame = pd.concat([read_table(f) for f in sorted(recsys_dir.glob("*.parquet"))])
    whole = run.evaluate(frame.reset_index(drop=True))  # a DataFrame: read in memory
    chunked = run.evaluate(recsys_dir, chunk_rows=9)
    for task, metrics in whole.items():
        for name, value in metrics.items():
            assert chunked[task][name] == pytest.approx(value, rel=1e-5, nan_ok=True), (task, name)


# ------------------------------------------------------------------ a real SIGKILL, real CLI
@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_of_a_stream_ends_bit_identical(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for part in range(2):
        generator = RecsysGenerator(n_users=50, n_items=200, n_contexts=5, seed=part)
        write(str(folder / f"part-{part}.parquet"), 4000, generator, 1000)
    config = _config(folder, training={"checkpoint_every_steps": 40}, data={"batch_size": 8})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    command = [sys.executable, "-m", "mtlkit", "train", "--config", str(tmp_path / "config.yaml")]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "reference")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*command, "--out", str(killed)], env=_env(), stderr=subprocess.PIPE)
    checkpoint, deadline = killed / "checkpoint.pt", time.monotonic() + 300
    try:
        while not checkpoint.is_file():  # the first is inside epoch 1 (step 40 of 700)
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no mid-epoch checkpoint appeared"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = torch.load(checkpoint, weights_only=False)
    assert state["epoch"] == 0 and state["loader"]["batches"] > 0, "not killed mid-epoch"
    resumed = subprocess.run(
        [sys.executable, "-m", "mtlkit", "train", "--resume", str(killed)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name in ("model.pt", "checkpoint.pt"):
        a = torch.load(tmp_path / "reference" / name, weights_only=False)
        b = torch.load(killed / name, weights_only=False)
        _assert_same_weights(*((a, b) if name == "model.pt" else (a["model"], b["model"])))
    assert _records(killed) == _records(tmp_path / "reference")


def _env() -> dict[str, str]:
    src = Path(__file__).resolve().parents[2] / "src"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env
