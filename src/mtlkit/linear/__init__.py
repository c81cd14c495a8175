"""Regularized linear multi-task learning with scikit-learn's manners.

Estimators minimize ``Σ_t (1/n_t) Σ_{i∈t} ℓ(x_iᵀ w_t + b_t, y_i) + λ R(W)`` by FISTA, for the
penalties listed in :data:`PENALTIES`; see :class:`MultiTaskRegressor` for the exact objective.
"""

from ._cv import MultiTaskClassifierCV, MultiTaskRegressorCV
from ._estimators import MultiTaskClassifier, MultiTaskRegressor
from ._path import regularization_path
from ._penalties import PENALTIES

__all__ = [
    "PENALTIES",
    "MultiTaskClassifier",
    "MultiTaskClassifierCV",
    "MultiTaskRegressor",
    "MultiTaskRegressorCV",
    "regularization_path",
]
