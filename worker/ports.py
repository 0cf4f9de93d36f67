"""The worker's ports: what the loop needs of the model and of Kafka, as small Protocols.

The loop (`pipeline`, `tagging`, `delivery`, `rewinds`) is written against these, not against
`tagstream.model.Tagger` or the Kafka adapters of `worker/kafka/`, so it runs in tests with
fakes (tests/worker/fakes.py), and neither side's library is imported by the loop. The errors a
port raises are named here too: the adapters say which of their library's errors mean what.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .records import Outgoing, Prepared, SourceRecord, Span, TopicPartition

Waiting = Callable[[], "float | None"]  # called while waiting; returns the drain's deadline, if any
Errors = tuple[type[BaseException], ...]


class DeliveryError(Exception):
    """Records were sent but not acknowledged; nothing of the batch may be committed."""

    def __init__(self, failures: list[tuple[Outgoing, BaseException]]):
        self.failures = failures
        first = failures[0][1]
        super().__init__(f"{len(failures)} record(s) not delivered; first error: {first!r}")


class UnreadableInput(Exception):
    """The source cannot parse the next record of a partition, nor read past it."""


class Tagger(Protocol):
    name: str
    version: str
    precision: str  # the numeric path it runs on ("bfloat16", "float32")
    labels: tuple[str, ...]  # the entity labels it finds

    def prepare(self, text: str) -> Prepared: ...

    def tag_prepared(self, docs: Sequence[Prepared]) -> list[list[Span]]: ...


class Source(Protocol):
    """The input topic, as a member of the consumer group."""

    topic: str
    # what a failed commit raises; the offsets stay pending and the commit is retried
    commit_errors: Errors

    def poll(self, timeout_s: float, max_records: int) -> list[SourceRecord]: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def owned(self) -> set[TopicPartition]: ...

    def fetching(self) -> set[TopicPartition]: ...

    def take_revoked(self) -> set[TopicPartition]: ...

    def take_assigned(self) -> int: ...

    def committed_offsets(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    def seek(self, offsets: dict[TopicPartition, int]) -> None: ...

    def group_metadata(self) -> object: ...

    def commit(self, offsets: dict[TopicPartition, int], waiting: Waiting = ...) -> None: ...

    def record_committed(self, offsets: dict[TopicPartition, int]) -> None: ...

    def close(self, timeout_s: float = 5.0) -> None: ...


class Sink(Protocol):
    """The output and dead-letter topics."""

    transactional: bool
    # after these the producer can never commit again, or cannot know whether it did: the
    # worker stops (a restart with the same transactional id recovers)
    fatal_errors: Errors
    # a transactional step that failed with one of these aborts the transaction, to be redone
    transaction_errors: Errors

    def write(
        self, items: list[Outgoing], waiting: Waiting = ...
    ) -> list[tuple[Outgoing, str]]: ...

    def begin(self) -> None: ...

    def send_offsets(
        self, offsets: dict[TopicPartition, int], group_metadata: object, waiting: Waiting = ...
    ) -> None: ...

    def commit(self, waiting: Waiting = ...) -> None: ...

    def abort(self, waiting: Waiting = ...) -> None: ...

    def close(self, timeout_s: float = 5.0) -> None: ...
