"""``tagstream replay`` on Kafka: dead letters read in a consumer group of their own and
re-produced in transactions that also commit that group's offsets, so each dead letter is
replayed once, even when a replay is interrupted (killed, or its transaction aborted) and the
same command is run again.

The replay reads up to the dead-letter topic's end as it was when the replay started (its last
stable offsets) and stops; dead letters written meanwhile wait for the next replay. One
producer per replay group (its transactional id is the group's), so a second replay of the same
group fences the first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from ..replay import Filter, NotReplayable, original
from ..settings import Settings
from .clients import replay_consumer, replay_producer

log = logging.getLogger(__name__)

POLL_MS = 500


@dataclass
class Counts:
    read: int = 0  # dead letters read (and now behind the replay group's offsets)
    replayed: dict[str, int] = field(default_factory=dict)  # by target topic
    filtered_out: int = 0
    not_replayable: list[tuple[int, int, str]] = field(default_factory=list)  # partition, offset


class Replayer:
    def __init__(
        self,
        settings: Settings,
        group: str,
        chosen: Filter,
        target: str | None = None,
        dry_run: bool = False,
        batch_records: int = 500,
    ):
        k = settings.kafka
        self.topic = k.dead_letter_topic
        self.group = group
        self.chosen = chosen
        self.target = target
        self.dry_run = dry_run
        self._consumer = replay_consumer(k, group, batch_records)
        self._producer: KafkaProducer | None = None
        if not dry_run:
            self._producer = replay_producer(k, group)
            self._producer.init_transactions()  # fences an earlier replay of this group
        self.counts = Counts()
        self._partitions: list[KafkaTopicPartition] = []
        self._ends: dict[KafkaTopicPartition, int] = {}

    def start(self) -> int:
        """Assign every partition of the dead-letter topic from the group's offsets; returns how
        many dead letters lie between them and the end (what this replay will read)."""
        found = self._consumer.partitions_for_topic(self.topic)
        if not found:
            raise LookupError(f"the dead-letter topic {self.topic} does not exist")
        self._partitions = [KafkaTopicPartition(self.topic, p) for p in sorted(found)]
        self._consumer.assign(self._partitions)
        self._ends = self._consumer.end_offsets(self._partitions)
        starts = self._consumer.beginning_offsets(self._partitions)
        left = 0
        for tp in self._partitions:
            committed = self._consumer.committed(tp)
            position = max(committed if committed is not None else 0, starts[tp])
            self._consumer.seek(tp, position)
            left += max(0, self._ends[tp] - position)
        return left

    def run(self, stop: threading.Event, progress: Callable[[int], None]) -> Counts:
        """Replay batch by batch until the end seen at `start`, or until `stop` is set (the
        batch under way is finished first)."""
        while not stop.is_set():
            pending = [
                tp for tp in self._partitions if self._consumer.position(tp) < self._ends[tp]
            ]
            if not pending:
                break
            self._consumer.pause(*[tp for tp in self._partitions if tp not in pending])
            polled = self._consumer.poll(timeout_ms=POLL_MS)
            batch = [
                r for tp, records in polled.items() for r in records if r.offset < self._ends[tp]
            ]
            if batch:
                self._replay(batch)
                progress(len(batch))
        return self.counts

    def _replay(self, batch: list) -> None:
        offsets: dict[KafkaTopicPartition, OffsetAndMetadata] = {}
        sends: list[tuple[str, object]] = []
        for record in batch:
            tp = KafkaTopicPartition(record.topic, record.partition)
            offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
            headers = list(record.headers or [])
            if not self.chosen.takes(headers, record.timestamp):
                self.counts.filtered_out += 1
                continue
            try:
                back = original(record.key, record.value, headers)
            except NotReplayable as exc:
                self.counts.not_replayable.append((record.partition, record.offset, str(exc)))
                continue
            topic = self.target or back.topic
            if topic is None:
                self.counts.not_replayable.append(
                    (record.partition, record.offset, "no tagstream.source.topic header: use --to")
                )
                continue
            sends.append((topic, back))
        if self._producer is not None:
            self._producer.begin_transaction()
            try:
                for topic, back in sends:
                    self._producer.send(
                        topic, key=back.key, value=back.value, headers=list(back.headers)
                    )
                self._producer.send_offsets_to_transaction(offsets, self.group)
                self._producer.commit_transaction()
            except Exception:
                log.exception("a replay transaction failed; aborting it (nothing of it counts)")
                try:
                    self._producer.abort_transaction()
                except Exception:  # fenced or broken: the next run's init aborts it
                    log.exception("aborting the transaction failed")
                raise
        for topic, _ in sends:
            self.counts.replayed[topic] = self.counts.replayed.get(topic, 0) + 1
        self.counts.read += len(batch)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
        self._consumer.close(autocommit=False)
