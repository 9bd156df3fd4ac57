"""The operator's MLflow REST client against the real MLflow server, after a real run."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from inshape_operator.mlflow_check import Registry, RegistryUnavailableError, verify
from tests.integration.helpers import NewPolicy, fill, run

pytestmark = pytest.mark.integration


def test_registry_agrees_with_a_real_promotion_and_moves_the_alias_back(
    new_policy: NewPolicy,
) -> None:
    policy = new_policy()
    # A champion from very little data and a candidate from much more: a margin the gate
    # sees whatever order the fetches bring the records in (600 then 3000 was within noise).
    fill(policy, 300, seed=1)
    first = run(policy, "uid-1")
    fill(policy, 6000, seed=2, noise=1.0)
    second = run(policy, "uid-2")
    assert (first.outcome, second.outcome) == ("Promoted", "Promoted")
    model = policy.spec.model.name
    registry = Registry(policy.spec.mlflow.trackingUri)

    assert verify(registry, policy.experiment, model, "uid-2", "2").ok
    stale = verify(registry, policy.experiment, model, "uid-1", "1")
    assert (stale.ok, stale.reason) == (False, "ChampionAliasMismatch")
    unknown = verify(registry, policy.experiment, model, "uid-9", "2")
    assert unknown.reason == "RunNotInRegistry"

    registry.set_champion(model, "1")  # what a rollback does
    assert registry.champion_version(model) == "1"

    # An alias deleted by hand (MLflow answers 400, not 404): no champion, not "MLflow down".
    MlflowClient(policy.spec.mlflow.trackingUri).delete_registered_model_alias(model, "champion")
    assert registry.champion_version(model) is None
    gone = verify(registry, policy.experiment, model, "uid-2", "2")
    assert (gone.ok, gone.reason) == (False, "ChampionAliasMismatch")
    assert registry.champion_version(f"{model}-never-registered") is None


def test_registry_down_is_a_temporary_error() -> None:
    registry = Registry("http://127.0.0.1:9")
    with pytest.raises(RegistryUnavailableError):
        registry.champion_version("anything")
