"""A synthetic recommender log: power-law ids, a click task and a post-click conversion task.

Each row is an impression ``(user, item, context, x)`` with ``x ~ N(0, I_m)`` (``n_numeric = m``).

**Ids.** Users, items and contexts are drawn by frequency rank ``k = 1..n`` with Zipf-like
probabilities ``P(k) = k^(−s) / H(n, s)``, ``H(n, s) = Σⱼ₌₁ⁿ j^(−s)`` (``s`` = ``zipf``; ``s = 0``
is uniform), so the ``r`` most frequent ids hold the share ``H(r, s) / H(n, s)`` of the rows (see
:func:`zipf_share`). The raw id of rank ``k`` is ``π(k − 1)`` for a random permutation ``π`` of
``0..n−1`` fixed by the seed (ids carry no rank order).

**Scores.** Every user gets latent vectors ``u, u′ ∈ ℝᵈ``, every item ``v, v′``, every context
biases ``b, b′`` (``d`` = ``latent_dim``; components ``N(0, d^(−1/2))`` so ``u·v`` has unit
variance; ``b ~ N(0, 1)``); ``a, g`` are random unit vectors of ``ℝᵐ``. Two independent raw scores

    s_click = aᵀx + u_user·v_item + b_context,    s_ind = gᵀx + u′_user·v′_item + b′_context

are standardized to ``s̃`` (zero mean, unit variance) with the moments of a fixed calibration
sample of 50,000 rows, and ``s̃_ind`` is made uncorrelated with ``s̃_click`` on that sample,
``s̃_ind ← (s̃_ind − r·s̃_click) / √(1 − r²)`` with ``r`` their sample correlation (with few,
skewed ids, e.g. a handful of contexts, independent draws can correlate by chance).
With ``ρ`` = ``relatedness`` ∈ [0, 1] and ``β`` = ``SIGNAL`` (2):

    click logit      = β·s̃_click + c₁
    conversion logit = β·(ρ·s̃_click + √(1 − ρ²)·s̃_ind) + c₂

so ``corr(s̃_click, ρ·s̃_click + √(1 − ρ²)·s̃_ind) = ρ`` (ρ = 1: one shared score, ρ = 0:
independent tasks). ``click ~ Bernoulli(σ(click logit))``; ``conversion ~ Bernoulli(σ(conversion
logit))`` is drawn only where ``click = 1`` and is missing elsewhere (``IGNORE_INDEX``, −100, so
the trainer masks it, as in ESMM's click → conversion pair). The intercepts solve, on the
calibration sample, ``E[σ(click logit)] = click_rate`` and
``E[σ(click logit)·σ(conversion logit)] / E[σ(click logit)] = conversion_rate`` (the conversion
rate among clicks).

**Features of the in-memory dataset.** Raw ids are not given to the model as they are: each id
column becomes a one-hot of its frequency-rank bucket ``⌊log₂ k⌋`` (``min(⌊log₂ n⌋ + 1, 24)``
buckets) and a one-hot of the hashed id ``id mod hash_buckets`` (``hash_buckets`` ≤ 48), next to
the ``m`` ≤ 32 numeric features: at most ``32 + 3·(24 + 48) = 248`` columns whatever
``n_users``/``n_items``. These features see the latent ``u·v`` only in part; learned embeddings
of the raw ids are future work (issue #16). ``benchmarks/recsys/write_parquet.py`` writes the raw
ids, numeric features and labels of the same generator to Parquet, chunk by chunk.

Rows are split 60/20/20 at random; ``n_rows`` rows from the same ``seed`` equal the first chunk
the Parquet script writes with ``--chunk-rows ≥ n_rows``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtlkit.data.builtin._split import split_indices, tabular_bundle
from mtlkit.data.bundle import DatasetBundle
from mtlkit.tasks import Task
from mtlkit.tasks.kinds.base import IGNORE_INDEX

SIGNAL = 2.0
"""``β``: the scale of the standardized scores in both logits."""
CALIBRATION_ROWS = 50_000
MAX_RANK_BUCKETS = 24
MAX_HASH_BUCKETS = 48
MAX_NUMERIC = 32
ID_COLUMNS = ("user", "item", "context")


def zipf_probabilities(n: int, exponent: float) -> np.ndarray:
    """``P(k) = k^(−s) / Σⱼ₌₁ⁿ j^(−s)`` for the ranks ``k = 1..n``."""
    weights = np.arange(1, n + 1, dtype=float) ** (-float(exponent))
    return weights / weights.sum()


def zipf_share(top: int, n: int, exponent: float) -> float:
    """The expected share of rows held by the ``top`` most frequent of ``n`` ids:
    ``H(top, s) / H(n, s)``."""
    return float(zipf_probabilities(n, exponent)[:top].sum())


def rank_buckets(n: int) -> int:
    """The number of rank buckets ``⌊log₂ k⌋`` of ``n`` ids: ``min(⌊log₂ n⌋ + 1, 24)``."""
    return min(int(np.floor(np.log2(n))) + 1, MAX_RANK_BUCKETS)


def _bisect(f, target: float) -> float:
    """The ``c`` with ``f(c) = target`` for an increasing ``f``."""
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return (lo + hi) / 2


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class RecsysGenerator:
    """The generator of the module docstring; :meth:`chunk` draws rows (see also
    :func:`load_recsys_synthetic`)."""

    n_users: int = 1000
    n_items: int = 5000
    n_contexts: int = 20
    zipf: float = 1.1
    n_numeric: int = 8
    click_rate: float = 0.1
    conversion_rate: float = 0.2
    relatedness: float = 0.5
    latent_dim: int = 4
    hash_buckets: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        self._check()
        rng = np.random.default_rng([self.seed, 0])
        sizes = dict(zip(ID_COLUMNS, (self.n_users, self.n_items, self.n_contexts), strict=True))
        self.sizes = sizes
        self.cdf = {c: np.cumsum(zipf_probabilities(n, self.zipf)) for c, n in sizes.items()}
        self.ids = {c: rng.permutation(n) for c, n in sizes.items()}
        scale = self.latent_dim**-0.25
        self.latent = [
            {c: scale * rng.standard_normal((sizes[c], self.latent_dim)) for c in ("user", "item")}
            for _ in range(2)
        ]
        self.bias = [rng.standard_normal(self.n_contexts) for _ in range(2)]
        directions = rng.standard_normal((2, self.n_numeric))
        self.directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
        self.moments = [(0.0, 1.0), (0.0, 1.0)]
        self.r = 0.0
        self.intercepts = (0.0, 0.0)
        self._calibrate()

    def _check(self) -> None:
        def need(ok: bool, option: str, rule: str, value: object) -> None:
            if not ok:
                raise ValueError(f"recsys_synthetic: {option} must be {rule}, got {value!r}")

        for option in ("n_users", "n_items", "n_contexts", "latent_dim"):
            value = getattr(self, option)
            need(isinstance(value, int) and value >= 1, option, "an integer >= 1", value)
        need(self.zipf >= 0, "zipf", ">= 0", self.zipf)
        need(
            1 <= self.n_numeric <= MAX_NUMERIC,
            "n_numeric",
            f"in [1, {MAX_NUMERIC}]",
            self.n_numeric,
        )
        need(
            1 <= self.hash_buckets <= MAX_HASH_BUCKETS,
            "hash_buckets",
            f"in [1, {MAX_HASH_BUCKETS}]",
            self.hash_buckets,
        )
        for option in ("click_rate", "conversion_rate"):
            value = getattr(self, option)
            need(0.0 < value < 1.0, option, "in (0, 1)", value)
        need(0.0 <= self.relatedness <= 1.0, "relatedness", "in [0, 1]", self.relatedness)

    def _raw_scores(self, ranks: dict[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
        return [
            x @ self.directions[i]
            + np.einsum(
                "nd,nd->n",
                self.latent[i]["user"][ranks["user"]],
                self.latent[i]["item"][ranks["item"]],
            )
            + self.bias[i][ranks["context"]]
            for i in range(2)
        ]

    def _logits(self, ranks: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (m1, s1), (m2, s2) = self.moments
        raw_click, raw_ind = self._raw_scores(ranks, x)
        click, independent = (raw_click - m1) / s1, (raw_ind - m2) / s2
        independent = (independent - self.r * click) / np.sqrt(1.0 - self.r**2)
        rho = self.relatedness
        conversion = rho * click + np.sqrt(1.0 - rho**2) * independent
        return SIGNAL * click + self.intercepts[0], SIGNAL * conversion + self.intercepts[1]

    def _draw(self, n: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
        ranks = {
            c: np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)
            for c, cdf in self.cdf.items()
        }
        return ranks, rng.standard_normal((n, self.n_numeric))

    def _calibrate(self) -> None:
        ranks, x = self._draw(CALIBRATION_ROWS, np.random.default_rng([self.seed, 2]))
        raw = self._raw_scores(ranks, x)
        self.moments = [(float(s.mean()), float(s.std()) or 1.0) for s in raw]
        r = float(np.corrcoef(raw[0], raw[1])[0, 1])
        self.r = float(np.clip(np.nan_to_num(r), -0.99, 0.99))
        click, conversion = self._logits(ranks, x)  # intercepts 0
        c1 = _bisect(lambda c: _sigmoid(click + c).mean(), self.click_rate)
        p_click = _sigmoid(click + c1)
        c2 = _bisect(
            lambda c: (p_click * _sigmoid(conversion + c)).mean() / p_click.mean(),
            self.conversion_rate,
        )
        self.intercepts = (c1, c2)

    def chunk(self, n: int, index: int = 0) -> dict[str, np.ndarray]:
        """Chunk ``index`` of ``n`` rows (its own random stream ``[seed, 1, index]``): raw ids
        ``user``/``item``/``context``, their 0-based frequency ranks ``*_rank``, numeric ``x``
        (n × m), the two logits and labels ``click`` (0/1) and ``conversion`` (0/1 where
        clicked, ``IGNORE_INDEX`` elsewhere)."""
        rng = np.random.default_rng([self.seed, 1, index])
        ranks, x = self._draw(n, rng)
        click_logit, conversion_logit = self._logits(ranks, x)
        click = (rng.random(n) < _sigmoid(click_logit)).astype(np.int64)
        converted = (rng.random(n) < _sigmoid(conversion_logit)).astype(np.int64)
        rows = {c: self.ids[c][r] for c, r in ranks.items()}
        rows |= {f"{c}_rank": r for c, r in ranks.items()}
        return rows | {
            "x": x,
            "click_logit": click_logit,
            "conversion_logit": conversion_logit,
            "click": click,
            "conversion": np.where(click == 1, converted, IGNORE_INDEX),
        }

    def features(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        """The feature matrix ``[x, then per id column: one-hot of the rank bucket ⌊log₂ k⌋,
        one-hot of id mod hash_buckets]``."""
        blocks = [rows["x"]]
        for c in ID_COLUMNS:
            n_buckets = rank_buckets(self.sizes[c])
            bucket = np.minimum(np.floor(np.log2(rows[f"{c}_rank"] + 1)).astype(int), n_buckets - 1)
            blocks.append(np.eye(n_buckets)[bucket])
            blocks.append(np.eye(self.hash_buckets)[rows[c] % self.hash_buckets])
        return np.concatenate(blocks, axis=1).astype("float32")


def load_recsys_synthetic(
    n_rows: int = 20000,
    n_users: int = 1000,
    n_items: int = 5000,
    n_contexts: int = 20,
    zipf: float = 1.1,
    n_numeric: int = 8,
    click_rate: float = 0.1,
    conversion_rate: float = 0.2,
    relatedness: float = 0.5,
    latent_dim: int = 4,
    hash_buckets: int = 16,
    seed: int = 0,
) -> DatasetBundle:
    """Binary tasks ``click`` and ``conversion`` (labelled only where clicked) on the bounded
    features of :meth:`RecsysGenerator.features`; formulas in the module docstring."""
    if not isinstance(n_rows, int) or n_rows < 5:
        raise ValueError(f"recsys_synthetic: n_rows must be an integer >= 5, got {n_rows!r}")
    generator = RecsysGenerator(
        n_users=n_users,
        n_items=n_items,
        n_contexts=n_contexts,
        zipf=zipf,
        n_numeric=n_numeric,
        click_rate=click_rate,
        conversion_rate=conversion_rate,
        relatedness=relatedness,
        latent_dim=latent_dim,
        hash_buckets=hash_buckets,
        seed=seed,
    )
    rows = generator.chunk(n_rows, 0)
    tasks = [Task("click", "binary"), Task("conversion", "binary")]
    return tabular_bundle(
        "recsys_synthetic",
        tasks,
        generator.features(rows),
        {"click": rows["click"], "conversion": rows["conversion"]},
        split_indices(n_rows, 0.2, 0.2, seed=seed),
        description=(
            f"synthetic recommender log, {n_rows} rows, click rate {click_rate}, "
            f"conversion rate {conversion_rate} after a click, relatedness {relatedness}"
        ),
    )


__all__ = [
    "RecsysGenerator",
    "load_recsys_synthetic",
    "rank_buckets",
    "zipf_probabilities",
    "zipf_share",
]
