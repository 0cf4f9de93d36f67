"""The input side: a Kafka consumer in a consumer group, committing offsets only when told; the
partition assignors by their setting's name (``TAGSTREAM_KAFKA__ASSIGNMENT_STRATEGY``) and the
listener through which kafka-python reports a rebalance (`RebalanceListener`).

The listener's callbacks run on kafka-python's IO thread, inside ``poll()``, and only call the
source's rebalance methods (`Source.commit_revoked`, `Source.on_revoked`, `Source.on_assigned`). On
a revocation the callback commits the offsets of delivered records whose commit had failed
(delivered, so theirs to commit; the pipeline commits everything else itself, right after delivery);
then it only records what changed (`tagstream.worker.kafka.partitions`). The pipeline reads those
changes (`take_revoked`, `take_assigned`) right after each poll, before it touches the records the
poll returned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import NoReturn

from kafka import TopicPartition as KafkaTopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.errors import (
    CorruptRecordError,
    KafkaError,
    KafkaTimeoutError,
    UnsupportedCodecError,
)
from kafka.structs import OffsetAndMetadata

from ..deadline import Deadline
from ..metrics import Metrics
from ..ports import UnreadableInput
from ..records import SourceRecord, TopicPartition, Unreadable
from ..settings import Settings
from . import clients
from .lag import LagMonitor
from .partitions import Partitions
from .patches import drop_failed_fetch
from .unreadable import Probe, Skip, names

log = logging.getLogger(__name__)

COMMIT_SLICE_S = 1.0  # a commit waits in slices this long, asking whether to give up
UNREADABLE_TRIES = 3  # polls failing on an unreadable record before moving past it

ASSIGNORS = {
    "range": (RangePartitionAssignor,),
    "roundrobin": (RoundRobinPartitionAssignor,),
    "cooperative-sticky": (CooperativeStickyAssignor,),
}


class Source:
    """The `tagstream.worker.ports.Source` on a group consumer. Not thread-safe: call it from
    the pipeline's thread only."""

    commit_errors = (KafkaError,)

    def __init__(
        self, settings: Settings, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ):
        k = settings.kafka
        self._clock = clock
        self.topic = k.input_topic
        self._metrics = metrics
        self._kafka = k
        self._consumer = clients.group_consumer(settings, ASSIGNORS[k.assignment_strategy])
        self._on_unreadable = k.on_unreadable
        self._unreadable_tries = 0  # polls in a row that failed on an unreadable record
        self._partitions = Partitions(metrics)  # shared with the listener and the lag monitor
        self._commit_timeout_ms = k.request_timeout_ms
        self._consumer.subscribe([self.topic], listener=RebalanceListener(self))
        # tagstream_consumer_lag, on a thread of its own
        self.lag_monitor = LagMonitor(self._partitions, settings)
        self.lag_monitor.start()

    def missing_topics(self, names: Iterable[str]) -> list[str]:
        """Which of these topics the cluster does not have (a start-up check)."""
        existing = self._consumer.topics()
        return [name for name in names if name not in existing]

    # -- polling -------------------------------------------------------------------------

    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]:
        """Records in partition order (offsets ascending within a partition); may be empty.

        Also keeps the group membership alive: call it at least every few seconds, even when
        paused.
        """
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except CorruptRecordError as exc:  # a record kafka-python cannot parse
            drop_failed_fetch(self._consumer)
            return self._past_unreadable(exc)
        except UnsupportedCodecError as exc:  # the codec's library is missing from this install
            log.error(
                "a batch of the input is compressed with a codec whose library is not "
                "installed: reinstall tagstream with its dependencies (kafka-python[crc32c,"
                "lz4,snappy,zstd])",
                extra={"error": str(exc)},
            )
            self._unreadable(exc)
        self._unreadable_tries = 0
        out = [
            SourceRecord(
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                key=r.key,
                value=r.value,
                headers=tuple((h[0], h[1] if h[1] is not None else b"") for h in r.headers or ()),
                timestamp_ms=r.timestamp,
            )
            for records in batches.values()
            for r in records
        ]
        if out:
            self._metrics.records_consumed.labels(self.topic).inc(len(out))
        return out

    def _past_unreadable(self, exc: CorruptRecordError) -> list[SourceRecord]:
        """``on_unreadable=dead_letter``: once the same failure has come `UNREADABLE_TRIES`
        times in a row (a fetch garbled in transit reads fine the next time), find the
        unreadable offsets (`tagstream.worker.kafka.unreadable`), move past them, and return one
        record standing for each range, to be dead-lettered in order. Stops the worker as
        ``stop`` does when the failing partition cannot be found."""
        if self._on_unreadable == "stop":
            self._unreadable(exc)
        self._unreadable_tries += 1
        if self._unreadable_tries < UNREADABLE_TRIES:
            log.warning(
                "the Kafka client cannot read a record of the input topic; trying again",
                extra={"error": repr(exc), "try": self._unreadable_tries},
            )
            return []
        self._unreadable_tries = 0
        positions = {}
        for tp in sorted(self.fetching() & self.owned()):
            try:
                positions[tp] = self._consumer.position(
                    KafkaTopicPartition(*tp), timeout_ms=self._commit_timeout_ms
                )
            except Exception:  # revoked meanwhile, or no position yet: not the one that failed
                continue
        probe = Probe(clients.probe_consumer(self._kafka))
        try:
            skips = probe.find(positions, repr(exc))
        finally:
            probe.close()
        if not skips:
            self._unreadable(exc)
        now_ms = int(time.time() * 1000)
        out = []
        for skip in skips:
            self._consumer.seek(KafkaTopicPartition(*skip.tp), skip.resume)
            self._metrics.unreadable_offsets.labels(self.topic).inc(skip.resume - skip.first)
            out.append(_standing_for(skip, now_ms))
        log.error(
            "moved past input records the Kafka client cannot read; each range goes to the "
            "dead-letter topic (reason unreadable_record)",
            extra={"error": repr(exc), "skipped": names(skips)},
        )
        return out

    def _unreadable(self, exc: Exception) -> NoReturn:  # raises UnreadableInput
        """kafka-python cannot parse a record of the input (a batch failing its CRC, a header
        name that is not UTF-8, which Java clients cannot produce) and cannot read past it: a
        batch is parsed record by record. Stop with an error that says where the partitions
        stand; nothing past the record is committed, and an operator moves the group past it."""
        positions = {}
        for tp in sorted(self.owned()):
            try:
                positions[f"{tp.topic}-{tp.partition}"] = self._consumer.position(
                    KafkaTopicPartition(*tp), timeout_ms=self._commit_timeout_ms
                )
            except Exception:  # revoked meanwhile
                continue
        log.error(
            "the Kafka client cannot read a record of the input topic; stopping without "
            "committing past it. The record is in the batch at the position of one of these "
            "partitions; TAGSTREAM_KAFKA__ON_UNREADABLE=dead_letter moves past it with a dead "
            "letter, or stop the workers and move the group past that batch "
            "(kafka-dump-log.sh shows its last offset) with kafka-consumer-groups.sh "
            "--reset-offsets --to-offset",
            extra={"error": repr(exc), "positions": positions},
        )
        raise UnreadableInput(str(exc)) from exc

    def pause(self) -> None:
        """Stop fetching (memberships and heartbeats go on): the batches are full."""
        self._consumer.pause(*self._consumer.assignment())

    def resume(self) -> None:
        paused = self._consumer.paused()
        if paused:
            self._consumer.resume(*paused)

    # -- rebalances ----------------------------------------------------------------------

    def take_revoked(self) -> set[TopicPartition]:
        """Partitions revoked since the last call: drop their undelivered records."""
        return self._partitions.take_revoked()

    def take_assigned(self) -> int:
        """The assignment generation: it changes with every completed rebalance.

        Also learns the committed offsets of newly assigned partitions (for the lag gauge).
        """
        assigned, generation = self._partitions.take_assigned()
        self._partitions.learn_committed(self.committed_offsets(assigned))
        return generation

    def owned(self) -> set[TopicPartition]:
        return self._partitions.owned()

    def fetching(self) -> set[TopicPartition]:
        """The partitions whose fetch position kafka-python holds (its assignment). After a
        revocation this still includes, under the eager protocol, the revoked partitions until
        the new assignment is in (and then those assigned here again); under the cooperative
        protocol, never a revoked partition: kafka-python drops it, with its position, before
        it calls the listener."""
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def committed_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offsets of these partitions, fetched from the coordinator now
        (partitions without one are left out). The consumer reads ``read_committed``, so
        kafka-python asks for stable offsets (KIP-447): while a transaction that commits offsets
        of these partitions is still open, the coordinator answers UNSTABLE_OFFSET_COMMIT and
        kafka-python asks again, so an exactly-once previous owner's offsets are included."""
        out = {}
        for tp in partitions:
            committed = self._consumer.committed(
                KafkaTopicPartition(*tp), timeout_ms=self._commit_timeout_ms
            )
            if committed is not None:
                out[tp] = committed
        return out

    def group_metadata(self) -> object:
        """For `send_offsets_to_transaction` (KIP-447 fencing of zombie instances)."""
        return self._consumer.group_metadata()

    def seek(self, offsets: dict[TopicPartition, int]) -> None:
        """Consume these owned partitions again from the given offsets (after an abort)."""
        owned = self.owned()
        for tp, offset in offsets.items():
            if tp in owned:
                self._consumer.seek(KafkaTopicPartition(*tp), offset)

    # -- commits -------------------------------------------------------------------------

    def commit(
        self, offsets: dict[TopicPartition, int], waiting: Callable[[], float | None] = lambda: None
    ) -> None:
        """Commit the offsets of delivered records synchronously, within the request timeout
        or by the deadline (monotonic) `waiting` returns; `waiting` is called about every
        `COMMIT_SLICE_S` meanwhile. Raises kafka errors (e.g. CommitFailedError during a
        rebalance, KafkaTimeoutError); the offsets then stay pending, and a revocation of
        their partitions commits them."""
        if not offsets:
            return
        self._partitions.add_pending(offsets)
        deadline = Deadline(self._commit_timeout_ms / 1000, waiting, self._clock, COMMIT_SLICE_S)
        kafka_offsets = _kafka_offsets(offsets)
        deadline.wait(
            lambda seconds: self._consumer.commit(kafka_offsets, timeout_ms=int(seconds * 1000)),
            (KafkaTimeoutError,),
        )
        self.record_committed(offsets)

    def record_committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Remember offsets committed here or inside a transaction (for the lag gauge)."""
        self._partitions.record_committed(offsets)

    def close(self, timeout_s: float = 5.0) -> None:
        """Leave the group at once, so the partitions move to the other workers quickly."""
        self.lag_monitor.stop()
        self._consumer.close(autocommit=False, timeout_ms=int(timeout_s * 1000))

    # -- called by the listener on the IO thread -------------------------------------------

    async def commit_revoked(self, partitions: Iterable[KafkaTopicPartition]) -> None:
        """Before giving partitions up: commit what was delivered but not yet committed."""
        revoked = {TopicPartition(tp.topic, tp.partition) for tp in partitions}
        offsets = self._partitions.pending_of(revoked)
        if not offsets:
            return
        try:
            await self._consumer.commit_async(_kafka_offsets(offsets))
        except Exception as exc:  # the next owner redoes these records: duplicates, no loss
            self._metrics.commit_failures.inc()
            log.warning(
                "committing delivered records of revoked partitions failed",
                extra={"error": repr(exc), "partitions": _names(offsets)},
            )
            return
        self.record_committed(offsets)
        log.info(
            "committed delivered records of revoked partitions",
            extra={"partitions": _names(offsets)},
        )

    def on_revoked(self, partitions: Iterable[KafkaTopicPartition]) -> None:
        revoked = {TopicPartition(tp.topic, tp.partition) for tp in partitions}
        if not revoked:
            return
        self._partitions.revoke(revoked)
        log.info("partitions revoked", extra={"partitions": _names(revoked)})

    def on_assigned(self, partitions: Iterable[KafkaTopicPartition]) -> None:
        assigned = {TopicPartition(tp.topic, tp.partition) for tp in partitions}
        self._partitions.assign(assigned)
        log.info("partitions assigned", extra={"partitions": _names(assigned)})


class RebalanceListener(AsyncConsumerRebalanceListener):
    """Async, so that the commit on revocation does not block the IO loop's heartbeats."""

    def __init__(self, source: Source):
        self._source = source

    async def on_partitions_revoked(self, revoked):  # noqa: ANN001 (kafka-python's signature)
        await self._source.commit_revoked(revoked)
        self._source.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned):  # noqa: ANN001
        self._source.on_assigned(assigned)

    async def on_partitions_lost(self, lost):  # noqa: ANN001
        self._source.on_revoked(lost)  # no longer in the group: a commit would be refused


def _standing_for(skip: Skip, timestamp_ms: int) -> SourceRecord:
    """The record that stands for a skipped range: at its last offset, so that its dead letter
    commits past the range."""
    return SourceRecord(
        skip.tp.topic,
        skip.tp.partition,
        skip.resume - 1,
        None,
        None,
        (),
        timestamp_ms,
        Unreadable(skip.first, skip.error),
    )


def _kafka_offsets(
    offsets: dict[TopicPartition, int],
) -> dict[KafkaTopicPartition, OffsetAndMetadata]:
    return {KafkaTopicPartition(*tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}-{tp.partition}" for tp in partitions)
