"""How the consumer group shares the input topic's partitions: the partition assignors by their
setting's name (``TAGSTREAM_KAFKA__ASSIGNMENT_STRATEGY``), and the listener through which
kafka-python reports a rebalance to the `tagstream.worker.source.Source`.

The listener's callbacks run on kafka-python's IO thread, inside ``poll()``; they only call the
source's public rebalance methods (`Source.commit_revoked`, `Source.on_revoked`,
`Source.on_assigned`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

if TYPE_CHECKING:
    from tagstream.worker.source import Source

ASSIGNORS = {
    "range": (RangePartitionAssignor,),
    "roundrobin": (RoundRobinPartitionAssignor,),
    "cooperative-sticky": (CooperativeStickyAssignor,),
}


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
