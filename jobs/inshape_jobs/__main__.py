"""CLI of the code that runs inside Jobs: `python -m inshape_jobs update|produce ...`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from inshape_api.kafka_connection import (
    CONNECTION_ENV,
    KafkaFilesError,
    job_connection,
    security_from_files,
)
from inshape_api.kafka_security import PLAINTEXT_SECURITY, KafkaSecurity
from inshape_api.mlflow_access import drop_absent_ca
from inshape_api.names import EXIT_RUN_FAILED, EXIT_SPEC_ERROR, RUN_KEY_ENV, TERMINATION_LOG_ENV
from inshape_api.spec import Policy, SpecError, load_policy

# MLflow's client retries a refused connection for minutes by default; a Job should fail
# fast instead (nothing is committed, and the Job's own retry or the next run takes over).
# Set any of these in the Job's env to override.
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


def _kafka_connection(args: argparse.Namespace, policy: Policy) -> tuple[str, KafkaSecurity]:
    """Where and how the Job connects to Kafka: the operator's resolved connection
    ($INSHAPE_KAFKA, its Secrets mounted) or, run by hand, the policy's plain address.
    KafkaFilesError when a mounted Secret lacks what the connection needs."""
    connection = job_connection()
    if connection is not None:
        scratch = Path(os.environ.get("TMPDIR", "/tmp"))
        security = security_from_files(connection, os.environ, args.kafka_files_root, scratch)
        return args.bootstrap_servers or connection.bootstrapServers, security
    source = policy.spec.source.kafka
    if source.tls is not None or source.authentication is not None:
        raise SpecError(
            "spec.source.kafka",
            f"tls and authentication need the operator's ${CONNECTION_ENV} and mounted Secrets",
        )
    bootstrap = args.bootstrap_servers or source.bootstrapServers
    if not bootstrap:
        raise SpecError(
            "spec.source.kafka.bootstrapServers",
            f"not set; the operator resolves strimziCluster and passes ${CONNECTION_ENV}",
        )
    return bootstrap, PLAINTEXT_SECURITY


def _update(args: argparse.Namespace) -> int:
    """One update run. Up to its first Kafka fetch it imports only what that needs (start.py);
    MLflow and scikit-learn (seconds of imports) load once the first chunk is in hand."""
    for name, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)  # before mlflow reads its environment
    drop_absent_ca(os.environ)  # the credentials Secret may hold no ca.crt
    from inshape_api.kafka_link import KafkaAuthError, KafkaUnreachableError, probe
    from inshape_api.result import KAFKA_AUTH_FAILED, KAFKA_SECRET_MISSING, MLFLOW_UNAUTHORIZED
    from inshape_api.result import failed as failed_result
    from inshape_jobs.drain import DeadLetters, DrainError, TopicReader
    from inshape_jobs.result import emit
    from inshape_jobs.start import RunOptions, StartedDrain, start_drain

    policy = load_policy(args.policy)
    kafka = policy.spec.source.kafka
    run_key = args.run_key or os.environ.get(RUN_KEY_ENV)
    if not run_key:
        run_key = uuid.uuid4().hex
        logging.warning("No run key given: a retry of this run would not be recognised")
    tracking_uri = args.tracking_uri or policy.spec.mlflow.trackingUri

    def failed(reason: str, exc: Exception) -> int:
        """A run that could not finish: say why, in the result the operator reads; nothing
        was committed, so the records wait for the next run."""
        logging.error("Update run failed (%s): %s", reason, exc)
        emit(failed_result(reason, str(exc), run_key=run_key), args.termination_log)
        return EXIT_RUN_FAILED

    secret = policy.spec.mlflow.credentialsSecret
    whose = f"Secret {secret}" if secret else "none: spec.mlflow.credentialsSecret is not set"

    def refused(exc: Exception) -> int:
        """MLflow refused the Job's credentials: name their Secret (MLflow's message holds
        the status and the server's answer, never what was sent)."""
        return failed(
            MLFLOW_UNAUTHORIZED, RuntimeError(f"MLflow refused the credentials ({whose}): {exc}")
        )

    try:
        bootstrap, security = _kafka_connection(args, policy)
    except KafkaFilesError as exc:
        return failed(KAFKA_SECRET_MISSING, exc)
    try:
        # Refused credentials named in seconds, before MLflow or any read: kafka-python's
        # clients would only time out ("Unable to bootstrap") after 30 s.
        probe(bootstrap, security)
    except KafkaAuthError as exc:
        return failed(KAFKA_AUTH_FAILED, exc)
    except KafkaUnreachableError as exc:
        # Perhaps a blip: the clients' own bootstrap retries decide, as before the probe.
        logging.warning("Kafka probe found no broker yet: %s", exc)

    options = RunOptions(run_key=run_key, chunk_records=args.chunk_records)
    reader = TopicReader(bootstrap, kafka.topic, policy.consumer_group, security=security)
    dead_letters: DeadLetters | None = None
    started: StartedDrain | None = None
    try:
        try:
            started = start_drain(policy, options, reader)
        except DrainError as exc:
            return failed("DrainFailed", exc)
        # The read has begun: now the heavy part of the run, timed as its own stage (the loop
        # bench shows it apart from the work it enables).
        with started.timers.stage("imports"):
            import requests
            from mlflow.exceptions import MlflowException

            from inshape_jobs.tracking import Tracker, unauthorized
            from inshape_jobs.update import run_update

        if kafka.deadLetterTopic:
            dead_letters = DeadLetters(
                bootstrap, kafka.deadLetterTopic, kafka.topic, security=security
            )
        try:
            tracker = Tracker(tracking_uri, policy.experiment, policy.spec.model.name)
        except MlflowException as exc:
            return refused(exc) if unauthorized(exc) else failed("TrackingUnavailable", exc)
        try:
            result = run_update(policy, options, reader, tracker, dead_letters, started=started)
        except DrainError as exc:
            return failed("DrainFailed", exc)
        except (MlflowException, requests.HTTPError) as exc:
            if unauthorized(exc):
                return refused(exc)
            if isinstance(exc, requests.HTTPError):
                raise
            return failed("TrackingFailed", exc)
    finally:
        if started is not None:
            started.close()
        reader.close()
        if dead_letters is not None:
            dead_letters.close()
    emit(result, args.termination_log)
    return 0


