"""Metric names, units and label handling, on a fresh registry."""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, generate_latest

from tagstream.worker import messages
from tagstream.worker.metrics import Metrics
from tagstream.worker.records import TopicPartition


def test_names_are_prefixed_and_in_base_units():
    registry = CollectorRegistry()
    Metrics(registry, process_metrics=False)
    names = {m.name for m in registry.collect()}
    assert names == {
        "tagstream_records_consumed",
        "tagstream_records_produced",
        "tagstream_records_labelled",
        "tagstream_records_dead_lettered",
        "tagstream_spans",
        "tagstream_batch_records",
        "tagstream_batch_tokens",
        "tagstream_inference_seconds",
        "tagstream_end_to_end_latency_seconds",
        "tagstream_commit_failures",
        "tagstream_unreadable_offsets",
        "tagstream_rebalances",
        "tagstream_consumer_lag",
        "tagstream_assigned_partitions",
        "tagstream_model_info",
        "tagstream_build_info",
    }
    text = generate_latest(registry).decode()
    assert (
        "tagstream_records_consumed_total" in text
        or "# TYPE tagstream_records_consumed counter" in text
    )
    assert "tagstream_end_to_end_latency_seconds_bucket" in text


def test_every_dead_letter_reason_starts_at_zero():
    registry = CollectorRegistry()
    Metrics(registry, process_metrics=False)
    for reason in messages.REASONS:
        assert (
            registry.get_sample_value("tagstream_records_dead_lettered_total", {"reason": reason})
            == 0
        )


def test_counters_and_histograms_record_what_happened():
    registry = CollectorRegistry()
    m = Metrics(registry, process_metrics=False)
    m.records_consumed.labels("in").inc(3)
    m.end_to_end_latency.observe(0.02)
    m.end_to_end_latency.observe(0.2)
    m.batch_records.observe(64)
    assert registry.get_sample_value("tagstream_records_consumed_total", {"topic": "in"}) == 3
    assert registry.get_sample_value("tagstream_end_to_end_latency_seconds_count") == 2
    assert (
        registry.get_sample_value("tagstream_end_to_end_latency_seconds_bucket", {"le": "0.025"})
        == 1
    )
    assert registry.get_sample_value("tagstream_batch_records_bucket", {"le": "64.0"}) == 1


def test_model_info_keeps_one_series():
    registry = CollectorRegistry()
    m = Metrics(registry, process_metrics=False)
    m.set_models([("en-news", "1.0.0", "bfloat16")])
    m.set_models([("en-news", "1.1.0", "float32")])
    new = {"name": "en-news", "version": "1.1.0", "precision": "float32"}
    assert registry.get_sample_value("tagstream_model_info", new) == 1
    old = {"name": "en-news", "version": "1.0.0", "precision": "bfloat16"}
    assert registry.get_sample_value("tagstream_model_info", old) is None


def test_lag_series_go_away_with_their_partitions():
    registry = CollectorRegistry()
    m = Metrics(registry, process_metrics=False)
    tp = TopicPartition("in", 2)
    m.set_lag(tp, 17)
    assert (
        registry.get_sample_value("tagstream_consumer_lag", {"topic": "in", "partition": "2"}) == 17
    )
    m.forget_partitions([tp, TopicPartition("in", 9)])
    assert (
        registry.get_sample_value("tagstream_consumer_lag", {"topic": "in", "partition": "2"})
        is None
    )


def test_process_metrics_for_sizing():
    registry = CollectorRegistry()
    Metrics(registry)
    assert registry.get_sample_value("process_resident_memory_bytes") > 0


def test_build_info_names_the_versions_running():
    from importlib import metadata

    registry = CollectorRegistry()
    Metrics(registry, process_metrics=False)
    labels = {
        "version": metadata.version("tagstream"),
        "python": platform.python_version(),
        "kafka_python": metadata.version("kafka-python"),
        "contract": messages.CONTRACT_VERSION,
    }
    assert registry.get_sample_value("tagstream_build_info", labels) == 1
