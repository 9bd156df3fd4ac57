"""What a policy author in namespace A can and cannot do, by impersonation on a real API server
with the chart's ValidatingAdmissionPolicy: policies only in A (RBAC), and only with a consumer
group and a registered model name that carry A's name (admission), so no author commits another
team's group or moves another namespace's champion in a shared MLflow."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from inshape_hack.apiserver import ApiServer
from inshape_hack.kindtesting import apply_policy_crd
from inshape_hack.kubectl import KubectlRunner
from inshape_hack.polling import wait_until
from inshape_operator.crd import NAME as CRD_NAME
from tests.chart.conftest import render_text

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "manifests/examples/digits.yaml").read_text())
AUTHOR = "alice"
TEAM_A, TEAM_B = "team-a", "team-b"


def author_role(namespace: str) -> list[dict[str, Any]]:
    """What a namespace's policy authors get: policies there, nothing else."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "policy-author", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["inshape.dev"],
                "resources": ["modelupdatepolicies"],
                "verbs": ["get", "list", "create", "update", "patch"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "policy-author", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "policy-author",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": AUTHOR}],
    }
    return [role, binding]


def policy(namespace: str, model: str, group: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(EXAMPLE)
    document["metadata"] = {"name": "digits", "namespace": namespace}
    document["spec"]["model"]["name"] = model
    if group is not None:
        document["spec"]["source"]["kafka"]["consumerGroup"] = group
    return document


@pytest.fixture(scope="module")
def as_author(api_server: ApiServer) -> Iterator[Callable[[dict[str, Any]], str]]:
    """The CRD and the chart's admission objects applied; a dry-run apply as the author."""
    admin = api_server.kubectl()
    apply_policy_crd(admin)
    admission = render_text(extra=["--show-only", "templates/admission.yaml"])
    admin("apply", "-f", "-", stdin=admission)
    for namespace in (TEAM_A, TEAM_B):
        admin("create", "namespace", namespace, check=False)
    admin.apply(author_role(TEAM_A))

    def apply(document: dict[str, Any], user: str | None = AUTHOR) -> str:
        """A server dry-run as `user` (None: as the cluster admin)."""
        as_user = [f"--as={user}"] if user else []
        text = json.dumps(document)
        return admin("apply", "--dry-run=server", *as_user, "-f", "-", stdin=text, check=False)

    # The API server compiles a new admission policy in the background: wait for it to bite.
    wait_until(
        lambda: "spec.model.name" in apply(policy(TEAM_A, "team-b-digits")),
        timeout=60,
        what="the ValidatingAdmissionPolicy is in force",
        interval=0.5,
    )
    yield apply
    # The API server is the session's: leave it without the policy for the tests after these.
    admin("delete", "-f", "-", stdin=admission, check=False)
    wait_until(
        lambda: "created (server dry run)" in apply(policy(TEAM_A, "team-b-digits"), None),
        timeout=60,
        what="the ValidatingAdmissionPolicy is gone",
        interval=0.5,
    )
    # Nor with a CRD that Helm does not own (a later test installs the chart's own).
    admin("delete", "crd", CRD_NAME, "--wait=false", check=False)
    wait_until(
        lambda: "NotFound" in admin("get", "crd", CRD_NAME, check=False),
        timeout=120,
        what=f"CRD {CRD_NAME} is gone",
        interval=0.5,
    )


@pytest.mark.parametrize(
    ("model", "group"),
    [
        ("team-a-digits", None),  # the default group, inshape-team-a-digits
        ("team-a.digits", "team-a-trainers"),
        ("team-a-digits", "inshape-team-a-digits"),
    ],
)
def test_an_author_creates_policies_whose_names_carry_the_namespace(
    as_author: Callable[[dict[str, Any]], str], model: str, group: str | None
) -> None:
    output = as_author(policy(TEAM_A, model, group))
    assert "created (server dry run)" in output, output


@pytest.mark.parametrize(
    ("model", "group", "refusal"),
    [
        ("team-b-digits", None, "spec.model.name: team-b-digits must start with team-a-"),
        ("digits", None, "registered model names are scoped to the namespace"),
        ("team-a-digits", "inshape-team-b-digits", "spec.source.kafka.consumerGroup"),
        ("team-a-digits", "team-b-trainers", "consumer groups are scoped to the namespace"),
        ("team-ab-digits", None, "spec.model.name"),  # a prefix of another name is not enough
    ],
)
def test_an_author_cannot_name_another_namespaces_group_or_model(
    as_author: Callable[[dict[str, Any]], str], model: str, group: str | None, refusal: str
) -> None:
    output = as_author(policy(TEAM_A, model, group))
    assert refusal in output and "ValidatingAdmissionPolicy" in output, output


def test_an_author_cannot_create_policies_in_another_namespace(
    as_author: Callable[[dict[str, Any]], str],
) -> None:
    output = as_author(policy(TEAM_B, "team-b-digits"))
    assert "forbidden" in output and f'User "{AUTHOR}" cannot' in output, output


def test_not_even_an_admin_is_let_through(
    as_author: Callable[..., str], api_server: ApiServer
) -> None:
    """Admission binds everyone: a cluster admin's policy is scoped like an author's."""
    kubectl: KubectlRunner = api_server.kubectl()
    output = kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=json.dumps(policy(TEAM_B, "team-a-x")),
        check=False,
    )
    assert "spec.model.name: team-a-x must start with team-b-" in output, output
