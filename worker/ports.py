"""The worker's ports: what the loop needs of the model and of Kafka, as small Protocols.

`tagstream.worker.pipeline` and `tagstream.worker.delivery` are written against these, not
against `tagstream.model.Tagger`, `tagstream.worker.source.Source` or
`tagstream.worker.sink.Sink`, so the loop runs in tests with fakes (tests/worker/fakes.py) and
the model side stays replaceable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from tagstream.worker.records import SourceRecord, TopicPartition

Waiting = Callable[[], "float | None"]  # called while waiting; returns the drain's deadline, if any


class Prepared(Protocol):
    """A text tokenised by the tagger, ready to tag (opaque but for its size)."""

    num_tokens: int


class Span(Protocol):
    """One entity found in a text: code-point offsets, label, confidence."""

    start: int
    end: int
    label: str
    text: str
    score: float

    def to_dict(self) -> dict: ...


class Tagger(Protocol):
    name: str
    version: str
    precision: str  # the numeric path it runs on ("bfloat16", "float32")

    def prepare(self, text: str) -> Prepared: ...

    def tag_prepared(self, docs: Sequence[Prepared]) -> list[list[Span]]: ...


class Source(Protocol):
    """The input topic, as a member of the consumer group."""

    topic: str

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

    def write(self, items: list, waiting: Waiting = ...) -> list[tuple[object, str]]: ...

    def begin(self) -> None: ...

    def send_offsets(
        self, offsets: dict[TopicPartition, int], group_metadata: object, waiting: Waiting = ...
    ) -> None: ...

    def commit(self, waiting: Waiting = ...) -> None: ...

    def abort(self, waiting: Waiting = ...) -> None: ...

    def close(self, timeout_s: float = 5.0) -> None: ...
