"""λ, the mixing parameter and the shared component by K-fold cross-validation.

Candidates not given by the user come from small default grids (``DEFAULT_MIXING_GRID``,
``DEFAULT_SHARED_GRID``, a λ grid of ``CV_N_ALPHAS`` values); each candidate's λ path is walked
with warm starts and stopped early once its CV error has turned up (``STOP_RISE``,
``STOP_PATIENCE``). See docs/linear.md, section Cross-validation.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)

from ._data import SharedDesign
from ._estimators import (
    _COMMON_CONSTRAINTS,
    _ClassifierOutputs,
    _LinearMultiTask,
    _Prepared,
    _RegressorOutputs,
)
from ._path import path_alphas
from ._solver import blas_threads, solve_path

#: The mixing parameter of each penalty and the candidates searched when the user gives none.
DEFAULT_MIXING_GRID: dict[str, tuple[str, tuple[float, ...]]] = {
    "elasticnet": ("l1_ratio", (0.1, 0.5, 1.0)),
    "l21": ("l1_ratio", (0.1, 0.5, 1.0)),
    "mean": ("rho", (0.001, 0.01, 0.1, 1.0)),
    "graph": ("rho", (0.01, 0.1, 1.0)),
    "clustered": ("rho", (0.01, 0.1, 1.0)),
}
#: ``shared`` candidates searched by default (``shared="auto"``), None (no shared component)
#: first, so that ``lambda_max`` and ``regularization_path`` of a CV estimator (the first
#: candidates, see ``_CrossValidated._settings``) use none by default: penalties that shrink every
#: task toward zero also try the shared-component form (None: without it); ``l2``, ``mean`` and
#: ``graph`` are left as they are (``l2`` with a shared component is ``mean``). ς = 0.001 (like
#: ρ = 0.001 for ``mean``) leaves ``w₀`` all but free (on School ς = 0.001 and ς = 0 give the
#: same EV) yet bounded: with ς = 0 a logistic loss on pooled rows that are linearly separable
#: (more features than rows) has no minimizer, and FISTA ran to ``max_iter`` at every λ.
DEFAULT_SHARED_GRID: dict[str, tuple[float | None, ...]] = {
    name: (None, 0.001) for name in ("l1", "elasticnet", "l21", "trace", "clustered")
}


#: The range of one candidate of ``l1_ratio``, ``rho`` and ``shared``: a single value, or each
#: entry of a list of candidates (``_validate_params`` checks only that a list is array-like).
CANDIDATE_RANGE = {
    "l1_ratio": Interval(Real, 0, 1, closed="both"),
    "rho": Interval(Real, 0, None, closed="left"),
    "shared": Interval(Real, 0, None, closed="left"),
}


def _candidates(values, default: tuple) -> list:
    """``values`` as a list of candidates: ``default`` for "auto", one value for a scalar or None
    (None kept), the float values of a list (None entries kept)."""
    if isinstance(values, str):  # "auto"
        return list(default)
    if values is None or np.isscalar(values):
        return [None if values is None else float(values)]
    return [None if v is None else float(v) for v in values]


#: The default CV grid: ``CV_N_ALPHAS`` values from λ_max down to ``CV_DEPTH`` times the default
#: depth of :func:`regularization_path` (so 1e-5 λ_max for sparse penalties, 1e-7 λ_max =
#: 1e-5 L_data / μ_R for smooth ones): logistic losses on few, high-dimensional rows want λ
#: that small (scikit-learn's ``LogisticRegressionCV`` goes to C = 1e4, λ = 1e-4 / n), and the
#: early stop below skips the small values whenever the CV error has already turned up.
CV_N_ALPHAS, CV_DEPTH = 30, 1e-2
#: Early stop of a candidate's λ path: once its fold-averaged held-out error has stayed above
#: ``(1 + STOP_RISE)`` × its minimum so far for ``STOP_PATIENCE`` consecutive λ values.
STOP_RISE, STOP_PATIENCE = 0.01, 2


def stratified_task_folds(data: _Prepared, n_folds: int, *, stratify: bool, random_state):
    """Fold id of every labelled entry (−1 for missing), assigned within each task.

    Each task's labelled rows are shuffled (class by class when ``stratify``) and dealt to the
    folds in turn from a random offset, so every fold gets ⌊n_t/K⌋ or ⌈n_t/K⌉ rows of task t and
    every class of t is spread over the folds.
    """
    rng = check_random_state(random_state)
    design = data.design
    folds = np.full(data.ind.shape, -1, dtype=np.int64)
    for t in range(design.n_tasks):
        if isinstance(design, SharedDesign):
            entries = np.flatnonzero(data.ind[:, t] > 0)
            labels = data.Y[entries, t]
        else:
            sl = design.slices[t]
            entries = np.arange(sl.start, sl.stop)
            labels = data.Y[sl]
        if entries.size < 2:
            raise ValueError(
                f"Task {t} has n_samples = {entries.size} labelled rows; cross-validation needs 2."
            )
        if stratify:
            values, counts = np.unique(labels, return_counts=True)
            if counts.min() < 2:
                raise ValueError(
                    f"Task {t}: a class has only {counts.min()} member; stratified "
                    "cross-validation needs at least 2 per class."
                )
            order = np.concatenate([rng.permutation(entries[labels == v]) for v in values])
        else:
            order = rng.permutation(entries)
        ids = (np.arange(order.size) + rng.randint(n_folds)) % n_folds
        if isinstance(design, SharedDesign):
            folds[order, t] = ids
        else:
            folds[order] = ids
    most_rows = (
        int(data.ind.sum(axis=0).max())
        if isinstance(design, SharedDesign)
        else max(sl.stop - sl.start for sl in design.slices)
    )
    if most_rows < n_folds:
        raise ValueError(
            f"cv={n_folds} folds but the tasks have at most {most_rows} labelled rows, so every "
            f"task would miss a fold; use cv <= {most_rows}."
        )
    return folds


class _CrossValidated(_LinearMultiTask):
    _parameter_constraints: dict = {
        **_COMMON_CONSTRAINTS,
        "alphas": [Interval(Integral, 1, None, closed="left"), "array-like", None],
        "l1_ratio": [CANDIDATE_RANGE["l1_ratio"], "array-like", None],
        "rho": [CANDIDATE_RANGE["rho"], "array-like", None],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "eps": [Interval(Real, 0, 1, closed="neither"), None],
        "random_state": ["random_state"],
        "shared": [CANDIDATE_RANGE["shared"], "array-like", StrOptions({"auto"}), None],
        "early_stopping": ["boolean"],
    }

    def __init__(
        self,
        penalty: str = "l21",
        *,
        alphas=None,
        l1_ratio=None,
        rho=None,
        edges=None,
        n_clusters: int | None = None,
        cv: int = 5,
        eps: float | None = None,
        fit_intercept: bool = True,
        tol: float = 1e-4,
        max_iter: int = 1000,
        precompute: str | bool = "auto",
        task_weighting: str = "mean",
        shared="auto",
        early_stopping: bool = True,
        random_state=None,
    ):
        self.penalty = penalty
        self.alphas = alphas
        self.l1_ratio = l1_ratio
        self.rho = rho
        self.edges = edges
        self.n_clusters = n_clusters
        self.cv = cv
        self.eps = eps
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.precompute = precompute
        self.task_weighting = task_weighting
        self.shared = shared
        self.early_stopping = early_stopping
        self.random_state = random_state

    def _candidate_lists(self) -> tuple[str | None, list, list]:
        """The mixing parameter's name (None: the penalty has none), its candidates and the
        ``shared`` candidates, each list in the order given, every entry checked.

        ``l1_ratio``/``rho`` None (the default) searches ``DEFAULT_MIXING_GRID[penalty]``;
        ``shared="auto"`` (the default) searches ``DEFAULT_SHARED_GRID.get(penalty, (None,))``
        when there are several tasks (with one task a shared component is the task itself).
        """
        name, grid = DEFAULT_MIXING_GRID.get(self.penalty, (None, ()))
        mixing = [None]
        if name is not None:
            given = getattr(self, name)
            mixing = _candidates("auto" if given is None else given, grid)
        default_shared = DEFAULT_SHARED_GRID.get(self.penalty, (None,)) if self.n_tasks_ > 1 else ()
        shared = _candidates(self.shared, default_shared or (None,))
        for param, values in ((name, mixing), ("shared", shared)):
            if param is None:
                continue
            if not values:
                raise ValueError(f"{param} must list at least one candidate value.")
            scalar = {param: [CANDIDATE_RANGE[param]]}
            for v in values:
                if v is not None:
                    validate_parameter_constraints(scalar, {param: v}, type(self).__name__)
        return name, mixing, shared

    @staticmethod
    def _combination(name: str | None, mixing: float | None, shared: float | None) -> dict:
        """One candidate's settings: ``l1_ratio``, ``rho`` (None where not searched), ``shared``."""
        return {"l1_ratio": None, "rho": None, **({name: mixing} if name else {}), "shared": shared}

    def _mixings(self) -> list[dict]:
        """Every combination of the candidate mixing values and ``shared`` values, mixing value
        first (the rows of ``cv_errors_``)."""
        name, mixing, shared = self._candidate_lists()
        return [self._combination(name, m, sh) for m in mixing for sh in shared]

    def _settings(self) -> dict:
        """The settings of :meth:`lambda_max` and ``regularization_path`` on a CV estimator: the
        first candidate of each list as given; by default the first value of
        ``DEFAULT_MIXING_GRID[penalty]`` and no shared component."""
        name, mixing, shared = self._candidate_lists()
        return self._combination(name, mixing[0], shared[0])

    def _validation_error(self, data, W, b, held_out) -> float:
        Z = data.design.forward(W) + data.design.broadcast(b)
        errors = self._pointwise_loss(Z, data.Y) * held_out
        per_task = data.design.task_sum(errors)
        counts = data.design.task_sum(held_out)
        has = counts > 0
        return float(np.mean(per_task[has] / counts[has]))

    def fit(self, X, y):
        """Choose λ and the mixing values by K-fold CV, then refit on all rows.

        Each fold's data term is built once and shared by every candidate combination. For each
        combination the λ path is walked from λ_max down, all folds in step, each fold
        warm-starting from its previous λ; with ``early_stopping`` the walk ends once the
        fold-averaged held-out error has stayed above ``(1 + STOP_RISE)`` times its minimum so
        far for ``STOP_PATIENCE`` consecutive λ values (the smallest λ, the costliest to solve
        and past the optimum, are then skipped; their ``cv_errors_`` are NaN).
        """
        self._validate_params()
        data = self._prepare(X, y)
        folds = stratified_task_folds(
            data, self.cv, stratify=self._loss == "logistic", random_state=self.random_state
        )
        mixings = self._mixings()
        with blas_threads(data.design):  # the set-ups too (see ``blas_threads``)
            full_loss = self._make_loss(data)
            fold_losses = [self._make_loss(data, data.ind * (folds != k)) for k in range(self.cv)]
            penalties = [self._penalty(self.n_tasks_, **mix) for mix in mixings]
            grids = np.array(
                [
                    path_alphas(
                        self._solver_loss(full_loss, mix["shared"]),
                        pen,
                        self.alphas,
                        self.eps,
                        n_default=CV_N_ALPHAS,
                        depth=CV_DEPTH,
                    )
                    for mix, pen in zip(mixings, penalties, strict=True)
                ]
            )
        held_out = [(folds == k).astype(np.float64) for k in range(self.cv)]
        errors = np.full((len(mixings), grids.shape[1], self.cv), np.nan)
        starts = []
        for m, (mix, penalty) in enumerate(zip(mixings, penalties, strict=True)):
            # Every fold starts from the all-rows solution at λ_max, close to its own: the first
            # λ is the costliest point from zero (``mean`` with ρ = 0 must reach the pooled model
            # there) and is then paid once, not K times.
            start = self._solve(full_loss, mix, penalty, grids[m][:1], None, data)[0]
            starts.append(start)
            losses = [self._solver_loss(fold, mix["shared"]) for fold in fold_losses]
            L_data = [loss.lipschitz() for loss in losses]
            states = [(start.W, start.b)] * self.cv
            rising = 0
            for i, lam in enumerate(grids[m]):
                for k, loss in enumerate(losses):
                    with blas_threads(data.design, loss):
                        res = solve_path(
                            loss,
                            penalty,
                            [lam],
                            tol=self.tol,
                            max_iter=self.max_iter,
                            W0=states[k][0],
                            b0=states[k][1],
                            L_data=L_data[k],
                        )[0]
                    states[k] = (res.W, res.b)
                    W = self._coef_from(res.W, mix["shared"])
                    b = loss.intercept(res.W, res.b)
                    errors[m, i, k] = self._validation_error(data, W, b, held_out[k])
                curve = errors[m, : i + 1].mean(axis=1)
                rising = rising + 1 if curve[i] > (1 + STOP_RISE) * curve.min() else 0
                if self.early_stopping and rising >= STOP_PATIENCE:
                    break
        mean = errors.mean(axis=2)
        m, i = np.unravel_index(np.nanargmin(mean), mean.shape)
        best = mixings[m]
        self.mixings_ = mixings
        self.alpha_ = float(grids[m, i])
        self.l1_ratio_, self.rho_, self.shared_ = best["l1_ratio"], best["rho"], best["shared"]
        self.alphas_, self.cv_errors_ = (
            (grids[0], errors[0]) if len(mixings) == 1 else (grids, errors)
        )
        init = None  # at λ_max: a fit of its own (n_iter_ ≥ 1)
        if i > 0:
            warm = self._solve(full_loss, best, penalties[m], grids[m][1:i], starts[m], data)
            last = warm[-1] if warm else starts[m]
            init = (last.W, last.b)
        return self._fit_data(data, self.alpha_, init=init, loss=full_loss, **best)

    def _solve(self, base_loss, mix, penalty, alphas, start, data):
        """The path over ``alphas`` on ``base_loss`` for candidate ``mix`` (from ``start``)."""
        loss = self._solver_loss(base_loss, mix["shared"])
        W0, b0 = (None, None) if start is None else (start.W, start.b)
        with blas_threads(data.design, loss):
            return solve_path(
                loss, penalty, alphas, tol=self.tol, max_iter=self.max_iter, W0=W0, b0=b0
            )


