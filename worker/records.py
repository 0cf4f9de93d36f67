"""Frozen, typed records passed between the pipeline's stages.

SourceRecord ──decode──▶ TextRecord | DeadLetter ──batcher──▶ Batch
    ──tagger──▶ LabelledRecord ──delivery──▶ Outgoing ──sink──▶ output / dead-letter topic
    ──▶ commit

What the worker holds of the model's results, `Prepared` and `Span`, are Protocols: the model
package's own classes satisfy them, and the worker never imports that package for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol


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


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Offsets of a partition the Kafka client could not parse, from `first_offset` to the
    standing-in record's offset, and the client's error."""

    first_offset: int
    error: str


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as consumed, untouched: what a dead letter carries on unchanged.

    With `unreadable` set it stands for offsets the client could not parse (`Source` moved past
    them): it has no key, value or headers, and its offset is the last of them, so that the
    dead letter it becomes commits past them in order."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int  # the record's timestamp (producer CreateTime or broker LogAppendTime)
    unreadable: Unreadable | None = None

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def first_offset(self) -> int:
        """Where to consume again to get this record back (for an unreadable range, its start)."""
        return self.unreadable.first_offset if self.unreadable else self.offset


@dataclass(frozen=True, slots=True)
class TextRecord:
    """A record the tagger can label."""

    source: SourceRecord
    id: str | None
    text: str
    tokens: int  # the tagger's token count, for the batch's token limit
    prepared: Prepared  # the tagger's ready-to-run form of `text`; opaque to the worker
    document: Any = None  # the parsed input document, kept when the output mode writes into it
    schema_id: int | None = None  # the Schema Registry's id of the input value's schema
    model: str = ""  # the name of the model chosen for it ("": the worker's only model)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that cannot be labelled; it goes to the dead-letter topic unchanged."""

    source: SourceRecord
    reason: str  # the error class, snake_case, e.g. "invalid_json" (a metric label too)
    message: str  # for humans


Entry = TextRecord | DeadLetter


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries in consumption order; dead letters ride along so offsets commit in order."""

    entries: tuple[Entry, ...]
    tokens: int

    @property
    def texts(self) -> list[TextRecord]:
        return [e for e in self.entries if isinstance(e, TextRecord)]


@dataclass(frozen=True, slots=True)
class LabelledRecord:
    """A text record with the spans the tagger found (model `Span` objects)."""

    record: TextRecord
    spans: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce, and the entry it stands for (a labelled record or a dead letter)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    entry: LabelledRecord | DeadLetter


def source_of(item: Entry | LabelledRecord) -> SourceRecord:
    """The consumed record an entry or a tagged result stands for."""
    return item.record.source if isinstance(item, LabelledRecord) else item.source


def next_offsets(sources: Iterable[SourceRecord]) -> dict[TopicPartition, int]:
    """Per partition, the offset to commit once these records are delivered (last + 1)."""
    out: dict[TopicPartition, int] = {}
    for src in sources:
        out[src.tp] = max(out.get(src.tp, 0), src.offset + 1)
    return out
