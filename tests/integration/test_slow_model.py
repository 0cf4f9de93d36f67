"""A model slower than max_poll_interval_ms must not get the worker thrown out of its group."""

from __future__ import annotations

import threading
import time
from collections import Counter

from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from prometheus_client import CollectorRegistry

from tagstream import model
from tagstream.worker.http import Health
from tagstream.worker.kafka.consumer import Source
from tagstream.worker.kafka.producer import Sink
from tagstream.worker.metrics import Metrics
from tagstream.worker.pipeline import Pipeline
from tagstream.worker.settings import load_settings
from tests.integration.kit import ids_of, json_records, kafka_settings, produce, read_all

POLL_INTERVAL_MS = 1500
SLOW_S = 2.5  # each batch takes longer than the poll interval


class SlowTagger:
    def __init__(self, inner):
        self._inner = inner
        self.name, self.version = inner.name, inner.version
        self.calls = 0

    def prepare(self, text):
        return self._inner.prepare(text)

    def tag_prepared(self, docs):
        self.calls += 1
        time.sleep(SLOW_S)
        return self._inner.tag_prepared(docs)


class CountingListener(ConsumerRebalanceListener):
    def __init__(self):
        self.assignments = 0

    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        self.assignments += 1


def test_control_a_consumer_that_stops_polling_is_thrown_out(topics, bootstrap):
    """Shows the limit is enforced here, so the test below can fail."""
    listener = CountingListener()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"{topics.group}-control",
        max_poll_interval_ms=POLL_INTERVAL_MS,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    consumer.subscribe([topics.input], listener=listener)
    # Until it owns partitions: a first join can come before the new topic's metadata, assign
    # nothing ("No partition metadata"), and be followed by a second join (seen in CI).
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)
    assert consumer.assignment(), "the control consumer never got a partition"
    joined = listener.assignments
    time.sleep(SLOW_S * 2)  # "inference" on the polling thread
    deadline = time.monotonic() + 60
    while listener.assignments == joined and time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)
    consumer.close()
    assert listener.assignments > joined  # it had left the group and had to join again


def test_slow_batches_keep_the_group_membership(cluster, topics, bootstrap, tiny_model):
    ids = [f"id-{i}" for i in range(96)]
    produce(bootstrap, topics.input, json_records(ids, lambda _: "Oslo is in Norway ."))
    settings = load_settings(
        drain_timeout_s=1.0,
        kafka=kafka_settings(
            bootstrap,
            topics,
            max_poll_interval_ms=POLL_INTERVAL_MS,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        ),
        batching={"max_batch_records": 32, "max_wait_ms": 10},
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry, process_metrics=False)
    tagger = SlowTagger(model.load(tiny_model))
    stop = threading.Event()
    pipeline = Pipeline(
        settings, tagger, Source(settings, metrics), Sink(settings), metrics, Health(60), stop
    )
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(pipeline.run()))
    thread.start()
    try:
        read_all(bootstrap, topics.output, lambda rs: len(rs) >= 1, timeout_s=60)
        joined = registry.get_sample_value("tagstream_rebalances_total")  # settled, working
        cluster.wait_all_committed(topics.group, topics.input, timeout_s=60)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert status == [0]
    assert tagger.calls >= 3  # three slow batches, each longer than the poll interval
    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= len(ids), settle_s=1.0)
    assert Counter(ids_of(outputs)) == Counter(ids)  # exactly once: nothing redone
    assert registry.get_sample_value("tagstream_rebalances_total") == joined  # never thrown out
    assert registry.get_sample_value("tagstream_commit_failures_total") == 0
