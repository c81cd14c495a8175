import torch

from mtlkit.analysis import (
    AffinityRecorder,
    GradientRecorder,
    conflict_matrix,
    cosine_matrix,
    gradient_cosine,
    norm_ratio_matrix,
)
from mtlkit.training import Trainer, TrainingOptions


def test_cosine_of_identical_negated_and_independent_gradients():
    g = torch.randn(20_000, generator=torch.Generator().manual_seed(1))
    h = torch.randn(20_000, generator=torch.Generator().manual_seed(2))
    jacobian = torch.stack([g, g, -g, h]).double()
    cos = cosine_matrix(jacobian @ jacobian.T)
    assert torch.allclose(cos.diagonal(), torch.ones(4, dtype=torch.float64))
    assert cos[0, 1] == 1.0 and cos[0, 2] == -1.0
    assert abs(float(cos[0, 3])) < 0.03  # independent: ~ N(0, 1/P)
    assert gradient_cosine(g, 2 * g) == 1.0 and gradient_cosine(g, -3 * g) == -1.0


def test_conflict_norm_ratio_and_zero_gradient():
    gramian = torch.tensor([[4.0, -2.0, 0.0], [-2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert conflict_matrix(gramian).tolist() == [
        [False, True, False],
        [True, False, False],
        [False, False, False],
    ]
    ratio = norm_ratio_matrix(gramian)
    assert ratio[0, 1] == 2.0 and ratio[1, 0] == 0.5 and torch.isnan(ratio[0, 2])
    cos = cosine_matrix(gramian)
    assert cos[0, 1] == -1.0 and cos[0, 2] == 0.0 and cos[2, 2] == 0.0


class _Mirrored(Trainer):
    """t1 = t0 (same frozen head, same targets), t2 = −t0 (its negated loss), t3 independent."""

    def task_losses(self, outputs, targets):
        losses = super().task_losses(outputs, targets)
        return torch.stack([losses[0], losses[1], -losses[0], losses[3]])


def test_recorder_on_a_model_gives_plus_one_minus_one_and_near_zero(tiny):
    torch.manual_seed(0)
    base, data, loader = tiny(num_tasks=4, n=256, features=40, hidden=128)
    model = base.model
    with torch.no_grad():  # identical heads for t0, t1, t2
        for name in ("t1", "t2"):
            model.heads[name].load_state_dict(model.heads["t0"].state_dict())
        for name in ("t0", "t1"):
            model.heads[name].requires_grad_(False)
    data.targets["t1"] = data.targets["t0"].clone()
    x = data.inputs  # t3: an independent target on other input features
    data.targets["t0"] = data.targets["t1"] = x[:, :20] @ torch.randn(20)
    data.targets["t3"] = torch.tanh(x[:, 20:] @ torch.randn(20))
    trainer = _Mirrored(
        model,
        base.tasks,
        optimizer=torch.optim.SGD(model.parameters(), lr=1e-3),
        options=TrainingOptions(progress=False),
        engine=base.engine,
    )
    recorder = GradientRecorder(every=1)
    trainer.step_callbacks.append(recorder)
    trainer.fit(loader, epochs=1)
    rel = recorder.relations()
    assert len(rel.steps) == 16 and rel.counts[0, 1] == 16
    assert torch.allclose(rel.cosine[0, 1], torch.tensor(1.0, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(rel.cosine[0, 2], torch.tensor(-1.0, dtype=torch.float64), atol=1e-6)
    assert rel.conflict_rate[0, 2] == 1.0 and rel.conflict_rate[0, 1] == 0.0
    assert abs(float(rel.cosine[0, 3])) < 0.15
    assert abs(float(rel.norm_ratio[0, 2]) - 1.0) < 1e-6


def _final_state(tiny, recorders):
    trainer, data, loader = tiny(dropout=0.3, step_callbacks=recorders)
    trainer.fit(loader, data, epochs=2)
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}, trainer


def test_recorders_do_not_change_the_training_trajectory(tiny):
    plain, _ = _final_state(tiny, [])
    gradients, affinity = GradientRecorder(every=2), AffinityRecorder(every=3)
    recorded, trainer = _final_state(tiny, [gradients, affinity])
    assert all(torch.equal(plain[k], recorded[k]) for k in plain)  # bit-identical, with dropout
    assert len(gradients.relations().steps) == 4 and affinity.steps == [1, 4, 7]
    assert gradients.seconds > 0 and affinity.seconds > 0


def test_recorder_leaves_params_grad_and_buffers_untouched(tiny):
    trainer, data, loader = tiny()
    inputs, targets = next(iter(loader))
    trainer.train_step(inputs, targets)
    grads = [None if p.grad is None else p.grad.clone() for p in trainer.model.parameters()]
    params = [p.detach().clone() for p in trainer.model.parameters()]
    rng = torch.get_rng_state()
    AffinityRecorder()(trainer, inputs, targets, None)
    GradientRecorder()(trainer, inputs, targets, None)
    assert all(torch.equal(a, p) for a, p in zip(params, trainer.model.parameters()))
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, trainer.model.parameters()))
    assert torch.equal(rng, torch.get_rng_state())
