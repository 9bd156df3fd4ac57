"""The promotion gate: a chain of pure rules, each giving (rule, ok, reason, message).

Shaped like cert-manager's readiness checks: gather the inputs, run every rule, promote only
if all pass, and keep every reason so the MLflow run and the policy status can say why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import binomtest

from inshape_api.result import Outcome
from inshape_api.spec import EvaluationSpec
from inshape_jobs.evaluate import Score, direction

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_BATCH = 100
BOOTSTRAP_SEED = 20240601


# The checks whose messages explain a promotion; the others only say what was not required.
PROMOTION_EVIDENCE = frozenset({"floor", "improvement", "relativeImprovement", "significance"})
NOT_APPLIED = frozenset({"NoFloor", "NotRequired"})


@dataclass(frozen=True)
class Check:
    rule: str
    ok: bool
    reason: str  # one CamelCase word, as in a Kubernetes condition
    message: str


@dataclass(frozen=True)
class GateInput:
    candidate: Score
    champion: Score | None
    holdout_size: int
    classification: bool
    p_value: float | None = None  # filled in by decide() when a significance level is set


@dataclass(frozen=True)
class Decision:
    promote: bool
    checks: tuple[Check, ...]
    improvement: float | None
    p_value: float | None

    @property
    def outcome(self) -> Outcome:
        return "Promoted" if self.promote else "Rejected"

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.checks if not c.ok]

    @property
    def summary(self) -> str:
        failed = [c.message for c in self.checks if not c.ok]
        if failed:
            return "; ".join(failed)
        return "; ".join(
            c.message
            for c in self.checks
            if c.rule in PROMOTION_EVIDENCE and c.reason not in NOT_APPLIED
        )


def improvement(inp: GateInput) -> float | None:
    """Candidate minus champion, signed so that positive is better."""
    if inp.champion is None:
        return None
    return direction(inp.candidate.metric) * (inp.candidate.value - inp.champion.value)


def mcnemar_p(candidate_right: np.ndarray, champion_right: np.ndarray) -> float:
    """One-sided exact McNemar test: is the candidate right more often where they disagree?"""
    wins = int(np.sum((candidate_right == 1) & (champion_right == 0)))
    losses = int(np.sum((candidate_right == 0) & (champion_right == 1)))
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


def paired_bootstrap_p(
    candidate_loss: np.ndarray, champion_loss: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES
) -> float:
    """Share of paired resamples in which the candidate's mean loss is not lower."""
    diff = champion_loss - candidate_loss  # positive where the candidate did better
    n = len(diff)
    if n == 0:
        return 1.0
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    not_better = 0
    for start in range(0, resamples, BOOTSTRAP_BATCH):
        size = min(BOOTSTRAP_BATCH, resamples - start)
        means = diff[rng.integers(0, n, (size, n))].mean(axis=1)
        not_better += int(np.sum(means <= 0))
    return (not_better + 1) / (resamples + 1)


def paired_p_value(inp: GateInput) -> float | None:
    if inp.champion is None:
        return None
    if inp.classification:
        return mcnemar_p(inp.candidate.per_example, inp.champion.per_example)
    return paired_bootstrap_p(inp.candidate.per_example, inp.champion.per_example)


Rule = Callable[[GateInput, EvaluationSpec], Check]


def holdout_large_enough(inp: GateInput, ev: EvaluationSpec) -> Check:
    ok = inp.holdout_size >= ev.minHoldout
    return Check(
        "holdout",
        ok,
        "HoldoutSized" if ok else "HoldoutTooSmall",
        f"holdout has {inp.holdout_size} records (minimum {ev.minHoldout})",
    )


def candidate_scored(inp: GateInput, ev: EvaluationSpec) -> Check:
    ok = math.isfinite(inp.candidate.value)
    return Check(
        "score",
        ok,
        "Scored" if ok else "ScoreUndefined",
        f"candidate {inp.candidate.metric} = {inp.candidate.value:.4f}",
    )


def above_floor(inp: GateInput, ev: EvaluationSpec) -> Check:
    if ev.floor is None:
        return Check("floor", True, "NoFloor", "no floor set")
    value, metric = inp.candidate.value, inp.candidate.metric
    ok = direction(metric) * (value - ev.floor) >= 0
    bound = "at least" if direction(metric) > 0 else "at most"
    return Check(
        "floor",
        ok,
        "AboveFloor" if ok else "BelowFloor",
        f"candidate {metric} {value:.4f} must be {bound} {ev.floor}",
    )


def improves_enough(inp: GateInput, ev: EvaluationSpec) -> Check:
    delta = improvement(inp)
    if delta is None or inp.champion is None:
        return Check("improvement", True, "NoChampion", "no champion yet: bootstrapping")
    ok = delta > 0 and delta >= ev.minImprovement
    reason = "Improved" if ok else ("NoImprovement" if delta <= 0 else "ImprovementTooSmall")
    return Check(
        "improvement",
        ok,
        reason,
        f"candidate {inp.candidate.value:.4f} vs champion {inp.champion.value:.4f}: "
        f"improvement {delta:+.4f} (minimum {ev.minImprovement})",
    )


def improves_enough_relatively(inp: GateInput, ev: EvaluationSpec) -> Check:
    delta = improvement(inp)
    if delta is None or inp.champion is None or ev.minRelativeImprovement == 0:
        return Check("relativeImprovement", True, "NotRequired", "no relative minimum set")
    base = abs(inp.champion.value)
    # A champion scoring exactly 0: any gain is infinitely large, any loss infinitely bad.
    relative = delta / base if base > 0 else (math.copysign(math.inf, delta) if delta else 0.0)
    ok = relative >= ev.minRelativeImprovement
    return Check(
        "relativeImprovement",
        ok,
        "RelativelyImproved" if ok else "RelativeImprovementTooSmall",
        f"relative improvement {relative:+.2%} (minimum {ev.minRelativeImprovement:.2%})",
    )


def significant(inp: GateInput, ev: EvaluationSpec) -> Check:
    if ev.significance is None or inp.champion is None:
        return Check("significance", True, "NotRequired", "no significance test required")
    p = inp.p_value if inp.p_value is not None else paired_p_value(inp)
    assert p is not None
    test = "McNemar" if inp.classification else "paired bootstrap"
    ok = p < ev.significance
    return Check(
        "significance",
        ok,
        "Significant" if ok else "NotSignificant",
        f"{test} p = {p:.4g} (must be below {ev.significance})",
    )


RULES: tuple[Rule, ...] = (
    holdout_large_enough,
    candidate_scored,
    above_floor,
    improves_enough,
    improves_enough_relatively,
    significant,
)


def decide(inp: GateInput, ev: EvaluationSpec) -> Decision:
    if ev.significance is not None:
        inp = replace(inp, p_value=paired_p_value(inp))
    checks = tuple(rule(inp, ev) for rule in RULES)
    return Decision(all(c.ok for c in checks), checks, improvement(inp), inp.p_value)
