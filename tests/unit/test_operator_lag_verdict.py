"""Pure parts of the operator's Kafka and MLflow checks: lag arithmetic, the verdict chain."""

from __future__ import annotations

import pytest

from inshape_api.names import OUTCOME_TAG
from inshape_operator.lag import pending
from inshape_operator.mlflow_check import verify


@pytest.mark.parametrize(
    ("committed", "start", "end", "expected"),
    [
        ({}, {}, {0: 10, 1: 5}, 15),  # a new group: everything is pending
        ({0: 10, 1: 5}, {}, {0: 10, 1: 5}, 0),  # caught up
        ({0: 4}, {}, {0: 10, 1: 5}, 6 + 5),  # one partition never committed
        ({0: 2}, {0: 7}, {0: 10}, 3),  # retention deleted what the group had not read
        ({0: 12}, {}, {0: 10}, 0),  # never negative
    ],
)
def test_pending_sums_unread_records_per_partition(
    committed: dict[int, int], start: dict[int, int], end: dict[int, int], expected: int
) -> None:
    assert pending(sorted(end), committed, start, end) == expected


class Registry:
    """Answers as MLflow would, from a table."""

    def __init__(self, runs: dict[str, dict[str, str]], champion: str | None) -> None:
        self.runs = runs
        self.champion = champion

    def find_run(self, experiment: str, run_key: str) -> dict[str, str] | None:
        return self.runs.get(run_key)

    def champion_version(self, model: str) -> str | None:
        return self.champion


@pytest.mark.parametrize(
    ("runs", "champion", "version", "ok", "reason"),
    [
        ({"uid": {OUTCOME_TAG: "Promoted"}}, "3", "3", True, ""),
        ({}, "3", "3", False, "RunNotInRegistry"),
        ({"uid": {OUTCOME_TAG: "Rejected"}}, "3", "3", False, "RegistryDisagrees"),
        ({"uid": {OUTCOME_TAG: "Promoted"}}, "2", "3", False, "ChampionAliasMismatch"),
        ({"uid": {OUTCOME_TAG: "Promoted"}}, None, "3", False, "ChampionAliasMismatch"),
    ],
)
def test_a_promotion_is_believed_only_when_mlflow_agrees(
    runs: dict[str, dict[str, str]], champion: str | None, version: str, ok: bool, reason: str
) -> None:
    verdict = verify(Registry(runs, champion), "exp", "model", "uid", version)  # type: ignore[arg-type]
    assert (verdict.ok, verdict.reason) == (ok, reason)
