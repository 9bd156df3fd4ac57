"""The promotion gate: every rule passing and failing, and the decision built from them."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from inshape_api.spec import EvaluationSpec
from inshape_jobs.evaluate import Score
from inshape_jobs.gate import (
    RULES,
    Check,
    Decision,
    GateInput,
    above_floor,
    candidate_scored,
    decide,
    holdout_large_enough,
    improvement,
    improves_enough,
    improves_enough_relatively,
    mcnemar_p,
    paired_bootstrap_p,
    significant,
)

N = 200


def flat(metric: str, value: float, per_example: np.ndarray | None = None) -> Score:
    return Score(metric, value, np.full(N, 0.5) if per_example is None else per_example)


def gate_input(
    candidate: float,
    champion: float | None,
    metric: str = "accuracy",
    holdout: int = N,
    **kwargs: Any,
) -> GateInput:
    return GateInput(
        candidate=flat(metric, candidate),
        champion=None if champion is None else flat(metric, champion),
        holdout_size=holdout,
        classification=metric in {"accuracy", "f1_macro", "roc_auc"},
        **kwargs,
    )


def ev(**overrides: Any) -> EvaluationSpec:
    return dataclasses.replace(EvaluationSpec(), **overrides)


# --- single rules ----------------------------------------------------------------------------

# (rule, input, evaluation spec, ok, reason)
CASES: list[tuple[str, Any, GateInput, EvaluationSpec, bool, str]] = [
    (
        "holdout-ok",
        holdout_large_enough,
        gate_input(0.9, 0.8, holdout=30),
        ev(minHoldout=30),
        True,
        "HoldoutSized",
    ),
    (
        "holdout-small",
        holdout_large_enough,
        gate_input(0.9, 0.8, holdout=29),
        ev(minHoldout=30),
        False,
        "HoldoutTooSmall",
    ),
    (
        "holdout-empty",
        holdout_large_enough,
        gate_input(0.9, None, holdout=0),
        ev(minHoldout=1),
        False,
        "HoldoutTooSmall",
    ),
    ("scored", candidate_scored, gate_input(0.9, 0.8), ev(), True, "Scored"),
    (
        "score-nan",
        candidate_scored,
        gate_input(float("nan"), 0.8, "roc_auc"),
        ev(),
        False,
        "ScoreUndefined",
    ),
    (
        "score-inf",
        candidate_scored,
        gate_input(float("inf"), 0.8, "rmse"),
        ev(),
        False,
        "ScoreUndefined",
    ),
    ("no-floor", above_floor, gate_input(0.1, None), ev(), True, "NoFloor"),
    ("floor-higher-above", above_floor, gate_input(0.85, None), ev(floor=0.8), True, "AboveFloor"),
    ("floor-higher-equal", above_floor, gate_input(0.8, None), ev(floor=0.8), True, "AboveFloor"),
    ("floor-higher-below", above_floor, gate_input(0.79, None), ev(floor=0.8), False, "BelowFloor"),
    (
        "floor-r2-below",
        above_floor,
        gate_input(-0.5, None, "r2"),
        ev(floor=0.0),
        False,
        "BelowFloor",
    ),
    (
        "floor-lower-under",
        above_floor,
        gate_input(1.5, None, "rmse"),
        ev(floor=2.0),
        True,
        "AboveFloor",
    ),
    (
        "floor-lower-equal",
        above_floor,
        gate_input(2.0, None, "mae"),
        ev(floor=2.0),
        True,
        "AboveFloor",
    ),
    (
        "floor-lower-over",
        above_floor,
        gate_input(2.5, None, "rmse"),
        ev(floor=2.0),
        False,
        "BelowFloor",
    ),
    ("floor-nan", above_floor, gate_input(float("nan"), None), ev(floor=0.5), False, "BelowFloor"),
    (
        "bootstrap",
        improves_enough,
        gate_input(0.1, None),
        ev(minImprovement=0.5),
        True,
        "NoChampion",
    ),
    ("improved", improves_enough, gate_input(0.9, 0.8), ev(), True, "Improved"),
    (
        "improved-enough",
        improves_enough,
        gate_input(0.9, 0.8),
        ev(minImprovement=0.05),
        True,
        "Improved",
    ),
    ("equal", improves_enough, gate_input(0.8, 0.8), ev(), False, "NoImprovement"),
    ("worse", improves_enough, gate_input(0.7, 0.8), ev(), False, "NoImprovement"),
    (
        "too-small",
        improves_enough,
        gate_input(0.81, 0.8),
        ev(minImprovement=0.05),
        False,
        "ImprovementTooSmall",
    ),
    (
        "rmse-improved",
        improves_enough,
        gate_input(1.0, 1.2, "rmse"),
        ev(minImprovement=0.1),
        True,
        "Improved",
    ),
    ("rmse-worse", improves_enough, gate_input(1.2, 1.0, "rmse"), ev(), False, "NoImprovement"),
    (
        "mae-too-small",
        improves_enough,
        gate_input(0.99, 1.0, "mae"),
        ev(minImprovement=0.1),
        False,
        "ImprovementTooSmall",
    ),
    (
        "relative-not-set",
        improves_enough_relatively,
        gate_input(0.7, 0.8),
        ev(),
        True,
        "NotRequired",
    ),
    (
        "relative-bootstrap",
        improves_enough_relatively,
        gate_input(0.7, None),
        ev(minRelativeImprovement=0.1),
        True,
        "NotRequired",
    ),
    (
        "relative-ok",
        improves_enough_relatively,
        gate_input(0.9, 0.8),
        ev(minRelativeImprovement=0.1),
        True,
        "RelativelyImproved",
    ),
    (
        "relative-small",
        improves_enough_relatively,
        gate_input(0.85, 0.8),
        ev(minRelativeImprovement=0.1),
        False,
        "RelativeImprovementTooSmall",
    ),
    (
        "relative-rmse-ok",
        improves_enough_relatively,
        gate_input(0.8, 1.0, "rmse"),
        ev(minRelativeImprovement=0.1),
        True,
        "RelativelyImproved",
    ),
    (
        "relative-rmse-small",
        improves_enough_relatively,
        gate_input(0.95, 1.0, "rmse"),
        ev(minRelativeImprovement=0.1),
        False,
        "RelativeImprovementTooSmall",
    ),
    (
        "relative-r2-negative-champion",
        improves_enough_relatively,
        gate_input(-0.5, -1.0, "r2"),
        ev(minRelativeImprovement=0.1),
        True,
        "RelativelyImproved",
    ),
    (
        "relative-zero-champion-better",
        improves_enough_relatively,
        gate_input(0.1, 0.0, "r2"),
        ev(minRelativeImprovement=0.1),
        True,
        "RelativelyImproved",
    ),
    (
        "relative-zero-champion-worse",
        improves_enough_relatively,
        gate_input(-0.1, 0.0, "r2"),
        ev(minRelativeImprovement=0.1),
        False,
        "RelativeImprovementTooSmall",
    ),
    (
        "relative-zero-champion-equal",
        improves_enough_relatively,
        gate_input(0.0, 0.0, "rmse"),
        ev(minRelativeImprovement=0.1),
        False,
        "RelativeImprovementTooSmall",
    ),
    ("significance-not-set", significant, gate_input(0.9, 0.8), ev(), True, "NotRequired"),
    (
        "significance-bootstrap",
        significant,
        gate_input(0.9, None),
        ev(significance=0.05),
        True,
        "NotRequired",
    ),
    (
        "significance-given-low",
        significant,
        gate_input(0.9, 0.8, p_value=0.01),
        ev(significance=0.05),
        True,
        "Significant",
    ),
    (
        "significance-given-high",
        significant,
        gate_input(0.9, 0.8, p_value=0.2),
        ev(significance=0.05),
        False,
        "NotSignificant",
    ),
    (
        "significance-given-at-level",
        significant,
        gate_input(0.9, 0.8, p_value=0.05),
        ev(significance=0.05),
        False,
        "NotSignificant",
    ),
]


@pytest.mark.parametrize(
    ("rule", "inp", "spec", "ok", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule(rule: Any, inp: GateInput, spec: EvaluationSpec, ok: bool, reason: str) -> None:
    check = rule(inp, spec)
    assert isinstance(check, Check)
    assert (check.ok, check.reason) == (ok, reason)
    assert check.message
    assert check.reason.isalpha() and check.reason[0].isupper()


def test_floor_message_states_the_bound() -> None:
    assert "at least 0.8" in above_floor(gate_input(0.7, None), ev(floor=0.8)).message
    assert "at most 2.0" in above_floor(gate_input(2.5, None, "rmse"), ev(floor=2.0)).message


def test_improvement_is_signed_so_positive_is_better() -> None:
    assert improvement(gate_input(0.9, 0.8)) == pytest.approx(0.1)
    assert improvement(gate_input(1.0, 1.5, "rmse")) == pytest.approx(0.5)
    assert improvement(gate_input(2.0, 1.5, "mae")) == pytest.approx(-0.5)
    assert improvement(gate_input(0.9, None)) is None


# --- paired tests ----------------------------------------------------------------------------


def right_wrong(wins: int, losses: int, both_right: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Per-example correctness with `wins` where only the candidate is right and `losses` where
    only the champion is."""
    candidate = np.array([1.0] * wins + [0.0] * losses + [1.0] * both_right + [0.0] * 20)
    champion = np.array([0.0] * wins + [1.0] * losses + [1.0] * both_right + [0.0] * 20)
    return candidate, champion


