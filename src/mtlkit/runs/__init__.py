"""Configured runs: the only package that knows :class:`~mtlkit.config.Config` and run directories.

- :mod:`~mtlkit.runs.build`: objects from a config (device, data, model, transfer, trainer);
- :mod:`~mtlkit.runs.train`: :func:`train_run` and :func:`resume_run`;
- :mod:`~mtlkit.runs.resume`: a run's checkpoint read, checked and restored;
- :mod:`~mtlkit.runs.logs`: ``metrics.jsonl`` and TensorBoard;
- :mod:`~mtlkit.runs.rundir`: the run directory checked, replaced and locked;
- :mod:`~mtlkit.runs.trained`: a finished run read back (:class:`TrainedRun`, :func:`load`);
- :mod:`~mtlkit.runs.export`: a trained model for serving;
- :mod:`~mtlkit.runs.relatedness`: relatedness runs (affinity, grouped training, Δm).

Layers, top to bottom: cli → runs → analysis → training → models, data, config. The names below
load on first use (PEP 562), so importing this package does not import torch.
"""

from __future__ import annotations

from mtlkit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Transfer": "build",
    "build_model": "build",
    "build_trainer": "build",
    "load_bundle": "build",
    "prepare_transfer": "build",
    "resolve_device": "build",
    "RunInterrupted": "train",
    "RunResult": "train",
    "Terminated": "train",
    "check_run": "train",
    "resume_run": "train",
    "train_run": "train",
    "TrainedRun": "trained",
    "load": "trained",
    "ServingModel": "export",
    "export_run": "export",
    "RelatednessResult": "relatedness",
    "measure_relatedness": "relatedness",
    "metrics_of": "relatedness",
    "pairwise_transfer": "relatedness",
    "subset_config": "relatedness",
    "train_groupings": "relatedness",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
