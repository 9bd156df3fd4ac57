"""The run's figure: champion vs candidate, how the candidate errs, and where the data drifted.

Built on matplotlib's object API (no pyplot state), so it is safe in any process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

LABEL_CHARS = 16  # drift labels longer than this are cut, so they stay clear of the next panel


def update_figure(
    *,
    metric: str,
    candidate: float,
    champion: float | None,
    y_true: npt.NDArray[Any],
    y_pred: npt.NDArray[Any],
    classification: bool,
    drift: dict[str, float],
    outcome: str,
) -> Figure:
    # Fixed margins: a layout engine would measure every label over several passes, and
    # rendering took twice as long (it is most of what logging a run costs).
    fig = Figure(figsize=(13, 4))
    fig.subplots_adjust(left=0.04, right=0.99, top=0.9, bottom=0.13, wspace=0.3)
    scores, errors, shifts = fig.subplots(1, 3)

    names = ["candidate"] + (["champion"] if champion is not None else [])
    values = [candidate] + ([champion] if champion is not None else [])
    bars = scores.bar(names, values, color=["tab:blue", "tab:gray"][: len(values)])
    scores.bar_label(bars, fmt="%.4f")
    scores.set_title(f"{metric} on the same holdout: {outcome}")

    if classification:
        labels = np.unique(np.concatenate([y_true.astype(str), y_pred.astype(str)]))
        matrix = confusion_matrix(y_true.astype(str), y_pred.astype(str), labels=labels)
        errors.imshow(matrix, cmap="Blues")
        errors.set_xticks(range(len(labels)), labels)
        errors.set_yticks(range(len(labels)), labels)
        errors.set_xlabel("predicted")
        errors.set_ylabel("true")
        errors.set_title("candidate confusion matrix")
    else:
        errors.scatter(y_true, y_pred, s=4, alpha=0.4)
        low, high = float(np.min(y_true)), float(np.max(y_true))
        errors.plot([low, high], [low, high], color="tab:red", linewidth=1)
        errors.set_xlabel("true")
        errors.set_ylabel("predicted")
        errors.set_title("candidate predictions")

    if drift:
        top = sorted(drift.items(), key=lambda kv: kv[1], reverse=True)[:15]
        names = [k if len(k) <= LABEL_CHARS else k[: LABEL_CHARS - 1] + "…" for k, _ in top]
        shifts.barh(names[::-1], [v for _, v in top][::-1], color="tab:orange")
        shifts.axvline(0.2, color="tab:red", linewidth=1, linestyle="--")
        shifts.set_title("drift vs champion's training sample (PSI)")
    else:
        shifts.text(0.5, 0.5, "no champion sample to compare", ha="center", va="center")
        shifts.set_axis_off()
    return fig
