import numpy as np
import pytest

from mtlkit.analysis import (
    pair_verdicts,
    plot_cosine_over_training,
    plot_matrix,
    plot_training_curves,
    transfer_ratio,
)
from mtlkit.analysis import plots as plots_module
from mtlkit.analysis.plots import colour_limits
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


def test_heatmap_colour_scale_ignores_the_diagonal():
    m = np.array([[50.0, 0.3, -2.0], [1.0, 50.0, np.nan], [0.5, -0.1, 50.0]])
    assert colour_limits(m) == (-2.0, 2.0)
    assert colour_limits(m, include_diagonal=True) == (-50.0, 50.0)
    assert colour_limits(m, symmetric=False) == (-2.0, 1.0)
    assert colour_limits(np.full((2, 2), np.nan)) == (-1.0, 1.0)


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions write, kept open for inspection."""
    kept = []

    def keep(fig, path):
        kept.append(fig)
        fig.savefig(path)
        return path

    monkeypatch.setattr(plots_module, "save_figure", keep)
    yield kept
    import matplotlib.pyplot as plt

    for fig in kept:
        plt.close(fig)


def test_heatmap_draws_the_diagonal_grey_outside_the_scale(tmp_path, figures):
    m = np.array([[50.0, 0.3, -2.0], [1.0, 50.0, 0.2], [0.5, -0.1, 50.0]])
    plot_matrix(m, ["a", "b", "c"], tmp_path / "m.png", colorbar_label="affinity")
    (image,) = figures[0].axes[0].images
    assert (image.norm.vmin, image.norm.vmax) == (-2.0, 2.0)
    assert np.ma.getmaskarray(image.get_array()).tolist() == np.eye(3, dtype=bool).tolist()
    texts = [t.get_text() for t in figures[0].axes[0].texts]
    assert texts.count("+50") == 3  # the diagonal's values are still written
    assert figures[0].axes[1].get_ylabel() == "affinity"


def test_training_curves_label_every_axis_with_metric_and_direction(tmp_path, figures):
    records = [
        {
            "epoch": e,
            "train_loss": {"a": 1.0 / e, "b": 2.0 / e},
            "val": {"a": {"accuracy": 0.5 + e / 10}, "b": {"mse": 1.0 / e}},
        }
        for e in (1, 2, 3)
    ]
    path = plot_training_curves(
        {"stl": records, "hps": records}, {"a": "accuracy", "b": "mse"}, tmp_path / "c.png"
    )
    assert path.read_bytes()[:4] == b"\x89PNG"
    axes = [ax for ax in figures[0].axes if ax.get_visible()]
    assert [ax.get_ylabel() for ax in axes] == [
        "loss (sum over tasks)",
        "validation accuracy (higher is better)",
        "validation mse (lower is better)",
    ]
    assert all(ax.get_xlabel() == "epoch" for ax in axes)
    assert [line.get_ydata().tolist() for line in axes[2].lines] == [[1.0, 0.5, 1 / 3]] * 2


def test_training_curves_wrap_many_tasks_onto_rows(tmp_path, figures):
    tasks = {f"t{i}": "mse" for i in range(7)}
    records = [
        {
            "epoch": 1,
            "train_loss": dict.fromkeys(tasks, 1.0),
            "val": {t: {"mse": 1.0} for t in tasks},
        }
    ]
    plot_training_curves({"hps": records}, tasks, tmp_path / "c.png")
    width, height = figures[0].get_size_inches()
    assert sum(ax.get_visible() for ax in figures[0].axes) == 8
    assert width <= 13 and height >= 3 * 3  # 3 columns, 3 rows
