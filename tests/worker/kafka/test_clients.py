"""TAGSTREAM_KAFKA__RECONNECT_BACKOFF_MAX_MS reaches every Kafka client the worker makes: the
group consumer, the lag monitor's consumer, the producer and the start-up admin client (no
broker: the kafka-python classes are replaced by recorders)."""

from __future__ import annotations

import os
import time
from typing import ClassVar

import pytest
from prometheus_client import CollectorRegistry

from tagstream.worker.kafka import clients, consumer, producer
from tagstream.worker.metrics import Metrics
from tagstream.worker.settings import load_settings


class Recorder:
    """Stands in for a kafka-python client class: records each instance's keyword arguments."""

    made: ClassVar[list[tuple[str, dict]]] = []

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        Recorder.made.append((self.name, kwargs))
        return _Client()


class _Client:
    def __getattr__(self, name):
        return lambda *a, **k: {}


@pytest.fixture
def recorded(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TAGSTREAM_"):
            monkeypatch.delenv(name)
    Recorder.made = []
    # every client is built in one module: the group's and the lag monitor's consumers too
    monkeypatch.setattr(clients, "KafkaConsumer", Recorder("consumer"))
    monkeypatch.setattr(clients, "KafkaProducer", Recorder("producer"))
    monkeypatch.setattr(clients, "KafkaAdminClient", Recorder("admin"))
    return Recorder.made


@pytest.mark.parametrize("value, expected", [(None, 2000), ("750", 750)])
def test_every_client_gets_the_reconnect_backoff(recorded, monkeypatch, value, expected):
    if value is not None:
        monkeypatch.setenv("TAGSTREAM_KAFKA__RECONNECT_BACKOFF_MAX_MS", value)
    monkeypatch.setenv("TAGSTREAM_KAFKA__LAG_INTERVAL_S", "0.05")
    settings = load_settings()
    src = consumer.Source(settings, Metrics(CollectorRegistry(), process_metrics=False))
    try:
        deadline = time.monotonic() + 5
        while sum(name == "consumer" for name, _ in recorded) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)  # the lag monitor makes its consumer on its first refresh
    finally:
        src.lag_monitor.stop()
    producer.Sink(settings)
    names = sorted(name for name, _ in recorded)
    assert names == ["admin", "consumer", "consumer", "producer"], names
    assert {kwargs["reconnect_backoff_max_ms"] for _, kwargs in recorded} == {expected}


def test_reconnect_backoff_bounds(monkeypatch):
    from tagstream.worker.settings import ConfigError

    for name in list(os.environ):
        if name.startswith("TAGSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TAGSTREAM_KAFKA__RECONNECT_BACKOFF_MAX_MS", "10")
    with pytest.raises(ConfigError, match="TAGSTREAM_KAFKA__RECONNECT_BACKOFF_MAX_MS"):
        load_settings()


def test_extra_options_reach_every_client(recorded, monkeypatch):
    monkeypatch.setenv("TAGSTREAM_KAFKA__CONSUMER_EXTRA_CONFIG", '{"fetch_max_bytes": 1048576}')
    monkeypatch.setenv("TAGSTREAM_KAFKA__PRODUCER_EXTRA_CONFIG", '{"max_block_ms": 5000}')
    settings = load_settings()
    consumer.Source(settings, Metrics(CollectorRegistry(), process_metrics=False)).close(0)
    clients.lag_consumer(settings.kafka)
    clients.probe_consumer(settings.kafka)
    producer.Sink(settings)
    made = {(name, kwargs.get("client_id")): kwargs for name, kwargs in recorded}
    consumers = [kw for (name, _), kw in made.items() if name == "consumer"]
    assert len(consumers) == 3 and all(kw["fetch_max_bytes"] == 1048576 for kw in consumers)
    (sent,) = [kw for (name, _), kw in made.items() if name == "producer"]
    assert sent["max_block_ms"] == 5000 and sent["acks"] == "all"


@pytest.mark.parametrize(
    "variable, value, says",
    [
        ("CONSUMER", '{"fetch_max_bytez": 1}', "fetch_max_bytez: not a kafka-python consumer"),
        ("CONSUMER", '{"group_id": "other"}', "group_id: set by the worker"),
        ("CONSUMER", '{"ssl_cafile": "/x"}', "ssl_cafile: set by the worker"),
        ("CONSUMER", '{"enable_auto_commit": true}', "enable_auto_commit: offsets are committed"),
        ("CONSUMER", '{"isolation_level": "read_uncommitted"}', "isolation_level: the worker"),
        ("PRODUCER", '{"acks": 1}', "acks: outputs are acknowledged"),
        ("PRODUCER", '{"enable_idempotence": false}', "enable_idempotence"),
        ("PRODUCER", '{"partitioner": "x"}', "partitioner: takes a Python object"),
    ],
)
def test_an_extra_option_the_worker_owns_or_does_not_know_is_refused(
    recorded, monkeypatch, variable, value, says
):
    monkeypatch.setenv(f"TAGSTREAM_KAFKA__{variable}_EXTRA_CONFIG", value)
    k = load_settings().kafka
    with pytest.raises(ValueError, match=f"TAGSTREAM_KAFKA__{variable}_EXTRA_CONFIG: .*{says}"):
        clients.extra_config(k, variable.lower())


def test_every_option_the_worker_sets_is_owned_or_unsafe(recorded):
    """So an extra option can never override one of them, whatever the settings."""
    settings = load_settings(delivery="exactly_once")
    consumer.Source(settings, Metrics(CollectorRegistry(), process_metrics=False)).close(0)
    producer.Sink(settings)
    for name, kwargs in recorded:
        role = "consumer" if name == "consumer" else "producer" if name == "producer" else None
        if role is None:
            continue
        loose = {
            option
            for option in kwargs
            if option not in clients.OWNED[role]
            and option not in clients.UNSAFE[role]
            and not option.startswith(("sasl_", "ssl_"))
        }
        assert not loose, (role, loose)
