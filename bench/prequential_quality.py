"""Quality under drift: prequential accuracy of the served model over update cycles.

The rotating-hyperplane stream drifts steadily. Each cycle brings a batch of new records:
first the model being served predicts them (test-then-train: the accuracy a user saw), then
an update runs. Four promotion rules, side by side on the same stream:
- ours: champion + partial_fit on the new train split, gated on the new holdout (the same
  gate code the Job runs: improvement, optional McNemar test);
- the original demo's rule: same candidate, promoted if accuracy on a fixed test set (drawn
  once, at the start) rose by any amount;
- never update: the first model forever;
- oracle: a model refit from scratch on every cycle's full batch, always served.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import SGDClassifier

from bench.common import emit
from inshape_api.spec import EvaluationSpec
from inshape_jobs.estimators import IncrementalCandidate
from inshape_jobs.evaluate import score
from inshape_jobs.gate import GateInput, decide
from inshape_jobs.split import holdout_mask
from inshape_jobs.streams import RotatingHyperplane

CLASSES = np.array([0, 1])


def fresh() -> SGDClassifier:
    return SGDClassifier(loss="log_loss", alpha=1e-4, random_state=0)


def updated(model: BaseEstimator, x: np.ndarray, y: np.ndarray) -> BaseEstimator:
    candidate = IncrementalCandidate(model, CLASSES)
    for start in range(0, len(y), 500):  # a few passes, as chunks arrive
        candidate.update(x[start : start + 500], y[start : start + 500])
    result = candidate.finish()
    assert result is not None
    return result


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--cycles", type=int, default=30)
    args.add_argument("--batch", type=int, default=2000)
    args.add_argument("--drift", type=float, default=2e-4)
    args.add_argument("--seed", type=int, default=7)
    opts = args.parse_args()

    stream = RotatingHyperplane(n_features=10, drift=opts.drift, noise=0.05, seed=opts.seed)
    gate_spec = EvaluationSpec(metric="accuracy", minImprovement=0.0, significance=0.1)
    x0, y0 = stream.batch(opts.batch)
    fixed_x, fixed_y = stream.batch(1000)  # the demo's test set, never refreshed
    bootstrap = updated(fresh(), x0, y0)
    served = {"ours": bootstrap, "demo_rule": bootstrap, "never": bootstrap, "oracle": bootstrap}
    seen: dict[str, list[float]] = {name: [] for name in served}
    promotions = {"ours": 0, "demo_rule": 0}
    offset = 0
    for _ in range(opts.cycles):
        x, y = stream.batch(opts.batch)
        for name, model in served.items():
            seen[name].append(float((model.predict(x) == y).mean()))

        partitions = np.zeros(len(y), dtype=np.int64)
        offsets = np.arange(offset, offset + len(y), dtype=np.int64)
        offset += len(y)
        held = holdout_mask(partitions, offsets, 0.2)
        ours_candidate = updated(copy.deepcopy(served["ours"]), x[~held], y[~held])
        decision = decide(
            GateInput(
                candidate=score(ours_candidate, "accuracy", x[held], y[held]),
                champion=score(served["ours"], "accuracy", x[held], y[held]),
                holdout_size=int(held.sum()),
                classification=True,
            ),
            gate_spec,
        )
        if decision.promote:
            served["ours"] = ours_candidate
            promotions["ours"] += 1

        demo_candidate = updated(copy.deepcopy(served["demo_rule"]), x, y)
        if (demo_candidate.predict(fixed_x) == fixed_y).mean() > (
            served["demo_rule"].predict(fixed_x) == fixed_y
        ).mean():
            served["demo_rule"] = demo_candidate
            promotions["demo_rule"] += 1

        served["oracle"] = updated(fresh(), x, y)

    mean = {name: float(np.mean(values)) for name, values in seen.items()}
    common = {
        "cycles": opts.cycles,
        "batch": opts.batch,
        "drift": opts.drift,
        "promotions": promotions,
        "all": {k: round(v, 4) for k, v in mean.items()},
    }
    for reference in ("demo_rule", "never", "oracle"):
        emit(
            "prequential_quality",
            "mean_prequential_accuracy",
            ours=mean["ours"],
            reference=mean[reference],
            reference_name=reference,
            unit="accuracy",
            target=">= 1 vs demo_rule and never",
            **common,
        )


if __name__ == "__main__":
    main()
