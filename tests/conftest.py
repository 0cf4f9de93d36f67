"""Shared fixtures: one real Kafka broker per test session, and a tiny random model.

The broker is ``$KAFKA_BOOTSTRAP_SERVERS`` when set (``make test`` sets it), otherwise the
local one from ``scripts/kafka-local up``, started here and stopped at the end.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bootstrap() -> str:
    from tests import kafka_local

    try:
        servers = kafka_local.ensure_broker()
    except kafka_local.KafkaLocalError as exc:
        pytest.fail(
            "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or make scripts/kafka-local work "
            f"(needs a JDK >= 17 and Maven):\n{exc}"
        )
    yield servers
    kafka_local.stop_broker()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete, randomly initialised artifact: real code path, no trained weights."""
    from tagstream.model.training.export import export_random

    return export_random(tmp_path_factory.mktemp("model") / "tiny-random.pt")
