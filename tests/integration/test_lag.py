"""tagstream_consumer_lag tells the truth behind a backlog: it equals the broker's end offset
minus the group's committed offset, also while the worker is paused and fetches nothing."""

from __future__ import annotations

import threading
import time

from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from tagstream import model
from tagstream.worker.http import Health
from tagstream.worker.kafka.consumer import Source
from tagstream.worker.kafka.producer import Sink
from tagstream.worker.metrics import Metrics
from tagstream.worker.pipeline import Pipeline
from tagstream.worker.settings import load_settings
from tests.integration.kit import kafka_settings
from tests.integration.test_slow_model import SlowTagger


def broker_lag(cluster, group: str, topic: str) -> dict[int, int]:
    """End offset minus committed offset per partition, from the broker (what
    kafka-consumer-groups.sh --describe shows as LAG)."""
    committed = cluster.committed(group, topic)
    return {p: end - committed.get(p, 0) for p, end in cluster.end_offsets(topic).items()}


def gauge_lag(registry: CollectorRegistry, topic: str, partitions) -> dict[int, float | None]:
    return {
        p: registry.get_sample_value(
            "tagstream_consumer_lag", {"topic": topic, "partition": str(p)}
        )
        for p in partitions
    }


def test_lag_gauge_equals_the_brokers_figures_behind_a_backlog(
    cluster, topics, bootstrap, tiny_model
):
    settings = load_settings(
        drain_timeout_s=15.0,
        kafka=kafka_settings(
            bootstrap,
            topics,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1000,
            lag_interval_s=0.5,
        ),
        batching={"max_batch_records": 16, "max_wait_ms": 10},
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry, process_metrics=False)
    tagger = SlowTagger(model.load(tiny_model))  # 2.5 s a batch of 16: far behind the producer
    stop = threading.Event()
    pipeline = Pipeline(
        settings, tagger, Source(settings, metrics), Sink(settings), metrics, Health(60), stop
    )
    thread = threading.Thread(target=pipeline.run)
    thread.start()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    try:
        deadline = time.monotonic() + 8  # a steady stream of 200 messages/s for 8 s
        i = 0
        while time.monotonic() < deadline:
            producer.send(
                topics.input, value=f'{{"id": "{i}", "text": "Oslo is in Norway ."}}'.encode()
            )
            i += 1
            time.sleep(0.005)
        producer.flush()
        partitions = sorted(cluster.end_offsets(topics.input))
        seen = None
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up:  # commits go on every 2.5 s: compare between two
            before = broker_lag(cluster, topics.group, topics.input)
            time.sleep(1.2)  # two refreshes of the gauge
            gauge = gauge_lag(registry, topics.input, partitions)
            after = broker_lag(cluster, topics.group, topics.input)
            seen = (before, gauge, after)
            if before == after and gauge == {p: float(n) for p, n in after.items()}:
                break
        else:
            raise AssertionError(
                f"gauge never equalled the broker's lag: (before, gauge, after) = {seen}"
            )
        assert sum(after.values()) > 500, f"a real backlog: {after}"
    finally:
        producer.close()
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
