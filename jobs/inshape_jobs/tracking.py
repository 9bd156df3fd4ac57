"""All MLflow I/O of an update run: champion lookup, the run's logs, registration, alias.

Runs are keyed by a run key (the Job's UID), so a retried Job finds the run its previous
attempt finished and neither logs nor registers again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.sklearn
import requests
import skops.io
from matplotlib.figure import Figure
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.base import BaseEstimator

from inshape_api.names import CHAMPION_ALIAS, OUTCOME_TAG, RUN_KEY_TAG

log = logging.getLogger(__name__)

MODEL_URI_TAG = "inshape.logged_model_uri"
VERSION_TAG = "inshape.model_version"
COMPARED_WITH_TAG = "inshape.champion_version"
PROFILE_ARTIFACT = "sample/profile.json"
# MLflow's error codes of a 401 and a 403 (its REST store maps statuses to these).
REFUSED_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
REFUSED_STATUSES = frozenset({401, 403})
RESULT_ARTIFACT = "result.json"


class KafkaOffsetsSource(DatasetSource):
    """Lineage: the exact Kafka offsets a run read, as an MLflow dataset source."""

    def __init__(
        self, bootstrap_servers: str, topic: str, group: str, ranges: dict[str, dict[str, int]]
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.group = group
        self.ranges = ranges

    @staticmethod
    def _get_source_type() -> str:
        return "kafka"

    def load(self, **kwargs: Any) -> Any:
        raise NotImplementedError("offsets are lineage; re-read them with a consumer")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> KafkaOffsetsSource:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "topic": self.topic,
            "consumer_group": self.group,
            "partitions": self.ranges,
        }

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> KafkaOffsetsSource:
        return cls(
            source_dict["bootstrap_servers"],
            source_dict["topic"],
            source_dict["consumer_group"],
            source_dict["partitions"],
        )


@dataclass
class Champion:
    version: str
    run_id: str | None
    model: BaseEstimator
    profile: dict[str, Any] | None


@dataclass
class RunRecord:
    """Everything one run logs; built by the update step, written here in one go."""

    run_key: str
    run_name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    documents: dict[str, Any]  # artifact path -> JSON-able document
    figures: dict[str, Figure]
    lineage: KafkaOffsetsSource
    lineage_digest: str
    model: BaseEstimator | None
    signature_input: Any = None
    signature_output: Any = None
    outcome: str = "Rejected"
    compared_with: str | None = None


class Tracker:
    def __init__(self, tracking_uri: str, experiment: str, model_name: str) -> None:
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.model_name = model_name
        self.experiment_name = experiment
        existing = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (
            existing.experiment_id if existing else self.client.create_experiment(experiment)
        )

    # -- reading ---------------------------------------------------------------------------

    def find_run(self, run_key: str) -> Run | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
            order_by=["attributes.start_time DESC"],
            max_results=5,
        )
        return runs[0] if runs else None

    def champion_version(self) -> str | None:
        try:
            return str(
                self.client.get_model_version_by_alias(self.model_name, CHAMPION_ALIAS).version
            )
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
                return None
            raise

    def champion(self) -> Champion | None:
        version = self.champion_version()
        if version is None:
            return None
        mv = self.client.get_model_version(self.model_name, version)
        model = mlflow.sklearn.load_model(f"models:/{self.model_name}/{version}")
        profile = None
        if mv.run_id:
            try:
                profile = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{PROFILE_ARTIFACT}")
            except (MlflowException, OSError):
                log.warning(
                    "Champion version %s has no sample profile; drift not measured", version
                )
        return Champion(version=version, run_id=mv.run_id, model=model, profile=profile)

    def load_document(self, run_id: str, path: str) -> Any:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")

    # -- writing ---------------------------------------------------------------------------

    def discard_run(self, run: Run) -> None:
        """An attempt that died mid-log: delete it, so the key names one complete run."""
        log.info("Deleting unfinished run %s of an earlier attempt", run.info.run_id)
        self.client.delete_run(run.info.run_id)

    def log_run(self, record: RunRecord) -> str:
        tags = {RUN_KEY_TAG: record.run_key, OUTCOME_TAG: record.outcome, **record.tags}
        if record.compared_with:
            tags[COMPARED_WITH_TAG] = record.compared_with
        with mlflow.start_run(
            experiment_id=self.experiment_id, run_name=record.run_name, tags=tags
        ) as run:
            run_id = run.info.run_id
            mlflow.log_params(_flat(record.params))
            mlflow.log_metrics(record.metrics)
            for path, document in record.documents.items():
                mlflow.log_dict(document, path)
            for path, figure in record.figures.items():
                mlflow.log_figure(figure, path)
            dataset = MetaDataset(  # type: ignore[abstract]
                source=record.lineage, name=record.lineage.topic, digest=record.lineage_digest
            )
            mlflow.log_input(dataset, context="training")
            if record.model is not None:
                signature = None
                if record.signature_input is not None:
                    signature = infer_signature(record.signature_input, record.signature_output)
                # Explicit requirements: inferring them starts a subprocess and costs seconds.
                info = mlflow.sklearn.log_model(
                    record.model,
                    name="model",
                    signature=signature,
                    pip_requirements=mlflow.sklearn.get_default_pip_requirements(),
                    skops_trusted_types=own_types(record.model),
                )
                mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        return str(run_id)

    def ensure_registered(self, run: Run) -> str | None:
        """The registered version of the run's model, registering it the first time only."""
        model_uri = run.data.tags.get(MODEL_URI_TAG)
        if model_uri is None:
            return None
        run_id = run.info.run_id
        existing = self.client.search_model_versions(
            f"name = '{self.model_name}' and run_id = '{run_id}'"
        )
        if existing:
            version = str(existing[0].version)
        else:
            mv = mlflow.register_model(
                model_uri,
                self.model_name,
                tags={
                    RUN_KEY_TAG: run.data.tags.get(RUN_KEY_TAG, ""),
                    OUTCOME_TAG: run.data.tags.get(OUTCOME_TAG, ""),
                },
            )
            version = str(mv.version)
        self.client.set_tag(run_id, VERSION_TAG, version)
        return version

    def move_champion(self, version: str, compared_with: str | None) -> bool:
        """Point the alias at version, unless someone moved it since the run compared."""
        current = self.champion_version()
        if current == version:
            return True
        if current != compared_with:
            log.warning(
                "Champion moved to %s since this run compared against %s; keeping it",
                current,
                compared_with,
            )
            return False
        self.client.set_registered_model_alias(self.model_name, CHAMPION_ALIAS, version)
        if compared_with is not None:
            self.client.set_model_version_tag(
                self.model_name, version, "inshape.previous_champion", compared_with
            )
        return True

    def get_run(self, run_id: str) -> Run:
        return self.client.get_run(run_id)


def unauthorized(exc: BaseException) -> bool:
    """Whether MLflow refused the credentials (401/403): the REST store raises an
    MlflowException, the artifact proxy's upload a requests HTTPError."""
    if isinstance(exc, MlflowException):
        return exc.error_code in REFUSED_CODES
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code in REFUSED_STATUSES
    return False


def own_types(model: BaseEstimator) -> list[str]:
    """Types skops will not load unasked (e.g. tree storage). This run built the model from
    scikit-learn classes only (estimators.estimator_class), so its own types are trusted."""
    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as dotted keys; MLflow params are flat strings."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out