def test_mcnemar_clearly_significant() -> None:
    assert mcnemar_p(*right_wrong(30, 2)) < 1e-6


def test_mcnemar_clearly_not_significant() -> None:
    assert mcnemar_p(*right_wrong(12, 10)) > 0.3


def test_mcnemar_candidate_worse() -> None:
    assert mcnemar_p(*right_wrong(2, 30)) > 0.99


def test_mcnemar_without_disagreement() -> None:
    same = np.array([1.0, 0.0, 1.0])
    assert mcnemar_p(same, same) == 1.0


def test_mcnemar_matches_the_binomial_tail() -> None:
    # 10 wins, 0 losses: the chance of that under a fair coin is 2**-10.
    assert mcnemar_p(*right_wrong(10, 0)) == pytest.approx(2.0**-10)


def test_paired_bootstrap_clearly_significant() -> None:
    rng = np.random.default_rng(0)
    champion = rng.uniform(1.0, 2.0, N)
    assert paired_bootstrap_p(champion - 0.5, champion) < 0.001


def losses(gain: float) -> tuple[np.ndarray, np.ndarray]:
    """Paired losses whose differences alternate +-1 around `gain` (candidate's advantage)."""
    champion = np.full(N, 2.0)
    swing = np.where(np.arange(N) % 2 == 0, 1.0, -1.0)
    return champion - gain - swing, champion


