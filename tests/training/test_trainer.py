import copy

import pytest
import torch

from mtlkit.data import MultiInputDataset, MultiTaskDataset, make_loader
from mtlkit.models import make_encoder, make_model
from mtlkit.tasks import IGNORE_INDEX, Task
from mtlkit.training import NonFiniteLossError, Regularization, Trainer, TrainingOptions, penalty
from mtlkit.training.trainer import make_optimizer, make_scheduler
from mtlkit.weighting import make_weighting


def _problem(n=256, missing=0.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen)
    cls = (x[:, 0] + x[:, 1] > 0).long()
    reg = x[:, :2].sum(1) + 0.1 * torch.randn(n, generator=gen)
    if missing:
        drop = torch.rand(n, generator=gen) < missing
        cls[drop] = IGNORE_INDEX
    tasks = [Task("cls", "binary"), Task("reg", "regression")]
    return tasks, MultiTaskDataset(x, {"cls": cls, "reg": reg})


def _model(arch, tasks):
    return make_model(arch, lambda: make_encoder("mlp", (5,), hidden=[16]), tasks)


def _trainer(model, tasks, strategy=None, lr=1e-3, optimizer=torch.optim.Adam, **options):
    """A Trainer with ``optimizer(model.parameters(), lr)`` and quiet options."""
    return Trainer(
        model,
        tasks,
        strategy,
        optimizer(model.parameters(), lr=lr),
        options=TrainingOptions(progress=False, **options),
    )


@pytest.mark.parametrize("arch", ["hps", "stl"])
@pytest.mark.parametrize("mode", ["joint", "alternating"])
def test_training_lowers_every_task_loss(arch, mode):
    tasks, data = _problem(missing=0.3)
    trainer = _trainer(_model(arch, tasks), tasks, lr=0.01, mode=mode)
    before = trainer.evaluate(data)
    trainer.fit(make_loader(data, 32), data, epochs=8)
    after = trainer.evaluate(data)
    for t in tasks:
        assert after[t.name]["loss"] < 0.7 * before[t.name]["loss"], t.name


def test_early_stopping_and_best_model_restore():
    tasks, data = _problem()
    trainer = _trainer(_model("hps", tasks), tasks, lr=0.05, monitor="cls:accuracy")
    # A validation set with random labels stops improving quickly.
    noise = MultiTaskDataset(
        data.inputs, {"cls": torch.randint(0, 2, (256,)), "reg": data.targets["reg"]}
    )
    history = trainer.fit(make_loader(data, 32), noise, epochs=50, patience=2)
    assert history.stopped_early and len(history.epochs) < 50
    trainer.restore_best()
    best = trainer.evaluate(noise)["cls"]["accuracy"]
    assert best == pytest.approx(history.best_score)


@pytest.mark.parametrize("strategy", ["ew", "upgrad"])
def test_a_task_without_labels_leaves_its_head_alone_and_the_others_train(strategy):
    tasks, data = _problem(n=64)
    data.targets["cls"][:] = IGNORE_INDEX
    model = _model("hps", tasks)
    head = [p.detach().clone() for p in model.heads["cls"].parameters()]
    trainer = _trainer(model, tasks, make_weighting(strategy, 2), lr=0.01)
    before = trainer.evaluate(data)["reg"]["loss"]
    trainer.fit(make_loader(data, 16), epochs=3)
    for old, new in zip(head, model.heads["cls"].parameters(), strict=True):
        assert torch.equal(old, new)  # no label, no gradient, no step (not even a NaN one)
    assert trainer.evaluate(data)["reg"]["loss"] < 0.8 * before
    assert trainer.history.epochs[-1]["train_loss"]["cls"] == 0.0


def test_epoch_train_loss_leaves_out_batches_where_a_task_has_no_label():
    tasks, data = _problem(n=32)
    x, cls, reg = data.inputs, data.targets["cls"], data.targets["reg"]
    trainer = _trainer(_model("hps", tasks), tasks, lr=0.0)  # lr 0: same loss every batch
    labelled = trainer.train_epoch([(x, {"cls": cls, "reg": reg})])
    masked = {"cls": torch.full_like(cls, IGNORE_INDEX), "reg": reg}
    both = trainer.train_epoch([(x, {"cls": cls, "reg": reg}), (x, masked)])
    assert both["cls"] == pytest.approx(labelled["cls"])  # not halved by the masked batch
    assert both["reg"] == pytest.approx(labelled["reg"])


def test_task_weights_scale_the_losses():
    tasks, data = _problem(n=32)
    tasks[1].weight = 0.0
    trainer = _trainer(_model("hps", tasks), tasks)
    x, y = next(iter(make_loader(data, 32)))
    losses = trainer.task_losses(trainer.model(x), y)
    assert losses[1].item() == 0.0 and losses[0].item() > 0


