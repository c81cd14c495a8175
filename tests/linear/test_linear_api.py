"""scikit-learn contract, input errors, cross-validation and the regularization path."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from mtlkit.linear import (
    MultiTaskClassifier,
    MultiTaskClassifierCV,
    MultiTaskRegressor,
    MultiTaskRegressorCV,
    regularization_path,
)
from mtlkit.linear._cv import stratified_task_folds


@parametrize_with_checks(
    [
        MultiTaskRegressor(),
        MultiTaskRegressor("mean"),
        MultiTaskRegressor("trace", shared=0.1),
        MultiTaskClassifier(max_iter=300),
        MultiTaskRegressorCV(alphas=3, cv=2, max_iter=100),
        MultiTaskClassifierCV(alphas=3, cv=2, max_iter=50),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def regression_data(seed=0, n=40, d=5, T=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, X @ rng.standard_normal((d, T)) + 0.1 * rng.standard_normal((n, T))


def test_grid_search_and_pipeline():
    X, Y = regression_data()
    pipe = make_pipeline(StandardScaler(), MultiTaskRegressor("l21"))
    search = GridSearchCV(pipe, {"multitaskregressor__alpha": [1e-3, 1e-1, 10.0]}, cv=3)
    search.fit(X, Y)
    assert search.best_params_["multitaskregressor__alpha"] == 1e-3
    assert search.predict(X).shape == Y.shape
    assert search.score(X, Y) > 0.9


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.ones((5, 2)), np.ones((4, 2)), "mismatched lengths"),
        (np.ones((5, 2)), np.column_stack([np.ones(5), np.full(5, np.nan)]), "Task 1 has no"),
        (np.array([[1.0, np.nan]] * 5), np.ones(5), "NaN"),
        (np.ones((5, 2)), np.array([1.0, 2, np.inf, 1, 1]), "infinity"),
        ([np.ones((3, 2)), np.ones((4, 2))], [np.ones(3), np.ones(3)], "Task 1.*mismatched"),
        ([np.ones((3, 2)), np.ones((4, 3))], [np.ones(3), np.ones(4)], "3 features"),
        ([np.ones((3, 2)), np.ones((0, 2))], [np.ones(3), np.ones(0)], "Task 1 has no"),
        ([np.ones((3, 2))], [np.ones(3), np.ones(3)], "one y_t per X_t"),
    ],
)
def test_clear_errors(X, y, match):
    with pytest.raises(ValueError, match=match):
        MultiTaskRegressor().fit(X, y)


def test_classifier_rejects_non_binary_task():
    X = np.random.default_rng(0).standard_normal((9, 2))
    Y = np.column_stack([np.tile([0.0, 1.0, 1.0], 3), np.tile([0.0, 1.0, 2.0], 3)])
    with pytest.raises(ValueError, match="Only binary.*Task 1.*3 class"):
        MultiTaskClassifier().fit(X, Y)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"penalty": "lasso"}, "penalty"),
        ({"alpha": -1.0}, "alpha"),
        ({"penalty": "graph"}, "needs edges"),
        ({"penalty": "graph", "edges": [(0, 5)]}, "does not join"),
        ({"penalty": "clustered", "n_clusters": 4}, "n_clusters"),
        ({"penalty": "clustered", "rho": 0.0}, "rho"),
    ],
)
def test_bad_parameters_name_the_argument(params, match):
    X, Y = regression_data()
    with pytest.raises(ValueError, match=match):
        MultiTaskRegressor(**params).fit(X, Y)


def test_per_task_designs_predict_per_task_and_match_shared_layout():
    X, Y = regression_data()
    shared = MultiTaskRegressor("trace", alpha=0.01, tol=1e-10).fit(X, Y)
    lists = MultiTaskRegressor("trace", alpha=0.01, tol=1e-10).fit([X] * 3, list(Y.T))
    np.testing.assert_allclose(lists.coef_, shared.coef_, rtol=1e-6, atol=1e-9)
    preds = lists.predict([X[:7], X[:2], X])
    assert [p.shape for p in preds] == [(7,), (2,), (40,)]
    np.testing.assert_allclose(preds[2], shared.predict(X)[:, 2], rtol=1e-6, atol=1e-8)
    assert lists.score([X] * 3, list(Y.T)) == pytest.approx(shared.score(X, Y), rel=1e-6)


def test_warm_start_continues_from_previous_solution():
    X, Y = regression_data()
    model = MultiTaskRegressor("l21", alpha=0.01, tol=1e-10, warm_start=True).fit(X, Y)
    cold_iter = model.n_iter_
    model.fit(X, Y)
    assert model.n_iter_ == 0 < cold_iter


def test_regularization_path_goes_from_zero_to_denser():
    X, Y = regression_data()
    alphas, coefs, intercepts, n_iters = regularization_path(
        MultiTaskRegressor("l21", tol=1e-8), X, Y, alphas=8
    )
    assert np.all(np.diff(alphas) < 0)
    assert coefs.shape == (8, 3, 5) and intercepts.shape == (8, 3)
    support = (np.linalg.norm(coefs, axis=1) > 0).sum(axis=1)
    assert support[0] == 0 and support[-1] == 5
    single = MultiTaskRegressor("l21", alpha=alphas[4], tol=1e-12).fit(X, Y)
    np.testing.assert_allclose(coefs[4], single.coef_, rtol=1e-4, atol=1e-6)


def test_folds_are_stratified_within_each_task():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    Y = np.column_stack([rng.random(60) < 0.2, rng.random(60) < 0.5]).astype(float)
    Y[:10, 1] = np.nan
    clf = MultiTaskClassifierCV()
    data = clf._prepare(X, Y)
    folds = stratified_task_folds(data, 3, stratify=True, random_state=0)
    assert np.all(folds[:10, 1] == -1)
    for t in range(2):
        labelled = ~np.isnan(Y[:, t])
        for c in (0.0, 1.0):
            counts = np.bincount(folds[labelled & (Y[:, t] == c), t], minlength=3)
            assert counts.max() - counts.min() <= 1


def test_cv_error_curve_matches_manual_fold_fits_and_refits():
    X, Y = regression_data(n=30)
    cv = MultiTaskRegressorCV(
        "l21", alphas=[0.3, 0.03, 0.003], l1_ratio=1.0, shared=None, cv=3, tol=1e-10, random_state=0
    )
    cv.fit(X, Y)
    data = cv._prepare(X, Y)
    folds = stratified_task_folds(data, 3, stratify=False, random_state=0)
    for i, alpha in enumerate(cv.alphas_):
        for k in range(3):
            m = MultiTaskRegressor("l21", alpha=alpha, tol=1e-12)
            m.fit(X, np.where(folds == k, np.nan, Y))
            err = np.mean(
                [
                    np.mean((m.predict(X)[folds[:, t] == k, t] - Y[folds[:, t] == k, t]) ** 2)
                    for t in range(3)
                ]
            )
            assert cv.cv_errors_[i, k] == pytest.approx(err, rel=1e-5)
    assert cv.alpha_ == cv.alphas_[np.argmin(cv.cv_errors_.mean(axis=1))]
    ref = MultiTaskRegressor("l21", alpha=cv.alpha_, tol=1e-12).fit(X, Y)
    np.testing.assert_allclose(cv.coef_, ref.coef_, rtol=1e-5, atol=1e-8)


def test_cv_selects_mixing_parameter_from_a_list():
    X, Y = regression_data()
    cv = MultiTaskRegressorCV("mean", alphas=4, rho=[0.0, 1.0], cv=3, random_state=0).fit(X, Y)
    assert cv.cv_errors_.shape == (2, 4, 3)
    assert cv.rho_ in (0.0, 1.0)


def test_cv_selects_shared_and_mixing_from_lists_and_refits():
    X, Y = regression_data()
    Y = Y + 2.0 * X[:, :1]  # a common component
    cv = MultiTaskRegressorCV(
        "l21", alphas=3, l1_ratio=[0.5, 1.0], shared=[0.0, 1.0], cv=2, tol=1e-9, random_state=0
    ).fit(X, Y)
    assert cv.cv_errors_.shape == (4, 3, 2)  # (l1_ratio × shared) × λ × folds
    best = np.unravel_index(np.argmin(cv.cv_errors_.mean(axis=2)), (4, 3))
    assert (cv.l1_ratio_, cv.shared_) == [(a, s) for a in (0.5, 1.0) for s in (0.0, 1.0)][best[0]]
    params = {"alpha": cv.alpha_, "l1_ratio": cv.l1_ratio_, "shared": cv.shared_}
    ref = MultiTaskRegressor("l21", tol=1e-12, max_iter=50000, **params).fit(X, Y)
    np.testing.assert_allclose(cv.coef_, ref.coef_, rtol=1e-5, atol=1e-7)


def test_shared_component_warm_start_and_unshared_attribute():
    X, Y = regression_data()
    model = MultiTaskRegressor("trace", alpha=0.05, shared=0.2, tol=1e-10, warm_start=True)
    model.fit(X, Y)
    assert model.n_iter_ > 0 and model.shared_coef_.shape == (5,)
    model.fit(X, Y)
    assert model.n_iter_ == 0
    assert MultiTaskRegressor("trace", alpha=0.05).fit(X, Y).shared_coef_ is None


def test_path_with_shared_component_returns_full_coefficients():
    X, Y = regression_data()
    est = MultiTaskRegressor("trace", shared=0.1, tol=1e-10)
    alphas, coefs, _, _ = regularization_path(est, X, Y, alphas=4)
    assert coefs.shape == (4, 3, 5)
    single = MultiTaskRegressor("trace", alpha=alphas[2], shared=0.1, tol=1e-12).fit(X, Y)
    np.testing.assert_allclose(coefs[2], single.coef_, rtol=1e-4, atol=1e-6)


def test_ridge_path_spans_the_smooth_range():
    X, Y = regression_data()
    alphas, *_ = regularization_path(MultiTaskRegressor("l2"), X, Y, alphas=5)
    assert alphas[-1] / alphas[0] == pytest.approx(1e-5)


def test_classifier_cv_on_per_task_designs():
    rng = np.random.default_rng(1)
    Xs = [rng.standard_normal((n, 4)) for n in (30, 40)]
    w = rng.standard_normal(4)
    ys = [np.where(X @ w > 0, "yes", "no") for X in Xs]
    clf = MultiTaskClassifierCV("l2", alphas=5, cv=3, random_state=0).fit(Xs, ys)
    assert [list(c) for c in clf.classes_] == [["no", "yes"], ["no", "yes"]]
    assert clf.score(Xs, ys) > 0.85
    assert clf.predict(Xs)[0].dtype.kind == "U"


def test_lambda_max_leaves_the_estimator_unfitted():
    X, Y = regression_data()
    model = MultiTaskRegressor("l21")
    lam_max = model.lambda_max(X, Y)
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    expected = np.linalg.norm(Xc.T @ Yc / X.shape[0], axis=1).max()
    assert lam_max == pytest.approx(expected, rel=1e-12)
    assert not hasattr(model, "n_features_in_")


def test_docstring_examples_run():
    import doctest

    import mtlkit.linear._estimators as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("per_task", [False, True], ids=["shared X", "per-task X"])
@pytest.mark.parametrize("classifier", [False, True], ids=["regressor", "classifier"])
def test_score_is_the_mean_of_per_task_metrics_on_labelled_rows_with_weights(per_task, classifier):
    """``score`` = mean over tasks of R² / accuracy on each task's labelled rows, weighted by
    ``sample_weight`` (one n-vector for a shared X, one vector per task for per-task X); it
    ignored the weights and, for per-task X, counted a NaN label as a row."""
    from sklearn.metrics import accuracy_score, r2_score

    X, Y = regression_data(n=60)
    Y = Y + np.random.default_rng(1).standard_normal(Y.shape)  # imperfect fits
    if classifier:
        Y = (Y > 0).astype(float)
    Y[[3, 8], 1] = np.nan
    weights = np.random.default_rng(2).uniform(0, 2, size=60)
    metric = accuracy_score if classifier else r2_score
    Model = MultiTaskClassifier if classifier else MultiTaskRegressor
    model = Model("l21", alpha=0.05).fit(X, Y)
    pred = model.predict(X)
    expected = []
    for t in range(3):
        keep = ~np.isnan(Y[:, t])
        expected.append(metric(Y[keep, t], pred[keep, t], sample_weight=weights[keep]))
    if per_task:
        got = model.score([X] * 3, list(Y.T), sample_weight=[weights] * 3)
    else:
        got = model.score(X, Y, sample_weight=weights)
    assert got == pytest.approx(np.mean(expected), rel=1e-12)
    assert got != pytest.approx(model.score(X, Y), rel=1e-6)  # the weights matter here


@pytest.mark.parametrize("Model", [MultiTaskRegressor, MultiTaskClassifier])
def test_score_names_a_task_without_labelled_rows(Model):
    X, Y = regression_data()
    Y = (Y > 0).astype(float)
    model = Model(alpha=0.05).fit(X, Y)
    Y[:, 2] = np.nan
    with pytest.raises(ValueError, match="Task 2 has no labelled rows"):
        model.score(X, Y)


@pytest.mark.parametrize("Model", [MultiTaskRegressorCV, MultiTaskClassifierCV])
def test_more_folds_than_any_task_has_rows_is_named(Model):
    """More folds than the largest task's labelled rows leave every task out of some fold (a
    fold with no validation row at all died on 'All-NaN slice encountered'); fewer rows than
    folds in some tasks only stays allowed."""
    X, Y = regression_data(n=12)
    Y = (Y > 0).astype(float) if Model is MultiTaskClassifierCV else Y
    with pytest.raises(ValueError, match=r"cv=13 folds.*at most 12 labelled rows"):
        Model(alphas=3, cv=13).fit(X, Y)
    Y[4:, 1] = np.nan  # task 1 keeps 4 rows: < 5 folds, the other tasks fill every fold
    Y[:4, 1] = [0.0, 1.0, 0.0, 1.0]
    assert np.isfinite(Model(alphas=3, cv=5).fit(X, Y).cv_errors_).any()


@pytest.mark.parametrize(
    "alphas", [[0.1, np.nan], [0.1, np.inf], [], [0.1, 0.0], [[0.1, 0.2]]], ids=str
)
def test_cv_alphas_must_be_a_list_of_finite_positive_numbers(alphas):
    """A NaN candidate passed the check (NaN <= 0 is False) and the fit never ended; an empty
    list was reported as 'must be positive'."""
    X, Y = regression_data()
    with pytest.raises(
        ValueError, match=r"alphas: expected a non-empty list of finite numbers > 0"
    ):
        MultiTaskRegressorCV(alphas=alphas).fit(X, Y)
    with pytest.raises(ValueError, match=r"alphas: expected"):
        regularization_path(MultiTaskRegressor(), X, Y, alphas=alphas)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": np.nan}, r"eps: expected a number in \(0, 1\), got nan"),
        ({"eps": 2.0}, r"eps: expected a number in \(0, 1\), got 2.0"),
        ({"eps": 0.0}, r"eps: expected a number in \(0, 1\), got 0.0"),
        ({"alphas": 0}, r"alphas: expected at least 1 value, got 0"),
    ],
    ids=str,
)
def test_path_refuses_an_eps_outside_0_1_and_no_alphas(kwargs, match):
    """The path's own arguments are checked as the CV estimators' are: eps = NaN never ended,
    eps = 2 gave an increasing path starting at λ_max."""
    X, Y = regression_data()
    with pytest.raises(ValueError, match=match):
        regularization_path(MultiTaskRegressor(), X, Y, **kwargs)
