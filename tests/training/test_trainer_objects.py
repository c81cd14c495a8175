"""The Trainer's object API: optimizer and scheduler instances, any Dataset or DataLoader,
gradient accumulation, warm-up, precision, a plain trunk and heads, the epoch line."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mtlkit.data import BatchLoader, MultiTaskDataset
from mtlkit.models import SharedTrunk
from mtlkit.tasks import Task
from mtlkit.training import Trainer, TrainingOptions
from mtlkit.training.trainer import optimizer_groups, warmed_up
from mtlkit.weighting import make_weighting

TASKS = [Task("cls", "binary"), Task("reg", "regression")]


def _data(n=48, seed=0) -> MultiTaskDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen)
    return MultiTaskDataset(
        x,
        {"cls": (x[:, 0] > 0).long(), "reg": x[:, :2].sum(1) + 0.1 * torch.randn(n, generator=gen)},
    )


def _model(seed=0) -> SharedTrunk:
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
    return SharedTrunk(trunk, heads={"cls": nn.Linear(8, 1), "reg": nn.Linear(8, 1)})


class RowDataset(Dataset):
    """A user's own dataset: row i is ``(x[i], {task: y[i]})``."""

    def __init__(self, data: MultiTaskDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        return self.data.inputs[i], {k: v[i] for k, v in self.data.targets.items()}


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_accumulating_two_batches_of_16_takes_the_step_of_one_batch_of_32():
    """EW + SGD: the mean loss over 32 rows is the mean of two 16-row means, so the gradients
    agree; 48 rows also check the shorter last group (one micro-batch, divided by 1)."""
    data, results = _data(48), []
    for batch, accumulate in ((32, 1), (16, 2)):
        model = _model()
        trainer = Trainer(
            model,
            TASKS,
            make_weighting("ew", 2),
            torch.optim.SGD(model.parameters(), lr=0.5),
            options=TrainingOptions(progress=False, accumulate=accumulate),
        )
        trainer.fit(BatchLoader(data, batch, shuffle=False), epochs=3)
        results.append((_flat(model), trainer.step))
    (big, big_steps), (small, small_steps) = results
    assert big_steps == small_steps == 6
    assert torch.allclose(big, small, atol=1e-6)
    # without accumulation the 16-row run takes 9 different steps
    model = _model()
    Trainer(
        model,
        TASKS,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        options=TrainingOptions(progress=False),
    ).fit(BatchLoader(data, 16, shuffle=False), epochs=3)
    assert not torch.allclose(_flat(model), big, atol=1e-3)


def test_a_torch_dataset_and_dataloader_train_and_score_like_mtlkit_data():
    data = _data(64)
    model = _model()
    trainer = Trainer(
        model,
        TASKS,
        optimizer=torch.optim.Adam(model.parameters(), lr=0.02),
        options=TrainingOptions(progress=False, batch_size=16),
    )
    before = trainer.evaluate(data)
    loader = DataLoader(RowDataset(data), batch_size=16, shuffle=True)
    history = trainer.fit(loader, val=RowDataset(data), epochs=15)
    after = trainer.evaluate(data)
    # the same metrics from a torch Dataset, a DataLoader and mtlkit's dataset
    for other in (RowDataset(data), DataLoader(RowDataset(data), batch_size=7)):
        got = trainer.evaluate(other)
        for task in TASKS:
            for metric, value in after[task.name].items():
                assert got[task.name][metric] == pytest.approx(value, rel=1e-5), metric
    assert history.epochs[-1]["val"]["reg"]["mse"] == pytest.approx(after["reg"]["mse"], rel=1e-5)
    for task in TASKS:
        assert after[task.name]["loss"] < 0.6 * before[task.name]["loss"], task.name
    # a plain Dataset given to fit is batched with options.batch_size: 64 rows → 4 steps/epoch
    trainer.fit(RowDataset(data), epochs=16)
    assert trainer.step == 15 * 4 + 4


def test_a_plain_module_is_refused_with_a_pointer_to_the_wrapper():
    class Net(nn.Module):
        def forward(self, x):
            return {"cls": x[:, :1], "reg": x[:, 1:2]}

    with pytest.raises(TypeError, match=r"Net does not say.*SharedTrunk\(trunk, heads="):
        Trainer(Net(), TASKS)


def test_shared_trunk_splits_parameters_between_trunk_and_heads():
    model = _model()
    assert {id(p) for p in model.shared_parameters()} == {id(p) for p in model.trunk.parameters()}
    assert {id(p) for p in model.task_specific_parameters()} == {
        id(p) for p in model.heads.parameters()
    }
    assert model.task_names == ["cls", "reg"]
    trunk = nn.Linear(5, 8)
    with pytest.raises(ValueError, match="head of task 'b' holds trunk parameters"):
        SharedTrunk(trunk, heads={"a": nn.Linear(8, 1), "b": nn.Sequential(trunk)})


def test_a_strategy_that_needs_the_last_shared_layer_finds_it_in_the_trunk():
    model = _model()
    trainer = Trainer(
        model, TASKS, make_weighting("gradnorm", 2), options=TrainingOptions(progress=False)
    )
    assert [id(p) for p in trainer.last_shared_params] == [
        id(p) for p in model.trunk[0].parameters()
    ]
    trainer.fit(BatchLoader(_data(), 16), epochs=1)


def test_an_optimizer_must_be_an_instance():
    with pytest.raises(
        TypeError, match="optimizer: expected a torch.optim.Optimizer instance, got str"
    ):
        Trainer(_model(), TASKS, optimizer="sgd")


def test_strategy_parameters_missing_from_the_optimizer_join_it_as_a_group():
    model = _model()
    uw = make_weighting("uw", 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, TASKS, uw, optimizer, options=TrainingOptions(progress=False))
    assert len(optimizer.param_groups) == 2
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == {id(p) for p in uw.parameters()}
    before = [p.detach().clone() for p in uw.parameters()]
    trainer.fit(BatchLoader(_data(), 16), epochs=1)
    assert any(not torch.equal(a, b) for a, b in zip(before, uw.parameters()))
    # already held: no second group
    model = _model()
    optimizer = torch.optim.SGD([*model.parameters(), *uw.parameters()], lr=0.1)
    Trainer(model, TASKS, uw, optimizer)
    assert len(optimizer.param_groups) == 1


def test_optimizer_groups_add_one_group_of_the_strategy_parameters_only_when_it_has_some():
    model, uw = _model(), make_weighting("uw", 2)
    model.trunk[0].weight.requires_grad_(False)
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    groups = optimizer_groups(model, uw)
    assert [[id(p) for p in g["params"]] for g in groups] == [
        trainable,
        [id(p) for p in uw.parameters()],
    ]
    assert optimizer_groups(model, make_weighting("ew", 2)) == groups[:1]
    given = [{"params": list(model.trunk.parameters()), "lr": 0.5}]
    assert optimizer_groups(model, uw, given)[:1] == given and len(given) == 1  # not mutated
    # the trainer's default optimizer is Adam on these groups
    trainer = Trainer(model, TASKS, uw, options=TrainingOptions(progress=False))
    held = [[id(p) for p in g["params"]] for g in trainer.optimizer.param_groups]
    assert held == [[id(p) for p in g["params"]] for g in groups]


@pytest.mark.parametrize("interval, expected_lr", [("step", 0.1 * 0.5**9), ("epoch", 0.1 * 0.5**3)])
def test_scheduler_steps_per_step_or_per_epoch(interval, expected_lr):
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 0.5**k)
    trainer = Trainer(
        model,
        TASKS,
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_interval=interval,
        options=TrainingOptions(progress=False),
    )
    trainer.fit(BatchLoader(_data(48), 16), epochs=3)  # 3 steps per epoch
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected_lr)


