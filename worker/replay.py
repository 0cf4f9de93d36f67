"""Dead letters back to where they came from (``tagstream replay``), without a broker: which dead
letters a replay takes (`Filter`), and the record each one stands for (`original`): its key,
value and own headers, the worker's ``tagstream.*`` headers removed and the input's own
``original.tagstream.*`` ones named as they were.

A dead letter that no longer holds its record cannot be replayed: an `unreadable_record` (the
client could not parse the offsets it stands for) or one whose value or key and headers were
dropped for size. `original` says why (`NotReplayable`); the command counts and lists them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from . import messages

_WORKERS = "tagstream."


class NotReplayable(Exception):
    """The dead letter no longer holds the record it stands for."""


@dataclass(frozen=True)
class Original:
    topic: str | None  # the input topic it came from (None: the header is missing)
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Filter:
    """Which dead letters to replay: every condition given must hold (empty: any)."""

    reasons: frozenset[str] = frozenset()
    partitions: frozenset[int] = frozenset()  # of the input topic (tagstream.source.partition)
    since_ms: int | None = None  # the dead letter's own timestamp, inclusive
    until_ms: int | None = None  # exclusive

    def takes(self, headers: Sequence[tuple[str, bytes | None]], timestamp_ms: int) -> bool:
        named = _named(headers)
        if (
            self.reasons
            and named.get(messages.HEADER_ERROR_CLASS, b"").decode() not in self.reasons
        ):
            return False
        if self.partitions:
            partition = named.get(messages.HEADER_SOURCE_PARTITION, b"")
            if not partition.isdigit() or int(partition) not in self.partitions:
                return False
        if self.since_ms is not None and timestamp_ms < self.since_ms:
            return False
        return self.until_ms is None or timestamp_ms < self.until_ms

    def describe(self) -> dict:
        return {
            "reasons": sorted(self.reasons),
            "partitions": sorted(self.partitions),
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
        }


def original(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
) -> Original:
    """The record a dead letter stands for, or `NotReplayable`."""
    named = _named(headers)
    reason = named.get(messages.HEADER_ERROR_CLASS, b"").decode()
    if not reason:
        raise NotReplayable("not a dead letter: it has no tagstream.error.class header")
    if reason == messages.UNREADABLE_RECORD:
        raise NotReplayable("the offsets it stands for could not be read: there is no record")
    if messages.HEADER_VALUE_DROPPED in named or messages.HEADER_KEY_AND_HEADERS_DROPPED in named:
        raise NotReplayable("the record was too large for the dead-letter topic and was dropped")
    own = tuple(
        (_own_name(name), value or b"") for name, value in headers if not name.startswith(_WORKERS)
    )
    topic = named.get(messages.HEADER_SOURCE_TOPIC)
    return Original(topic.decode() if topic else None, key, value, own)


def group_for(dead_letter_topic: str, target: str | None, chosen: Filter) -> str:
    """A consumer group per replay: the same command run again continues where it stopped;
    a replay with other filters or another target is a replay of its own."""
    what = json.dumps([dead_letter_topic, target, chosen.describe()], sort_keys=True)
    return f"tagstream-replay-{hashlib.sha256(what.encode()).hexdigest()[:12]}"


def _own_name(name: str) -> str:
    """An input header's name as it was: the worker renamed its ``tagstream.*`` ones."""
    if name.startswith(messages.ORIGINAL_PREFIX + _WORKERS):
        return name.removeprefix(messages.ORIGINAL_PREFIX)
    return name


def _named(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, bytes]:
    """The worker's headers by name (the first of each: the worker's come first)."""
    out: dict[str, bytes] = {}
    for name, value in headers:
        if name.startswith(_WORKERS):
            out.setdefault(name, value or b"")
    return out
