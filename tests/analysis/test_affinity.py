import copy

import pytest
import torch

from mtlkit.analysis import AffinityRecorder, lookahead_affinity


def _by_hand(trainer, inputs, targets, lr):
    """Z by an explicit copy of the model and an SGD step of its encoder on one task."""
    base = trainer.task_losses(trainer.model(inputs), targets).detach()
    z = torch.zeros(len(trainer.tasks), len(trainer.tasks), dtype=torch.float64)
    for i in range(len(trainer.tasks)):
        model = copy.deepcopy(trainer.model)
        loss = trainer.task_losses(model(inputs), targets)[i]
        shared = list(model.shared_parameters())
        grads = torch.autograd.grad(loss, shared)
        with torch.no_grad():
            for p, g in zip(shared, grads):
                p -= lr * g
            after = trainer.task_losses(model(inputs), targets)
        z[i] = (1 - after / base).double()
    return z


@pytest.mark.parametrize("lr", [None, 0.3])
def test_lookahead_matches_an_explicit_sgd_step_on_the_shared_parameters(lr, tiny):
    trainer, data, loader = tiny(lr=0.05)
    inputs, targets = next(iter(loader))
    trainer.train_step(inputs, targets)
    z, gramian, present = lookahead_affinity(trainer, inputs, targets, lr=lr)
    expected = _by_hand(trainer, inputs, targets, 0.05 if lr is None else lr)
    assert torch.allclose(z, expected, atol=1e-6, rtol=1e-4)
    assert present.all() and gramian.shape == (3, 3)
    assert (z.diagonal() > 0).all()  # a small step on a task lowers its own loss


def test_small_step_affinity_is_first_order_in_the_gradient_inner_product(tiny):
    trainer, data, loader = tiny()
    inputs, targets = next(iter(loader))
    lr = 1e-4
    z, gramian, _ = lookahead_affinity(trainer, inputs, targets, lr=lr)
    losses = trainer.task_losses(trainer.model(inputs), targets).detach().double()
    first_order = lr * gramian.double() / losses[None, :]
    assert torch.allclose(z, first_order, rtol=2e-2, atol=1e-7)


def test_recorder_averages_over_recorded_steps_and_checks_arguments(tiny):
    trainer, data, loader = tiny()
    recorder = AffinityRecorder(every=2)
    trainer.step_callbacks.append(recorder)
    trainer.fit(loader, epochs=1)
    assert recorder.steps == [1, 3] and recorder.affinity().shape == (3, 3)
    assert recorder.relations().counts[0, 1] == 2
    with pytest.raises(ValueError):
        AffinityRecorder(every=0)
    with pytest.raises(ValueError):
        AffinityRecorder(lr=-1.0)
    with pytest.raises(ValueError):
        AffinityRecorder().affinity()
