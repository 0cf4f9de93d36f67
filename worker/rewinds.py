"""After a rebalance: which dropped records to consume again, and from where.

The pipeline drops the undelivered records of revoked partitions. Once the new assignment is
in, `Rewinds.apply` consumes again those of them that kept their fetch position, from their
first dropped offset, never from below the group's committed offset.

A revoked partition that kafka-python still holds (its eager protocol revokes every partition
before rejoining and keeps the fetch position of those assigned to this member again) would
otherwise skip the dropped records. Any other revoked partition (under the cooperative protocol
every one: it revokes only partitions that leave this member, and after the rebalance; under
either, partitions lost with the membership) has lost its position: whoever owns it next, this
worker included, starts from the group's committed offset, and seeking it back to where this
worker dropped it would redo, and commit backwards, what other members did with it meanwhile.
So a rewind lives only while kafka-python holds its partition, and is clamped to the committed
offset fetched when it is applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .records import Entry, TopicPartition

if TYPE_CHECKING:
    from .ports import Source


class Rewinds:
    def __init__(self) -> None:
        self._to: dict[TopicPartition, int] = {}  # dropped, position kept: consume again
        self._generation = 0  # the source's assignment generation last seen

    def dropped(self, entries: Iterable[Entry]) -> None:
        """Remember the first dropped offset of each partition."""
        for entry in entries:
            tp, offset = entry.source.tp, entry.source.first_offset
            self._to[tp] = min(self._to.get(tp, offset), offset)

    def apply(self, source: Source) -> set[TopicPartition]:
        """Right after a poll: forget the rewinds of partitions whose position is gone; once a
        new assignment is in, seek the owned ones back. Returns the partitions sought back."""
        if self._to:
            held = source.fetching()
            self._to = {tp: o for tp, o in self._to.items() if tp in held}
        sought: set[TopicPartition] = set()
        generation = source.take_assigned()
        if generation != self._generation:
            self._generation = generation
            owned = source.owned()
            back = {tp: offset for tp, offset in self._to.items() if tp in owned}
            if back:
                committed = source.committed_offsets(back)
                back = {tp: max(offset, committed.get(tp, offset)) for tp, offset in back.items()}
                source.seek(back)
            self._to = {}
            sought = set(back)
        return sought
