"""What the worker owns of the input topic, and where the group stands on it.

The rebalance listener writes it on kafka-python's IO thread (`revoke`, `assign`); the pipeline's
thread reads and clears the changes (`take_revoked`, `take_assigned`) right after each poll; the
lag monitor's thread reads it to publish ``tagstream_consumer_lag``. One lock guards it all, and
a revocation removes a partition's lag series under it, so a refresh in flight cannot bring the
series back.
"""

from __future__ import annotations

import threading

from ..metrics import Metrics
from ..records import TopicPartition


class Partitions:
    def __init__(self, metrics: Metrics):
        self._metrics = metrics
        self._lock = threading.Lock()
        self._revoked: set[TopicPartition] = set()
        self._assigned: set[TopicPartition] = set()
        self._owned: set[TopicPartition] = set()
        self._generation = 0
        self._committed: dict[TopicPartition, int] = {}
        self._pending: dict[TopicPartition, int] = {}  # delivered, not yet committed

    # -- the pipeline's thread -----------------------------------------------------------

    def take_revoked(self) -> set[TopicPartition]:
        """Partitions revoked since the last call."""
        with self._lock:
            revoked, self._revoked = self._revoked, set()
        return revoked

    def take_assigned(self) -> tuple[set[TopicPartition], int]:
        """Partitions assigned since the last call, and the assignment generation (it changes
        with every completed rebalance)."""
        with self._lock:
            assigned, self._assigned = self._assigned, set()
            generation = self._generation
        return assigned, generation

    def owned(self) -> set[TopicPartition]:
        with self._lock:
            return set(self._owned)

    def learn_committed(self, offsets: dict[TopicPartition, int]) -> None:
        """The group's committed offsets of newly assigned partitions (for the lag gauge)."""
        self._committed.update(offsets)

    def add_pending(self, offsets: dict[TopicPartition, int]) -> None:
        """Offsets of delivered records about to be committed: until `record_committed`, a
        revocation of their partitions commits them."""
        with self._lock:
            self._pending.update(offsets)

    def record_committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Offsets committed, here or inside a transaction: no longer pending."""
        with self._lock:
            for tp, offset in offsets.items():
                if self._pending.get(tp) == offset:
                    del self._pending[tp]
        self._committed.update(offsets)

    # -- the lag monitor's thread ----------------------------------------------------------

    def publish_lag(
        self, end_offsets: dict[TopicPartition, int], earliest: dict[TopicPartition, int]
    ) -> None:
        """Set ``tagstream_consumer_lag`` of the owned partitions among these: end offset minus
        the group's committed offset (as ``kafka-consumer-groups.sh --describe`` shows it);
        where the group has committed nothing yet, minus where the worker starts reading
        (``earliest``: the partition's first offset, when auto_offset_reset is earliest).
        Under the lock that revocations take, so a revoked partition's series stays removed."""
        with self._lock:
            for tp, end in end_offsets.items():
                start = self._committed.get(tp, earliest.get(tp))
                if tp in self._owned and start is not None:
                    self._metrics.set_lag(tp, max(0, end - start))

    # -- the rebalance listener, on kafka-python's IO thread ------------------------------------

    def pending_of(self, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
        """The pending offsets of these partitions."""
        with self._lock:
            return {tp: o for tp, o in self._pending.items() if tp in partitions}

    def revoke(self, revoked: set[TopicPartition]) -> None:
        with self._lock:
            for tp in revoked:
                self._pending.pop(tp, None)
            self._revoked |= revoked
            self._assigned -= revoked
            self._owned -= revoked
            owned = len(self._owned)
            for tp in revoked:
                self._committed.pop(tp, None)
            self._metrics.forget_partitions(sorted(revoked))
        self._metrics.assigned_partitions.set(owned)

    def assign(self, assigned: set[TopicPartition]) -> None:
        with self._lock:
            self._assigned |= assigned
            self._owned |= assigned
            self._generation += 1
            owned = len(self._owned)
        self._metrics.rebalances.inc()
        self._metrics.assigned_partitions.set(owned)
