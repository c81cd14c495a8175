"""Palmer penguins (``palmerpenguins`` package): species, sex and body mass from measurements.

Features: bill length, bill depth, flipper length (numeric) and island (categorical). Tasks:
``species`` (3 classes), ``sex`` (binary; its 9 missing labels are masked) and ``body_mass``
(regression, grams). The two rows without any measurement are dropped. Split 60/20/20, fixed.
``labelled={"body_mass": 20}`` keeps only 20 random training labels of that task.
"""

from __future__ import annotations

from collections.abc import Mapping

from mtlkit.data.builtin._split import split_indices, tabular_bundle
from mtlkit.data.bundle import DatasetBundle
from mtlkit.data.tabular import TabularPreprocessor
from mtlkit.tasks import IGNORE_INDEX, Task

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
CATEGORICAL = ["island"]


def load_penguins(seed: int = 0, labelled: Mapping[str, int] | None = None) -> DatasetBundle:
    import palmerpenguins

    frame = palmerpenguins.load_penguins()
    frame = frame[frame[NUMERIC].notna().all(axis=1)].reset_index(drop=True)
    species = sorted(frame["species"].unique())
    tasks = [
        Task("species", "multiclass", len(species), class_names=species),
        Task("sex", "binary", class_names=["female", "male"]),
        Task("body_mass", "regression"),
    ]
    targets = {
        "species": frame["species"].map({s: i for i, s in enumerate(species)}).to_numpy(),
        "sex": frame["sex"].map({"female": 0, "male": 1}).fillna(IGNORE_INDEX).to_numpy(int),
        "body_mass": frame["body_mass_g"].to_numpy(float),
    }
    train, val, test = split_indices(len(frame), 0.2, 0.2, seed=seed)
    pre = TabularPreprocessor(NUMERIC, CATEGORICAL).fit(frame.iloc[train])
    return tabular_bundle(
        "penguins",
        tasks,
        pre.transform(frame),
        targets,
        (train, val, test),
        labelled=labelled,
        seed=seed,
        preprocessor=pre,
        target_columns={"species": "species", "sex": "sex", "body_mass": "body_mass_g"},
        description="Palmer penguins; tasks: species, sex (some missing), body mass",
    )


__all__ = ["load_penguins"]
