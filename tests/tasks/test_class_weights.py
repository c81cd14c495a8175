"""``class_weight`` and ``pos_weight``: the loss equals torch's weighted loss; balanced weights."""

import pytest
import torch
import torch.nn.functional as F

from mtlkit.tasks import IGNORE_INDEX, Task


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


def test_multiclass_class_weight_is_torchs_weighted_cross_entropy(rng):
    task = Task("m", "multiclass", 3, class_weight=[0.5, 2.0, 1.0])
    logits = torch.randn(20, 3, generator=rng)
    y = torch.randint(0, 3, (20,), generator=rng)
    expected = F.cross_entropy(logits, y, weight=torch.tensor([0.5, 2.0, 1.0]))
    torch.testing.assert_close(task.compute_loss(logits, y), expected)


def test_class_weight_skips_missing_labels(rng):
    task = Task("m", "multiclass", 3, class_weight=[0.5, 2.0, 1.0])
    logits = torch.randn(20, 3, generator=rng)
    y = torch.randint(0, 3, (20,), generator=rng)
    y[::3] = IGNORE_INDEX
    keep = y != IGNORE_INDEX
    expected = F.cross_entropy(logits[keep], y[keep], weight=torch.tensor([0.5, 2.0, 1.0]))
    torch.testing.assert_close(task.compute_loss(logits, y), expected)


def test_binary_class_weight_is_the_two_class_weighted_cross_entropy(rng):
    # one logit z is the two-class softmax over (0, z)
    task = Task("b", "binary", class_weight={"no": 1.0, "yes": 3.0}, class_names=["no", "yes"])
    z = torch.randn(30, 1, generator=rng)
    y = torch.randint(0, 2, (30,), generator=rng)
    two_class = torch.cat([torch.zeros_like(z), z], dim=1)
    expected = F.cross_entropy(two_class, y, weight=torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(task.compute_loss(z, y), expected)


def test_binary_pos_weight_is_torchs_pos_weight(rng):
    task = Task("b", "binary", pos_weight=4.0)
    z = torch.randn(30, 1, generator=rng)
    y = torch.randint(0, 2, (30,), generator=rng)
    expected = F.binary_cross_entropy_with_logits(
        z.reshape(-1), y.float(), pos_weight=torch.tensor([4.0])
    )
    torch.testing.assert_close(task.compute_loss(z, y), expected)


def test_multilabel_pos_weight_per_label_on_labelled_entries(rng):
    task = Task("t", "multilabel", 3, pos_weight=[1.0, 5.0, 0.5])
    z = torch.randn(25, 3, generator=rng)
    y = torch.randint(0, 2, (25, 3), generator=rng)
    y[::4, 1] = IGNORE_INDEX
    keep = y != IGNORE_INDEX
    per_entry = F.binary_cross_entropy_with_logits(
        z, y.float().clamp(min=0), pos_weight=torch.tensor([1.0, 5.0, 0.5]), reduction="none"
    )
    torch.testing.assert_close(task.compute_loss(z, y), per_entry[keep].mean())


def test_balanced_class_weight_is_n_over_k_times_count():
    y = torch.tensor([0] * 6 + [1] * 3 + [2] * 1 + [IGNORE_INDEX] * 5)
    task = Task("m", "multiclass", 3, class_weight="balanced").fit_class_weights(y)
    n, k = 10, 3
    assert task.class_weight == pytest.approx([n / (k * 6), n / (k * 3), n / (k * 1)])
    # every class then carries the same total weight n / k
    counts = torch.tensor([6.0, 3.0, 1.0])
    torch.testing.assert_close(torch.tensor(task.class_weight) * counts, torch.full((3,), n / k))


def test_balanced_binary_class_weight_and_pos_weight():
    y = torch.tensor([1, 0, 0, 0, IGNORE_INDEX, 0])
    weighted = Task("b", "binary", class_weight="balanced").fit_class_weights(y)
    assert weighted.class_weight == pytest.approx([5 / (2 * 4), 5 / (2 * 1)])
    positive = Task("b", "binary", pos_weight="balanced").fit_class_weights(y)
    assert positive.pos_weight == pytest.approx([4.0])


def test_balanced_multilabel_pos_weight_is_negatives_per_positive():
    y = torch.tensor([[1, 0], [0, 1], [0, IGNORE_INDEX], [1, 1], [0, 1]])
    task = Task("t", "multilabel", 2, pos_weight="balanced").fit_class_weights(y)
    assert task.pos_weight == pytest.approx([3 / 2, 1 / 3])


def test_unfitted_balanced_weights_are_an_error_naming_the_task():
    task = Task("m", "multiclass", 3, class_weight="balanced")
    with pytest.raises(ValueError, match="task 'm': class_weight 'balanced' is computed"):
        task.compute_loss(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_balanced_with_an_empty_class_is_an_error_naming_it():
    task = Task("m", "multiclass", 3, class_weight="balanced", class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="task 'm': class_weight 'balanced': class 'c' has no"):
        task.fit_class_weights(torch.tensor([0, 1, 1]))


def test_mapping_keys_by_name_or_index_and_unlisted_classes_weigh_one():
    named = Task("m", "multiclass", 3, class_names=["a", "b", "c"], class_weight={"b": 2})
    assert named.class_weight == [1.0, 2.0, 1.0]
    indexed = Task("m", "multiclass", 3, class_weight={2: 4.0, "0": 0.5})
    assert indexed.class_weight == [0.5, 1.0, 4.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"kind": "regression", "class_weight": "balanced"},
            "class_weight applies to multiclass and binary tasks, not to a regression task",
        ),
        (
            {"kind": "multilabel", "num_outputs": 2, "class_weight": [1, 2]},
            "class_weight applies to multiclass and binary tasks, not to a multilabel task",
        ),
        (
            {"kind": "multiclass", "num_outputs": 3, "pos_weight": 2.0},
            "pos_weight applies to binary and multilabel tasks, not to a multiclass task",
        ),
        ({"kind": "binary", "class_weight": [1, 2], "pos_weight": 2.0}, "not both"),
        ({"kind": "multiclass", "num_outputs": 3, "class_weight": [1, 2]}, "needs 3 weights"),
        ({"kind": "multiclass", "num_outputs": 2, "class_weight": {"z": 1}}, "unknown class 'z'"),
        ({"kind": "binary", "class_weight": "auto"}, "must be 'balanced'"),
        ({"kind": "binary", "pos_weight": -1.0}, "numbers > 0, got -1.0"),
        ({"kind": "multilabel", "num_outputs": 3, "pos_weight": [1, 2]}, "needs 3 weights"),
    ],
)
def test_bad_weight_options_are_errors_naming_the_task(kwargs, message):
    with pytest.raises(ValueError, match="task 't'") as err:
        Task("t", **kwargs)
    assert message in str(err.value)


