"""Training: the trainer, regularization, evaluation, checkpoints and configured runs."""

from mtlkit.training.checkpoint import atomic_save, seed_everything
from mtlkit.training.evaluation import collect_outputs, evaluate
from mtlkit.training.options import Regularization, TrainingOptions
from mtlkit.training.regularization import penalty
from mtlkit.training.trainer import History, NonFiniteLossError, Trainer

__all__ = [
    "History",
    "NonFiniteLossError",
    "Regularization",
    "Trainer",
    "TrainingOptions",
    "atomic_save",
    "collect_outputs",
    "evaluate",
    "penalty",
    "seed_everything",
]
