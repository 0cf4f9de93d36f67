"""Finding records the Kafka client cannot parse, and where reading can go on after them.

kafka-python parses a fetched batch record by record and raises at the first record it cannot
read (a batch failing its CRC check, a header name that is not UTF-8); the consumer's position
stays at that record, and a fetch at any later offset of the same batch parses the batch from
its start and fails again. The poll that raises does not say which partition failed.

`Probe` answers both questions with a consumer of its own, outside the group, that reads one
partition at one offset at a time: the failing partition is the owned one that cannot be read
at the group consumer's position; the first offset readable again is found by doubling steps
from there, then halving back (about twice the base-2 logarithm of the batch's length in reads).
Nothing is skipped on a guess: an offset counts as readable only if the client parsed a record
there or after it, or the partition ends before it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import CorruptRecordError

from ..records import TopicPartition
from .patches import drop_failed_fetch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skip:
    """Offsets ``first`` to ``resume - 1`` of a partition cannot be read."""

    tp: TopicPartition
    first: int
    resume: int
    error: str


class Probe:
    """Reads single partitions at single offsets (not thread-safe; one at a time), with a
    consumer outside the group (`clients.probe_consumer`) that it closes."""

    def __init__(
        self,
        consumer: KafkaConsumer,
        read_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._consumer = consumer
        self._read_timeout_s = read_timeout_s
        self._clock = clock

    def close(self) -> None:
        self._consumer.close(autocommit=False, timeout_ms=1000)

    def end(self, tp: TopicPartition) -> int:
        """The offset after the partition's last readable (committed) record."""
        ktp = KafkaTopicPartition(*tp)
        return self._consumer.end_offsets([ktp], timeout_ms=int(self._read_timeout_s * 1000))[ktp]

    def readable(self, tp: TopicPartition, offset: int) -> bool:
        """True if the client parses a record at ``offset`` or after it, or none comes (the
        partition has nothing there); False if it raises."""
        ktp = KafkaTopicPartition(*tp)
        self._consumer.assign([ktp])
        self._consumer.seek(ktp, offset)
        deadline = self._clock() + self._read_timeout_s
        while self._clock() < deadline:
            try:
                if self._consumer.poll(timeout_ms=200, max_records=1):
                    return True
            except CorruptRecordError:
                drop_failed_fetch(self._consumer)
                return False
        return True

    def find(self, positions: dict[TopicPartition, int], error: str) -> list[Skip]:
        """For each partition unreadable at its position: the offsets to skip."""
        skips = []
        for tp, position in sorted(positions.items()):
            end = self.end(tp)
            if position >= end or self.readable(tp, position):
                continue
            skips.append(Skip(tp, position, self._resume(tp, position, end), error))
        return skips

    def _resume(self, tp: TopicPartition, bad: int, end: int) -> int:
        """The first readable offset after ``bad`` (unreadable), at most ``end``."""
        step = 1
        good = min(bad + step, end)
        while good < end and not self.readable(tp, good):
            bad = good
            step *= 2
            good = min(bad + step, end)
        while good - bad > 1:  # bad unreadable, good readable (or the end)
            middle = (bad + good) // 2
            if self.readable(tp, middle):
                good = middle
            else:
                bad = middle
        return good


def names(skips: Iterable[Skip]) -> list[str]:
    return [f"{s.tp.topic}-{s.tp.partition}@{s.first}-{s.resume - 1}" for s in skips]