def test_weights_round_trip_through_to_dict():
    task = Task("m", "multiclass", 3, class_weight=[0.5, 2.0, 1.0])
    assert Task.from_dict(task.to_dict()) == task
    assert Task.from_dict(Task("b", "binary", pos_weight=2).to_dict()).pos_weight == [2.0]


# --- weight tensors: built once per device and dtype, float32 under autocast ----------------

# weights bfloat16 cannot hold (8 significant bits): rounding them would move the loss
_AUTOCAST_CASES = [
    ("multiclass", 3, {"class_weight": [1.37, 0.613, 2.931]}),
    ("binary", 1, {"class_weight": [0.613, 2.931]}),
    ("binary", 1, {"pos_weight": 2.931}),
    ("multilabel", 3, {"pos_weight": [1.37, 0.613, 2.931]}),
]


def _batch(kind, outputs, rows=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 6, generator=generator)
    if kind == "multiclass":
        y = torch.randint(0, outputs, (rows,), generator=generator)
    else:
        shape = (rows, outputs) if kind == "multilabel" else (rows,)
        y = torch.randint(0, 2, shape, generator=generator)
    return x, y


@pytest.mark.parametrize(("kind", "outputs", "weights"), _AUTOCAST_CASES)
def test_weighted_loss_under_bf16_autocast_equals_the_float32_loss_of_the_same_logits(
    kind, outputs, weights
):
    torch.manual_seed(0)
    task = Task("t", kind, outputs, **weights)
    head = torch.nn.Linear(6, outputs)
    x, y = _batch(kind, outputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(x)
        loss = task.compute_loss(logits, y)
    assert logits.dtype == torch.bfloat16
    # the reference: the same bf16-rounded logits, everything after them in float32
    reference = task.compute_loss(logits.float(), y)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


@pytest.mark.parametrize(("kind", "outputs", "weights"), _AUTOCAST_CASES)
def test_weighted_loss_of_bf16_logits_outside_autocast_is_computed_in_float32(
    kind, outputs, weights
):
    task = Task("t", kind, outputs, **weights)
    x, y = _batch(kind, outputs)
    logits = torch.nn.Linear(6, outputs)(x).to(torch.bfloat16)
    loss = task.compute_loss(logits, y)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(task.compute_loss(logits.float(), y).item(), rel=1e-6)


def test_weight_tensors_are_built_once_per_device_and_dtype():
    from mtlkit.tasks.class_weights import as_weight_tensor

    weights = [1.37, 0.613, 2.931]
    bf16, fp32, fp64 = (
        torch.zeros(2, dtype=d) for d in (torch.bfloat16, torch.float32, torch.float64)
    )
    first = as_weight_tensor(weights, fp32, "class_weight", "t")
    assert as_weight_tensor(list(weights), fp32, "class_weight", "t") is first
    assert as_weight_tensor(weights, bf16, "class_weight", "t") is first  # float32 for bf16 too
    double = as_weight_tensor(weights, fp64, "class_weight", "t")
    assert double.dtype == torch.float64 and double is not first
    assert first.dtype == torch.float32 and first.tolist() == pytest.approx(weights)


def test_a_weight_tensor_first_built_in_inference_mode_still_trains():
    task = Task("t", "multiclass", 3, class_weight=[1.0, 2.0, 0.5 + 1e-3])
    x, y = _batch("multiclass", 3)
    head = torch.nn.Linear(6, 3)
    with torch.inference_mode():
        task.compute_loss(head(x), y)
    task.compute_loss(head(x), y).backward()
    assert head.weight.grad is not None
