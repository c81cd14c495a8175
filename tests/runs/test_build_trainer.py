"""build_trainer: the optimizer's groups hold the strategy's learnable parameters."""

from __future__ import annotations

from mtlkit.config import Config, with_overrides
from mtlkit.runs import build_model, build_trainer, load_bundle


def test_a_learning_strategy_gets_its_own_group_before_the_scheduler_reads_them():
    config = with_overrides(
        Config(),
        {
            "weighting.name": "uw",
            "optim.scheduler": "steplr",
            "optim.scheduler_options": {"step_size": 1},
        },
    )
    bundle = load_bundle(config)
    trainer = build_trainer(config, build_model(config, bundle), bundle)
    model_group, strategy_group = trainer.optimizer.param_groups
    assert [id(p) for p in strategy_group["params"]] == [
        id(p) for p in trainer.weighting.parameters()
    ]
    assert len(model_group["params"]) == len(list(trainer.model.parameters()))
    assert trainer.scheduler.base_lrs == [config.optim.lr] * 2  # the scheduler sees both
