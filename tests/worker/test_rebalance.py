"""Where the pipeline consumes a partition again after a rebalance (issue 12), with a fake
source that moves partitions the way kafka-python 3 does under each protocol:

* eager (range, roundrobin): every partition is revoked before the member rejoins, while
  kafka-python still holds it; the new assignment (all of it) is reported afterwards, and a
  partition assigned here again keeps its fetch position;
* cooperative (cooperative-sticky): after the rebalance, only the partitions that leave are
  revoked, and kafka-python has already dropped them with their position; an assignment is
  reported only when partitions are added, and an added partition starts from the group's
  committed offset;
* a lost membership drops every partition with its position.
"""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from tagstream.worker.http import Health
from tagstream.worker.metrics import Metrics
from tagstream.worker.pipeline import Pipeline
from tagstream.worker.records import SourceRecord, TopicPartition
from tagstream.worker.settings import load_settings

TOPIC = "in"
P = [TopicPartition(TOPIC, i) for i in range(6)]


def record(partition: int, offset: int) -> SourceRecord:
    value = json.dumps({"id": f"{partition}-{offset}", "text": "Oslo"}).encode()
    return SourceRecord(TOPIC, partition, offset, None, value, (), 0)


class FakeSource:
    def __init__(self, owned: set[TopicPartition]):
        self.held = set(owned)  # kafka-python's assignment: the partitions whose position it holds
        self._owned = set(owned)
        self._revoked: set[TopicPartition] = set()
        self._generation = 1
        self.committed: dict[TopicPartition, int] = {}  # the group's committed offsets
        self.sought: dict[TopicPartition, int] = {}
        self.next_poll: list[SourceRecord] = []

    # what the pipeline calls
    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]:
        records, self.next_poll = self.next_poll, []
        return records

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def update_lag(self) -> None: ...

    def take_revoked(self) -> set[TopicPartition]:
        revoked, self._revoked = self._revoked, set()
        return revoked

    def take_assigned(self) -> int:
        return self._generation

    def owned(self) -> set[TopicPartition]:
        return set(self._owned)

    def fetching(self) -> set[TopicPartition]:
        return set(self.held)

    def committed_offsets(self, partitions) -> dict[TopicPartition, int]:
        return {tp: self.committed[tp] for tp in partitions if tp in self.committed}

    def seek(self, offsets: dict[TopicPartition, int]) -> None:
        self.sought.update({tp: o for tp, o in offsets.items() if tp in self._owned})

    # what the group does
    def eager_revoke(self) -> None:
        self._revoked |= self._owned
        self._owned = set()

    def eager_assign(self, partitions: set[TopicPartition]) -> None:
        self.held = set(partitions)
        self._owned = set(partitions)
        self._generation += 1

    def cooperative(self, partitions: set[TopicPartition]) -> None:
        revoked, added = self._owned - partitions, partitions - self._owned
        self.held = set(partitions)
        self._owned = set(partitions)
        self._revoked |= revoked
        if added:
            self._generation += 1

    def lose(self) -> None:
        self._revoked |= self._owned
        self._owned = set()
        self.held = set()