def test_fixed_weighting_gradient_is_the_weighted_sum():
    tasks, data = _problem(n=32)
    model = _model("hps", tasks)
    strategy = make_weighting("fixed", 2, weights=[2.0, 0.5])
    trainer = _trainer(model, tasks, strategy, lr=0.0, optimizer=torch.optim.SGD)
    x, y = next(iter(make_loader(data, 32, shuffle=False)))
    trainer.train_step(x, y)
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out = model(x)
    (
        2.0 * tasks[0].compute_loss(out["cls"], y["cls"])
        + 0.5 * tasks[1].compute_loss(out["reg"], y["reg"])
    ).backward()
    for g, p in zip(got, model.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)


def test_regularization_penalty_values():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    assert penalty([p], "l1", 0.5).item() == pytest.approx(1.5)
    assert penalty([p], "l2", 0.5).item() == pytest.approx(1.25)
    assert penalty([p], "elasticnet", 1.0, l1_ratio=0.25).item() == pytest.approx(
        0.25 * 3 + 0.75 * 2.5
    )
    assert penalty([p], "none", 1.0) is None


def test_l1_penalty_shrinks_shared_weights():
    tasks, data = _problem()
    norms = {}
    for strength in (0.0, 0.05):
        torch.manual_seed(0)
        model = _model("hps", tasks)
        trainer = _trainer(
            model, tasks, lr=0.01, regularization=Regularization("l1", strength=strength)
        )
        trainer.fit(make_loader(data, 32), epochs=5)
        norms[strength] = sum(p.abs().sum().item() for p in model.shared_parameters())
    assert norms[0.05] < 0.8 * norms[0.0]


def test_non_finite_loss_names_the_task_and_step():
    tasks, data = _problem(n=32)
    data.targets["reg"][0] = float("inf")
    trainer = _trainer(_model("hps", tasks), tasks)
    with pytest.raises(NonFiniteLossError, match="task 'reg'.*step 0"):
        trainer.fit(make_loader(data, 32), epochs=1)


def test_multi_input_training_lowers_losses():
    gen = torch.Generator().manual_seed(0)
    xa, xb = torch.randn(200, 5, generator=gen), torch.randn(80, 5, generator=gen)
    data = MultiInputDataset({"cls": (xa, (xa[:, 0] > 0).long()), "reg": (xb, xb[:, 1] * 2)})
    tasks = [Task("cls", "binary"), Task("reg", "regression")]
    for sampling in ("joint", "round_robin", "proportional"):
        trainer = _trainer(_model("hps", tasks), tasks, lr=0.01)
        before = trainer.evaluate(data)
        trainer.fit(make_loader(data, 20, sampling=sampling), epochs=6)
        after = trainer.evaluate(data)
        for t in tasks:
            assert after[t.name]["loss"] < 0.7 * before[t.name]["loss"], (sampling, t.name)


def test_scheduler_and_optimizer_by_name():
    tasks, data = _problem(n=32)
    model = _model("hps", tasks)
    optimizer = make_optimizer("SGD", [{"params": model.parameters()}], 0.1, momentum=0.9)
    scheduler = make_scheduler("StepLR", optimizer, step_size=1, gamma=0.5)
    trainer = Trainer(
        model,
        tasks,
        optimizer=optimizer,
        scheduler=scheduler,
        options=TrainingOptions(progress=False),
    )
    trainer.fit(make_loader(data, 16), epochs=2)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.9
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        make_optimizer("adamm", [{"params": model.parameters()}], 0.1)


def test_trainer_state_round_trip_continues_identically():
    tasks, data = _problem(n=64)

    def fresh():
        torch.manual_seed(1)
        return _trainer(_model("hps", tasks), tasks, lr=0.01)

    ref = fresh()
    loader = make_loader(data, 16, seed=5)
    ref.fit(loader, epochs=1)
    # state_dict() holds references (torch convention): copy before training on.
    state, loader_state = copy.deepcopy(ref.state_dict()), copy.deepcopy(loader.state_dict())
    ref.fit(loader, epochs=2)

    other = fresh()
    other.load_state_dict(state)
    loader2 = make_loader(data, 16, seed=5)
    loader2.load_state_dict(loader_state)
    other.fit(loader2, epochs=2)
    for a, b in zip(ref.model.parameters(), other.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_alternating_mode_refuses_a_strategy_that_combines_tasks():
    tasks, _ = _problem(n=8)
    with pytest.raises(ValueError, match="alternating.*needs training.mode: joint"):
        _trainer(_model("hps", tasks), tasks, make_weighting("mgda", 2), mode="alternating")