class MultiTaskRegressorCV(_RegressorOutputs, RegressorMixin, _CrossValidated):
    """:class:`MultiTaskRegressor` with λ, the mixing parameter and the shared component chosen
    by K-fold cross-validation on the task-averaged mean squared error.

    Folds are drawn within each task (every task contributes ~1/K of its labelled rows to each
    fold). For every candidate combination (mixing value × ``shared`` value) the λ path from
    λ_max down is solved on each fold's training rows with warm starts and scored on its held-out
    rows; the best (λ, combination) is refitted on all rows, warm-started along its path.

    Defaults, used when the user gives none (the rule: search what decides whether tasks are
    pulled toward each other or toward zero, on a small grid, with a λ grid deep enough for
    few, high-dimensional rows):

    ================  ==============================  ==================================
    penalty           mixing candidates               ``shared`` candidates
    ================  ==============================  ==================================
    ``mean``          ``rho`` ∈ {0.001, 0.01, 0.1, 1}  none
    ``graph``         ``rho`` ∈ {0.01, 0.1, 1}         none
    ``clustered``     ``rho`` (η) ∈ {0.01, 0.1, 1}     {None, 0.001}
    ``l21``           ``l1_ratio`` ∈ {0.1, 0.5, 1}     {None, 0.001}
    ``elasticnet``    ``l1_ratio`` ∈ {0.1, 0.5, 1}     {None, 0.001}
    ``l1``, ``trace``  —                               {None, 0.001}
    ``l2``            —                               none
    ================  ==============================  ==================================

    (``shared`` None: no shared component; with one task it is never searched.)
    :meth:`lambda_max` and :func:`regularization_path` take the first candidate of each list as
    given (by default the first value above and no shared component). λ: 30 values
    from λ_max down to 1e-5 λ_max (sparse penalties) or 1e-7 λ_max (smooth penalties, whose
    λ_max is 100 L_data / μ_R), each candidate's walk stopped early once its CV error has turned
    up (``early_stopping``).

    Parameters
    ----------
    penalty, edges, n_clusters, fit_intercept, tol, max_iter, precompute, task_weighting
        As in :class:`MultiTaskRegressor`.
    alphas : int, array-like or None
        λ candidates, or their number (default 30) on the geometric grid above.
    l1_ratio, rho : float, array-like or None
        Mixing value(s) for ``elasticnet``/``l21`` and ``mean``/``graph``/``clustered``; None
        searches the default grid above.
    shared : "auto", float, array-like or None
        ``ς`` of the shared component (see :class:`MultiTaskRegressor`), or candidates for it
        (None in a list: without a shared component); ``"auto"`` (default) searches the grid
        above; None never uses one. Every combination with the mixing candidates is
        cross-validated.
    cv : int
        Number of folds K.
    eps : float or None
        λ_min / λ_max of the default grid (None: the depths above).
    early_stopping : bool
        Stop a candidate's λ walk once its fold-averaged CV error has stayed more than 1% above
        its minimum so far for 2 consecutive λ values (the skipped entries of ``cv_errors_`` are
        NaN); False solves every λ.
    random_state : int, RandomState or None
        Seed of the fold assignment.

    Attributes
    ----------
    alpha_, l1_ratio_, rho_, shared_ : the selected values (None where not applicable).
    mixings_ : list of dict
        The candidate combinations (``l1_ratio``, ``rho``, ``shared``), rows of ``cv_errors_``.
    alphas_ : ndarray (n_alphas,) or (n_mixings, n_alphas)
    cv_errors_ : ndarray (n_alphas, K) or (n_mixings, n_alphas, K): held-out error per fold.
    coef_, shared_coef_, intercept_, n_iter_, dual_gap_, kkt_residual_, objective_ : of the
        refitted model.
    """

    @staticmethod
    def _pointwise_loss(Z, Y):
        return (Z - Y) ** 2


class MultiTaskClassifierCV(_ClassifierOutputs, ClassifierMixin, _CrossValidated):
    """:class:`MultiTaskClassifier` with λ (and the mixing parameter) chosen by K-fold CV on the
    task-averaged logistic loss, with folds stratified by class within each task.

    Parameters and attributes are those of :class:`MultiTaskRegressorCV`, plus ``classes_``.
    """

    @staticmethod
    def _pointwise_loss(Z, Y):
        return np.logaddexp(0.0, -np.where(Y > 0, 1.0, -1.0) * Z)


__all__ = ["MultiTaskClassifierCV", "MultiTaskRegressorCV"]
