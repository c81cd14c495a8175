"""The README's examples stay valid."""

import re
from pathlib import Path

import pytest
import torch
import yaml

from mtlkit.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_config_example_is_a_valid_config(tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README should show a config"
    for block in blocks:
        path = tmp_path / "config.yaml"
        path.write_text(block)
        config = load_config(path)
        assert config.to_dict()["data"] == {
            **config.to_dict()["data"],
            **yaml.safe_load(block)["data"],
        }


def test_readme_opens_with_the_two_setup_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]


def test_readme_python_api_block_runs(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    from mtlkit.cli.main import main

    block = re.search(r"## Python API.*?```python\n(.*?)```", README.read_text(), flags=re.S)
    rng = np.random.default_rng(0)

    def students(n: int) -> pd.DataFrame:
        frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
        score = frame["a"] - 0.5 * frame["b"]
        frame["grade"] = np.select([score < -0.5, score < 0.5], ["C", "B"], "A")
        frame["passed"] = np.where(score > 0, "yes", "no")
        frame["score"] = 10 * score + 50
        return frame

    monkeypatch.chdir(tmp_path)
    students(120).to_csv("students.csv", index=False)
    students(20).to_csv("students_new.csv", index=False)
    tasks = ["grade:multiclass:grade", "passed:binary:passed", "score:regression:score"]
    flags = [f for task in tasks for f in ("--task", task)]
    assert main(["train", "--data", "students.csv", *flags, "--epochs", "1", "--no-progress"]) == 0
    namespace: dict = {}
    exec(block.group(1), namespace)
    predictions, metrics, outputs = (namespace[k] for k in ("predictions", "metrics", "outputs"))
    assert len(predictions) == 20 and set(metrics) == {"grade", "passed", "score"}
    np.testing.assert_allclose(outputs["score"].numpy(), predictions["score"], rtol=1e-5)


DOCS_WEIGHTING = README.parent / "docs" / "weighting.md"


def _python_blocks(path: Path, containing: str) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
    return [block for block in blocks if containing in block]


def test_readme_custom_loop_trains_every_parameter():
    """The README's plain loop (UPGrad, then UW) runs; UW's log-variances learn."""
    (block,) = _python_blocks(README, "mtl_backward")
    assert len(block.strip().splitlines()) < 15
    namespace: dict = {}
    exec(block, namespace)
    strategy = namespace["strategy"]
    assert type(strategy).__name__ == "UncertaintyWeighting"
    assert not torch.allclose(strategy.log_vars.detach(), torch.full((3,), -0.5))  # learned
    modules = (namespace["trunk"], *namespace["heads"])
    assert all(p.grad is not None for m in modules for p in m.parameters())


@pytest.mark.slow  # importing Lightning alone takes ~13 s on the shared 2-core machine
def test_docs_lightning_module_trains_with_mtl_backward():
    import pytorch_lightning  # noqa: F401  (the dev extra has it: no skip)

    (block,) = _python_blocks(DOCS_WEIGHTING, "LightningModule")
    namespace: dict = {"__name__": "docs_weighting_example"}
    exec(block, namespace)
    module, trainer = namespace["module"], namespace["trainer"]
    assert trainer.global_step == 2 * 8  # 2 epochs of 8 batches, one optimizer step each
    assert type(module.strategy).__name__ == "UncertaintyWeighting"
    assert not torch.allclose(module.strategy.log_vars.detach(), torch.full((3,), -0.5))


def test_readme_trainer_block_trains_a_plain_trunk_with_torch_objects(caplog):
    """The README's Trainer example: a plain trunk and heads, AdamW, a per-step scheduler,
    a DataLoader, accumulation and warm-up; it learns both tasks and logs one line per epoch."""
    import logging

    (block,) = _python_blocks(README, "SharedTrunk(")
    assert len(block.strip().splitlines()) <= 30
    namespace: dict = {}
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="mtlkit.training"):
        exec(block, namespace)
    trainer, history = namespace["trainer"], namespace["history"]
    assert trainer.step == 5 * 16  # 32 batches per epoch, 2 per step
    assert len([r for r in caplog.records if r.name == "mtlkit.training"]) == 5
    final = history.epochs[-1]["val"]
    assert final["sold"]["roc_auc"] > 0.9 and final["price"]["r2"] > 0.5
