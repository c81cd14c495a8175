"""FISTA with backtracking and adaptive restart, stopped by a duality gap or a KKT residual.

Beck & Teboulle (2009), "A fast iterative shrinkage-thresholding algorithm"; restart as in
O'Donoghue & Candès (2015), "Adaptive restart for accelerated gradient schemes".
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

_EPS = np.finfo(np.float64).eps


@dataclass
class SolverResult:
    W: np.ndarray
    b: np.ndarray
    n_iter: int
    lipschitz: float
    dual_gap: float
    kkt: float
    converged: bool


class Composite:
    r"""``P(W, b) = F(W, b) + λ R(W)``: the smooth part ``F + λ R_smooth`` and the prox of the rest.

    Stopping measures, both relative:

    * duality gap ``(P(W) − D(s·Θ(W))) / F(0)`` for the squared loss with a penalty whose
      conjugate is known, where ``Θ(W)`` are the residuals scaled per task and ``s`` makes them
      dual feasible; ``D(Θ) = s a − s² q/2 − (λR)*(s V)`` with ``q, a, V`` from
      ``loss.dual_terms``;
    * otherwise the norm of the gradient mapping ``L ‖(W, b) − prox_{λR/L}((W, b) − ∇F/L)‖``
      divided by ``‖∇F(0)‖``, which is zero exactly at a minimizer (the KKT conditions).

    ``F(0)`` and ``∇F(0)`` are taken at ``W = 0`` with the best intercepts.
    """

    def __init__(self, loss, penalty, lam: float, *, L_data: float | None = None):
        self.loss, self.penalty, self.lam = loss, penalty, float(lam)
        #: The penalty's preconditioner for this λ (None: plain Euclidean steps).
        self.metric = None if L_data is None else penalty.metric(self.lam, L_data)
        #: Metric of the (unpenalized) intercepts: a smooth penalty adds λ·L_R to the step's
        #: Lipschitz constant, but not to the intercepts' curvature, which is at most L_data;
        #: with λ ≫ L_data plain steps on b were (L_data + λ L_R)/L_data times too short (a
        #: logistic CV path spent hundreds of iterations per λ fitting intercepts).
        lip_R = self.lam * penalty.lipschitz() if penalty.smooth else 0.0
        self.b_scale = 1.0 if L_data is None else L_data / (L_data + lip_R)
        b0 = loss.initial_intercept()
        f0, g0, _ = loss.value_grad(np.zeros((loss.n_tasks, loss.n_features)), b0)
        self.f0, self.g0 = f0, g0
        self.gap_scale = f0 if f0 > 0 else 1.0
        g0_norm = float(np.linalg.norm(g0))
        self.kkt_scale = g0_norm if g0_norm > 0 else 1.0
        self.use_gap = hasattr(loss, "dual_terms") and penalty.conjugate(g0, self.lam) is not None

    def smooth(self, W, b):
        f, gW, gb = self.loss.value_grad(W, b)
        if self.penalty.smooth:
            f += self.lam * self.penalty.value(W)
            gW = gW + self.lam * self.penalty.grad(W)
        return f, gW, gb

    def smooth_value(self, W, b):
        f = self.loss.value(W, b)
        return f + self.lam * self.penalty.value(W) if self.penalty.smooth else f

    def prox(self, V, step):
        return V if self.penalty.smooth else self.penalty.prox(V, step * self.lam)

    def objective(self, W, b) -> float:
        return self.loss.value(W, b) + self.lam * self.penalty.value(W)

    def lipschitz(self) -> float:
        return self.loss.lipschitz() + self.lam * self.penalty.lipschitz()

    def dual_gap(self, W) -> float:
        q, a, V = self.loss.dual_terms(W)
        s, conj = self.penalty.conjugate(V, self.lam)
        primal = 0.5 * q + self.lam * self.penalty.value(W)
        dual = s * a - 0.5 * s * s * q - conj
        return max(primal - dual, 0.0) / self.gap_scale

    def kkt(self, W, b, L: float) -> float:
        _, gW, gb = self.smooth(W, b)
        step = 1.0 / L
        dW = W - self.prox(W - step * gW, step)
        return L * float(np.sqrt(np.vdot(dW, dW) + step * step * np.vdot(gb, gb))) / self.kkt_scale

    def measure(self, W, b, L: float) -> tuple[float, float]:
        """``(gap, kkt)``; the one not used for stopping is NaN."""
        if self.use_gap:
            return self.dual_gap(W), np.nan
        return np.nan, self.kkt(W, b, L)


def fista(
    problem: Composite,
    W: np.ndarray,
    b: np.ndarray,
    *,
    L: float,
    tol: float,
    max_iter: int,
    check_every: int = 10,
) -> SolverResult:
    """Minimize ``problem`` from ``(W, b)`` until its stopping measure is at most ``tol``.

    ``L`` is the initial Lipschitz estimate; backtracking doubles it until the quadratic upper
    bound holds at the trial point. With a ``problem.metric`` ``M`` (smooth penalties only) the
    steps are ``W − M⁻¹∇/L`` and the bound and restart test use ``‖·‖_M``: preconditioned
    FISTA, the same method in the variables ``M^{1/2} W``; the intercepts use the scalar metric
    ``problem.b_scale`` the same way.
    """
    metric, b_scale = problem.metric, problem.b_scale
    W, b = W.copy(), b.copy()
    L = max(float(L), 1e-12)
    gap, kkt = problem.measure(W, b, L)
    if min(np.nan_to_num(gap, nan=np.inf), np.nan_to_num(kkt, nan=np.inf)) <= tol:
        return SolverResult(W, b, 0, L, gap, kkt, True)
    slack = 8 * _EPS * (abs(problem.f0) + 1e-300)
    Yw, Yb, t = W.copy(), b.copy(), 1.0
    f_y, gW, gb = problem.smooth(Yw, Yb)
    n_iter, converged = 0, False
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        step_W = gW if metric is None else metric.solve(gW)
        while True:
            Nw = problem.prox(Yw - step_W / L, 1.0 / L)
            Nb = Yb - gb / (L * b_scale)
            dW, db = Nw - Yw, Nb - Yb
            MdW = dW if metric is None else metric.apply(dW)
            sq = float(np.vdot(dW, MdW) + b_scale * np.vdot(db, db))
            bound = f_y + float(np.vdot(gW, dW) + np.vdot(gb, db)) + 0.5 * L * sq
            if problem.smooth_value(Nw, Nb) <= bound + slack or L > 1e300:
                break
            L *= 2.0
        if float(np.vdot(-MdW, Nw - W) - b_scale * np.vdot(db, Nb - b)) > 0:
            t = 1.0
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_next
        Yw, Yb = Nw + beta * (Nw - W), Nb + beta * (Nb - b)
        W, b, t = Nw, Nb, t_next
        if n_iter % check_every == 0 or n_iter == max_iter:
            gap, kkt = problem.measure(W, b, L)
            if min(np.nan_to_num(gap, nan=np.inf), np.nan_to_num(kkt, nan=np.inf)) <= tol:
                converged = True
                break
        f_y, gW, gb = problem.smooth(Yw, Yb)
    return SolverResult(W, b, n_iter, L, gap, kkt, converged)


#: Below this many stored design entries the solver runs BLAS single-threaded: its work is then
#: many small products and eigendecompositions, which threads slow down (badly so on busy CPUs).
SINGLE_THREAD_SIZE = 2_000_000
#: With Gram matrices the loop's products are ``T × d × d`` (``loop_size``) whatever ``n``; below
#: this size such a product takes a few ms on one core and threads mostly add synchronisation
#: (on a busy 2-core machine a 30 × 300 × 300 product took 35 ms with two threads, while a whole
#: one-thread fit of that problem, 46 such products and the Gram set-up included, took 73 ms).
SINGLE_THREAD_LOOP_SIZE = 50_000_000

_CONTROLLER: list[ThreadpoolController] = []


def blas_threads(design, loss=None):
    """Context limiting BLAS to one thread for small problems (see ``SINGLE_THREAD_SIZE``).

    Without ``loss`` (set-up work) or with a loss that works on the design, the design's size
    decides; with a loss that has a ``loop_size`` (Gram form), that size against
    ``SINGLE_THREAD_LOOP_SIZE`` (the solver's iterations).
    The controller (a scan of the loaded libraries, ~15 ms) is built once per process; later calls
    only set the limit. It is rebuilt if no BLAS library was found by the first scan.
    """
    loop_size = getattr(loss, "loop_size", None)
    if (
        design.size > SINGLE_THREAD_SIZE
        if loop_size is None
        else loop_size > SINGLE_THREAD_LOOP_SIZE
    ):
        return nullcontext()
    if not _CONTROLLER or not _CONTROLLER[0].select(user_api="blas").lib_controllers:
        _CONTROLLER[:] = [ThreadpoolController()]
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def solve_path(
    loss,
    penalty,
    alphas,
    *,
    tol: float,
    max_iter: int,
    W0: np.ndarray | None = None,
    b0: np.ndarray | None = None,
    L_data: float | None = None,
) -> list[SolverResult]:
    """Solve for every λ in ``alphas`` (in the given order), warm-starting each from the last
    (``L_data``: the loss's Lipschitz constant, when already known)."""
    W = np.zeros((loss.n_tasks, loss.n_features)) if W0 is None else np.asarray(W0, dtype=float)
    b = loss.initial_intercept() if b0 is None or loss.n_intercepts == 0 else np.asarray(b0)
    L_data = loss.lipschitz() if L_data is None else L_data
    results = []
    for lam in alphas:
        problem = Composite(loss, penalty, lam, L_data=L_data)
        L = L_data + lam * penalty.lipschitz()
        res = fista(problem, W, b, L=L, tol=tol, max_iter=max_iter)
        results.append(res)
        W, b = res.W, res.b
    return results


def lambda_max(loss, penalty) -> float:
    """λ_max of ``penalty`` on this data: see each penalty's ``lambda_max``."""
    W = np.zeros((loss.n_tasks, loss.n_features))
    _, G0, _ = loss.value_grad(W, loss.initial_intercept())
    return float(penalty.lambda_max(G0, loss.lipschitz()))


def alpha_grid(lam_max: float, n_alphas: int, eps: float) -> np.ndarray:
    return np.geomspace(lam_max, lam_max * eps, n_alphas) if n_alphas > 1 else np.array([lam_max])
