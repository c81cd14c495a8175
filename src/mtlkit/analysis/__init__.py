"""Analysis: Δm against single-task baselines, task relatedness and grouping, tables and plots."""

from mtlkit.analysis.affinity import AffinityRecorder, lookahead_affinity
from mtlkit.analysis.delta import delta_m
from mtlkit.analysis.gradients import (
    GradientRecorder,
    GradientRelations,
    conflict_matrix,
    cosine_matrix,
    gradient_cosine,
    norm_ratio_matrix,
)
from mtlkit.analysis.grouping import (
    Grouping,
    best_partition,
    exact_partition,
    heuristic_partition,
    optimality_gap,
    partition_score,
)
from mtlkit.analysis.plots import plot_cosine_over_training, plot_matrix
from mtlkit.analysis.relatedness import (
    RelatednessResult,
    measure_relatedness,
    pairwise_transfer,
    train_groupings,
)
from mtlkit.analysis.report import comparison_table, format_table, plot_training_curves
from mtlkit.analysis.verdict import pair_verdicts, transfer_ratio, verdict_table

__all__ = [
    "AffinityRecorder",
    "GradientRecorder",
    "GradientRelations",
    "Grouping",
    "RelatednessResult",
    "best_partition",
    "comparison_table",
    "conflict_matrix",
    "cosine_matrix",
    "delta_m",
    "exact_partition",
    "format_table",
    "gradient_cosine",
    "heuristic_partition",
    "lookahead_affinity",
    "measure_relatedness",
    "norm_ratio_matrix",
    "optimality_gap",
    "pair_verdicts",
    "pairwise_transfer",
    "partition_score",
    "plot_cosine_over_training",
    "plot_matrix",
    "plot_training_curves",
    "train_groupings",
    "transfer_ratio",
    "verdict_table",
]
