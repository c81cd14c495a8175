"""Data-parallel multi-task training on ``torch.distributed`` (launched by ``torchrun``).

Every rank draws the *same* global batch (identical loader generators) and trains on its own
contiguous shard of it. The trainer turns the shard's losses into exact global quantities:

- loss values (and so every loss-based weight or statistic) are the global-batch values, from an
  all-reduce of per-task sums and label counts;
- the per-task Jacobian of the shared parameters is the label-count-weighted mean of the ranks'
  Jacobians (all-reduced before any strategy sees it), so gradient strategies aggregate the
  global-batch Jacobian and every rank applies the same direction;
- all remaining gradients are all-reduced (mean of count-rescaled local gradients).

See ``docs/distributed.md``.
"""

from mtlkit.distributed.env import (
    DistContext,
    DistributedError,
    active_context,
    init_from_env,
    launched_by_torchrun,
)
from mtlkit.distributed.reduce import gramian_factor
from mtlkit.distributed.sampler import shard_slice

__all__ = [
    "DistContext",
    "DistributedError",
    "active_context",
    "gramian_factor",
    "init_from_env",
    "launched_by_torchrun",
    "shard_slice",
]
