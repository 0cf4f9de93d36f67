"""The micro-batch policy: when does a batch close?

A batch closes at whichever comes first:

* ``max_records`` entries (latency and memory bound per batch);
* ``max_tokens`` tokens: a text record that would take the batch past the limit closes it and
  opens the next one (a single record longer than the limit makes a batch of its own, it is
  never dropped or cut);
* ``max_wait_s`` after the batch's first entry (the latency a lone record can wait for company).

Dead letters ride in batches too (with zero tokens) so that offsets are committed in order.
The batcher is pure policy: no Kafka, no model, and a clock you can replace in tests.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection

from .records import Batch, Entry, TextRecord, TopicPartition


class Batcher:
    def __init__(
        self,
        max_records: int,
        max_tokens: int,
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_records < 1 or max_tokens < 1 or max_wait_s < 0:
            raise ValueError("max_records and max_tokens must be >= 1 and max_wait_s >= 0")
        self.max_records = max_records
        self.max_tokens = max_tokens
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._open: list[Entry] = []
        self._open_tokens = 0
        self._opened_at = 0.0
        self._closed: deque[Batch] = deque()

    def add(self, entry: Entry) -> None:
        """Append an entry to the open batch, closing batches as the limits say."""
        tokens = entry.tokens if isinstance(entry, TextRecord) else 0
        if self._open and self._open_tokens + tokens > self.max_tokens:
            self._close()
        if not self._open:
            self._opened_at = self._clock()
        self._open.append(entry)
        self._open_tokens += tokens
        if len(self._open) >= self.max_records or self._open_tokens >= self.max_tokens:
            self._close()

    def room(self) -> int:
        """How many more entries the open batch takes before the record limit closes it."""
        return self.max_records - len(self._open)

    def closed(self) -> int:
        """Closed batches waiting to be taken."""
        return len(self._closed)

    def seconds_left(self) -> float | None:
        """Seconds until a batch is due: 0 if one is due now, None if there is nothing at all."""
        if self._closed:
            return 0.0
        if not self._open:
            return None
        return max(0.0, self._opened_at + self.max_wait_s - self._clock())

    def take(self) -> Batch | None:
        """The next due batch (closed ones first, in order), or None if none is due yet."""
        if not self._closed and self._open and self.seconds_left() == 0.0:
            self._close()
        return self._closed.popleft() if self._closed else None

    def flush(self) -> Batch | None:
        """The next batch whether due or not (for draining at shutdown)."""
        if not self._closed and self._open:
            self._close()
        return self._closed.popleft() if self._closed else None

    def drop(self, partitions: Collection[TopicPartition]) -> list[Entry]:
        """Forget the entries of these partitions (they will be consumed again); return them."""
        gone = set(partitions)
        dropped: list[Entry] = []
        kept_batches: deque[Batch] = deque()
        for batch in self._closed:
            kept = tuple(e for e in batch.entries if e.source.tp not in gone)
            dropped.extend(e for e in batch.entries if e.source.tp in gone)
            if kept:
                kept_batches.append(Batch(kept, sum(_tokens(e) for e in kept)))
        self._closed = kept_batches
        dropped.extend(e for e in self._open if e.source.tp in gone)
        self._open = [e for e in self._open if e.source.tp not in gone]
        self._open_tokens = sum(_tokens(e) for e in self._open)
        return dropped

    def __len__(self) -> int:
        return len(self._open) + sum(len(b.entries) for b in self._closed)

    def _close(self) -> None:
        self._closed.append(Batch(tuple(self._open), self._open_tokens))
        self._open = []
        self._open_tokens = 0


def _tokens(entry: Entry) -> int:
    return entry.tokens if isinstance(entry, TextRecord) else 0
