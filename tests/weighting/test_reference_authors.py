"""Every strategy against a reference re-derived from its authors' published code.

Each reference below is written here, from the formulas of the code named in its docstring
(read, not imported: none of it is a dependency), and checked over several steps on the same
hard Jacobians: exactly linearly dependent rows (task 3 = task 1 + task 2) in float32 and
float64, a Gramian with eigenvalue ratio ≥ 1e4, gradient norms that differ by 1e4, and
near-duplicate and opposed tasks. Where the authors' solver is iterative or inexact (MGDA's
Frank–Wolfe, Nash-MTL's sequence of convex programs) the reference solves the same problem
exactly by another route (KKT enumeration, a root finder); CAGrad's SLSQP runs at a tight
tolerance from several starts. Stateful strategies (GradVac, DB-MTL, FAMO, UW, DWA, GradNorm)
are replayed step by step and their state compared.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import fsolve, minimize

from mtlkit.weighting import make_weighting

T, P = 3, 40


def _rows(kind: str, gen: torch.Generator) -> torch.Tensor:
    """A float64 T × P Jacobian of the named kind."""
    a = torch.randn(T, P, generator=gen, dtype=torch.float64)
    if kind == "dependent":  # task 3 = task 1 + task 2, exactly
        a[2] = a[0] + a[1]
    elif kind == "ill":  # eigenvalues of G in ratio (1 / 0.005)² = 4e4
        q, _ = torch.linalg.qr(a.T)
        u, _ = torch.linalg.qr(torch.randn(T, T, generator=gen, dtype=torch.float64))
        a = (u * torch.tensor([1.0, 0.1, 0.005], dtype=torch.float64)) @ q.T
    elif kind == "scales":  # ‖g₁‖ / ‖g₂‖ ≈ 1e4
        a = a * torch.tensor([[1e2], [1e-2], [1.0]], dtype=torch.float64)
    elif kind == "near_duplicate":
        a[1] = a[0] + 1e-2 * a[1]  # G's eigenvalues in ratio ~1e-4
    elif kind == "opposed":
        a[1] = -a[0] + 0.05 * a[1]
    return a


KINDS = ["dependent", "ill", "scales", "near_duplicate", "opposed"]
DTYPES = [torch.float32, torch.float64]


def steps(kind: str, dtype: torch.dtype, n: int = 4, seed: int = 0) -> list[torch.Tensor]:
    """``n`` Jacobians of one kind in ``dtype`` (a short training run's worth of steps).

    Dependent rows stay exactly dependent after the cast: the sum is formed in ``dtype``.
    """
    gen = torch.Generator().manual_seed(seed + 100 * KINDS.index(kind))
    out = []
    for _ in range(n):
        j = _rows(kind, gen).to(dtype)
        if kind == "dependent":
            j[2] = j[0] + j[1]
        out.append(j)
    return out


CASES = [(k, d) for k in KINDS for d in DTYPES]
CASE_IDS = [f"{k}-{str(d).removeprefix('torch.')}" for k, d in CASES]


def gramian_of(j: torch.Tensor) -> torch.Tensor:
    return j @ j.T


def weights_of(strategy, gramian: torch.Tensor) -> torch.Tensor:
    """A Gramian strategy's maths entry point: ``forward(G) ↦ w``."""
    return strategy(gramian)


def assert_direction(got: torch.Tensor, expected: np.ndarray, j: torch.Tensor, rtol: float):
    """``Jᵀw`` (the update) against the reference's, relative to the larger of the two norms
    and the largest task gradient (the scale a float32 Jacobian is exact to)."""
    got = got.double().numpy()
    scale = max(np.linalg.norm(expected), float(j.double().norm(dim=1).max()) * 1e-3)
    assert np.linalg.norm(got - expected) <= rtol * scale, (got, expected)


def rtol_for(dtype: torch.dtype, kind: str = "") -> float:
    """Float32 results are exact to about eps32 times the condition number of the problem."""
    if dtype == torch.float64:
        return 1e-6
    return 3e-2 if kind in ("ill", "near_duplicate") else 2e-3


def exact(j: torch.Tensor, kind: str) -> np.ndarray:
    """The float64 Jacobian ``j`` stands for: for ``dependent``, row 3 = row 1 + row 2 exactly."""
    out = j.double().numpy().copy()
    if kind == "dependent":
        out[2] = out[0] + out[1]
    return out


# ---------------------------------------------------------------------------------------------
# IMTL-G — LibMTL/weighting/IMTL.py (gradient part; the IMTL authors published no code):
#   D = g₁ − g_{2..T},  U = u₁ − u_{2..T} (uₜ = gₜ/‖gₜ‖),  α_{2..T} = g₁Uᵀ (DUᵀ)⁻¹,
#   α₁ = 1 − Σ α_{2..T}.  With dependent rows DUᵀ is singular and equal projections force
#   d = 0; the generalisation (torchjd; Quinton & Rey 2024) takes the least-norm least-squares
#   solution of G v = √diag(G), w = v / Σv, computed here by an SVD least-squares solve.
# ---------------------------------------------------------------------------------------------


def imtl_reference(j: np.ndarray) -> np.ndarray:
    if np.linalg.matrix_rank(j) < j.shape[0]:
        g = j @ j.T
        v = np.linalg.lstsq(g, np.sqrt(np.diag(g)), rcond=1e-10)[0]
        return (v / v.sum()) @ j
    units = j / np.linalg.norm(j, axis=1, keepdims=True)
    d = j[:1] - j[1:]
    u = units[:1] - units[1:]
    rest = j[0] @ u.T @ np.linalg.inv(d @ u.T)
    alpha = np.concatenate([[1.0 - rest.sum()], rest])
    return alpha @ j


@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_imtl_g(kind, dtype):
    strategy = make_weighting("imtl_g", T)
    for j in steps(kind, dtype):
        w = weights_of(strategy, gramian_of(j))
        assert w.dtype == dtype
        expected = imtl_reference(exact(j, kind))
        assert_direction(w.double() @ j.double(), expected, j, rtol_for(dtype, kind))


def test_imtl_g_float32_dependent_rows_agree_with_float64():
    """Defect 1: float32 rounding eigenvalues of an exactly rank-2 G counted as real."""
    ta = pytest.importorskip("torchjd.aggregation")
    strategy = make_weighting("imtl_g", T)
    for j in steps("dependent", torch.float32):
        w32 = weights_of(strategy, gramian_of(j))
        w64 = weights_of(strategy, gramian_of(j.double()))
        torch.testing.assert_close(w32.double(), w64, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(w32 @ j, ta.IMTLG()(j), rtol=1e-4, atol=1e-4)
        assert bool((w32 > 0).all())


# ---------------------------------------------------------------------------------------------
# Aligned-MTL — SamsungLabs/MTL code/optim/aligned/solver.py (ProcrustesSolver.apply):
#   G = V Λ Vᵀ; rank r = #{λ > λ_max · T · eps}; B = √σ V_r Λ_r^{-1/2} V_rᵀ (σ = λ_r for
#   "min", median / mean of Λ_r for "median" / "rmse"); the update is Σₜ (JᵀB)ₜ = Jᵀ(B 1).
#   mtlkit uses the preference vector 1/T (torchjd's), so its weights are B1 / T.
# ---------------------------------------------------------------------------------------------


def aligned_mtl_reference(j: np.ndarray, scale_mode: str) -> np.ndarray:
    g = j @ j.T
    lam, vec = np.linalg.eigh(g)
    rank = int((lam > lam.max() * len(g) * np.finfo(np.float64).eps).sum())
    order = np.argsort(lam)[::-1][:rank]
    lam, vec = lam[order], vec[:, order]
    median = np.sort(lam)[(rank - 1) // 2]  # torch.median: the lower middle value
    sigma = {"min": lam[-1], "median": median, "rmse": lam.mean()}[scale_mode]
    balance = np.sqrt(sigma) * (vec / np.sqrt(lam)) @ vec.T
    return balance.sum(axis=1) @ j / len(g)


def test_aligned_mtl_float32_dependent_rows_agree_with_float64():
    """Defect 1 for Aligned-MTL: the float64 tolerance kept a float32 rounding eigenvalue."""
    ta = pytest.importorskip("torchjd.aggregation")
    strategy = make_weighting("aligned_mtl", T)
    for j in steps("dependent", torch.float32):
        w32 = weights_of(strategy, gramian_of(j))
        w64 = weights_of(strategy, gramian_of(j.double()))
        torch.testing.assert_close(w32.double(), w64, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(w32 @ j, ta.AlignedMTL()(j), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scale_mode", ["min", "median", "rmse"])
@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_aligned_mtl(kind, dtype, scale_mode):
    strategy = make_weighting("aligned_mtl", T, scale_mode=scale_mode)
    for j in steps(kind, dtype):
        w = weights_of(strategy, gramian_of(j))
        assert w.dtype == dtype
        expected = aligned_mtl_reference(exact(j, kind), scale_mode)
        assert_direction(w.double() @ j.double(), expected, j, rtol_for(dtype, kind))


# ---------------------------------------------------------------------------------------------
# CAGrad — Cranial-XIX/CAGrad nyuv2/utils.py, cagrad(grads, alpha=0.5, rescale=1):
#   c = α √(mean G + 1e-8);  w = argmin_{w ∈ Δ} wᵀG1/T + c √(wᵀGw + 1e-8);  g_w = Jᵀw;
#   d = (g₀ + c/(‖g_w‖ + 1e-8) g_w) / (1 + α²)   (rescale=1; 0: no division; 2: 1 + α).
#   The authors solve the subproblem with SciPy's SLSQP from w = 1/T at its default tolerance;
#   the reference uses SLSQP too, at a tight tolerance and from every vertex as well.
# ---------------------------------------------------------------------------------------------


def cagrad_reference(j: np.ndarray, alpha: float, rescale: int) -> np.ndarray:
    g = j @ j.T
    t = len(g)
    b = np.full(t, 1.0 / t)
    c = alpha * np.sqrt(g.mean() + 1e-8)

    def objective(x):
        return x @ g @ b + c * np.sqrt(x @ g @ x + 1e-8)

    def gradient(x):
        return g @ b + c * (g @ x) / np.sqrt(x @ g @ x + 1e-8)

    best = None
    for start in [b, *np.eye(t)]:  # a convex problem: the starts only guard the solver
        res = minimize(
            objective,
            0.98 * start + 0.02 * b,
            jac=gradient,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * t,
            constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0}],
            options={"ftol": 1e-15, "maxiter": 1000},
        )
        if best is None or res.fun < best.fun:
            best = res
    gw = best.x @ j
    d = j.mean(axis=0) + c / (np.linalg.norm(gw) + 1e-8) * gw
    return d / {0: 1.0, 1: 1.0 + alpha**2, 2: 1.0 + alpha}[rescale]


@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_cagrad(kind, dtype):
    """Also defect 5: with norms differing by 1e4 the update was 0, and 1/(1+c²) missing."""
    strategy = make_weighting("cagrad", T)  # the authors' defaults: c = 0.5, rescale = 1
    for j in steps(kind, dtype, n=2):
        w = weights_of(strategy, gramian_of(j))
        expected = cagrad_reference(exact(j, kind), 0.5, 1)
        assert_direction(w.double() @ j.double(), expected, j, 1e-4 + rtol_for(dtype, kind))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cagrad_pareto_stationary_gives_the_mean(dtype):
    """A zero gradient, or exactly opposed ones, make g_w = 0: the authors' update is g₀ (their
    c/(‖g_w‖ + 1e-8) times g_w = 0), with weights 1/T, not √φ/1e-8 on a head."""
    (j,) = steps("opposed", dtype, n=1)
    for jac in (j * torch.tensor([[1.0], [0.0], [1.0]], dtype=dtype), torch.stack([j[0], -j[0]])):
        t = jac.shape[0]
        strategy = make_weighting("cagrad", t)
        w = weights_of(strategy, gramian_of(jac))
        expected = cagrad_reference(jac.double().numpy(), 0.5, 1)
        assert_direction(w.double() @ jac.double(), expected, jac, 1e-4 + rtol_for(dtype))
        assert float(w.abs().max()) <= 1.0


@pytest.mark.parametrize(("c", "rescale"), [(0.4, 0), (0.9, 2)])
def test_cagrad_options(c, rescale):
    strategy = make_weighting("cagrad", T, c=c, rescale=rescale)
    (j,) = steps("opposed", torch.float64, n=1)
    w = weights_of(strategy, gramian_of(j))
    assert_direction(w @ j, cagrad_reference(j.numpy(), c, rescale), j, 1e-4)


# ---------------------------------------------------------------------------------------------
# Nash-MTL — AvivNavon/nash-mtl methods/weight_methods.py, NashMTL: a sequence of convex
#   programs in α ≥ 0 with constraints log(αₜ · ‖G‖_F) + log((G/‖G‖_F) α)ₜ ≥ 0, i.e.
#   αₜ (Gα)ₜ ≥ 1, all active at the solution: G α = 1/α on the unnormalised G, so
#   ‖Jᵀα‖² = αᵀGα = T. The reference solves αₜ(Gα)ₜ = 1 for log α with a root finder.
#   (The update is then clipped to max_norm on the shared parameters: not the weights'.)
# ---------------------------------------------------------------------------------------------


def nash_reference(g: np.ndarray) -> np.ndarray:
    """``αₜ(Gα)ₜ = 1``: minimise ``½αᵀGα − Σ log αₜ`` (whose stationary points these are) with
    L-BFGS-B, then polish the root in ``log α`` with MINPACK's hybrid method."""
    g = g / np.diag(g).max()  # the reference also works at unit scale: α = α̂ / √scale

    def objective(a):
        return 0.5 * a @ g @ a - np.log(a).sum(), g @ a - 1.0 / a

    start = 1.0 / np.sqrt(np.diag(g))
    rough = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(1e-12, None)] * len(g))
    alpha = np.exp(fsolve(lambda u: np.exp(u) * (g @ np.exp(u)) - 1.0, np.log(rough.x)))
    assert np.abs(alpha * (g @ alpha) - 1.0).max() < 1e-9
    return alpha


@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_nash_mtl(kind, dtype):
    """Also defect 2: the weights solved G/‖G‖_F α = 1/α (‖Jᵀα‖ = √T · ‖G‖_F^{1/2})."""
    strategy = make_weighting("nash_mtl", T)
    for j in steps(kind, dtype):
        w = weights_of(strategy, gramian_of(j)).double()
        jx = exact(j, kind)
        gx = jx @ jx.T
        expected = nash_reference(gx) / np.sqrt(np.diag(gx).max())
        np.testing.assert_allclose(w.numpy(), expected, rtol=rtol_for(dtype, kind) * 10)
        d_norm = float((w @ j.double()).norm())
        assert d_norm == pytest.approx(np.sqrt(T), rel=10 * rtol_for(dtype, kind))


# ---------------------------------------------------------------------------------------------
# GradDrop — LibMTL/weighting/GradDrop.py (representation gradients, the paper's placement):
#   S = Σ_batch sign(A) ⊙ ∇_A Lₜ (T × D);  P = ½(1 + ΣS / (Σ|S| + 1e-7));  U ~ U(0,1) per
#   feature;  M = [P > U][S > 0] + [P < U][S < 0], repeated over the batch;
#   new grad at A = Σₜ ∇_A Lₜ ⊙ (ℓ + (1−ℓ) M).
# ---------------------------------------------------------------------------------------------


def graddrop_reference(per_grads: torch.Tensor, rep: torch.Tensor, u: torch.Tensor, leak: float):
    grads = (per_grads * rep.sign()).sum(1)
    purity = 0.5 * (1 + grads.sum(0) / (grads.abs().sum(0) + 1e-7))
    mask = (purity > u) * (grads > 0) + (purity < u) * (grads < 0)
    mask = mask.unsqueeze(1).repeat_interleave(per_grads.shape[1], dim=1)
    return (per_grads * (leak + (1 - leak) * mask)).sum(0)


def _uniforms(strategy, n: int, dtype: torch.dtype) -> torch.Tensor:
    """The numbers ``strategy`` will draw next (from a copy of its generator)."""
    gen = torch.Generator()
    gen.set_state(strategy.generator.get_state())
    return torch.rand(n, generator=gen, dtype=dtype)


@pytest.mark.parametrize("leak", [0.0, 0.3])
@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_graddrop_representation(kind, dtype, leak):
    batch, width = 5, 8
    strategy = make_weighting("graddrop", T, leak=leak, seed=3)
    gen = torch.Generator().manual_seed(7)
    for j in steps(kind, dtype):
        per_grads = j.reshape(T, batch, width)
        rep = torch.randn(batch, width, generator=gen, dtype=dtype)
        u = _uniforms(strategy, width, dtype)
        got = strategy(j, features=[rep])
        expected = graddrop_reference(per_grads, rep, u, leak).reshape(-1)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6 * float(j.abs().max()))


