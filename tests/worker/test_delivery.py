"""The delivery order without a broker: outputs before offsets, transactions step by step,
a failed commit retried (and logged once per burst), an aborted transaction commits nothing."""

from __future__ import annotations

import logging

import pytest
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from tagstream.worker.delivery import Delivery
from tagstream.worker.kafka.producer import DeliveryError
from tagstream.worker.metrics import Metrics
from tagstream.worker.records import DeadLetter, LabelledRecord, TextRecord, TopicPartition
from tagstream.worker.settings import load_settings
from tests.worker.fakes import FakeSink, FakeSource, Journal, record


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(transactional: bool = False, waiting=lambda: None, delivery_timeout_s: float = 5.0):
    journal = Journal()
    settings = load_settings(
        delivery="exactly_once" if transactional else "at_least_once",
        kafka={"output_topic": "out", "dead_letter_topic": "dlq", "input_topic": "in"},
    )
    source = FakeSource(journal)
    sink = FakeSink(journal, transactional=transactional, delivery_timeout_s=delivery_timeout_s)
    metrics = Metrics(CollectorRegistry(), process_metrics=False)
    clock = Clock()
    return (
        journal,
        source,
        sink,
        metrics,
        clock,
        Delivery(settings, source, sink, metrics, "fake@0", clock, waiting),
    )


def results(offsets: list[tuple[int, int]]):
    out = []
    for partition, offset in offsets:
        src = record("in", partition, offset)
        if offset % 5 == 4:
            out.append(DeadLetter(src, "invalid_json", "not JSON"))
        else:
            out.append(
                LabelledRecord(TextRecord(src, f"id-{partition}-{offset}", "Oslo .", 2, None), ())
            )
    return out


def test_at_least_once_produces_everything_before_committing_the_next_offsets():
    journal, source, sink, _, _, delivery = make()
    assert delivery.deliver(results([(0, 3), (0, 4), (1, 7)]))
    assert journal.names() == ["write", "commit"]
    assert journal.events[1][1] == {TopicPartition("in", 0): 5, TopicPartition("in", 1): 8}
    assert [o.topic for o in sink.written] == ["out", "dlq", "out"]  # consumption order kept


def test_a_failed_commit_is_retried_and_logged_once_per_burst(caplog):
    journal, source, sink, metrics, clock, delivery = make()
    source.fail_commits = 30
    caplog.set_level(logging.WARNING, logger="tagstream.worker.delivery")
    assert delivery.deliver(results([(0, 0)]))  # delivered; the commit failed
    assert source.committed == {}
    for _ in range(29):  # a rebalance that lasts: retried every 0.1 s
        clock.now += 0.11
        assert not delivery.retry_commit()
    clock.now += 0.11
    assert delivery.retry_commit()  # the 31st try goes through
    assert source.committed == {TopicPartition("in", 0): 1}
    warnings = [r for r in caplog.records if "offset commit failed" in r.getMessage()]
    assert len(warnings) == 1, "one line for a burst of 30 failures, not 30"
    assert metrics.registry.get_sample_value("tagstream_commit_failures_total") == 30


def test_exactly_once_steps_in_order_and_records_the_offsets():
    journal, source, sink, _, _, delivery = make(transactional=True)
    assert delivery.deliver(results([(1, 0), (1, 1)]))
    assert journal.names() == ["begin", "write", "send_offsets", "commit_transaction"]
    assert journal.events[2][1] == {TopicPartition("in", 1): 2}
    assert source.committed == {TopicPartition("in", 1): 2}


@pytest.mark.parametrize("step", ["send_offsets", "commit_transaction"])
def test_a_failed_transaction_is_aborted_and_commits_nothing(step):
    journal, source, sink, _, _, delivery = make(transactional=True)
    sink.fail_next[step] = KafkaError("fenced by the coordinator")
    assert delivery.deliver(results([(0, 0)])) is False  # the caller consumes the batch again
    assert journal.names()[-1] == "abort"
    assert source.committed == {}


def test_an_unacknowledged_output_in_a_transaction_aborts_and_raises():
    journal, source, sink, _, _, delivery = make(transactional=True)
    sink.fail_next["write"] = DeliveryError([(None, TimeoutError("no ack"))])
    with pytest.raises(DeliveryError):
        delivery.deliver(results([(0, 0)]))
    assert journal.names() == ["begin", "write", "abort"]
    assert source.committed == {}


@pytest.mark.parametrize("silent", ["offsets", "end_txn"])
def test_a_transaction_step_nobody_answers_stops_the_worker_within_the_delivery_timeout(silent):
    """kafka-python waits on send_offsets_to_transaction and commit_transaction without a
    timeout; the sink gives up after the delivery timeout, and, the transaction's outcome being
    unknown, the worker stops (a restart with the same transactional id settles it)."""
    import time

    from tagstream.worker.kafka.producer import TransactionTimeout

    beats = []
    journal, source, sink, _, _, delivery = make(
        transactional=True, waiting=lambda: beats.append(1), delivery_timeout_s=0.3
    )
    sink.producer.silent.add(silent)
    started = time.monotonic()
    with pytest.raises(TransactionTimeout, match="got no answer"):
        delivery.deliver(results([(0, 0)]))
    assert time.monotonic() - started < 5
    assert len(beats) >= 1  # the liveness heartbeat went on while waiting
    assert "abort" not in journal.names()
    assert source.committed == {} and sink.group_committed == {}
