"""All Kubernetes API I/O of the operator, through the official client (sync: Kopf runs sync
handlers in threads).

Objects come back as plain dicts in the API's own camelCase (the raw JSON, not the client's
models), which is what the pure modules read. Errors the reconcile can act on are translated:
a missing object is None, a create that meets an existing object is fine (deterministic names),
a JSON patch whose `test` fails is a `Conflict`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from inshape_api.names import API_GROUP, API_VERSION, PLURAL
from inshape_operator import discovery, strimzi

JSON = dict[str, Any]
T = TypeVar("T")
_NOT_FOUND = 404
_CONFLICT = 409
_INVALID = 422
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ConflictError(Exception):
    """The object changed since it was read (a failed JSON-patch test, 409/422)."""


def load_config() -> None:
    """In-cluster credentials when running in a pod, else $KUBECONFIG / ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]


def _json(response: Any) -> JSON:
    return cast(JSON, json.loads(response.data))


def absent_as_none(read: Callable[[], T]) -> T | None:
    """The result of a read, or None when the object (or its kind) does not exist (404)."""
    try:
        return read()
    except ApiException as exc:
        if exc.status == _NOT_FOUND:
            return None
        raise


class Kube:
    """The API calls one reconcile makes; one instance per operator, shared by all handlers."""

    def __init__(self, client: kubernetes.client.ApiClient | None = None) -> None:
        self.api = client or kubernetes.client.ApiClient()
        self.batch = kubernetes.client.BatchV1Api(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.apps = kubernetes.client.AppsV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.kafka_version = discovery.VersionCache(self.discover_kafka_version)

    # --- reads --------------------------------------------------------------------------------

    def list_jobs(self, namespace: str, selector: str) -> list[JSON]:
        response = self.batch.list_namespaced_job(
            namespace, label_selector=selector, _preload_content=False
        )
        return list(_json(response).get("items") or [])

    def list_pods(self, namespace: str, selector: str) -> list[JSON]:
        response = self.core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False
        )
        return list(_json(response).get("items") or [])

    def get_policy(self, namespace: str, name: str) -> JSON | None:
        return absent_as_none(
            lambda: _json(
                self.custom.get_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, PLURAL, name, _preload_content=False
                )
            )
        )

    def get_deployment(self, namespace: str, name: str) -> JSON | None:
        return absent_as_none(
            lambda: _json(
                self.apps.read_namespaced_deployment(name, namespace, _preload_content=False)
            )
        )

    def get_path(self, path: str) -> JSON | None:
        """GET a path of the API (discovery documents); None on 404."""
        params = self.api.param_serialize(
            method="GET",
            resource_path=path,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response: Any = self.api.call_api(*params)  # RESTResponse, untyped
        response.read()
        if response.status == _NOT_FOUND:
            return None
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=response.reason)
        return cast(JSON, json.loads(response.data))

    def discover_kafka_version(self) -> str | None:
        """The version of kafka.strimzi.io serving `kafkas` (v1 preferred), None if none."""

        def has_kafkas(version: str) -> bool:
            found = self.get_path(f"/apis/{strimzi.GROUP}/{version}")
            return discovery.lists_resource(found, strimzi.PLURAL)

        group = self.get_path(f"/apis/{strimzi.GROUP}")
        return discovery.served_version(group, strimzi.VERSIONS, has_kafkas)

    def get_kafka(self, namespace: str, name: str) -> JSON | None:
        """The Strimzi Kafka resource in the version the cluster serves, or None if it (or its
        CRD) does not exist. A 404 asks discovery again: the CRDs may have been replaced."""

        def read(version: str) -> JSON | None:
            return absent_as_none(
                lambda: _json(
                    self.custom.get_namespaced_custom_object(
                        strimzi.GROUP,
                        version,
                        namespace,
                        strimzi.PLURAL,
                        name,
                        _preload_content=False,
                    )
                )
            )

        version = self.kafka_version.get()
        if version is None:  # no Kafka CRD served (asked again once the cache expires)
            return None
        found = read(version)
        if found is None:
            again = self.kafka_version.refresh()
            if again is not None and again != version:
                found = read(again)
        return found

    def get_secret(self, namespace: str, name: str) -> JSON | None:
        """A Secret a policy names for Kafka (RBAC: get only, no list or watch)."""
        return absent_as_none(
            lambda: _json(self.core.read_namespaced_secret(name, namespace, _preload_content=False))
        )

    # --- writes -------------------------------------------------------------------------------

    def create_job(self, namespace: str, job: Mapping[str, Any]) -> bool:
        """Create the Job; False if one of that name exists already (a retried create)."""
        try:
            self.batch.create_namespaced_job(
                namespace,
                cast(kubernetes.client.V1Job, kubernetes.client.V1Job.from_dict(dict(job))),
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == _CONFLICT:
                return False
            raise
        return True

    def patch_deployment(self, namespace: str, name: str, patch: list[JSON]) -> JSON:
        """Apply a JSON patch (RFC 6902); Conflict when its `test` operations fail."""
        try:
            response = self.apps.patch_namespaced_deployment(
                name, namespace, patch, _content_type=JSON_PATCH, _preload_content=False
            )
        except ApiException as exc:
            if exc.status in (_CONFLICT, _INVALID):
                raise ConflictError(f"Deployment {namespace}/{name}: {exc.reason}") from exc
            raise
        return _json(response)

    def patch_policy_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch of the status subresource."""
        self.custom.patch_namespaced_custom_object_status(
            API_GROUP,
            API_VERSION,
            namespace,
            PLURAL,
            name,
            {"status": dict(patch)},
            _content_type=MERGE_PATCH,
            _preload_content=False,
        )

    def remove_policy_annotation(self, namespace: str, name: str, key: str) -> None:
        self.custom.patch_namespaced_custom_object(
            API_GROUP,
            API_VERSION,
            namespace,
            PLURAL,
            name,
            {"metadata": {"annotations": {key: None}}},
            _content_type=MERGE_PATCH,
            _preload_content=False,
        )