def test_paired_bootstrap_clearly_not_significant() -> None:
    assert paired_bootstrap_p(*losses(0.001)) > 0.3
    assert paired_bootstrap_p(*losses(-0.5)) > 0.99


def test_paired_bootstrap_is_deterministic_and_bounded() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=N), rng.uniform(size=N)
    assert paired_bootstrap_p(a, b) == paired_bootstrap_p(a, b)
    p = paired_bootstrap_p(a, a)
    assert p == 1.0  # every resampled mean difference is 0, i.e. not better
    assert paired_bootstrap_p(np.empty(0), np.empty(0)) == 1.0


def test_paired_bootstrap_resamples_parameter() -> None:
    champion = np.ones(50)
    assert paired_bootstrap_p(champion * 0.5, champion, resamples=99) == pytest.approx(1 / 100)


def paired_input(
    candidate: np.ndarray, champion: np.ndarray, metric: str, classification: bool
) -> GateInput:
    return GateInput(
        candidate=Score(metric, float(candidate.mean()), candidate),
        champion=Score(metric, float(champion.mean()), champion),
        holdout_size=len(candidate),
        classification=classification,
    )


@pytest.mark.parametrize(
    ("wins", "losses", "promote", "reason"),
    [(30, 2, True, None), (12, 10, False, "NotSignificant")],
)
def test_decide_runs_mcnemar_for_classifiers(
    wins: int, losses: int, promote: bool, reason: str | None
) -> None:
    inp = paired_input(*right_wrong(wins, losses), "accuracy", True)
    decision = decide(inp, ev(significance=0.05))
    assert decision.promote is promote
    assert decision.p_value == pytest.approx(mcnemar_p(*right_wrong(wins, losses)))
    assert decision.reasons == ([] if reason is None else [reason])
    check = next(c for c in decision.checks if c.rule == "significance")
    assert "McNemar" in check.message


