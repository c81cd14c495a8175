import json

import torch

from mtlkit.cli.main import main

FAST = ["--dataset", "penguins", "--epochs", "2", "--no-progress"]


def test_init_from_adds_a_task_keeps_frozen_old_heads_and_reports_movement(tmp_path, capsys):
    old = tmp_path / "old"
    assert main(["train", *FAST, "--set", "select_tasks=[species, sex]", "--out", str(old)]) == 0
    new = tmp_path / "new"
    code = main(
        [
            "train",
            *FAST,
            "--init-from",
            str(old),
            "--set",
            "model.freeze=old_heads",
            "--set",
            "optim.trunk_lr_scale=0.1",
            "--out",
            str(new),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "test metrics before and after this run" in printed
    before = torch.load(old / "model.pt")
    after = torch.load(new / "model.pt")
    for key in before:
        if key.startswith("heads."):
            assert torch.equal(before[key], after[key]), key
    assert any(k.startswith("heads.body_mass") for k in after)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("encoder"))
    summary = json.loads((new / "summary.json").read_text())
    assert set(summary["old_tasks_before"]) == {"species", "sex"}
    assert main(["evaluate", str(new)]) == 0


def test_init_from_with_frozen_trunk_trains_only_the_new_head(tmp_path):
    old = tmp_path / "old"
    assert main(["train", *FAST, "--set", "select_tasks=[species]", "--out", str(old)]) == 0
    new = tmp_path / "new"
    assert (
        main(
            [
                "train",
                *FAST,
                "--init-from",
                str(old),
                "--set",
                "model.freeze=trunk",
                "--set",
                "optim.trunk_lr_scale=0",
                "--out",
                str(new),
            ]
        )
        == 0
    )
    before, after = torch.load(old / "model.pt"), torch.load(new / "model.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_init_from_errors(tmp_path, capsys):
    assert main(["train", *FAST, "--init-from", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "model.init_from" in capsys.readouterr().err
    old = tmp_path / "old"
    assert main(["train", *FAST, "--out", str(old)]) == 0
    code = main(
        [
            "train",
            *FAST,
            "--set",
            "select_tasks=[sex]",
            "--init-from",
            str(old),
            "--out",
            str(tmp_path / "y"),
        ]
    )
    assert code == 2
    assert "species" in capsys.readouterr().err


def test_pretrained_encoder_mismatch_lists_keys(tmp_path, capsys):
    torch.save({"bogus.weight": torch.zeros(2)}, tmp_path / "enc.pt")
    code = main(
        [
            "train",
            *FAST,
            "--set",
            f"model.pretrained_encoder={tmp_path / 'enc.pt'}",
            "--out",
            str(tmp_path / "z"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "bogus.weight" in err and "missing" in err.lower()


def test_print_model_shows_structure_and_writes_nothing(tmp_path, capsys):
    assert (
        main(["train", *FAST, "--arch", "mmoe", "--print-model", "--out", str(tmp_path / "p")]) == 0
    )
    out = capsys.readouterr().out
    assert "MMoE" in out and "shared" in out and "parameters" in out
    assert not (tmp_path / "p").exists()
