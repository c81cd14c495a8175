"""Write ``patients.csv``: a small synthetic table with three targets of different kinds.

Targets: ``risk`` (low/medium/high, multiclass), ``readmitted`` (yes/no, binary) and
``stay_days`` (regression), each with some cells left empty (missing labels). Features: age,
bmi, blood pressure, smoker (yes/no), region (categorical) — with a few missing values.

    python examples/make_patients.py examples/patients.csv
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd


def make_patients(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 90, n)
    bmi = rng.normal(27, 4, n).round(1)
    pressure = rng.normal(130, 15, n).round(0)
    smoker = rng.choice(["yes", "no"], n, p=[0.3, 0.7])
    region = rng.choice(["north", "south", "east", "west"], n)
    score = (
        0.04 * (age - 55)
        + 0.08 * (bmi - 27)
        + 0.03 * (pressure - 130)
        + 0.8 * (smoker == "yes")
        + 0.3 * (region == "south")
        + rng.normal(0, 0.5, n)
    )
    risk = np.where(score < -0.5, "low", np.where(score < 0.7, "medium", "high"))
    readmitted = np.where(score + rng.normal(0, 0.7, n) > 0.5, "yes", "no")
    stay = np.clip(3 + 1.5 * score + 0.03 * (age - 55) + rng.normal(0, 0.8, n), 0.5, None).round(1)
    frame = pd.DataFrame(
        {
            "patient_id": np.arange(1000, 1000 + n),
            "age": age,
            "bmi": bmi,
            "blood_pressure": pressure,
            "smoker": smoker,
            "region": region,
            "risk": risk,
            "readmitted": readmitted,
            "stay_days": stay,
        }
    )
    frame = frame.astype(object)
    for column, share in (("risk", 0.1), ("readmitted", 0.25), ("stay_days", 0.15), ("bmi", 0.05)):
        frame.loc[rng.random(n) < share, column] = None
    return frame


if __name__ == "__main__":
    make_patients().to_csv(sys.argv[1] if len(sys.argv) > 1 else "patients.csv", index=False)
