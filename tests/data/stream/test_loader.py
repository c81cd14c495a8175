"""StreamLoader: every row once per epoch, shards, workers, shuffle buffer, exact resume."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stream_testutil import OPTIONS, TASKS, mixed_frame, write_parts

from mtlkit.data import BatchLoader, MultiTaskDataset
from mtlkit.data.stream.loader import StreamLoader, global_batch_sizes
from mtlkit.data.stream.split import SPLIT_NAMES as SPLITS
from mtlkit.data.stream.table import scan_table
from mtlkit.data.table import load_table


class FakeTable:
    """A streamed table in memory: ``counts[i]`` = (train, val, test) rows of unit ``i``.

    A split's rows are numbered 0, 1, ... in file order; input column 0 holds that number and
    every target is a function of it, so a batch tells which rows it holds (and that the
    targets travelled with their inputs). ``on_read`` (if set) is called before each read.
    """

    def __init__(self, counts, on_read=None) -> None:
        self.unit_counts = np.asarray(counts, dtype=np.int64).reshape(-1, 3)
        self.on_read = on_read

    def read_unit(self, i: int, split: str):
        if self.on_read is not None:
            self.on_read(i)
        column = self.unit_counts[:, SPLITS.index(split)]
        start = int(column[:i].sum())
        ids = torch.arange(start, start + int(column[i]))
        return rows_of(ids)


def rows_of(ids: torch.Tensor):
    inputs = torch.stack([ids.float(), 0.5 * ids.float()], dim=1)
    targets = {"cls": ids % 3, "two": torch.stack([ids.float(), -ids.float()], dim=1)}
    return inputs, targets


def ids_of(batch) -> torch.Tensor:
    inputs, targets = batch
    ids = inputs[:, 0].long()
    expected_inputs, expected_targets = rows_of(ids)
    assert torch.equal(inputs, expected_inputs)
    for name, y in expected_targets.items():
        assert torch.equal(targets[name], y), name
    return ids


def epoch(loader) -> list:
    return list(loader)


def assert_same_batches(a: list, b: list) -> None:
    """Bit-identical batches (a NaN, a missing label, equals a NaN)."""
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        assert ya.keys() == yb.keys()
        for name in ya:
            torch.testing.assert_close(ya[name], yb[name], rtol=0, atol=0, equal_nan=True)


def roundtrip(state: dict) -> dict:
    """The state as a checkpoint file would give it back."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


UNITS = [(5, 2, 1), (0, 3, 0), (7, 0, 2), (3, 1, 1), (6, 2, 0), (1, 0, 0), (4, 1, 3)]  # 26 train


