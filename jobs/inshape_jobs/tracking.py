"""All MLflow I/O of an update run: champion lookup, the run's logs, registration, alias.

Runs are keyed by a run key (the Job's UID), so a retried Job finds the run its previous
attempt finished and neither logs nor registers again.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import requests
import skops.io
from matplotlib.figure import Figure
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import (
    DatasetInput,
    InputTag,
    Metric,
    Param,
    Run,
    RunTag,
)
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.tracking.context import registry as context_registry
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
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
MODEL_PATH = "model"  # the model's folder in the run's artifacts
REGISTRATION_TIMEOUT = 300  # seconds, as mlflow.register_model waits by default


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


@dataclass(frozen=True)
class LoggedRun:
    """What registration needs of a logged run."""

    run_id: str
    artifact_uri: str
    # runs:/<run id>/model when the run logged a model (models:/<model id> if it logged it
    # as an MLflow logged model, as runs logged before did)
    model_uri: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, run: Run) -> LoggedRun:
        tags = dict(run.data.tags)
        return cls(run.info.run_id, run.info.artifact_uri, tags.get(MODEL_URI_TAG), tags)


class Tracker:
    def __init__(self, tracking_uri: str, experiment: str, model_name: str) -> None:
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
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

    def log_run(self, record: RunRecord) -> LoggedRun:
        """The whole run in a few requests: the run, one batch of params, metrics and tags,
        its input, one upload of its files (the model's among them) and one of its plots,
        its end. A failure on the way leaves the run FAILED, which a retry deletes."""
        tags = {RUN_KEY_TAG: record.run_key, OUTCOME_TAG: record.outcome, **record.tags}
        if record.compared_with:
            tags[COMPARED_WITH_TAG] = record.compared_with
        # The source and user tags mlflow.start_run would add.
        tags = context_registry.resolve_tags(tags)
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=record.run_name)
        run_id = run.info.run_id
        try:
            logged = self._log_contents(run.info.run_id, run.info.artifact_uri, record, tags)
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id)
        return logged

    def _log_contents(
        self, run_id: str, artifact_uri: str, record: RunRecord, tags: dict[str, str]
    ) -> LoggedRun:
        with (
            tempfile.TemporaryDirectory(prefix="inshape-run-") as scratch,
            ThreadPoolExecutor(1, thread_name_prefix="inshape-plots") as painter,
        ):
            # The plots render (CPU, a few hundred ms) while the requests below wait on MLflow.
            figures, files = Path(scratch) / "figures", Path(scratch) / "files"
            rendered = painter.submit(_write_figures, figures, record)
            _write_documents(files, record)
            model_uri = None
            if record.model is not None:
                self._save_model(record, files / MODEL_PATH)
                model_uri = f"runs:/{run_id}/{MODEL_PATH}"
            run_tags = {MODEL_URI_TAG: model_uri} if model_uri else {}
            now = int(time.time() * 1000)
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in record.metrics.items()],
                params=[Param(k, v) for k, v in _flat(record.params).items()],
                tags=[RunTag(k, v) for k, v in run_tags.items()],
            )
            dataset = MetaDataset(  # type: ignore[abstract]
                source=record.lineage, name=record.lineage.topic, digest=record.lineage_digest
            )
            context = InputTag(key=MLFLOW_DATASET_CONTEXT, value="training")
            self.client.log_inputs(
                run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[context])]
            )
            # The run's own artifact store, from the URI in hand: the client would ask for
            # the run again to find it.
            store = get_artifact_repository(artifact_uri, tracking_uri=self.tracking_uri)
            store.log_artifacts(str(files))  # type: ignore[no-untyped-call]
            rendered.result()
            if record.figures:
                store.log_artifacts(str(figures))  # type: ignore[no-untyped-call]
        return LoggedRun(run_id, artifact_uri, model_uri, {**tags, **run_tags})

    def _save_model(self, record: RunRecord, path: Path) -> None:
        """The MLflow model directory mlflow.sklearn.log_model would upload."""
        signature = None
        if record.signature_input is not None:
            signature = infer_signature(record.signature_input, record.signature_output)
        mlflow.sklearn.save_model(
            record.model,
            str(path),
            signature=signature,
            # Explicit requirements: inferring them starts a subprocess and costs seconds.
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(),
            skops_trusted_types=own_types(record.model),
        )

    def logged_run(self, run_id: str) -> LoggedRun:
        return LoggedRun.of(self.client.get_run(run_id))

    def ensure_registered(self, run: LoggedRun, *, may_exist: bool = True) -> str | None:
        """The registered version of the run's model, registering it the first time only.
        may_exist=False: the run was logged just now, so no version can have it yet."""
        if run.model_uri is None:
            return None
        existing: list[ModelVersion] = []
        if may_exist:
            existing = self.client.search_model_versions(
                f"name = '{self.model_name}' and run_id = '{run.run_id}'"
            )
        if existing:
            version = str(existing[0].version)
        else:
            version = str(self._register(run, run.model_uri).version)
        self.client.set_tag(run.run_id, VERSION_TAG, version)
        return version

    def _register(self, run: LoggedRun, model_uri: str) -> ModelVersion:
        """One request, as a rule: the registered model is created the first time only."""
        tags = {
            RUN_KEY_TAG: run.tags.get(RUN_KEY_TAG, ""),
            OUTCOME_TAG: run.tags.get(OUTCOME_TAG, ""),
        }
        # Where the files are, as mlflow.register_model resolves a runs:/ URI.
        model_id = None
        source = model_uri
        if model_uri.startswith(prefix := f"runs:/{run.run_id}/"):
            source = f"{run.artifact_uri}/{model_uri.removeprefix(prefix)}"
        else:
            model_id = model_uri.removeprefix("models:/")

        def create() -> ModelVersion:
            return self.client.create_model_version(
                self.model_name,
                source,
                run_id=run.run_id,
                tags=tags,
                # MLflow waits only while a registry that copies the files says pending.
                await_creation_for=REGISTRATION_TIMEOUT,
                model_id=model_id,
            )

        try:
            mv = create()
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                self.client.create_registered_model(self.model_name)
            except MlflowException as again:  # another run created it meanwhile
                if again.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            mv = create()
        return mv

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


def _write_documents(root: Path, record: RunRecord) -> None:
    """The run's documents as files under root, as log_dict would write them."""
    for path, document in record.documents.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(document, indent=2, default=str))


def _write_figures(root: Path, record: RunRecord) -> None:
    """The run's figures as PNG files under root, as log_figure would write them."""
    for path, figure in record.figures.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target)


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
