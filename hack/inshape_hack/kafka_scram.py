"""SCRAM users, made through Kafka's own admin API (AlterUserScramCredentials, KIP-554).

kafka-python's ``KafkaAdminClient.alter_user_scram_credentials`` salts and hashes the password
on the client (PBKDF2, 4096 iterations) and sends only that; the controller stores it in the
cluster metadata and each broker's SCRAM listener then accepts the user. No JAAS file and no
``kafka-storage format --add-scram``: a user can be added to a running broker, as Strimzi's
user operator does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka.admin import KafkaAdminClient, UserScramCredentialUpsertion

from inshape_hack.kafka_listeners import SCRAM_MECHANISMS
from inshape_hack.polling import wait_until


def create_scram_user(
    bootstrap: str,
    user: str,
    password: str,
    mechanisms: Sequence[str] = SCRAM_MECHANISMS,
    timeout: float = 30.0,
    **client: Any,
) -> None:
    """Give ``user`` ``password`` for each mechanism, through the listener at ``bootstrap``
    (``client``: its security keywords, if it has any); return once the broker lists them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **client)
    try:
        for mechanism in mechanisms:
            # One request each: Kafka 4.1 refuses a request that names a user twice, even
            # for two mechanisms ("cannot be altered twice in the same request").
            upsertion = UserScramCredentialUpsertion(user, mechanism, password)
            error = admin.alter_user_scram_credentials([upsertion]).get(user)
            if error:
                raise RuntimeError(f"{mechanism} credential for {user!r} refused: {error}")

        def listed() -> bool:
            described = admin.describe_user_scram_credentials([user])[user]
            names = {info["mechanism"].name for info in described["credential_infos"]}
            return names >= {mechanism.replace("-", "_") for mechanism in mechanisms}

        wait_until(listed, timeout, f"the broker lists {user}'s SCRAM credentials", interval=0.2)
    finally:
        admin.close()
