"""Analysis: Δm against single-task baselines, tables and plots."""

from mtlkit.analysis.delta import delta_m
from mtlkit.analysis.report import comparison_table, format_table, plot_training_curves

__all__ = ["comparison_table", "delta_m", "format_table", "plot_training_curves"]