@pytest.fixture
def make_pipeline(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    made = []

    def make(source: FakeSource) -> Pipeline:
        # Batches never come due: every record consumed stays undelivered.
        settings = load_settings(batching={"max_batch_records": 1000, "max_wait_ms": 3_600_000})
        tagger = SimpleNamespace(
            name="fake",
            version="0",
            prepare=lambda text: SimpleNamespace(num_tokens=1),
            tag_prepared=lambda docs: [[] for _ in docs],
        )
        sink = SimpleNamespace(transactional=False)
        metrics = Metrics(CollectorRegistry(), process_metrics=False)
        pipeline = Pipeline(
            settings, tagger, source, sink, metrics, Health(60.0), threading.Event()
        )
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline._executor.shutdown(wait=False)


def consume(pipeline: Pipeline, source: FakeSource, *records: SourceRecord) -> None:
    source.next_poll = list(records)
    pipeline.turn()


def test_cooperative_a_partition_that_comes_back_starts_from_the_committed_offset(make_pipeline):
    """The scale-out moves partitions away in a revoke-only round; when they come back, other
    members have committed far beyond what this worker dropped: no seek back."""
    source = FakeSource(set(P))
    pipeline = make_pipeline(source)
    consume(pipeline, source, record(2, 10), record(3, 20), record(3, 21), record(0, 5))
    source.cooperative({P[0], P[1]})  # revoke-only: kafka-python reports no assignment
    consume(pipeline, source)
    assert source.sought == {}

    source.committed.update({P[2]: 700, P[3]: 800})  # the other members' work
    source.cooperative(set(P))  # scale-in: the partitions are added back
    consume(pipeline, source, record(2, 700), record(3, 800))
    assert source.sought == {}  # kafka-python starts them at 700 and 800
    assert pipeline.queued == 3  # 0@5, 2@700, 3@800: nothing was dropped as stale


def test_cooperative_a_revoke_only_round_then_an_unrelated_assignment(make_pipeline):
    source = FakeSource(set(P))
    pipeline = make_pipeline(source)
    consume(pipeline, source, record(4, 10))
    source.cooperative({P[0], P[1], P[2]})  # P4 leaves
    consume(pipeline, source)
    source.cooperative({P[0], P[1], P[2], P[3]})  # P3 comes: an assignment, P4 not in it
    consume(pipeline, source)
    source.committed[P[4]] = 90
    source.cooperative(set(P))
    consume(pipeline, source)
    assert source.sought == {}


def test_eager_a_partition_assigned_here_again_is_consumed_again_from_its_first_dropped_record(
    make_pipeline,
):
    source = FakeSource(set(P))
    pipeline = make_pipeline(source)
    consume(pipeline, source, record(3, 20), record(3, 21), record(4, 30))
    source.committed.update({P[3]: 20, P[4]: 30})
    source.eager_revoke()
    source.eager_assign({P[0], P[1], P[2], P[3]})  # the same poll: revoked, then assigned
    consume(pipeline, source, record(3, 22), record(0, 1))
    assert source.sought == {P[3]: 20}  # kafka-python kept P3's position (22): seek back
    assert pipeline.queued == 1  # P3's record of this poll is stale; P0's is kept


def test_eager_a_rebalance_spanning_polls(make_pipeline):
    source = FakeSource(set(P))
    pipeline = make_pipeline(source)
    consume(pipeline, source, record(3, 20), record(5, 50))
    source.committed.update({P[3]: 20, P[5]: 50})
    source.eager_revoke()  # JoinGroup sent; the assignment comes in a later poll
    consume(pipeline, source)
    consume(pipeline, source)
    source.eager_assign({P[3], P[4]})
    consume(pipeline, source)
    assert source.sought == {P[3]: 20}

    consume(pipeline, source, record(3, 20))  # later rebalances: no stale rewinds left
    source.eager_revoke()
    source.eager_assign({P[3], P[4], P[5]})
    consume(pipeline, source)
    assert source.sought == {P[3]: 20}


def test_a_rewind_never_goes_below_the_groups_committed_offset(make_pipeline):
    source = FakeSource(set(P))
    pipeline = make_pipeline(source)
    consume(pipeline, source, record(3, 20))
    source.committed[P[3]] = 25  # committed beyond what this worker dropped
    source.eager_revoke()
    source.eager_assign({P[3]})
    consume(pipeline, source)
    assert source.sought == {P[3]: 25}


def test_after_a_lost_membership_the_partitions_start_from_the_committed_offset(make_pipeline):
    source = FakeSource(set(P))
    pipeline = make_pipeline(source)
    consume(pipeline, source, record(2, 10))
    source.lose()  # thrown out of the group: positions dropped; others take over
    consume(pipeline, source)
    source.committed[P[2]] = 300
    source.eager_assign(set(P))
    consume(pipeline, source)
    assert source.sought == {}
