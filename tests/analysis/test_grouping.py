import numpy as np
import pytest

from mtlkit.analysis import best_partition, exact_partition, heuristic_partition, partition_score
from mtlkit.analysis.grouping import group_score, optimality_gap, set_partitions


def _brute_force(a, k, exactly, objective):
    return max(
        partition_score(a, p, objective)
        for p in set_partitions(len(a), k)
        if not exactly or len(p) == k
    )


def test_set_partitions_counts_are_bell_and_stirling_numbers():
    assert sum(1 for _ in set_partitions(6)) == 203  # Bell(6)
    assert sum(1 for p in set_partitions(6, 2) if len(p) == 2) == 31  # S(6, 2)


def test_group_score_by_hand():
    a = np.array([[9.0, 1.0, 2.0], [3.0, 9.0, 4.0], [5.0, 6.0, 9.0]])
    # task 0 gets mean(A[1,0], A[2,0]) = 4, task 1: mean(1, 6) = 3.5, task 2: mean(2, 4) = 3
    assert group_score(a, [0, 1, 2]) == pytest.approx(10.5)
    assert group_score(a, [0, 1, 2], "sum") == pytest.approx(21.0)
    assert group_score(a, [1]) == 0.0 and group_score(a, [0, 2]) == pytest.approx(7.0)
    assert partition_score(a, [[0, 2], [1]]) == pytest.approx(7.0)


@pytest.mark.parametrize("objective", ["mean", "sum"])
def test_exact_search_equals_brute_force(objective):
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 8))
        k = int(rng.integers(1, n + 1))
        exactly = bool(rng.integers(0, 2))
        a = rng.normal(size=(n, n))
        found = exact_partition(a, k, exactly, objective)
        assert found.score == pytest.approx(_brute_force(a, k, exactly, objective), abs=1e-12)
        assert found.score == pytest.approx(partition_score(a, found.groups, objective))
        assert len(found.groups) == k if exactly else len(found.groups) <= k
        assert sorted(i for g in found.groups for i in g) == list(range(n))


def test_hand_made_affinity_matrix():
    # two blocks {0, 1, 2} and {3, 4} helping each other, task 5 hurting everyone
    a = np.full((6, 6), -0.1)
    a[np.ix_([0, 1, 2], [0, 1, 2])] = 1.0
    a[np.ix_([3, 4], [3, 4])] = 0.8
    a[5, :] = a[:, 5] = -0.5
    assert best_partition(a, 3).groups == [[0, 1, 2], [3, 4], [5]]
    assert best_partition(a, 3).score == pytest.approx(3 * 1.0 + 2 * 0.8)
    two = best_partition(a, 2)  # task 5 costs least in the pair: mean(-0.5, -0.5) terms
    assert two.groups in ([[0, 1, 2], [3, 4, 5]], [[0, 1, 2, 5], [3, 4]])
    assert best_partition(a, 1).groups == [[0, 1, 2, 3, 4, 5]]
    assert best_partition(-np.abs(a), 6).groups == [[i] for i in range(6)]  # all hurt: alone
    assert len(best_partition(-np.abs(a), 3, exactly=True).groups) == 3


def test_heuristic_gap_on_small_random_cases():
    rng = np.random.default_rng(1)
    gaps = []
    for _ in range(8):
        n = int(rng.integers(6, 10))
        a = rng.normal(size=(n, n))
        gaps.append(optimality_gap(a, int(rng.integers(2, 5)), objective="mean"))
    assert min(gaps) >= -1e-12  # the exact search is never beaten
    assert np.mean(gaps) <= 0.01 and max(gaps) <= 0.05, gaps


def test_auto_uses_the_heuristic_beyond_the_exact_limit():
    rng = np.random.default_rng(2)
    blocks = np.repeat(np.arange(3), 5)  # 15 tasks in 3 planted blocks
    a = np.where(blocks[:, None] == blocks[None, :], 1.0, -0.3) + 0.05 * rng.normal(size=(15, 15))
    found = best_partition(a, 3)
    assert found.method == "heuristic"
    assert found.groups == [list(range(0, 5)), list(range(5, 10)), list(range(10, 15))]
    assert heuristic_partition(a[:8, :8], 2).score == pytest.approx(
        exact_partition(a[:8, :8], 2).score
    )


def test_bad_arguments():
    a = np.zeros((3, 3))
    with pytest.raises(ValueError, match="k = 4"):
        best_partition(a, 4)
    with pytest.raises(ValueError, match="k >= 1"):
        best_partition(a, 0)
    with pytest.raises(ValueError, match="square"):
        best_partition(np.zeros((2, 3)), 1)
    with pytest.raises(ValueError, match="finite"):
        best_partition(np.array([[0.0, np.nan], [1.0, 0.0]]), 1)
    with pytest.raises(ValueError, match="objective"):
        best_partition(a, 2, objective="max")