# ---------------------------------------------------------------------- every row once per epoch
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    counts=st.lists(st.tuples(*[st.integers(0, 12)] * 3), min_size=1, max_size=8),
    split=st.sampled_from(SPLITS),
    batch_size=st.integers(1, 12),
    shuffle_buffer=st.integers(0, 30),
    world_size=st.integers(1, 3),
    shuffle=st.booleans(),
    seed=st.integers(0, 3),
)
def test_every_row_once_per_epoch_on_every_rank_count(
    counts, split, batch_size, shuffle_buffer, world_size, shuffle, seed
):
    table = FakeTable(counts)
    n = int(table.unit_counts[:, SPLITS.index(split)].sum())
    if batch_size < world_size:
        with pytest.raises(ValueError, match=f"{batch_size} rows cannot give each of {world_size}"):
            StreamLoader(table, split, batch_size, world_size=world_size)
        return
    if 0 < n < world_size:
        with pytest.raises(ValueError, match=f"has {n} rows, fewer than the {world_size}"):
            StreamLoader(table, split, batch_size, world_size=world_size)
        return

    def make(rank: int, world: int) -> StreamLoader:
        return StreamLoader(
            table, split, batch_size, shuffle, seed, shuffle_buffer, rank=rank, world_size=world
        )

    whole = make(0, 1)
    shards = [make(rank, world_size) for rank in range(world_size)]
    for _ in range(2):  # two epochs
        batches = epoch(whole)
        ids = torch.cat([ids_of(b) for b in batches]) if batches else torch.empty(0)
        assert sorted(ids.tolist()) == list(range(n))  # each row exactly once
        assert len(batches) == len(whole) == -(-n // batch_size)
        assert all(len(b[0]) == batch_size for b in batches[:-1])
        per_rank = [epoch(loader) for loader in shards]
        for rank_batches, loader in zip(per_rank, shards, strict=True):
            assert len(rank_batches) == len(loader)  # the same steps on every rank
            assert all(len(b[0]) > 0 for b in rank_batches)  # no empty batch
        # the shards of a step, in rank order, are the one-process batch
        global_batches = [torch.cat([ids_of(b) for b in step]) for step in zip(*per_rank)]
        flat = torch.cat(global_batches) if global_batches else torch.empty(0)
        assert torch.equal(flat, ids.to(flat.dtype))
        sizes = [len(b) for b in global_batches]
        assert sizes == global_batch_sizes(n, batch_size, world_size)


@pytest.mark.parametrize(
    ("rows", "batch_size", "world_size", "sizes"),
    [
        (10, 4, 1, [4, 4, 2]),
        (10, 4, 2, [4, 4, 2]),
        (10, 4, 3, [4, 6]),  # a last batch of 2 rows for 3 processes joins the one before
        (12, 4, 3, [4, 4, 4]),
        (3, 8, 3, [3]),
        (0, 4, 2, []),
    ],
)
def test_global_batch_sizes_reference(rows, batch_size, world_size, sizes):
    assert global_batch_sizes(rows, batch_size, world_size) == sizes


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_unshuffled_batches_equal_batchloader(world_size):
    """shuffle=False streams the rows in file order: BatchLoader's batches and shards (26 rows
    in batches of 7: the last batch has rows for every rank, so none is merged)."""
    table = FakeTable(UNITS)
    dataset = MultiTaskDataset(*rows_of(torch.arange(26)))
    for rank in range(world_size):
        stream = StreamLoader(table, "train", 7, shuffle=False, rank=rank, world_size=world_size)
        memory = BatchLoader(dataset, 7, shuffle=False, rank=rank, world_size=world_size)
        assert_same_batches(epoch(stream), epoch(memory))
        assert len(stream) == len(memory) == 4


# ----------------------------------------------------------------------------------- workers
@pytest.mark.parametrize("shuffle", [True, False])
def test_workers_do_not_change_batches(shuffle):
    table = FakeTable(UNITS)
    runs = []
    for workers in (0, 1, 2):
        loader = StreamLoader(table, "train", 4, shuffle, 3, shuffle_buffer=6, num_workers=workers)
        runs.append(epoch(loader) + epoch(loader))
    assert_same_batches(runs[0], runs[1])
    assert_same_batches(runs[0], runs[2])


# ----------------------------------------------------------------------------------- shuffling
def test_shuffle_differs_by_epoch_and_seed_but_repeats_for_a_seed():
    table = FakeTable(UNITS)

    def two_epochs(seed):
        loader = StreamLoader(table, "train", 4, seed=seed, shuffle_buffer=8)
        return [torch.cat([ids_of(b) for b in epoch(loader)]) for _ in range(2)]

    first, second = two_epochs(0)
    assert not torch.equal(first, second)
    again = two_epochs(0)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])
    assert not torch.equal(first, two_epochs(1)[0])
    assert not torch.equal(first, torch.arange(26))


@pytest.mark.parametrize("shuffle_buffer", [0, 3, 10, 100])
@pytest.mark.parametrize("batch_size", [2, 7])
def test_buffer_bounds_the_rows_held(shuffle_buffer, batch_size):
    """When a unit is read, the loader holds at most max(shuffle_buffer, batch_size - 1) rows
    besides it: rows read so far minus rows given out."""
    held_at_reads = []
    read_rows = []
    yielded = [0]

    def on_read(unit):
        held_at_reads.append(sum(read_rows) - yielded[0])
        read_rows.append(int(table.unit_counts[unit, 0]))

    table = FakeTable(UNITS * 3, on_read)
    loader = StreamLoader(table, "train", batch_size, shuffle_buffer=shuffle_buffer)
    for inputs, _ in loader:
        yielded[0] += len(inputs)
    assert len(held_at_reads) == 6 * 3  # units with training rows, each read once
    bound = max(shuffle_buffer, batch_size - 1)
    assert max(held_at_reads) <= bound
    assert max(held_at_reads) > min(shuffle_buffer, 78 - 4) - batch_size  # it does fill up