def _produce(args: argparse.Namespace) -> int:
    from inshape_jobs.produce import encoded, produce
    from inshape_jobs.streams import RotatingHyperplane, digits_records

    if args.stream == "digits":
        records = digits_records(seed=args.seed, noise=args.noise)
    else:
        records = RotatingHyperplane(
            n_features=args.features, drift=args.drift, noise=args.noise, seed=args.seed
        ).records()
    sent = produce(
        args.bootstrap_servers,
        args.topic,
        encoded(records, args.bad_fraction, seed=args.seed),
        count=args.count,
        rate=args.rate,
        partitions=args.partitions,
    )
    print(f"Sent {sent} records to {args.topic}", flush=True)
    return 0


def termination_log_default() -> str | None:
    """Where the result goes besides stdout: the Job sets $INSHAPE_TERMINATION_LOG to its
    terminationMessagePath."""
    return os.environ.get(TERMINATION_LOG_ENV)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m inshape_jobs", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    update = commands.add_parser("update", help="run one model update for a policy")
    update.add_argument(
        "--policy",
        help="ModelUpdatePolicy YAML/JSON file (default: $INSHAPE_POLICY holds the document)",
    )
    update.add_argument(
        "--run-key", help="idempotency key, the Job UID (default: $INSHAPE_RUN_KEY)"
    )
    update.add_argument("--bootstrap-servers", help="override spec.source.kafka")
    update.add_argument(
        "--kafka-files-root",
        type=Path,
        default=Path("/"),
        help="where the Secrets of $INSHAPE_KAFKA are mounted (/etc/inshape/kafka under it)",
    )
    update.add_argument("--tracking-uri", help="override spec.mlflow.trackingUri")
    update.add_argument(
        "--chunk-records",
        type=int,
        default=10_000,
        help="records per chunk; bounds memory (default 10000)",
    )
    update.add_argument(
        "--termination-log",
        default=termination_log_default(),
        help="also write the JSON result here (default: $INSHAPE_TERMINATION_LOG)",
    )
    update.set_defaults(func=_update)

    produce = commands.add_parser("produce", help="stream records to a topic")
    produce.add_argument("--bootstrap-servers", required=True)
    produce.add_argument("--topic", required=True)
    produce.add_argument("--stream", choices=["digits", "hyperplane"], default="digits")
    produce.add_argument("--count", type=int, default=10_000)
    produce.add_argument("--rate", type=float, help="records per second (default: max)")
    produce.add_argument("--partitions", type=int, default=3, help="if the topic is created")
    produce.add_argument(
        "--bad-fraction", type=float, default=0.0, help="share of malformed records mixed in"
    )
    produce.add_argument("--features", type=int, default=10, help="hyperplane dimensions")
    produce.add_argument("--drift", type=float, default=1e-3, help="hyperplane drift/record")
    produce.add_argument(
        "--noise", type=float, default=0.0, help="label noise (hyperplane) or pixel noise (digits)"
    )
    produce.add_argument("--seed", type=int, default=0)
    produce.set_defaults(func=_produce)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # per-connection chatter
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SpecError as exc:
        print(f"Invalid policy: {exc}", file=sys.stderr)
        return EXIT_SPEC_ERROR


if __name__ == "__main__":
    sys.exit(main())
