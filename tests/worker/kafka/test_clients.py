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
