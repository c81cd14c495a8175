"""``mtlkit tune``: a tiny study, resuming it, its best config, bad spaces, K-fold CV, pruning."""

import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from mtlkit.cli.main import main
from mtlkit.config import Config, from_dict, read_config_file
from mtlkit.config.schema import ModelConfig
from mtlkit.data import load_dataset
from mtlkit.tuning import kfold_bundles, parse_space, read_tune_config, suggest

TINY = {
    "data": {"dataset": "penguins"},
    "model": {"encoder_options": {"hidden": [16]}},
    "training": {"epochs": 2},
}


def write_config(tmp_path, tune, **changes):
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes, "tune": tune}))
    return str(path)


def read_trials(out):
    with open(out / "trials.csv") as handle:
        return list(csv.DictReader(handle))


def load(out):
    return optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")


def test_tiny_study_writes_the_best_config_which_trains_to_the_same_score(tmp_path, capsys):
    space = {
        "optim.lr": {"low": 1e-3, "high": 3e-2, "log": True},
        "weighting.name": ["ew", "uw"],
    }
    config = write_config(tmp_path, {"space": space, "trials": 3, "seed": 0})
    out = tmp_path / "study"
    assert main(["tune", "--config", config, "--out", str(out)]) == 0
    rows = read_trials(out)
    assert [r["state"] for r in rows] == ["complete"] * 3
    assert all(r["epochs_reported"] == "2" for r in rows)
    best = min(rows, key=lambda r: float(r["value"]))
    tuned = yaml.safe_load((out / "config.yaml").read_text())
    assert tuned["weighting"]["name"] == best["weighting.name"]
    assert math.isclose(tuned["optim"]["lr"], float(best["optim.lr"]), rel_tol=1e-5)
    assert tuned["training"]["monitor"] == "loss" and "tune" not in tuned
    assert (out / "study.png").stat().st_size > 0
    assert "best: trial" in capsys.readouterr().out

    # the written config is a runnable config, and retraining it reproduces the trial's score
    run = tmp_path / "best"
    assert main(["train", "--config", str(out / "config.yaml"), "--out", str(run)]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    retrained = min(-r["score"] for r in records)
    assert retrained == pytest.approx(float(best["value"]), rel=1e-4)


def test_rerun_continues_an_interrupted_study(tmp_path, monkeypatch, capsys):
    import mtlkit.tuning.study as study_module

    space = {"optim.lr": [0.003, 0.01, 0.03]}
    config = write_config(tmp_path, {"space": space, "trials": 4}, training={"epochs": 1})
    out = tmp_path / "study"
    train_run = study_module.train_run
    calls = []

    def interrupted_on_third_trial(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C in the middle of trial 2 does
        return train_run(*args, **kwargs)

    monkeypatch.setattr(study_module, "train_run", interrupted_on_third_trial)
    assert main(["tune", "--config", config, "--out", str(out)]) == 130
    assert "rerun the same command to continue it" in capsys.readouterr().err
    first = {t.number: (t.state.name, t.value) for t in load(out).trials}
    assert [s for s, _ in first.values()] == ["COMPLETE", "COMPLETE", "FAIL"]

    monkeypatch.setattr(study_module, "train_run", train_run)
    capsys.readouterr()
    assert main(["tune", "--config", config, "--out", str(out)]) == 0
    assert "2 of 4 trials finished; running up to 2 more" in capsys.readouterr().out
    trials = load(out).trials
    assert [t.state.name for t in trials] == [
        "COMPLETE",
        "COMPLETE",
        "FAIL",
        "COMPLETE",
        "COMPLETE",
    ]
    assert {n: (t.state.name, t.value) for n, t in enumerate(trials[:2])} == {
        n: first[n] for n in (0, 1)
    }
    assert len(read_trials(out)) == 5

    # the same command once more: nothing to do; another setup under the same name: refused
    assert main(["tune", "--config", config, "--out", str(out)]) == 0
    assert len(load(out).trials) == 5
    assert main(["tune", "--config", config, "--out", str(out), "--epochs", "3"]) == 2
    assert "training.epochs: 1 then, 3 now" in capsys.readouterr().err
    other = write_config(tmp_path, {"space": {"optim.lr": [0.003, 0.01]}}, training={"epochs": 1})
    assert main(["tune", "--config", other, "--out", str(out)]) == 2
    assert "tune.space.optim.lr: the study 'study' sampled it from" in capsys.readouterr().err
    assert len(load(out).trials) == 5
    assert main(["tune", "--config", other, "--out", str(out), "--overwrite", "--trials", "1"]) == 0
    assert len(load(out).trials) == 1 and len(read_trials(out)) == 1


@pytest.mark.slow
def test_a_killed_study_continues_where_it_stopped(tmp_path):
    """SIGKILL in the middle of a trial: the rerun keeps the finished trials and adds the rest."""
    config = write_config(
        tmp_path, {"space": {"optim.lr": [0.003, 0.01]}, "trials": 3}, training={"epochs": 60}
    )
    out = tmp_path / "study"
    command = [sys.executable, "-m", "mtlkit", "tune", "--config", config, "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300

    def in_second_trial():  # trial 0 done, trial 1 (60 epochs) started
        if not (out / "trials.csv").exists():  # written when trial 0 has finished
            return False
        trials = load(out).trials
        return len(trials) == 2 and trials[1].state.name == "RUNNING"

    while not in_second_trial():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.1)
    process.kill()
    process.wait()
    before = load(out).trials
    assert before[0].state.name == "COMPLETE" and before[-1].state.name == "RUNNING"
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    after = load(out).trials
    finished = [t for t in after if t.state.name == "COMPLETE"]
    assert len(finished) == 3 and after[0].value == before[0].value
    assert f"{len(before) - 1} of 3 trials finished" in result.stdout


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        (
            {"space": {"optim.lrr": {"low": 0.001, "high": 0.1}}},
            "tune.space.optim.lrr: 'optim.lrr'",
        ),
        ({"space": {"weighting.name": ["ew", "upgradd"]}}, "tune.space.weighting.name: 'upgradd'"),
        ({"space": {"optim.lr": {"low": 0.1, "high": 0.01}}}, "tune.space.optim.lr: low (0.1)"),
        ({"space": {"optim.lr": {"low": -1, "high": 0.1}}}, "tune.space.optim.lr: -1.0 is not"),
        ({"space": {"optim.lr": {"lo": 0.1}}}, "tune.space.optim.lr.lo: unknown key"),
        ({"space": {"regularization.kind": {"low": 1, "high": 2}}}, "regularization.kind: a str"),
        ({"space": {"seed": [0, 1]}}, "tune.space.seed: cannot be searched"),
        (
            {"space": {"optim.lr": {"low": 1e-3, "high": 0.1, "when": {"weighting.name": "uw"}}}},
            "tune.space.optim.lr.when: 'weighting.name' is not a parameter listed before",
        ),
        ({"space": {"model.arch_options.bogus": [1, 2]}}, "tune.space.model.arch_options.bogus"),
        (  # a value the parent never takes: the parameter was silently never searched
            {
                "space": {
                    "model.arch": ["hps", "mmoe"],
                    "model.encoder_options.dropout": {
                        "low": 0.0,
                        "high": 0.3,
                        "when": {"model.arch": "mmoee"},
                    },
                }
            },
            "dropout.when: 'mmoee' is not a choice of 'model.arch' (hps, mmoe)",
        ),
        (
            {"space": {"model.encoder_options.dropout": {"low": 0.0, "high": float("inf")}}},
            "tune.space.model.encoder_options.dropout.high: expected a finite number, got inf",
        ),
        ({"trialz": 3}, "tune.trialz: unknown key; did you mean 'trials'?"),
        ({"metric": "species:mse"}, "tune.metric: expected 'loss' or one of"),
        ({"metric": "species:accuracy", "direction": "minimize"}, "tune.direction"),
        ({"pruner": "hyperband"}, "tune.pruner: expected one of median, halving, none"),
        ({"cv_folds": 1}, "tune.cv_folds: expected a value >= 2"),
    ],
)
def test_a_bad_tune_section_exits_2_with_one_line_naming_the_key(tmp_path, capsys, tune, message):
    out = tmp_path / "study"
    assert main(["tune", "--config", write_config(tmp_path, tune), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mtlkit tune: error: ")
    assert message in err
    assert not (out / "trials.csv").exists()


def test_missing_optuna_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["tune", "--config", write_config(tmp_path, {}), "--out", str(tmp_path)]) == 2
    assert "pip install 'mtlkit[tune]'" in capsys.readouterr().err


def test_kfold_cv_scores_each_trial_by_the_mean_over_folds(tmp_path):
    tune = {"space": {"optim.lr": [0.01, 0.03]}, "trials": 2, "cv_folds": 3, "pruner": "none"}
    out = tmp_path / "study"
    assert (
        main(
            ["tune", "--config", write_config(tmp_path, tune, training={"epochs": 1})]
            + ["--out", str(out)]
        )
        == 0
    )
    for trial in load(out).trials:
        folds = trial.user_attrs["fold_values"]
        assert len(folds) == 3 and len(set(folds)) == 3
        assert trial.value == pytest.approx(sum(folds) / 3)
        assert sorted(trial.intermediate_values) == [1, 2, 3]  # step = fold · epochs + epoch
    assert "by 3-fold CV" in (out / "config.yaml").read_text()
    for row in read_trials(out):
        folds = json.loads(row["fold_values"])
        assert float(row["value"]) == pytest.approx(sum(folds) / 3, rel=1e-5)


def test_kfold_bundles_partition_train_and_val_and_keep_test():
    bundle = load_dataset("penguins")
    folds = kfold_bundles(bundle, 4, seed=0)
    pooled = torch.cat([bundle.train.inputs, bundle.val.inputs])
    held_out = torch.cat([f.val.inputs for f in folds])
    assert sorted(map(tuple, held_out.tolist())) == sorted(map(tuple, pooled.tolist()))
    sizes = [len(f.val) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for fold in folds:
        assert len(fold.train) + len(fold.val) == len(pooled)
        assert fold.test is bundle.test


def test_a_trial_that_trails_the_median_is_pruned_after_its_first_epoch(tmp_path):
    out = tmp_path / "study"
    good = write_config(
        tmp_path, {"space": {"optim.lr": {"low": 0.03, "high": 0.031}}, "trials": 1}
    )
    assert main(["tune", "--config", good, "--out", str(out)]) == 0
    pruner = {"name": "median", "n_startup_trials": 1}
    space = {"optim.lr": {"low": 1e-7, "high": 1.1e-7}}  # a range may move between runs
    frozen = write_config(tmp_path, {"space": space, "trials": 2, "pruner": pruner})
    assert main(["tune", "--config", frozen, "--out", str(out)]) == 0
    rows = read_trials(out)
    assert [(r["state"], r["epochs_reported"]) for r in rows] == [
        ("complete", "2"),
        ("pruned", "1"),
    ]


def test_space_types_conditions_and_list_choices():
    space = parse_space(
        {
            "optim.lr": {"low": "1e-4", "high": 0.1, "log": True},  # PyYAML reads 1e-4 as text
            "model.arch_options.num_experts": {"low": 2, "high": 8},
            "model.encoder_options.hidden": [[16], [32, 16]],
            "regularization.kind": ["none", "l2"],
            "regularization.strength": {
                "low": 1e-6,
                "high": 1e-2,
                "when": {"regularization.kind": "l2"},
            },
        },
        Config(model=ModelConfig(arch="mmoe")).to_dict(),  # num_experts is an MMoE option
    )
    assert [p.kind for p in space] == ["float", "int", "categorical", "categorical", "float"]
    fixed = {
        "optim.lr": 0.01,
        "model.arch_options.num_experts": 4,
        "model.encoder_options.hidden": "[32, 16]",
    }
    without = suggest(optuna.trial.FixedTrial({**fixed, "regularization.kind": "none"}), space)
    assert without["model.encoder_options.hidden"] == [32, 16]
    assert "regularization.strength" not in without
    with_l2 = suggest(
        optuna.trial.FixedTrial(
            {**fixed, "regularization.kind": "l2", "regularization.strength": 1e-3}
        ),
        space,
    )
    assert with_l2["regularization.strength"] == 1e-3


def test_the_documented_example_config_is_valid():
    data = read_config_file(Path(__file__).parents[2] / "examples" / "tune_penguins.yaml")
    settings = read_tune_config(data.pop("tune"))
    space = parse_space(settings.space, from_dict(Config, data).to_dict())
    conditional = {p.key: dict(p.when) for p in space if p.when}
    assert conditional == {
        "model.arch_options.num_experts": {"model.arch": ("mmoe",)},
        "regularization.strength": {"regularization.kind": ("l2",)},
    }


def test_the_median_pruner_spares_the_first_quarter_of_the_epochs():
    from mtlkit.tuning.study import make_pruner

    pruner = make_pruner({"name": "median", "n_startup_trials": 1}, epochs=20)
    study = optuna.create_study(direction="minimize", pruner=pruner)
    leader = study.ask()
    for step in range(1, 21):
        leader.report(1.0, step)
    study.tell(leader, 1.0)
    trailing = study.ask()
    trailing.report(2.0, 5)
    assert not trailing.should_prune()  # steps 1-5 are the warm-up
    trailing.report(2.0, 6)
    assert trailing.should_prune()
    assert isinstance(make_pruner("halving"), optuna.pruners.SuccessiveHalvingPruner)