def test_graddrop_representation_mode_shares_one_mask_across_the_batch():
    """Defect 7: through mtl_backward, the mask was drawn per (sample, feature)."""
    from mtlkit.weighting import mtl_backward

    torch.manual_seed(0)
    encoder = torch.nn.Linear(6, 8)
    heads = [torch.nn.Linear(8, 1) for _ in range(T)]
    x = torch.randn(16, 6)
    rep = torch.tanh(encoder(x))
    losses = [((h(rep) - k) ** 2).mean() for k, h in enumerate(heads)]
    per_grads = torch.stack(
        [torch.autograd.grad(loss, rep, retain_graph=True)[0] for loss in losses]
    )
    strategy = make_weighting("graddrop", T, mode="representation", seed=5)
    u = _uniforms(strategy.inner, 8, torch.float32)
    mtl_backward(losses, strategy, features=rep)
    expected_rep_grad = graddrop_reference(per_grads, rep.detach(), u, 0.0)
    (expected,) = torch.autograd.grad(rep, encoder.weight, expected_rep_grad)
    torch.testing.assert_close(encoder.weight.grad, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# FAMO — Cranial-XIX/FAMO famo.py: logits ξ = 0, Adam(ξ; lr=w_lr, weight_decay=γ);
#   z = softmax(ξ), D = L − L* + 1e-8, c = Σ z/D, objective Σ log(D) z / c (so the weight on
#   Lₜ is zₜ / (c Dₜ));  after the optimizer step, with the same batch's new losses L':
#   δ = log D(L) − log D(L'), ξ.grad = J_softmax(ξ)ᵀ δ, one Adam step. mtlkit's ``eps`` is the
#   authors' 1e-8.
# ---------------------------------------------------------------------------------------------


def loss_sequence(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(losses before, losses after) of ``n`` steps: scales 1e2 … 1e-2 (ratio 1e4), one task
    close to 0, decreasing with noise."""
    gen = torch.Generator().manual_seed(seed)
    level = torch.tensor([1e2, 1e-2, 1.0, 3e-6], dtype=torch.float64)
    out = []
    for _ in range(n):
        before = level * (1 + 0.1 * torch.rand(4, generator=gen, dtype=torch.float64))
        after = before * (1 - 0.2 * torch.rand(4, generator=gen, dtype=torch.float64))
        out.append((before, after))
        level = after
    return out


class FAMOReference:
    def __init__(self, n_tasks: int, gamma: float, w_lr: float, eps: float):
        self.w = torch.zeros(n_tasks, dtype=torch.float64, requires_grad=True)
        self.opt = torch.optim.Adam([self.w], lr=w_lr, weight_decay=gamma)
        self.eps = eps

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        losses = losses.clone().requires_grad_(True)
        z = torch.softmax(self.w, -1).detach()
        d = losses + self.eps
        c = (z / d).sum().detach()
        (grad,) = torch.autograd.grad((d.log() * z / c).sum(), losses)
        return grad

    def update(self, prev: torch.Tensor, curr: torch.Tensor) -> None:
        delta = (prev + self.eps).log() - (curr + self.eps).log()
        (d,) = torch.autograd.grad(torch.softmax(self.w, -1), self.w, grad_outputs=delta)
        self.opt.zero_grad()
        self.w.grad = d
        self.opt.step()


@pytest.mark.parametrize(("gamma", "eps"), [(1e-3, 1e-8), (0.01, 0.1)])
def test_famo(gamma, eps):
    """Also defect 9: FAMO's ``eps`` option was ignored."""
    strategy = make_weighting("famo", 4, weight_decay=gamma, eps=eps)
    reference = FAMOReference(4, gamma, 0.025, eps)
    for before, after in loss_sequence(8):
        torch.testing.assert_close(strategy(before), reference.weights(before), rtol=1e-9, atol=0)
        strategy.after_step(before, after)
        reference.update(before, after)
        torch.testing.assert_close(strategy.logits, reference.w.detach(), rtol=1e-9, atol=1e-12)


def test_unseeded_strategy_leaves_the_global_generator_alone():
    """Defect 9: ``seed=None`` re-seeded torch's global generator."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for name in ("pcgrad", "graddrop", "rlw"):
        make_weighting(name, T, seed=None)
    torch.testing.assert_close(torch.rand(3), expected)
    a, b = make_weighting("pcgrad", T, seed=None), make_weighting("pcgrad", T, seed=None)
    assert a.generator.initial_seed() != b.generator.initial_seed()


# ---------------------------------------------------------------------------------------------
# MGDA — intel-isl/MultiObjectiveOptimization multi_task/min_norm_solvers.py
#   (MinNormSolver.find_min_norm_element: Frank–Wolfe towards argmin_{w ∈ Δ} wᵀGw; LibMTL's
#   default gradient normaliser is "none"). Frank–Wolfe is inexact; the reference is the exact
#   minimiser by enumerating the KKT systems of every support S:
#   [G_SS 1; 1ᵀ 0][w; −μ] = [0; 1], w ≥ 0, (Gw)ᵢ ≥ μ = wᵀGw off S.
# ---------------------------------------------------------------------------------------------


def mgda_reference(g: np.ndarray) -> np.ndarray:
    t = len(g)
    best, best_value = None, np.inf
    for size in range(1, t + 1):
        for support in itertools.combinations(range(t), size):
            s = list(support)
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = g[np.ix_(s, s)]
            kkt[:size, size] = kkt[size, :size] = 1.0
            rhs = np.zeros(size + 1)
            rhs[size] = 1.0
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
            w = np.zeros(t)
            w[s] = sol[:size]
            value = w @ g @ w
            scale = np.abs(g).max()
            feasible = w.min() >= -1e-12 and abs(w.sum() - 1) < 1e-9
            optimal = (g @ w).min() >= value - 1e-9 * scale
            if feasible and optimal and value < best_value:
                best, best_value = w, value
    return best


@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_mgda(kind, dtype):
    strategy = make_weighting("mgda", T)
    for j in steps(kind, dtype):
        w = weights_of(strategy, gramian_of(j)).double()
        jx = exact(j, kind)
        expected = mgda_reference(jx @ jx.T) @ jx
        assert abs(float(w.sum()) - 1.0) < 1e-6 and float(w.min()) >= 0
        # the min-norm point is unique; its norm can be ~0 (opposed tasks): absolute scale
        got = (w @ j.double()).numpy()
        scale = float(j.double().norm(dim=1).max())
        assert np.linalg.norm(got - expected) <= 10 * rtol_for(dtype, kind) * scale


# ---------------------------------------------------------------------------------------------
# PCGrad — tianheyu927/PCGrad PCGrad_tf.py: for each task, in a random order over the tasks,
#   gᵢ ← gᵢ − min(gᵢ·gⱼ / ‖gⱼ‖², 0) gⱼ (gⱼ the original gradients), then Σᵢ gᵢ. The reference
#   replays the orders the strategy draws from its seeded generator. The authors' loop (and
#   LibMTL's) also visits j = i, which the paper's Algorithm 1 (gⱼ ∈ B \ gᵢ) and mtlkit skip;
#   the two differ only when an already projected gᵢ has turned against gᵢ itself (it happens
#   on the ill-conditioned Jacobian), so the reference skips j = i too.
# GradVac — LibMTL/weighting/GradVac.py (group_type 0: the whole shared vector; the authors'
#   code is not public): targets φ̂ = 0; for i, for j ≠ i in random order:
#   φ = gᵢ'·gⱼ / (‖gᵢ'‖‖gⱼ‖ + 1e-8); if φ < φ̂ᵢⱼ: gᵢ' += gⱼ ‖gᵢ'‖ (φ̂√(1−φ²) − φ√(1−φ̂²)) /
#   (‖gⱼ‖ √(1−φ̂²) + 1e-8); always φ̂ᵢⱼ ← (1−β) φ̂ᵢⱼ + β φ; then Σᵢ gᵢ'.
# ---------------------------------------------------------------------------------------------


def _orders(strategy, t: int, others_only: bool) -> list[list[int]]:
    gen = torch.Generator()
    gen.set_state(strategy.generator.get_state())
    if not others_only:
        return [torch.randperm(t, generator=gen).tolist() for _ in range(t)]
    out = []
    for i in range(t):
        others = [k for k in range(t) if k != i]
        out.append([others[k] for k in torch.randperm(t - 1, generator=gen).tolist()])
    return out


def pcgrad_reference(j: np.ndarray, orders: list[list[int]]) -> np.ndarray:
    total = np.zeros(j.shape[1])
    for i, order in enumerate(orders):
        g = j[i].copy()
        for k in order:
            if k != i:
                g = g - min(g @ j[k] / (j[k] @ j[k]), 0.0) * j[k]
        total += g
    return total


def gradvac_reference(j: np.ndarray, targets: np.ndarray, orders, beta: float):
    pc = j.copy()
    for i, order in enumerate(orders):
        for k in order:
            rho = pc[i] @ j[k] / (np.linalg.norm(pc[i]) * np.linalg.norm(j[k]) + 1e-8)
            if rho < targets[i, k]:
                hat = targets[i, k]
                w = (
                    np.linalg.norm(pc[i])
                    * (hat * np.sqrt(1 - rho**2) - rho * np.sqrt(1 - hat**2))
                    / (np.linalg.norm(j[k]) * np.sqrt(1 - hat**2) + 1e-8)
                )
                pc[i] = pc[i] + j[k] * w
            targets[i, k] = (1 - beta) * targets[i, k] + beta * rho
    return pc.sum(axis=0)


@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_pcgrad(kind, dtype):
    strategy = make_weighting("pcgrad", T, seed=11)
    for j in steps(kind, dtype):
        orders = _orders(strategy, T, others_only=False)
        w = weights_of(strategy, gramian_of(j))
        expected = pcgrad_reference(exact(j, kind), orders)
        assert_direction(w.double() @ j.double(), expected, j, rtol_for(dtype, kind))


@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_gradvac(kind, dtype):
    strategy = make_weighting("gradvac", T, beta=0.5, seed=11)  # LibMTL's GradVac_beta
    targets = np.zeros((T, T))
    for j in steps(kind, dtype, n=5):
        orders = _orders(strategy, T, others_only=True)
        w = weights_of(strategy, gramian_of(j))
        expected = gradvac_reference(exact(j, kind), targets, orders, 0.5)
        assert_direction(w.double() @ j.double(), expected, j, 10 * rtol_for(dtype, kind))
        np.testing.assert_allclose(strategy.targets.numpy(), targets, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# DB-MTL — LibMTL/weighting/DB_MTL.py (the DB-MTL authors' code): gradients of log(Lₜ + 1e-8);
#   buffer ← g + (β / k^σ)(buffer − g) from 0 (k the step); uₜ = ‖bufferₜ‖;
#   αₜ = max u / (uₜ + 1e-8); d = Σₜ αₜ bufferₜ. Defaults DB_beta = 0.9, DB_beta_sigma = 0.
# ---------------------------------------------------------------------------------------------


def db_mtl_reference(jacobians: list[np.ndarray], beta: float, sigma: float) -> list[np.ndarray]:
    buffer, out = np.zeros_like(jacobians[0]), []
    for k, g in enumerate(jacobians, start=1):
        buffer = g + beta / k**sigma * (buffer - g)
        u = np.linalg.norm(buffer, axis=1)
        out.append((u.max() / (u + 1e-8)) @ buffer)
    return out


@pytest.mark.parametrize("sigma", [None, 0.5])
@pytest.mark.parametrize(("kind", "dtype"), CASES, ids=CASE_IDS)
def test_db_mtl(kind, dtype, sigma):
    options = {} if sigma is None else {"beta_sigma": sigma}  # None: the defaults
    strategy = make_weighting("db_mtl", T, **options)
    jacobians = steps(kind, dtype, n=5)
    expected = db_mtl_reference([exact(j, kind) for j in jacobians], 0.9, sigma or 0.0)
    for j, d in zip(jacobians, expected):
        assert_direction(strategy(j), d, j, rtol_for(dtype, kind))


# ---------------------------------------------------------------------------------------------
# Loss weightings, over a sequence of steps/epochs with losses of scales 1e2 … 1e-2.
# UW — LibMTL/weighting/UW.py: loss_scale s = −0.5 (init); objective Σ L/(2eˢ) + s/2, s
#   learned by the main optimizer (Kendall et al. published no code).
# DWA — lorenmt/mtan (the authors'): λ = 1 for epochs 0, 1; then λₜ = T exp(rₜ/τ) / Σ exp(r/τ),
#   rₜ = L̄ₜ(e−1) / L̄ₜ(e−2) (mean training losses of the epochs), τ = 2.
# GradNorm — the paper (Chen et al. 2018, Eq. 1–2 and Sec. 3.2; no official code): weights
#   wₜ = 1; L_grad = Σ |wₜ‖∇Lₜ‖ − mean(w‖∇L‖) rₜ^α| with rₜ = L̃ₜ / mean L̃, L̃ₜ = Lₜ/Lₜ(0), the
#   target held constant; one gradient step on w, then renormalise to Σ w = T.
# ---------------------------------------------------------------------------------------------


def test_uw():
    strategy = make_weighting("uw", 4)
    s = torch.full((4,), -0.5, requires_grad=True)
    optimizer = torch.optim.SGD([*strategy.parameters(), s], lr=0.1)
    for before, _ in loss_sequence(6):
        losses = before.float()
        weights = strategy(losses)
        torch.testing.assert_close(weights, (1 / (2 * s.exp())).detach())
        objective = (weights * losses).sum() + strategy.penalty()
        reference = (losses / (2 * s.exp()) + s / 2).sum()
        optimizer.zero_grad()
        (objective + reference).backward()
        optimizer.step()
        torch.testing.assert_close(strategy.log_vars.detach(), s.detach())


def test_dwa():
    strategy = make_weighting("dwa", 4)
    history = []
    for epoch, (before, _) in enumerate(loss_sequence(6)):
        if epoch < 2:
            expected = torch.ones(4, dtype=torch.float64)
        else:
            ratio = history[-1] / history[-2]
            expected = 4 * torch.exp(ratio / 2.0) / torch.exp(ratio / 2.0).sum()
        torch.testing.assert_close(strategy(before), expected)
        strategy.on_epoch_end(before)
        history.append(before)


def test_gradnorm():
    alpha, lr = 1.5, 0.025
    strategy = make_weighting("gradnorm", 4, alpha=alpha, lr=lr)
    w = torch.ones(4, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    initial = None
    for before, _ in loss_sequence(6):
        grad_norms = torch.tensor([1e2, 1e-2, 1.0, 3.0], dtype=torch.float64)
        grad_norms = grad_norms * (1 + torch.rand(4, generator=gen, dtype=torch.float64))
        torch.testing.assert_close(strategy(before, grad_norms), w)
        initial = before if initial is None else initial
        weights = w.clone().requires_grad_(True)
        g = weights * grad_norms
        ratio = (before / initial) / (before / initial).mean()
        target = (g.mean() * ratio**alpha).detach()
        (grad,) = torch.autograd.grad((g - target).abs().sum(), weights)
        w = (w - lr * grad).clamp(min=1e-6)
        w = w * 4 / w.sum()
