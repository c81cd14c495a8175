"""Analysis: Δm against single-task baselines, task relatedness and grouping, tables and plots.

The pure parts only: relatedness *runs* (training a configured model) live in
:mod:`mtlkit.runs.relatedness`.

The names below load on first use (PEP 562), so that importing one light submodule (e.g.
``mtlkit.analysis.grouping`` for the command line's choices) does not import torch or matplotlib.
"""

from __future__ import annotations

from mtlkit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AffinityRecorder": "affinity",
    "lookahead_affinity": "affinity",
    "DeltaM": "delta",
    "delta_m": "delta",
    "delta_m_terms": "delta",
    "GradientRecorder": "gradients",
    "GradientRelations": "gradients",
    "conflict_matrix": "gradients",
    "cosine_matrix": "gradients",
    "gradient_cosine": "gradients",
    "norm_ratio_matrix": "gradients",
    "Grouping": "grouping",
    "best_partition": "grouping",
    "exact_partition": "grouping",
    "heuristic_partition": "grouping",
    "optimality_gap": "grouping",
    "partition_score": "grouping",
    "plot_cosine_over_training": "plots",
    "plot_matrix": "plots",
    "plot_training_curves": "plots",
    "comparison_table": "report",
    "format_table": "report",
    "pair_verdicts": "verdict",
    "transfer_ratio": "verdict",
    "verdict_table": "verdict",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
