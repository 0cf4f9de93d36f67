"""Broker-free stand-ins for the worker's Kafka ports (`Source`, `Sink`) and the tagger, with
one shared journal of calls, so tests can check the order of delivery steps.

Each fake does what the real one promises and no more: offsets a commit was asked for, records
a write was asked for, a transaction's steps; failures are injected with ``fail_next``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

from kafka.errors import CommitFailedError, KafkaError
from kafka.producer.transaction_manager import (
    AddOffsetsToTxnHandler,
    EndTxnHandler,
    ProducerIdAndEpoch,
    TransactionManager,
    TransactionState,
    TxnOffsetCommitHandler,
)

from tagstream.worker.kafka.consumer import Source
from tagstream.worker.kafka.producer import Sink
from tagstream.worker.records import Outgoing, SourceRecord, TopicPartition


@dataclass
class Journal:
    """What happened, in order: ("write", [values]), ("commit", {tp: offset}), ("begin",) ..."""

    events: list[tuple] = field(default_factory=list)

    def names(self) -> list[str]:
        return [e[0] for e in self.events]


def record(
    topic: str,
    partition: int,
    offset: int,
    value: bytes = b'{"id": "x", "text": "Oslo ."}',
    key: bytes | None = None,
) -> SourceRecord:
    return SourceRecord(topic, partition, offset, key, value, (), 1_700_000_000_000)


class FakeSource:
    """The consumer side: owned partitions, queued poll results, commits, seeks, rebalances."""

    commit_errors = Source.commit_errors  # it fails as kafka-python does

    def __init__(self, journal: Journal, topic: str = "in", partitions: int = 2):
        self.journal = journal
        self.topic = topic
        self._owned = {TopicPartition(topic, p) for p in range(partitions)}
        self.polls: deque[list[SourceRecord]] = deque()
        self.committed: dict[TopicPartition, int] = {}
        self.group_committed: dict[TopicPartition, int] = {}  # what other members committed
        self.fail_commits = 0  # the next n commits raise CommitFailedError
        self._revoked: set[TopicPartition] = set()
        self._generation = 1
        self._fetching: set[TopicPartition] = set(self._owned)
        self.paused = False
        self.sought: dict[TopicPartition, int] = {}

    # -- what the pipeline and delivery call
    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]:
        return self.polls.popleft() if self.polls else []

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def owned(self) -> set[TopicPartition]:
        return set(self._owned)

    def fetching(self) -> set[TopicPartition]:
        return set(self._fetching)

    def take_revoked(self) -> set[TopicPartition]:
        revoked, self._revoked = self._revoked, set()
        return revoked

    def take_assigned(self) -> int:
        return self._generation

    def committed_offsets(self, partitions) -> dict[TopicPartition, int]:
        merged = {**self.group_committed, **self.committed}
        return {tp: merged[tp] for tp in partitions if tp in merged}

    def seek(self, offsets: dict[TopicPartition, int]) -> None:
        owned = self.owned()
        done = {tp: o for tp, o in offsets.items() if tp in owned}
        if done:
            self.journal.events.append(("seek", done))
            self.sought.update(done)

    def group_metadata(self) -> object:
        from kafka.structs import ConsumerGroupMetadata

        return ConsumerGroupMetadata("group", self._generation, "member-1")

    def commit(
        self, offsets: dict[TopicPartition, int], waiting: Callable[[], float | None] = lambda: None
    ) -> None:
        self.journal.events.append(("commit", dict(offsets)))
        if self.fail_commits:
            self.fail_commits -= 1
            raise CommitFailedError("the group is rebalancing")
        self.committed.update(offsets)

    def record_committed(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def close(self, timeout_s: float = 5.0) -> None:
        self.journal.events.append(("close-consumer",))

    # -- what a test does to it
    def rebalance(
        self, revoked: set[TopicPartition], assigned: set[TopicPartition], keep_position: bool
    ) -> None:
        """A completed rebalance: ``revoked`` taken, then ``assigned`` given. ``keep_position``:
        the client still holds the revoked partitions' fetch positions (eager protocol)."""
        self._revoked |= revoked
        self._owned = (self._owned - revoked) | assigned
        self._fetching = (
            self._fetching | revoked if keep_position else self._fetching - revoked
        ) | assigned
        self._fetching &= self._owned | (revoked if keep_position else set())
        if assigned:  # kafka-python 3.0.12 reports an assignment only when partitions are added
            self._generation += 1


