"""The consumer side on the real broker: what a revocation commits."""

from __future__ import annotations

import threading
import time

from kafka import KafkaConsumer
from kafka.errors import CommitFailedError
from prometheus_client import CollectorRegistry

from tagstream.worker.kafka.consumer import Source
from tagstream.worker.metrics import Metrics
from tagstream.worker.records import TopicPartition
from tagstream.worker.settings import load_settings
from tests.integration.kit import json_records, kafka_settings, produce


def test_a_revocation_commits_delivered_records_whose_commit_had_failed(cluster, topics, bootstrap):
    produce(bootstrap, topics.input, json_records([f"id-{i}" for i in range(30)], lambda _: "Oslo"))
    settings = load_settings(
        kafka=kafka_settings(bootstrap, topics, session_timeout_ms=6000, heartbeat_interval_ms=1000)
    )
    registry = CollectorRegistry()
    source = Source(settings, Metrics(registry, process_metrics=False))
    other = None
    try:
        # 1. Consume everything; say all of it was delivered.
        consumed: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + 60
        while sum(consumed.values()) < 30 and time.monotonic() < deadline:
            for r in source.poll(0.2, 100):
                consumed[r.tp] = r.offset + 1
        assert sum(consumed.values()) == 30
        source.take_revoked()
        source.take_assigned()

        # 2. The commit after delivery fails (as it can while a rebalance starts).
        real_commit = source._consumer.commit

        def failing_commit(*args, **kwargs):
            raise CommitFailedError("injected by the test")

        source._consumer.commit = failing_commit
        try:
            source.commit(consumed)
            raise AssertionError("the injected failure did not happen")
        except CommitFailedError:
            pass
        finally:
            source._consumer.commit = real_commit
        assert cluster.committed(topics.group, topics.input) == {}

        # 3. A second member joins: every partition of this one is revoked (range assignor,
        #    eager protocol), and the revocation commits what was delivered.
        other = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=topics.group,
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        other.subscribe([topics.input])
        joined = threading.Event()

        def poll_other():
            end = time.monotonic() + 60
            while not other.assignment() and time.monotonic() < end:
                other.poll(timeout_ms=200)
            joined.set()

        thread = threading.Thread(target=poll_other)
        thread.start()
        revoked: set[TopicPartition] = set()
        while not joined.is_set():
            source.poll(0.2, 1)
            revoked |= source.take_revoked()
        thread.join()
        assert revoked == set(consumed)
        committed = cluster.committed(topics.group, topics.input)
        assert committed == {tp.partition: offset for tp, offset in consumed.items()}
        assert registry.get_sample_value("tagstream_commit_failures_total") == 0
    finally:
        if other is not None:
            other.close()
        source.close()
