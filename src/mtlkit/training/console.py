"""The one console line per epoch: train loss per task, validation, best so far, time, ETA."""

from __future__ import annotations

import math
from typing import Any


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def epoch_line(
    record: dict[str, Any],
    epochs: int,
    monitor: str,
    sign: float,
    best: tuple[float, int],
    eta: float,
) -> str:
    """E.g. ``epoch  3/10 · train a 0.412 b 0.093 · val loss 0.45 (best 0.43 @2) · 1.2s · ETA 8s``.

    ``sign`` is the monitor's direction (``score = sign · value``, higher score is better);
    ``best`` the best score so far and its epoch.
    """
    width = len(str(epochs))
    parts = [f"epoch {record['epoch']:>{width}}/{epochs}"]
    parts.append("train " + " ".join(f"{t} {v:.4g}" for t, v in record["train_loss"].items()))
    if "val" in record:
        value, (best_score, best_epoch) = sign * record["score"], best
        shown = "-" if math.isnan(value) else f"{value:.4g}"  # undefined: missing
        best_text = f"{sign * best_score:.4g} @{best_epoch}" if best_epoch > 0 else "-"
        parts.append(f"val {monitor} {shown} (best {best_text})")
    parts.append(_duration(record["seconds"]))
    parts.append(f"ETA {_duration(eta)}")
    return " · ".join(parts)
