"""Sharding of global batches across ranks.

Every rank iterates over the *same* sequence of global batches (the loaders share a seed and
their generator state is checkpointed once) and keeps only its own contiguous part of each
batch: ``torch.tensor_split(batch, world_size)[rank]`` (sizes differ by at most one row). The
concatenation of the shards in rank order is the one-process batch, which is what makes the
distributed update equal to the one-process update on the whole batch.
"""

from __future__ import annotations

from torch import Tensor


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, end)`` of ``rank``'s part of ``n`` rows, as ``torch.tensor_split`` cuts them."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard_slice(index: Tensor, rank: int, world_size: int) -> Tensor:
    """``rank``'s contiguous shard of a batch's row indices."""
    if world_size == 1:
        return index
    start, end = shard_bounds(len(index), rank, world_size)
    return index[start:end]