def test_scheduler_misuse_is_refused():
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    with pytest.raises(ValueError, match="ReduceLROnPlateau.*scheduler_interval='epoch'"):
        Trainer(model, TASKS, optimizer=optimizer, scheduler=plateau, scheduler_interval="step")
    other = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="built on the trainer's optimizer"):
        Trainer(
            model, TASKS, optimizer=optimizer, scheduler=torch.optim.lr_scheduler.StepLR(other, 1)
        )


class RecordingSGD(torch.optim.SGD):
    """SGD that remembers the rate of every step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rates: list[float] = []

    def step(self, closure=None):
        self.rates.append(self.param_groups[0]["lr"])
        return super().step(closure)


def test_linear_warmup_ramps_the_rate_over_the_first_steps():
    model = _model()
    optimizer = RecordingSGD(model.parameters(), lr=0.1)
    trainer = Trainer(
        model, TASKS, optimizer=optimizer, options=TrainingOptions(progress=False, warmup_steps=4)
    )
    trainer.fit(BatchLoader(_data(96), 16), epochs=1)  # 6 steps
    assert optimizer.rates == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_warmup_multiplies_the_schedulers_rate_and_restores_it():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    with warmed_up(optimizer, step=1, warmup_steps=4):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    assert optimizer.param_groups[0]["lr"] == 0.2
    with warmed_up(optimizer, step=4, warmup_steps=4):
        assert optimizer.param_groups[0]["lr"] == 0.2


def test_bf16_autocasts_the_forward_and_still_trains():
    data = _data(64)
    first = {}
    for precision in ("fp32", "bf16"):
        model = _model()
        trainer = Trainer(
            model,
            TASKS,
            optimizer=torch.optim.Adam(model.parameters(), lr=0.02),
            options=TrainingOptions(progress=False, precision=precision),
        )
        x, y = next(iter(BatchLoader(data, 64, shuffle=False)))
        first[precision] = trainer.train_step(x, y)
        before = trainer.evaluate(data)["reg"]["loss"]
        trainer.fit(BatchLoader(data, 16), epochs=10)
        assert trainer.evaluate(data)["reg"]["loss"] < 0.6 * before, precision
    # bfloat16 has 8 significant bits: close to float32, not equal (autocast was on)
    assert torch.allclose(first["bf16"], first["fp32"], rtol=0.05)
    assert not torch.equal(first["bf16"], first["fp32"])


def test_fp16_on_cpu_is_refused_with_the_alternative():
    with pytest.raises(ValueError, match="fp16 needs a CUDA device.*use bf16"):
        Trainer(_model(), TASKS, options=TrainingOptions(precision="fp16"))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("accumulate", 0, "training.accumulate: expected a value >= 1, got 0"),
        ("warmup_steps", -1, "training.warmup_steps: expected a value >= 0, got -1"),
        ("precision", "fp8", "training.precision: expected one of 'fp32', 'bf16', 'fp16'"),
        ("mode", "mixed", "training.mode: expected one of 'joint', 'alternating'"),
    ],
)
def test_bad_options_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainingOptions(**{field: value})


def test_one_console_line_per_epoch_and_the_weights_in_the_record(caplog):
    model = _model()
    trainer = Trainer(
        model,
        TASKS,
        make_weighting("fixed", 2, weights=[2.0, 0.5]),
        torch.optim.SGD(model.parameters(), lr=0.05),
        options=TrainingOptions(progress=False, monitor="reg:mse"),
    )
    with caplog.at_level(logging.INFO, logger="mtlkit.training"):
        history = trainer.fit(BatchLoader(_data(), 16), val=_data(32, seed=1), epochs=3)
    lines = [r.getMessage() for r in caplog.records if r.name == "mtlkit.training"]
    assert len(lines) == 3
    best = history.best_epoch
    mse = history.epochs[-1]["val"]["reg"]["mse"]
    best_mse = history.epochs[best - 1]["val"]["reg"]["mse"]
    assert lines[-1].startswith("epoch 3/3 · train cls ")
    assert f"val reg:mse {mse:.4g} (best {best_mse:.4g} @{best})" in lines[-1]
    assert "ETA 0.0s" in lines[-1] and "ETA" in lines[0]
    for record in history.epochs:
        assert record["task_weights"] == pytest.approx({"cls": 2.0, "reg": 0.5})


def test_loss_scaling_path_takes_the_unscaled_step():
    """fp16's GradScaler path (scale the losses, unscale before clipping, skip on overflow),
    run on the CPU with float32 math: the same parameters as without scaling."""
    data, params = _data(48), []
    for scaled in (False, True):
        model = _model()
        trainer = Trainer(
            model,
            TASKS,
            make_weighting("ew", 2),
            torch.optim.SGD(model.parameters(), lr=0.5),
            options=TrainingOptions(progress=False, accumulate=2, grad_clip=0.5),
        )
        if scaled:
            trainer.precision.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        trainer.fit(BatchLoader(data, 16, shuffle=False), epochs=2)
        params.append(_flat(model))
    assert torch.allclose(params[0], params[1], atol=1e-6)


def test_fp16_is_refused_for_a_strategy_that_does_not_sum_the_losses():
    from mtlkit.training.precision import Precision

    with pytest.raises(ValueError, match="fp16 scales the losses.*MGDA.*use bf16"):
        Precision("fp16", torch.device("cuda"), make_weighting("mgda", 2))
