"""scikit-learn estimators: :class:`MultiTaskRegressor` and :class:`MultiTaskClassifier`."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ._data import SharedDesign, TaskDesign, as_design, check_task_lists, is_per_task
from ._losses import make_loss
from ._penalties import PENALTIES, make_penalty
from ._shared import SharedComponentLoss, SharedComponentPenalty, expand, split_shared
from ._solver import Composite, blas_threads, fista, lambda_max

_COMMON_CONSTRAINTS: dict = {
    "penalty": [StrOptions(set(PENALTIES))],
    "l1_ratio": [Interval(Real, 0, 1, closed="both"), None],
    "rho": [Interval(Real, 0, None, closed="left"), None],
    "edges": ["array-like", None],
    "n_clusters": [Interval(Integral, 1, None, closed="left"), None],
    "fit_intercept": ["boolean"],
    "tol": [Interval(Real, 0, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "precompute": [StrOptions({"auto"}), "boolean"],
    "task_weighting": [StrOptions({"mean", "sum"})],
    "shared": [Interval(Real, 0, None, closed="left"), None],
}


class _Prepared:
    """Validated training data in solver form: design, target container and label indicator."""

    def __init__(self, design, Y, ind):
        self.design, self.Y, self.ind = design, Y, ind


class _LinearMultiTask(BaseEstimator):
    """Shared plumbing: input handling, problem assembly and prediction from ``coef_``."""

    _loss: str

    def _penalty(self, n_tasks: int, *, l1_ratio=None, rho=None, shared=None):
        """The solver's penalty: ``self``'s with these mixing values (None: ``self``'s own
        ``l1_ratio``/``rho``), wrapped for a shared component when ``shared`` is not None."""
        penalty = make_penalty(
            self.penalty,
            n_tasks,
            l1_ratio=self.l1_ratio if l1_ratio is None else l1_ratio,
            rho=self.rho if rho is None else rho,
            edges=self.edges,
            n_clusters=self.n_clusters,
        )
        return penalty if shared is None else SharedComponentPenalty(penalty, shared)

    def _make_loss(self, data: _Prepared, ind=None):
        """The data term on the labelled entries ``ind`` (default: all labelled rows)."""
        return make_loss(
            self._loss,
            data.design,
            data.Y,
            data.ind if ind is None else ind,
            fit_intercept=self.fit_intercept,
            precompute=self.precompute,
            task_weighting=self.task_weighting,
        )

    @staticmethod
    def _solver_loss(loss, shared):
        """``loss`` in the solver's variable (``Z = [V; u]`` when ``shared`` is not None)."""
        return loss if shared is None else SharedComponentLoss(loss)

    @staticmethod
    def _coef_from(Z, shared):
        """``W`` (T × d) from the solver's variable (``Z = [V; u]`` with a shared component)."""
        return Z if shared is None else expand(Z)

    def _set_coef(self, Z, shared):
        """``coef_`` (and ``shared_coef_``) from the solver's variable."""
        self.coef_ = self._coef_from(Z, shared)
        self.shared_coef_ = None if shared is None else Z[-1] / np.sqrt(Z.shape[0] - 1)

    def _solver_coef(self):
        """The solver's variable of the fitted model (inverse of :meth:`_set_coef`)."""
        if self.shared is None:
            return self.coef_
        w0 = self.shared_coef_ if self.shared_coef_ is not None else np.zeros(self.coef_.shape[1])
        return split_shared(self.coef_, w0)

    def _prepare(self, X, y) -> _Prepared:
        if is_per_task(X):
            Xs, ys = check_task_lists(X, y)
            self.per_task_ = True
            self.single_output_ = False
            self.n_features_in_ = Xs[0].shape[1]
            encoded = [self._encode_task(yt, t) for t, yt in enumerate(ys)]
            design = TaskDesign(Xs)
            Y = np.concatenate([e[0] for e in encoded])
            ind = np.concatenate([e[1] for e in encoded])
            self.n_tasks_ = len(Xs)
            return _Prepared(design, Y, ind)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X = validate_data(self, X, accept_sparse=("csr", "csc"), dtype=np.float64)
        y = np.asarray(y)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D (n_samples, n_tasks), got shape {y.shape}.")
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} rows but y has {y.shape[0]} (mismatched lengths)."
            )
        self.per_task_ = False
        self.single_output_ = y.ndim == 1
        Y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        self.n_tasks_ = Y2.shape[1]
        if self.n_tasks_ == 0:
            raise ValueError("y has no task (zero columns).")
        encoded = [self._encode_task(Y2[:, t], t) for t in range(self.n_tasks_)]
        Y = np.column_stack([e[0] for e in encoded])
        ind = np.column_stack([e[1] for e in encoded])
        return _Prepared(SharedDesign(X, ind > 0), Y, ind)

    def _check_X(self, X):
        check_is_fitted(self)
        if is_per_task(X):
            Xs = [
                as_design(x, name=f"X[{t}]", n_features=self.n_features_in_)
                for t, x in enumerate(X)
            ]
            if len(Xs) != self.n_tasks_:
                raise ValueError(f"Got {len(Xs)} designs for a model of {self.n_tasks_} tasks.")
            return Xs
        return validate_data(self, X, accept_sparse=("csr", "csc"), dtype=np.float64, reset=False)

    def _decision(self, X):
        """Linear scores: ``n × T`` (shared X), ``n`` (single task) or a list (per-task X)."""
        X = self._check_X(X)
        if isinstance(X, list):
            return [
                np.asarray(x @ w).ravel() + b
                for x, w, b in zip(X, self.coef_, self.intercept_, strict=True)
            ]
        Z = np.asarray(X @ self.coef_.T) + self.intercept_
        return Z.ravel() if self.single_output_ else Z

    def _fit_data(
        self,
        data: _Prepared,
        alpha: float,
        *,
        l1_ratio=None,
        rho=None,
        shared=None,
        init=None,
        loss=None,
    ):
        """Fit at ``alpha`` from ``init``; ``loss``: the all-rows data term, when already built."""
        with blas_threads(data.design):  # the Gram set-up too: small products run faster alone
            loss = self._solver_loss(self._make_loss(data) if loss is None else loss, shared)
            penalty = self._penalty(self.n_tasks_, l1_ratio=l1_ratio, rho=rho, shared=shared)
            L_data = loss.lipschitz()
            problem = Composite(loss, penalty, alpha, L_data=L_data)
            L = L_data + alpha * penalty.lipschitz()
        if init is None:
            W, b = np.zeros((loss.n_tasks, loss.n_features)), loss.initial_intercept()
        else:
            W, b = init
            b = b if loss.n_intercepts else loss.initial_intercept()
        with blas_threads(data.design, loss):  # the iterations: sized by their own products
            res = fista(problem, W, b, L=L, tol=self.tol, max_iter=self.max_iter)
            self._set_coef(res.W, shared)
            self.intercept_ = loss.intercept(res.W, res.b)
            self.n_iter_ = res.n_iter
            self.dual_gap_ = res.dual_gap
            self.kkt_residual_ = problem.kkt(res.W, res.b, res.lipschitz)
            self.objective_ = problem.objective(res.W, res.b)
        if not res.converged:
            warnings.warn(
                f"FISTA did not converge in max_iter={self.max_iter} iterations "
                f"(gap={res.dual_gap:.2e}, kkt={res.kkt:.2e}, tol={self.tol:.1e}); "
                "increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def lambda_max(self, X, y) -> float:
        """λ_max of this estimator's penalty on ``(X, y)`` (start of the regularization path)."""
        est = clone(self)
        est._validate_params()
        data = est._prepare(X, y)
        settings = est._settings()
        loss = est._solver_loss(est._make_loss(data), settings["shared"])
        return lambda_max(loss, est._penalty(est.n_tasks_, **settings))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.multi_output = True
        return tags


_OBJECTIVE_DOC = r"""
    The objective, for tasks ``t = 1..T`` with ``n_t`` labelled rows each, is

    .. math::

        \min_{W, b} \; \sum_t \frac{1}{n_t} \sum_{i \in t} \ell(x_i^\top w_t + b_t, y_{it})
        + \lambda R(W), \qquad \lambda = \texttt{alpha},

    with ``W`` of shape ``T × d`` (``coef_``) and unpenalized intercepts ``b`` (``intercept_``).
    The penalties ``R`` (``a = l1_ratio``, ``ρ = rho``, ``w̄ = mean_t w_t``):

    ``l2``          ``½‖W‖²_F``                                          (independent ridge)
    ``l1``          ``‖W‖₁``                                              (Lasso per task)
    ``elasticnet``  ``a‖W‖₁ + (1 − a)/2 ‖W‖²_F``
    ``l21``         ``a Σ_j ‖W_{:,j}‖₂ + (1 − a)/2 ‖W‖²_F``              (joint feature selection)
    ``trace``       ``‖W‖_*``                                             (low rank)
    ``mean``        ``½ Σ_t ‖w_t − w̄‖² + (ρ/2) T ‖w̄‖²``               (Evgeniou & Pontil 2004)
    ``graph``       ``½ Σ_{(s,t)∈E} a_st ‖w_s − w_t‖² + (ρ/2)‖W‖²_F``    (edges from ``edges``)
    ``clustered``   ``(η(1+η)/2) min_{0⪯M⪯I, tr M = k} tr(Wᵀ(ηI + M)⁻¹W)``, ``η = rho``,
                    ``k = n_clusters`` (convex clustered MTL, Jacob et al. 2008; Zhou et al. 2011)

    Defaults: ``l1_ratio`` 0.5 for ``elasticnet`` and 1 for ``l21``; ``rho`` 0.1 for ``mean`` and
    ``graph`` and 1 for ``clustered``; ``n_clusters`` 1.

    With ``shared = ς`` (not None) the weights split into a component common to all tasks and
    penalized deviations, ``W = 1 w₀ᵀ + V``, and the objective becomes

    .. math::

        \min_{w_0, V, b} \; F(1 w_0^\top + V, b) + \lambda (R(V) + \tfrac{ς}{2} T \|w_0\|^2),

    so ``R`` acts on the deviations instead of pulling every task toward zero (``ς = 0``: an
    unpenalized shared model). ``coef_`` is ``W`` and ``shared_coef_`` is ``w₀``. With
    ``R = l2`` this is ``mean`` with ``ρ = ς/(1 + ς)``.
"""

_DATA_DOC = """
    Data come either as one shared design (``X`` of shape ``n × d``, dense or scipy-sparse, and
    ``y`` of shape ``n × T`` with NaN for a missing label, or 1-D for a single task) or as
    per-task designs (``X`` a list of ``n_t × d`` arrays and ``y`` a list of ``n_t`` targets).
"""

_PARAMS_DOC = """
    Parameters
    ----------
    penalty : {"l2", "l1", "elasticnet", "l21", "trace", "mean", "graph", "clustered"}
        The regularizer ``R``.
    alpha : float > 0
        The regularization strength λ.
    l1_ratio : float in [0, 1] or None
        Mixing ``a`` of ``elasticnet`` and ``l21``.
    rho : float >= 0 or None
        ``ρ`` of ``mean`` and ``graph``, ``η > 0`` of ``clustered``.
    edges : list of (s, t) or (s, t, weight), or T × T array, or None
        Task graph of ``graph``.
    n_clusters : int or None
        ``k`` of ``clustered``.
    fit_intercept : bool
        Fit one unpenalized intercept per task.
    tol : float
        Stop when the relative duality gap (squared loss with ``l1``, ``l2``, ``elasticnet``,
        ``l21``, ``trace``: gap / objective at ``W = 0``) or else the relative KKT residual
        (gradient-mapping norm / data-gradient norm at ``W = 0``) is at most ``tol``.
    max_iter : int
        Maximum number of FISTA iterations.
    warm_start : bool
        Start from the previous ``coef_`` and ``intercept_``.
    precompute : "auto" or bool
        Use Gram matrices for the squared loss (``auto``: when cheaper).
    task_weighting : {"mean", "sum"}
        ``"mean"``: each task's loss is averaged over its ``n_t`` rows (the objective above);
        ``"sum"``: every row weighs ``1/N``, ``N = Σ_t n_t`` (tasks weighted by their size, as in
        MALSAR's summed losses up to the factor N). Identical when all ``n_t`` are equal.
    shared : float >= 0 or None
        ``ς``: add a shared component ``w₀`` penalized by ``λ (ς/2) T ‖w₀‖²`` (see above); None
        (default) fits ``W`` directly. The duality gap is used with ``ς > 0``; with ``ς = 0`` the
        KKT residual, and ``w₀`` need not be unique (``coef_`` is, when the loss is strictly
        convex in ``W``).

    Attributes
    ----------
    coef_ : ndarray of shape (n_tasks, n_features)
    intercept_ : ndarray of shape (n_tasks,)
    n_iter_ : int
        FISTA iterations run.
    dual_gap_ : float
        Final relative duality gap (NaN where the KKT residual is the stopping measure).
    kkt_residual_ : float
        Final relative KKT residual (gradient-mapping norm).
    objective_ : float
        Final value of the objective above.
    shared_coef_ : ndarray of shape (n_features,) or None
        The shared component ``w₀`` (None without ``shared``).
    n_tasks_ : int
    per_task_ : bool
        Whether the model was fitted on per-task designs.
"""


class _SingleFit(_LinearMultiTask):
    _parameter_constraints: dict = {
        **_COMMON_CONSTRAINTS,
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        penalty: str = "l21",
        alpha: float = 0.01,
        *,
        l1_ratio: float | None = None,
        rho: float | None = None,
        edges=None,
        n_clusters: int | None = None,
        fit_intercept: bool = True,
        tol: float = 1e-4,
        max_iter: int = 1000,
        warm_start: bool = False,
        precompute: str | bool = "auto",
        task_weighting: str = "mean",
        shared: float | None = None,
    ):
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.rho = rho
        self.edges = edges
        self.n_clusters = n_clusters
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.precompute = precompute
        self.task_weighting = task_weighting
        self.shared = shared

    def fit(self, X, y):
        """Fit the model; ``X``/``y`` as a shared design or as lists of per-task designs."""
        self._validate_params()
        previous = None
        if self.warm_start and hasattr(self, "coef_"):
            previous = (self.coef_, self.intercept_)
        data = self._prepare(X, y)
        if previous is not None and previous[0].shape != (self.n_tasks_, self.n_features_in_):
            previous = None
        if previous is not None:
            previous = (self._solver_coef(), previous[1])
        return self._fit_data(data, self.alpha, init=previous, shared=self.shared)

    def _settings(self) -> dict:
        """The mixing values and ``shared`` of this fit (see :meth:`_penalty`)."""
        return {"l1_ratio": self.l1_ratio, "rho": self.rho, "shared": self.shared}


class _RegressorOutputs:
    _loss = "squared"

    def _encode_task(self, y, t):
        y = np.asarray(y, dtype=np.float64)
        if np.any(np.isinf(y)):
            raise ValueError(f"Input y contains infinity (task {t}).")
        labelled = ~np.isnan(y)
        if not labelled.any():
            raise ValueError(f"Task {t} has no labelled rows (y is all NaN).")
        return np.where(labelled, y, 0.0), labelled.astype(np.float64)

    def predict(self, X):
        """Predictions: ``n × T`` for a shared ``X`` (``n`` for one task), a list for per-task X."""
        return self._decision(X)

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of R² on the labelled rows (see :func:`_mean_task_score`)."""
        from sklearn.metrics import r2_score

        return _mean_task_score(r2_score, y, self.predict(X), sample_weight)


def _mean_task_score(metric, y, pred, sample_weight) -> float:
    """``(1/T) Σ_t metric(y_t, ŷ_t, w_t)`` on each task's labelled rows (a float NaN label is
    missing, as in ``fit``). ``y``, ``pred`` (from ``predict``) and ``sample_weight``: one task's
    n-vectors; ``n × T`` with one n-vector of weights for every task; or per-task lists (of
    weights too)."""
    if isinstance(pred, list):
        ys, preds = list(y), pred
        weights = [None] * len(preds) if sample_weight is None else list(sample_weight)
    else:
        y = np.asarray(y)
        ys, preds = ([y], [pred]) if pred.ndim == 1 else (list(y.T), list(pred.T))
        weights = [sample_weight] * len(preds)
    scores = []
    for t, (yt, pt, wt) in enumerate(zip(ys, preds, weights, strict=True)):
        yt = np.asarray(yt)
        keep = ~np.isnan(yt) if yt.dtype.kind == "f" else np.ones(len(yt), dtype=bool)
        if not keep.any():
            raise ValueError(f"Task {t} has no labelled rows in y (all NaN); it has no score.")
        wt = None if wt is None else np.asarray(wt)[keep]
        scores.append(metric(yt[keep], np.asarray(pt)[keep], sample_weight=wt))
    return float(np.mean(scores))


class _ClassifierOutputs:
    _loss = "logistic"

    def _encode_task(self, y, t):
        y = np.asarray(y)
        labelled = np.ones(y.shape[0], dtype=bool)
        if y.dtype.kind == "f":
            if np.any(np.isinf(y)):
                raise ValueError(f"Input y contains infinity (task {t}).")
            labelled = ~np.isnan(y)
        if not labelled.any():
            raise ValueError(f"Task {t} has no labelled rows (y is all NaN).")
        yl = y[labelled]
        if getattr(self, "single_output_", False):
            check_classification_targets(yl)
        kind = type_of_target(yl)
        classes = np.unique(yl)
        if classes.size != 2:
            raise ValueError(
                f"Only binary classification is supported. Task {t} has a {kind} target with "
                f"{classes.size} class(es); each task needs exactly 2 classes."
            )
        self._classes_acc.append(classes)
        positive = np.zeros(y.shape[0])
        positive[labelled] = (yl == classes[1]).astype(np.float64)
        return positive, labelled.astype(np.float64)

    def _prepare(self, X, y):
        self._classes_acc = []
        data = super()._prepare(X, y)
        classes = self._classes_acc
        del self._classes_acc
        shared = all(np.array_equal(c, classes[0]) for c in classes)
        self.classes_ = classes[0] if shared and not self.per_task_ else classes
        return data

    def _task_classes(self):
        if isinstance(self.classes_, list):
            return self.classes_
        return [self.classes_] * self.n_tasks_

    def decision_function(self, X):
        """Log-odds of the second class of each task (same layout as :meth:`predict`)."""
        return self._decision(X)

    def predict_proba(self, X):
        """Probabilities: ``n × 2`` for one task; for several tasks, the probability of each
        task's second class, ``n × T`` for a shared X (scikit-learn's multilabel convention) and a
        list of ``n_t`` vectors for per-task X."""
        from scipy.special import expit

        Z = self._decision(X)
        if self.single_output_:
            p = expit(Z)
            return np.column_stack([1.0 - p, p])
        return [expit(z) for z in Z] if isinstance(Z, list) else expit(Z)

    def predict(self, X):
        """Labels: ``n`` for one task, ``n × T`` for a shared X, a list for per-task X."""
        Z = self._decision(X)
        classes = self._task_classes()
        if self.single_output_:
            return classes[0][(Z > 0).astype(int)]
        if isinstance(Z, list):
            return [c[(z > 0).astype(int)] for c, z in zip(classes, Z, strict=True)]
        return np.column_stack([c[(z > 0).astype(int)] for c, z in zip(classes, Z.T, strict=True)])

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of the accuracy on the labelled rows (see :func:`_mean_task_score`)."""
        from sklearn.metrics import accuracy_score

        return _mean_task_score(accuracy_score, y, self.predict(X), sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class MultiTaskRegressor(_RegressorOutputs, RegressorMixin, _SingleFit):
    __doc__ = (
        """Regularized multi-task linear regression (squared loss ``ℓ(z, y) = ½(z − y)²``).
"""
        + _OBJECTIVE_DOC
        + _DATA_DOC
        + """
    Equivalences with scikit-learn (shared design, no missing label, ``λ = alpha``):
    ``l21`` ⇔ ``MultiTaskLasso(alpha)``; ``l21`` with ``l1_ratio=a`` ⇔
    ``MultiTaskElasticNet(alpha, l1_ratio=a)``; ``l1`` ⇔ ``Lasso(alpha)`` per task;
    ``elasticnet`` ⇔ ``ElasticNet(alpha, l1_ratio)`` per task; ``l2`` ⇔ ``Ridge(alpha=n·λ)``.
"""
        + _PARAMS_DOC
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from mtlkit.linear import MultiTaskRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 4))
    >>> Y = X @ np.array([[1.0, 0, 0, 2], [1.5, 0, 0, 1]]).T
    >>> model = MultiTaskRegressor("l21", alpha=0.01, tol=1e-8).fit(X, Y)
    >>> model.coef_.shape
    (2, 4)
    >>> bool(np.all(model.coef_[:, 1:3] == 0))
    True
"""
    )


class MultiTaskClassifier(_ClassifierOutputs, ClassifierMixin, _SingleFit):
    __doc__ = (
        """Regularized multi-task logistic regression, one binary problem per task.

    The loss is ``ℓ(z, y) = log(1 + exp(−ỹ z))`` with ``ỹ = +1`` for the task's second class
    (in sorted order) and ``−1`` for the first. With ``l2`` and one task this is scikit-learn's
    ``LogisticRegression(C = 1/(n λ))``.
"""
        + _OBJECTIVE_DOC
        + _DATA_DOC
        + _PARAMS_DOC
        + """    classes_ : ndarray of shape (2,) or list of those
        One array when every task of a shared design has the same two labels (scikit-learn's
        multilabel convention), else a list with one array per task.

    Examples
    --------
    >>> import numpy as np
    >>> from mtlkit.linear import MultiTaskClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((80, 3))
    >>> Y = np.column_stack([X[:, 0] > 0, X[:, 0] + X[:, 1] > 0]).astype(float)
    >>> clf = MultiTaskClassifier("l21", alpha=0.01).fit(X, Y)
    >>> clf.score(X, Y) > 0.9
    True
"""
    )


__all__ = ["MultiTaskClassifier", "MultiTaskRegressor"]
