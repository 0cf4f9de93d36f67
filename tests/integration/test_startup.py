"""Start-up checks against the real broker."""

from __future__ import annotations

from tests.integration.kit import Topics


def test_missing_topics_are_named_and_the_worker_exits_1(start_worker):
    topics = Topics("no-such-input", "no-such-output", "no-such-dlq", "group-missing")
    worker = start_worker(topics)
    assert worker.proc.wait(timeout=90) == 1
    log = worker.log()
    assert "topics do not exist" in log and "no-such-input" in log and "no-such-dlq" in log


def test_unreachable_broker_exits_1_without_hanging(topics, start_worker):
    worker = start_worker(topics, kafka__bootstrap_servers="127.0.0.1:1", kafka__request_timeout_ms="5000",
                          kafka__delivery_timeout_ms="10000")
    assert worker.proc.wait(timeout=120) == 1
    assert "cannot connect to Kafka" in worker.log()
