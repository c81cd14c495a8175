import numpy as np
import pytest

from mtlkit.analysis import pair_verdicts, plot_cosine_over_training, plot_matrix, transfer_ratio
from mtlkit.analysis.verdict import matrix_table, verdict_table


def test_transfer_ratio_and_verdicts_by_hand():
    z = np.array(
        [
            [0.010, 0.004, -0.003, 0.0001],
            [0.002, 0.010, 0.0, 0.0],
            [-0.002, 0.0, 0.020, 0.0],
            [0.0, 0.0, 0.0, -0.001],  # task 3's own step did not lower its loss
        ]
    )
    tau = transfer_ratio(z)
    assert tau[0, 1] == pytest.approx(0.4) and tau[1, 0] == pytest.approx(0.2)
    assert np.isnan(tau[0, 3])
    records = pair_verdicts(
        z, ["a", "b", "c", "d"], cosine=np.eye(4), conflict_rate=np.zeros((4, 4))
    )
    by_pair = {tuple(r["tasks"]): r for r in records}
    assert len(records) == 6
    assert by_pair[("a", "b")]["verdict"] == "helps"
    assert by_pair[("a", "b")]["score"] == pytest.approx(0.3)
    assert by_pair[("a", "c")]["verdict"] == "hurts"  # (-0.15 - 0.2) / 2
    assert by_pair[("b", "c")]["verdict"] == "neutral"
    assert by_pair[("a", "d")]["score"] == pytest.approx(0.0)  # only the finite direction
    assert by_pair[("a", "b")]["affinity"] == [0.004, 0.002]
    assert pair_verdicts(z, list("abcd"), threshold=0.5)[0]["verdict"] == "neutral"
    text = verdict_table(records)
    assert "a ~ b" in text and "helps" in text and "hurts" in text
    assert "+0.400" in matrix_table(tau, list("abcd"), "+.3f")
    with pytest.raises(ValueError):
        pair_verdicts(z, list("abcd"), threshold=-1)


def test_plots_write_pngs(tmp_path):
    names = ["a", "b", "c"]
    m = np.array([[1.0, 0.5, np.nan], [0.5, 1.0, -0.2], [0.1, -0.2, 1.0]])
    heat = plot_matrix(m, names, tmp_path / "m.png", title="affinity")
    series = [np.eye(3) * 0 + s for s in (0.1, 0.2, -0.3)]
    line = plot_cosine_over_training([1, 2, 3], series, names, tmp_path / "c.png")
    for path in (heat, line):
        assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG"
