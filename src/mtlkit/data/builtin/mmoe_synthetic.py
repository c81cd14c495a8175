"""Two regression tasks of set relatedness, generated as in Ma et al. (KDD 2018, MMoE), §3.2.

"Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts":

1. two orthogonal unit vectors ``u₁, u₂ ∈ ℝᵈ`` (orthonormalised Gaussian vectors);
2. ``w₁ = c·u₁`` and ``w₂ = c·(p·u₁ + √(1−p²)·u₂)``, so ``cos(w₁, w₂) = p`` exactly
   (``p`` = ``correlation`` ∈ [−1, 1], ``c`` = ``scale``);
3. inputs ``x ~ N(0, I_d)``;
4. ``yᵢ = wᵢᵀx + Σⱼ₌₁ᵐ sin(αⱼ wᵢᵀx + βⱼ) + εᵢ``, ``εᵢ ~ N(0, noise²)``.

The paper sets ``m = 10`` and ``ε ~ N(0, 0.01)`` (read here as variance 0.01: ``noise = 0.1``)
but does not publish ``c``, ``d``, ``αⱼ`` or ``βⱼ``. By default (``sines="reference"``) we follow
Google Research's generator for this paper (``generate_task_pairs`` in the google-research
repository): ``c = 1``, ``αⱼ = j`` and ``βⱼ = (j − 1)²`` for ``j = 1..m``, so the
sine terms reach frequency ``m`` in the score ``wᵢᵀx ~ N(0, c²)``. ``sines="gaussian"`` draws
``αⱼ, βⱼ ~ N(0, 1)`` once from a fixed generator instead (low frequencies: an easier task).
``d = 100`` is the paper's input size. Every ``seed`` regenerates the directions, inputs and
noise of the *same* family of tasks, as the paper's repeated runs do. ``p`` is the cosine of the
task weights; the Pearson correlation of the labels falls with it (below it: the sine terms
decorrelate faster than the linear part). Tasks ``y1`` and ``y2``; split 60/20/20; targets
standardized on the training split.
"""

from __future__ import annotations

import numpy as np

from mtlkit.data.builtin._split import split_indices, tabular_bundle
from mtlkit.data.bundle import DatasetBundle
from mtlkit.tasks import Task

SINE_PARAMETER_SEED = 2018


SINES = ("reference", "gaussian")


def sine_parameters(num_sines: int, sines: str = "reference") -> tuple[np.ndarray, np.ndarray]:
    """The ``(α, β)`` of the ``num_sines`` sine terms.

    ``"reference"``: ``αⱼ = j``, ``βⱼ = (j − 1)²`` (Google Research's generator);
    ``"gaussian"``: ``αⱼ, βⱼ ~ N(0, 1)``, one fixed draw.
    """
    if sines == "reference":
        j = np.arange(1, num_sines + 1, dtype=float)
        return j, (j - 1.0) ** 2
    if sines == "gaussian":
        alpha, beta = np.random.default_rng(SINE_PARAMETER_SEED).standard_normal((2, num_sines))
        return alpha, beta
    raise ValueError(f"mmoe_synthetic: sines must be one of {', '.join(SINES)}, got {sines!r}")


def task_weights(
    correlation: float, n_features: int, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``w₁ = c·u₁``, ``w₂ = c·(p·u₁ + √(1−p²)·u₂)`` for random orthonormal ``u₁, u₂``."""
    basis, _ = np.linalg.qr(rng.standard_normal((n_features, 2)))
    u1, u2 = basis[:, 0], basis[:, 1]
    return scale * u1, scale * (correlation * u1 + np.sqrt(1.0 - correlation**2) * u2)


def mmoe_label(score: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``s + Σⱼ sin(αⱼ s + βⱼ)`` for the linear scores ``s = wᵀx``."""
    return score + np.sin(np.multiply.outer(score, alpha) + beta).sum(axis=-1)


def load_mmoe_synthetic(
    correlation: float = 0.5,
    n_samples: int = 10000,
    n_features: int = 100,
    scale: float = 1.0,
    num_sines: int = 10,
    noise: float = 0.1,
    sines: str = "reference",
    seed: int = 0,
) -> DatasetBundle:
    """Ma et al.'s synthetic pair of tasks; ``correlation`` is the cosine of their weights."""
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"mmoe_synthetic: correlation must be in [-1, 1], got {correlation}")
    if n_features < 2:
        raise ValueError(f"mmoe_synthetic: n_features must be >= 2, got {n_features}")
    if n_samples < 5:
        raise ValueError(f"mmoe_synthetic: n_samples must be >= 5, got {n_samples}")
    if num_sines < 0 or noise < 0 or scale <= 0:
        raise ValueError(
            "mmoe_synthetic: need num_sines >= 0, noise >= 0 and scale > 0 "
            f"(got {num_sines}, {noise}, {scale})"
        )
    alpha, beta = sine_parameters(num_sines, sines)
    rng = np.random.default_rng(seed)
    weights = task_weights(correlation, n_features, scale, rng)
    x = rng.standard_normal((n_samples, n_features))
    targets = {
        f"y{i + 1}": mmoe_label(x @ w, alpha, beta) + noise * rng.standard_normal(n_samples)
        for i, w in enumerate(weights)
    }
    tasks = [Task(name, "regression") for name in targets]
    return tabular_bundle(
        "mmoe_synthetic",
        tasks,
        x.astype("float32"),
        targets,
        split_indices(n_samples, 0.2, 0.2, seed=seed),
        description=f"Ma et al. (2018) synthetic regression pair, correlation {correlation}",
    )


__all__ = ["SINES", "load_mmoe_synthetic", "mmoe_label", "sine_parameters", "task_weights"]