class ScriptedProducer:
    """The transactional half of a KafkaProducer with no broker behind it: kafka-python's own
    transaction manager, whose requests a script answers the way the transaction and group
    coordinators do. The offsets a TxnOffsetCommit carries become the group's committed offsets
    (`committed`) when the transaction commits, and are discarded when it aborts;
    `refuse_offsets(error)` answers the next TxnOffsetCommit with that error for every partition
    (as the group coordinator does when the generation is stale)."""

    def __init__(self) -> None:
        manager = TransactionManager(
            transactional_id="tagstream-test", transaction_timeout_ms=60_000, api_version=(4, 0)
        )
        manager.set_producer_id_and_epoch(ProducerIdAndEpoch(1, 0))
        manager._transition_to(TransactionState.INITIALIZING)
        manager._transition_to(TransactionState.READY)
        self._transaction_manager = manager
        self._sender = SimpleNamespace(wakeup=self._answer)  # the script answers at once
        self.committed: dict[TopicPartition, int] = {}  # the group's, as the coordinator has it
        self.offset_commits: list[dict[TopicPartition, int]] = []  # every TxnOffsetCommit sent
        self._in_transaction: dict[TopicPartition, int] = {}
        self._refuse: type[KafkaError] | None = None
        self.silent: set[str] = set()  # request kinds nobody answers: "end_txn", "offsets"

    def refuse_offsets(self, error: type[KafkaError]) -> None:
        self._refuse = error

    # KafkaProducer's transactional methods, as kafka-python 3 writes them
    def begin_transaction(self) -> None:
        self._transaction_manager.begin_transaction()

    def send_offsets_to_transaction(self, offsets, group_metadata) -> None:
        result = self._transaction_manager.send_offsets_to_transaction(offsets, group_metadata)
        self._answer()
        result.wait(0)

    def commit_transaction(self) -> None:
        result = self._transaction_manager.begin_commit()
        self._answer()
        result.wait(0)

    def abort_transaction(self) -> None:
        result = self._transaction_manager.begin_abort()
        self._answer()
        result.wait(0)

    def _answer(self) -> None:
        """What the sender thread and the coordinators do with each queued request."""
        while (handler := self._transaction_manager.next_request_handler(False)) is not None:
            if isinstance(handler, EndTxnHandler) and "end_txn" in self.silent:
                continue  # sent, never answered
            if isinstance(handler, AddOffsetsToTxnHandler) and "offsets" in self.silent:
                continue
            if isinstance(handler, AddOffsetsToTxnHandler):
                handler.handle_response(SimpleNamespace(error_code=0))
            elif isinstance(handler, TxnOffsetCommitHandler):
                sent = {
                    TopicPartition(t.name, p.partition_index): p.committed_offset
                    for t in handler.request.topics
                    for p in t.partitions
                }
                self.offset_commits.append(sent)
                code = self._refuse.errno if self._refuse else 0
                self._refuse = None
                if not code:
                    self._in_transaction.update(sent)
                topics: dict[str, list] = {}
                for tp in sent:
                    topics.setdefault(tp.topic, []).append((tp.partition, code))
                handler.handle_response(SimpleNamespace(topics=list(topics.items())))
            elif isinstance(handler, EndTxnHandler):
                if handler.request.committed:
                    self.committed.update(self._in_transaction)
                self._in_transaction = {}
                handler.handle_response(SimpleNamespace(error_code=0))
            else:
                raise AssertionError(f"no script for {type(handler).__name__}")


class FakeSink:
    """The producer side: writes and transactions, journaled; failures injected. A
    transactional one runs `Sink`'s own transaction steps over a `ScriptedProducer`, whose
    `committed` is what the group has committed through transactions."""

    fatal_errors = Sink.fatal_errors  # it fails as kafka-python does
    transaction_errors = Sink.transaction_errors

    def __init__(
        self, journal: Journal, transactional: bool = False, delivery_timeout_s: float = 5.0
    ):
        self.journal = journal
        self.transactional = transactional
        self.written: list[Outgoing] = []
        self.delivered: list[Outgoing] = []  # what a read_committed reader sees
        self._open: list[Outgoing] = []  # written in the open transaction
        self.fail_next: dict[str, BaseException] = {}  # step name -> error raised once
        self._producer = ScriptedProducer()
        self._delivery_timeout_s = delivery_timeout_s  # what Sink._finish reads
        self._clock = time.monotonic

    def _step(self, name: str, *detail) -> None:
        self.journal.events.append((name, *detail))
        error = self.fail_next.pop(name, None)
        if error is not None:
            raise error

    def write(self, items: list[Outgoing], waiting=lambda: None) -> list[tuple[Outgoing, str]]:
        self._step("write", [i.value for i in items])
        self.written.extend(items)
        (self._open if self.transactional else self.delivered).extend(items)
        return []

    _finish = Sink._finish  # the real sink's wait for a transactional step

    def begin(self) -> None:
        self._step("begin")
        Sink.begin(self)

    def send_offsets(
        self, offsets: dict[TopicPartition, int], group_metadata: object, waiting=lambda: None
    ) -> None:
        self._step("send_offsets", dict(offsets))
        Sink.send_offsets(self, offsets, group_metadata, waiting)

    def commit(self, waiting=lambda: None) -> None:
        self._step("commit_transaction")
        Sink.commit(self, waiting)
        self.delivered.extend(self._open)
        self._open = []

    def abort(self, waiting=lambda: None) -> None:
        self._step("abort")
        self._open = []
        Sink.abort(self, waiting)

    @property
    def producer(self) -> ScriptedProducer:
        return self._producer

    @property
    def group_committed(self) -> dict[TopicPartition, int]:
        """The group's offsets committed through transactions."""
        return dict(self._producer.committed)

    def close(self, timeout_s: float = 5.0) -> None:
        self.journal.events.append(("close-producer",))


class EchoTagger:
    """A tagger without a network: every text's spans are empty; counts its calls."""

    name = "fake"
    version = "0"
    precision = "float32"
    labels = ("PER",)

    def __init__(self):
        self.batches: list[int] = []

    def prepare(self, text: str) -> _Prepared:
        return _Prepared(len(text.split()))

    def tag_prepared(self, docs) -> list[list]:
        self.batches.append(len(docs))
        return [[] for _ in docs]


@dataclass(frozen=True)
class _Prepared:
    num_tokens: int


__all__ = [
    "EchoTagger",
    "FakeSink",
    "FakeSource",
    "Journal",
    "KafkaError",
    "ScriptedProducer",
    "record",
]
