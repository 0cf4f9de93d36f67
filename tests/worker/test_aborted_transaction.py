"""A batch whose offset commit the group refuses (a stale generation: the group is rebalancing),
then a revocation of some of its partitions (issue 21). The group's committed offsets must never
pass a record without a delivered output, so the partitions' next owner starts at or before
every record this worker gave up.

Broker-free: the consumer is `FakeSource` (moving partitions as kafka-python does under each
protocol), the producer runs `Sink`'s own transaction steps over kafka-python's transaction
manager with a scripted coordinator (`ScriptedProducer`); tests/integration/
test_aborted_transaction.py forces the same interleaving on the real broker."""

from __future__ import annotations

import pytest
from kafka.errors import IllegalGenerationError

from tagstream.worker.records import TopicPartition
from tests.worker.fakes import FakeSink, FakeSource, Journal, record
from tests.worker.test_pipeline import make, turn_until

P = [TopicPartition("in", p) for p in range(4)]
KEPT, MOVED = {P[0], P[1]}, {P[2], P[3]}


def feed(source: FakeSource, first: int, partitions=P) -> list:
    batch = [record("in", tp.partition, first) for tp in partitions]
    source.polls.append(batch)
    return batch


def committed(source: FakeSource, sink: FakeSink) -> dict[TopicPartition, int]:
    """The group's committed offsets, whichever way they were committed."""
    return {**source.committed, **sink.group_committed}


def undelivered_below_committed(consumed, source: FakeSource, sink: FakeSink) -> list:
    """Records the group has committed past without an output a read_committed reader sees."""
    done = {(o.entry.record.source.tp, o.entry.record.source.offset) for o in sink.delivered}
    marks = committed(source, sink)
    return sorted(
        (r.tp, r.offset)
        for r in consumed
        if r.offset < marks.get(r.tp, 0) and (r.tp, r.offset) not in done
    )


def refuse_next_commit(source: FakeSource, sink: FakeSink, transactional: bool) -> None:
    """The group coordinator refuses the next batch's offsets: the generation is stale."""
    if transactional:
        sink.producer.refuse_offsets(IllegalGenerationError)
    else:
        source.fail_commits = 1


def revoke_two(source: FakeSource, strategy: str) -> None:
    if strategy == "cooperative-sticky":  # only what leaves; its position goes with it
        source.rebalance(revoked=MOVED, assigned=set(), keep_position=False)
    else:  # eager: everything revoked, the kept half assigned again with its position
        source.rebalance(revoked=set(P), assigned=KEPT, keep_position=True)


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_a_refused_commit_then_a_revocation_commits_nothing_past_an_undelivered_record(
    strategy, delivery
):
    transactional = delivery == "exactly_once"
    journal, source, sink, _, pipeline = make(
        transactional=transactional, batch=4, wait_ms=50, partitions=4
    )
    consumed = feed(source, 10)
    turn_until(pipeline, lambda: committed(source, sink).get(P[3]) == 11)

    # 1. The next batch (offset 11 of every partition) is delivered, but its commit is refused.
    refuse_next_commit(source, sink, transactional)
    consumed += feed(source, 11)
    if transactional:
        turn_until(pipeline, lambda: "abort" in journal.names())
    else:
        turn_until(pipeline, lambda: source.fail_commits == 0)
    if transactional:  # aborted: every partition is consumed again from 11
        assert ("seek", dict.fromkeys(P, 11)) in journal.events

    # 2. The rebalance moves two of its partitions to another worker.
    revoke_two(source, strategy)
    pipeline.turn()
    assert source.owned() == KEPT

    # 3. This worker goes on with the partitions it kept.
    consumed += feed(source, 11 if transactional else 12, KEPT)
    turn_until(pipeline, lambda: all(committed(source, sink).get(tp, 0) >= 12 for tp in KEPT))

    # The new owner of the moved partitions starts at the group's committed offset.
    assert undelivered_below_committed(consumed, source, sink) == []
    if transactional:  # the aborted batch's records there are the new owner's to label
        assert {tp: committed(source, sink)[tp] for tp in MOVED} == dict.fromkeys(MOVED, 11)


def test_the_next_transaction_commits_only_its_own_offsets():
    """kafka-python 3.0.12 keeps the offsets of a refused TxnOffsetCommit and sends them again
    with the next transaction's; `Sink.begin` drops them (`patches.forget_failed_offsets`)."""
    sink = FakeSink(Journal(), transactional=True)
    source = FakeSource(sink.journal, partitions=4)
    sink.begin()
    sink.producer.refuse_offsets(IllegalGenerationError)
    with pytest.raises(Exception, match="IllegalGeneration"):
        sink.send_offsets(dict.fromkeys(P, 12), source.group_metadata())
    sink.abort()

    sink.begin()
    sink.send_offsets({P[0]: 11}, source.group_metadata())
    sink.commit()
    assert sink.producer.offset_commits[-1] == {P[0]: 11}
    assert sink.group_committed == {P[0]: 11}