def test_the_buffer_mixes_rows_across_units():
    """A buffer as large as the split shuffles all its rows together; without a buffer the first
    batch comes from the first unit read."""
    table = FakeTable([(50, 0, 0)] * 4)
    unit_of = lambda batch: set((ids_of(batch) // 50).tolist())  # noqa: E731
    full = StreamLoader(table, "train", 20, shuffle_buffer=200)
    assert len(unit_of(next(iter(full)))) > 1
    none = StreamLoader(table, "train", 20, shuffle_buffer=0)
    assert len(unit_of(next(iter(none)))) == 1


# ------------------------------------------------------------------------------------- resume
def interrupted(make, stop: int, resume_make) -> tuple[list, list]:
    """Two epochs in one go, and the same with a new loader from the state after ``stop``
    batches (taken through a torch.save / torch.load round trip)."""
    whole = make()
    reference = epoch(whole) + epoch(whole)
    loader, seen = make(), []
    while len(seen) < stop:
        for batch in loader:
            seen.append(batch)
            if len(seen) == stop:
                break
    state = roundtrip(loader.state_dict())
    resumed = resume_make()
    resumed.load_state_dict(state)
    rest = []
    while len(seen) + len(rest) < len(reference):
        rest += epoch(resumed)
    return reference, seen + rest


@pytest.mark.parametrize("shuffle", [True, False])
def test_resume_after_any_batch_continues_bit_identically(shuffle):
    table = FakeTable(UNITS)

    def make():
        return StreamLoader(table, "train", 4, shuffle, 5, shuffle_buffer=5)

    steps = len(make())
    for stop in range(2 * steps + 1):  # before, inside and between both epochs
        reference, resumed = interrupted(make, stop, make)
        assert_same_batches(reference, resumed)


def test_resume_with_workers_and_another_world_size():
    """The state is the same on every rank: one process's state resumes each rank of two, and
    a loader with workers, with the same batches."""
    table = FakeTable(UNITS)

    def make(rank=0, world_size=1, workers=0):
        return StreamLoader(table, "train", 4, True, 2, 6, rank, world_size, workers)

    reference, resumed = interrupted(make, 5, lambda: make(workers=2))
    assert_same_batches(reference, resumed)
    whole = make()
    for _ in range(5):
        next(iter(whole))
    state = roundtrip(whole.state_dict())
    rest = epoch(whole)
    shards = []
    for rank in range(2):
        loader = make(rank, 2)
        loader.load_state_dict(state)
        shards.append(epoch(loader))
    for batch, *parts in zip(rest, *shards, strict=True):
        assert torch.equal(batch[0], torch.cat([p[0] for p in parts]))


def test_a_one_process_state_before_a_short_last_batch_resumes_it_alone():
    """10 rows in batches of 4: one process yields 4, 4, 2; three processes 4, then 4 + 2 in one
    step. Resumed after the second batch of one process, three processes get the 2 rows alone."""
    table = FakeTable([(10, 0, 0)])
    whole = StreamLoader(table, "train", 4, shuffle_buffer=3)
    assert len(whole) == 3 and len(StreamLoader(table, "train", 4, world_size=3)) == 2
    it = iter(whole)
    next(it), next(it)
    state, last = roundtrip(whole.state_dict()), next(it)
    shards = []
    for rank in range(3):
        loader = StreamLoader(table, "train", 4, shuffle_buffer=3, rank=rank, world_size=3)
        loader.load_state_dict(state)
        shards.append(epoch(loader))
    assert [len(s[0][0]) for s in shards] == [1, 1, 0]
    assert torch.equal(torch.cat([s[0][0] for s in shards]), last[0])


def test_state_is_small_apart_from_the_buffer():
    loader = StreamLoader(FakeTable(UNITS * 10), "train", 4, shuffle_buffer=30)
    it = iter(loader)
    for _ in range(20):
        next(it)
    state = loader.state_dict()
    buffer = state["buffer"]["inputs"]
    assert 0 < len(buffer) <= 30 + max(UNITS)[0]
    assert buffer.untyped_storage().nbytes() == buffer.nbytes  # a copy, not a view of more rows
    assert state["generator"].numel() == 5056  # torch's CPU generator state
    assert {k: state[k] for k in ("epoch", "units", "batches")} == {
        "epoch": 0,
        "units": state["units"],
        "batches": 20,
    }
    assert len(state["buffer"]["targets"]["cls"]) == len(buffer)


def test_state_between_epochs_holds_no_rows():
    loader = StreamLoader(FakeTable(UNITS), "train", 4)
    epoch(loader)
    state = loader.state_dict()
    assert (state["epoch"], state["units"], state["batches"]) == (1, 0, 0)
    assert len(state["buffer"]["inputs"]) == 0
    assert loader.epoch == 1


# ------------------------------------------------------------------------------------- errors
def test_loading_a_state_of_other_settings_names_the_setting():
    table = FakeTable(UNITS)
    state = StreamLoader(table, "train", 4, seed=1).state_dict()
    with pytest.raises(ValueError, match="saved with seed=1, this loader has seed=2"):
        StreamLoader(table, "train", 4, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size=4, this loader has batch_size=8"):
        StreamLoader(table, "train", 8, seed=1).load_state_dict(state)


def test_a_unit_with_other_rows_than_counted_is_an_error():
    class Short(FakeTable):
        def read_unit(self, i, split):
            inputs, targets = super().read_unit(i, split)
            return inputs[:-1], {k: y[:-1] for k, y in targets.items()}

    loader = StreamLoader(Short(UNITS), "train", 4, shuffle=False)
    with pytest.raises(ValueError, match="unit 0 of the train split: read_unit gave 4 rows, "):
        epoch(loader)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "valid"}, "split must be one of train, val, test"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"shuffle_buffer": -1}, "shuffle_buffer must be >= 0"),
        ({"num_workers": -1}, "num_workers must be >= 0"),
        ({"rank": 2, "world_size": 2}, "rank 2 is outside a world of 2"),
        ({"batch_size": 2, "world_size": 3}, "2 rows cannot give each of 3 processes a row"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    arguments = {"split": "train", "batch_size": 4} | kwargs
    with pytest.raises(ValueError, match=message):
        StreamLoader(FakeTable(UNITS), **arguments)


def test_bad_unit_counts_are_refused():
    table = FakeTable(UNITS)
    table.unit_counts = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"unit_counts must be an \(n_units, 3\) array"):
        StreamLoader(table, "train", 4)


