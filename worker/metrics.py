"""The worker's Prometheus metrics: prefix ``tagstream_``, base units, a registry passed in.

Tests pass a fresh ``CollectorRegistry()`` and read values with ``registry.get_sample_value``.
"""

from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from .messages import CONTRACT_VERSION, REASONS
from .records import TopicPartition

BATCH_RECORDS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_TOKENS_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
INFERENCE_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LATENCY_SECONDS_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
)


def build_versions() -> tuple[str, str, str, str]:
    """tagstream's version, Python's, kafka-python's (its distribution's metadata, without
    importing it) and the message contract's."""

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return (
        installed("tagstream"),
        platform.python_version(),
        installed("kafka-python"),
        CONTRACT_VERSION,
    )


class Metrics:
    """Every metric the worker exports. One instance per process (per registry)."""

    def __init__(self, registry: CollectorRegistry, *, process_metrics: bool = True):
        self.registry = registry
        if process_metrics:  # process_cpu_seconds_total, process_resident_memory_bytes, ...
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        self.records_consumed = Counter(
            "tagstream_records_consumed",
            "Records consumed from the input topic.",
            ["topic"],
            registry=registry,
        )
        self.records_produced = Counter(
            "tagstream_records_produced",
            "Labelled records acknowledged by the output topic.",
            ["topic"],
            registry=registry,
        )
        self.records_dead_lettered = Counter(
            "tagstream_records_dead_lettered",
            "Records acknowledged by the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.records_labelled = Counter(
            "tagstream_records_labelled",
            "Labelled records acknowledged by the output topic, by model (name@version).",
            ["model"],
            registry=registry,
        )
        self.spans = Counter(
            "tagstream_spans", "Entity spans published, by label.", ["label"], registry=registry
        )
        self.batch_records = Histogram(
            "tagstream_batch_records",
            "Records per micro-batch (dead letters included).",
            buckets=BATCH_RECORDS_BUCKETS,
            registry=registry,
        )
        self.batch_tokens = Histogram(
            "tagstream_batch_tokens",
            "Tokens per micro-batch.",
            buckets=BATCH_TOKENS_BUCKETS,
            registry=registry,
        )
        self.inference_seconds = Histogram(
            "tagstream_inference_seconds",
            "Time to tag one micro-batch.",
            buckets=INFERENCE_SECONDS_BUCKETS,
            registry=registry,
        )
        self.end_to_end_latency = Histogram(
            "tagstream_end_to_end_latency_seconds",
            "From the input record's timestamp to its output being acknowledged by the broker.",
            buckets=LATENCY_SECONDS_BUCKETS,
            registry=registry,
        )
        self.commit_failures = Counter(
            "tagstream_commit_failures",
            "Offset commits (or transactions) that failed.",
            registry=registry,
        )
        self.unreadable_offsets = Counter(
            "tagstream_unreadable_offsets",
            "Input offsets the Kafka client could not parse and the worker moved past, each "
            "range written as one dead letter (TAGSTREAM_KAFKA__ON_UNREADABLE=dead_letter).",
            ["topic"],
            registry=registry,
        )
        self.rebalances = Counter(
            "tagstream_rebalances",
            "Consumer-group rebalances this worker took part in.",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "tagstream_consumer_lag",
            "Records in the partition after the group's committed offset (end offset minus "
            "committed offset), refreshed every TAGSTREAM_KAFKA__LAG_INTERVAL_S.",
            ["topic", "partition"],
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "tagstream_assigned_partitions",
            "Input partitions assigned to this worker.",
            registry=registry,
        )
        self.model_info = Gauge(
            "tagstream_model_info",
            "The loaded model (value 1) and its numeric path.",
            ["name", "version", "precision"],
            registry=registry,
        )
        # What this process runs: set once, at construction (`build_versions`).
        self.build_info = Gauge(
            "tagstream_build_info",
            "The running tagstream (value 1): its version, Python's, kafka-python's and the "
            "message contract's.",
            ["version", "python", "kafka_python", "contract"],
            registry=registry,
        )
        self.build_info.labels(*build_versions()).set(1)
        for reason in REASONS:  # start every series at 0 so rate() and alerts see them
            self.records_dead_lettered.labels(reason)

    def set_models(self, models: list[tuple[str, str, str]]) -> None:
        """The loaded models: (name, version, precision) each."""
        self.model_info.clear()
        for name, version, precision in models:
            self.model_info.labels(name, version, precision).set(1)

    def set_lag(self, tp: TopicPartition, lag: int) -> None:
        self.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    def forget_partitions(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            try:
                self.consumer_lag.remove(tp.topic, str(tp.partition))
            except KeyError:
                pass