@pytest.mark.parametrize(("gain", "promote"), [(0.4, True), (0.001, False)])
def test_decide_runs_the_paired_bootstrap_for_regressors(gain: float, promote: bool) -> None:
    # mae losses: lower is better, so each model's score is its mean loss.
    inp = paired_input(*losses(gain), "mae", False)
    assert improvement(inp) is not None and improvement(inp) > 0  # type: ignore[operator]
    decision = decide(inp, ev(significance=0.05))
    assert decision.promote is promote
    assert decision.p_value is not None
    assert (decision.p_value < 0.01) is promote
    check = next(c for c in decision.checks if c.rule == "significance")
    assert "paired bootstrap" in check.message


def test_decide_without_significance_computes_no_p_value() -> None:
    decision = decide(gate_input(0.9, 0.8), ev())
    assert decision.p_value is None


def test_decide_bootstrapping_has_no_p_value() -> None:
    decision = decide(gate_input(0.9, None), ev(significance=0.05))
    assert decision.promote
    assert decision.p_value is None
    assert decision.improvement is None


# --- the decision ----------------------------------------------------------------------------


def test_every_rule_runs_in_order() -> None:
    decision = decide(gate_input(0.9, 0.8), ev())
    assert [c.rule for c in decision.checks] == [
        "holdout",
        "score",
        "floor",
        "improvement",
        "relativeImprovement",
        "significance",
    ]
    assert len(RULES) == len(decision.checks)


def test_promoted_decision() -> None:
    decision = decide(gate_input(0.9, 0.8), ev(floor=0.85, minImprovement=0.05))
    assert decision.promote
    assert decision.outcome == "Promoted"
    assert decision.reasons == []
    assert decision.improvement == pytest.approx(0.1)
    # The summary explains the promotion with the evidence, not with rules that did not apply.
    assert "improvement +0.1000" in decision.summary
    assert "at least 0.85" in decision.summary
    assert "no relative minimum" not in decision.summary
    assert "no significance" not in decision.summary


def test_bootstrap_decision_summary() -> None:
    decision = decide(gate_input(0.6, None), ev())
    assert decision.outcome == "Promoted"
    assert decision.summary == "no champion yet: bootstrapping"


def test_rejected_decision_lists_every_failed_rule() -> None:
    decision = decide(
        gate_input(0.7, 0.8, holdout=10), ev(minHoldout=30, floor=0.75, minRelativeImprovement=0.1)
    )
    assert not decision.promote
    assert decision.outcome == "Rejected"
    assert decision.reasons == [
        "HoldoutTooSmall",
        "BelowFloor",
        "NoImprovement",
        "RelativeImprovementTooSmall",
    ]
    parts = decision.summary.split("; ")
    assert len(parts) == 4
    assert parts[0] == "holdout has 10 records (minimum 30)"
    assert decision.improvement == pytest.approx(-0.1)


def test_one_failed_rule_is_enough_to_reject() -> None:
    decision = decide(gate_input(0.9, 0.8, holdout=5), ev(minHoldout=30))
    assert not decision.promote
    assert decision.reasons == ["HoldoutTooSmall"]
    assert decision.summary == "holdout has 5 records (minimum 30)"


def test_undefined_score_is_rejected() -> None:
    decision = decide(gate_input(float("nan"), None, "roc_auc"), ev())
    assert not decision.promote
    assert "ScoreUndefined" in decision.reasons


def test_decision_is_a_value() -> None:
    first = decide(gate_input(0.9, 0.8), ev(significance=0.05))
    assert isinstance(first, Decision)
    assert first == decide(gate_input(0.9, 0.8), ev(significance=0.05))