# ------------------------------------------------------------------------- over a StreamTable
def test_over_a_stream_table_of_parquet_files(tmp_path):
    """Unshuffled: load_table's training rows in BatchLoader's batches. Shuffled: the same rows,
    once each, in the same batches with and without workers."""
    frame = mixed_frame(600)
    write_parts(frame, tmp_path / "parts", [250, 400], ".parquet")
    frame.to_parquet(tmp_path / "whole.parquet")
    table = scan_table(tmp_path / "parts", TASKS, split="hash", chunk_rows=128, **OPTIONS)
    bundle = load_table(tmp_path / "whole.parquet", TASKS, split="hash", **OPTIONS)

    stream = epoch(StreamLoader(table, "train", 64, shuffle=False))
    memory = epoch(BatchLoader(bundle.train, 64, shuffle=False))
    assert len(stream) == len(memory) == -(-len(bundle.train) // 64)
    for (x, y), (x_mem, y_mem) in zip(stream, memory, strict=True):
        torch.testing.assert_close(x, x_mem, rtol=1e-6, atol=1e-6)
        assert torch.equal(y["grade"], y_mem["grade"])
        torch.testing.assert_close(y["price"], y_mem["price"], equal_nan=True)

    runs = [epoch(StreamLoader(table, "train", 64, True, 1, 100, num_workers=k)) for k in (0, 2)]
    assert_same_batches(*runs)
    shuffled = torch.cat([x for x, _ in runs[0]])
    unshuffled = torch.cat([x for x, _ in stream])
    assert not torch.equal(shuffled, unshuffled)
    by_first_column = lambda x: x[x[:, 0].argsort()]  # noqa: E731
    assert torch.equal(by_first_column(shuffled), by_first_column(unshuffled))
