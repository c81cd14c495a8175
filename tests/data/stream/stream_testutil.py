"""A small mixed table written as Parquet and CSV, whole and cut into several files."""

from pathlib import Path

import numpy as np
import pandas as pd

from mtlkit.data.table import TableTask

N_ROWS = 2000


def mixed_frame(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    """Numeric (some missing), a 3-value and a 60-value categorical column, a regression target
    with missing labels, a 3-class target and an id."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": rng.integers(0, 400, n),
            "x": rng.normal(size=n),
            "z": np.where(rng.random(n) < 0.1, np.nan, rng.normal(3.0, 5.0, n)),
            "colour": rng.choice(["red", "green", "blue"], n),
            "shop": rng.integers(0, 60, n),
            "price": np.where(rng.random(n) < 0.2, np.nan, rng.normal(10.0, 2.0, n)),
            "grade": rng.choice(["a", "b", "c"], n),
        }
    )


TASKS = [TableTask("price", "regression", ["price"]), TableTask("grade", "multiclass", ["grade"])]
OPTIONS = {"categorical": ["shop"], "features": ["x", "z", "colour", "shop"]}


def write_parts(frame: pd.DataFrame, folder: Path, cuts: list[int], suffix: str) -> list[Path]:
    """``frame`` cut at rows ``cuts`` into files ``part-0``, ``part-1``... of ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [0, *cuts, len(frame)]
    paths = []
    for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        path = folder / f"part-{i}{suffix}"
        part = frame.iloc[start:stop]
        if suffix == ".csv":
            part.to_csv(path, index=False)
        else:
            part.to_parquet(path, index=False, row_group_size=300)
        paths.append(path)
    return paths
