"""The worker's loop without a broker: fakes for the consumer, producer and tagger
(tests/worker/fakes.py). Rebalance rewinds, an aborted transaction, the one-batch-in-flight
delivery order and the drain deadline, each checked against the journal of Kafka calls."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry

from tagstream.worker.http import Health
from tagstream.worker.metrics import Metrics
from tagstream.worker.pipeline import Pipeline
from tagstream.worker.records import TopicPartition
from tagstream.worker.settings import load_settings
from tests.worker.fakes import EchoTagger, FakeSink, FakeSource, Journal, record

P0, P1 = TopicPartition("in", 0), TopicPartition("in", 1)


def make(
    tagger=None, transactional=False, batch=4, wait_ms=1000, drain_s=5.0, partitions=2, model=None
):
    journal = Journal()
    settings = load_settings(
        model=model or {},
        delivery="exactly_once" if transactional else "at_least_once",
        drain_timeout_s=drain_s,
        kafka={"output_topic": "out", "dead_letter_topic": "dlq", "input_topic": "in"},
        batching={"max_batch_records": batch, "max_wait_ms": wait_ms},
    )
    source = FakeSource(journal, partitions=partitions)
    sink = FakeSink(journal, transactional=transactional)
    stop = threading.Event()
    pipeline = Pipeline(
        settings,
        tagger or EchoTagger(),
        source,
        sink,
        Metrics(CollectorRegistry(), process_metrics=False),
        Health(60),
        stop,
    )
    return journal, source, sink, stop, pipeline


def turn_until(pipeline: Pipeline, condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        pipeline.turn()
        time.sleep(0.001)


def records(partition: int, first: int, n: int):
    return [record("in", partition, o) for o in range(first, first + n)]


def test_a_batch_is_delivered_only_after_the_one_before_is_committed():
    journal, source, sink, _, pipeline = make(batch=2)
    source.fail_commits = 3  # the first batch's commit fails three times (a rebalance, say)
    source.polls.extend([records(0, 0, 2), records(0, 2, 2)])
    turn_until(pipeline, lambda: source.committed.get(P0) == 4)
    names = journal.names()
    first_write, second_write = [i for i, n in enumerate(names) if n == "write"]
    successful_commit = next(
        i
        for i, e in enumerate(journal.events)
        if e[0] == "commit"
        and e[1] == {P0: 2}
        and i > first_write
        and names[:i].count("commit") == 3
    )
    assert first_write < successful_commit < second_write, names


def test_eager_rebalance_consumes_the_dropped_records_again_from_the_first():
    """Records of a revoked partition still waiting in the batcher are dropped; when the
    partition comes back with its fetch position kept (eager), it is sought back to them."""
    journal, source, sink, _, pipeline = make(batch=100, wait_ms=60_000)
    source.polls.append(records(1, 10, 3))
    pipeline.turn()  # batched, not yet due
    source.rebalance(revoked={P0, P1}, assigned={P0, P1}, keep_position=True)
    pipeline.turn()
    assert ("seek", {P1: 10}) in journal.events
    assert "write" not in journal.names(), "the dropped records were not delivered"


def test_cooperative_revocation_never_rewinds_a_partition_that_came_back_later():
    """Under the cooperative protocol a revoked partition loses its position; when it comes
    back in a later rebalance, the group's committed offset (set by its owner meanwhile) is
    where reading resumes: no seek to the stale dropped offset (the duplicates of issue 12)."""
    journal, source, sink, _, pipeline = make(batch=100, wait_ms=60_000)
    source.polls.append(records(1, 10, 3))
    pipeline.turn()
    source.rebalance(revoked={P1}, assigned=set(), keep_position=False)  # a revoke-only round
    pipeline.turn()
    source.group_committed[P1] = 500  # another member worked on it meanwhile
    source.rebalance(revoked=set(), assigned={P1}, keep_position=False)  # it comes back
    pipeline.turn()
    assert not [e for e in journal.events if e[0] == "seek"], journal.events


def test_an_eager_rewind_never_goes_below_the_groups_committed_offset():
    journal, source, sink, _, pipeline = make(batch=100, wait_ms=60_000)
    source.polls.append(records(1, 10, 3))
    pipeline.turn()
    source.group_committed[P1] = 12  # committed past part of what was dropped
    source.rebalance(revoked={P0, P1}, assigned={P0, P1}, keep_position=True)
    pipeline.turn()
    assert ("seek", {P1: 12}) in journal.events


def test_an_aborted_transaction_consumes_its_batch_again():
    journal, source, sink, _, pipeline = make(transactional=True, batch=2)
    from kafka.errors import KafkaError

    sink.fail_next["commit_transaction"] = KafkaError("coordinator fenced the offsets")
    source.polls.append(records(0, 7, 2))
    turn_until(pipeline, lambda: "abort" in journal.names())
    assert ("seek", {P0: 7}) in journal.events
    assert P0 not in source.committed


def test_the_drain_ends_by_its_deadline_when_the_model_hangs():
    class Hanging(EchoTagger):
        def __init__(self):
            super().__init__()
            self.release = threading.Event()

        def tag_prepared(self, docs):
            self.release.wait(30)
            return super().tag_prepared(docs)

    tagger = Hanging()
    journal, source, sink, stop, pipeline = make(tagger=tagger, batch=2, drain_s=0.5)
    source.polls.append(records(0, 0, 2))
    turn_until(pipeline, lambda: pipeline.busy)
    stop.set()
    started = time.monotonic()
    status = pipeline.run()
    took = time.monotonic() - started
    tagger.release.set()
    assert status == 1 and took < 3.0, (status, took)
    assert "commit" not in journal.names(), "nothing undelivered is committed"


def test_a_batch_past_its_budget_is_dead_lettered_and_the_worker_goes_on():
    """Tagging a batch may take `model.batch_timeout_s` plus `model.timeout_ms_per_token` per
    token; past that its records are delivered as dead letters (tagging_timeout) and committed,
    so a restart does not meet them again; the next batch waits until the model is free, and
    /healthz turns 503 only if the model stays stuck `max_loop_stall_s` past the budget."""
    import threading as th

    from tagstream.worker import messages
    from tagstream.worker.http import Health

    release = th.Event()

    class Stuck(EchoTagger):
        def tag_prepared(self, docs):
            if any(d.num_tokens > 3 for d in docs):  # "a b c d": the pathological text
                assert release.wait(30)
            return super().tag_prepared(docs)

    now = [1000.0]
    journal = Journal()
    settings = load_settings(
        kafka={"output_topic": "out", "dead_letter_topic": "dlq", "input_topic": "in"},
        batching={"max_batch_records": 1, "max_wait_ms": 0},
        model={"batch_timeout_s": 10, "timeout_ms_per_token": 0},
        http={"max_loop_stall_s": 60},
    )
    source, sink = FakeSource(journal), FakeSink(journal)
    health = Health(60, clock=lambda: now[0])
    tagger = Stuck()
    pipeline = Pipeline(
        settings,
        tagger,
        source,
        sink,
        Metrics(CollectorRegistry(), process_metrics=False),
        health,
        th.Event(),
        clock=lambda: now[0],
    )
    slow = record("in", 0, 5, b'{"id": "slow", "text": "a b c d"}')
    source.polls.extend([[slow], [record("in", 0, 6)]])
    try:
        pipeline.turn()  # the slow one goes to the model
        pipeline.turn()  # the next one is consumed, and waits
        assert source.committed == {}
        now[0] += 11  # past the budget
        turn_until(pipeline, lambda: source.committed.get(P0) == 6)
        (dead,) = [o for o in sink.written if o.topic == "dlq"]
        assert dict(dead.headers)[messages.HEADER_ERROR_CLASS] == b"tagging_timeout"
        health.beat()  # (run() beats on every turn)
        assert health.live()[0]  # late, but not yet stuck
        assert len(sink.written) == 1  # offset 6 waits for the model
        now[0] += 61
        health.beat()
        assert health.live() == (False, "the model has been tagging a batch 62.0s past its budget")
        release.set()
        turn_until(pipeline, lambda: source.committed.get(P0) == 7)
        assert [o.topic for o in sink.written] == ["dlq", "out"]
        assert health.live()[0]
    finally:
        release.set()
