"""The operator's lag reader on a real broker: counts, concurrent passes, a broker that is gone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from inshape_api.kafka_connection import KafkaConnection
from inshape_hack.kafka import KafkaBroker
from inshape_operator.kafka_credentials import KafkaClientSettings
from inshape_operator.lag import CLIENTS_PER_BOOTSTRAP, LagError, LagReader
from tests.integration.helpers import NewPolicy, fill, run

pytestmark = pytest.mark.integration


def plain(bootstrap: str) -> KafkaClientSettings:
    return KafkaClientSettings(KafkaConnection(bootstrap))


def test_lag_counts_what_the_group_has_not_trained_on(
    new_policy: NewPolicy, kafka_broker: KafkaBroker
) -> None:
    policy = new_policy()
    topic, group = policy.spec.source.kafka.topic, policy.consumer_group
    bootstrap = plain(kafka_broker.bootstrap_servers)
    reader = LagReader()
    try:
        fill(policy, 300)
        assert reader.lag(bootstrap, topic, group) == 300  # no group yet: all pending
        run(policy, "lag-1")
        fill(policy, 120, seed=1)
        # Many passes at once (policies due on one cron slot) share a few clients.
        with ThreadPoolExecutor(max_workers=3 * CLIENTS_PER_BOOTSTRAP) as pool:
            lags = list(pool.map(lambda _: reader.lag(bootstrap, topic, group), range(24)))
        assert lags == [120] * 24
        with pytest.raises(LagError, match="does not exist"):
            reader.lag(bootstrap, "no-such-topic-here", group)
        assert reader.lag(bootstrap, topic, group) == 120  # the client is still good
    finally:
        reader.close()


def test_an_unreachable_broker_is_a_lag_error_not_a_hang() -> None:
    reader = LagReader()
    with pytest.raises(LagError):
        reader.lag(plain("127.0.0.1:9"), "t", "g")
    reader.close()
