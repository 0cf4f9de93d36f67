"""The micro-batch policy, on a fake clock."""

from __future__ import annotations

import pytest

from tagstream.worker.batcher import Batcher
from tagstream.worker.records import (
    DeadLetter,
    SourceRecord,
    TextRecord,
    TopicPartition,
    next_offsets,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def source(offset: int, partition: int = 0) -> SourceRecord:
    return SourceRecord("in", partition, offset, None, b"x", (), 0)


def text(offset: int, tokens: int = 1, partition: int = 0) -> TextRecord:
    return TextRecord(source(offset, partition), None, "x", tokens, None)


def offsets(batch) -> list[int]:
    return [e.source.offset for e in batch.entries]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_closes_at_max_records(clock):
    b = Batcher(max_records=3, max_tokens=1000, max_wait_s=10, clock=clock)
    for i in range(7):
        b.add(text(i))
    assert offsets(b.take()) == [0, 1, 2]
    assert offsets(b.take()) == [3, 4, 5]
    assert b.take() is None  # the open batch [6] is not due yet
    assert b.room() == 2


def test_closes_after_max_wait_from_first_record(clock):
    b = Batcher(max_records=100, max_tokens=1000, max_wait_s=0.05, clock=clock)
    b.add(text(0))
    clock.now += 0.03
    b.add(text(1))
    assert b.take() is None
    assert b.seconds_left() == pytest.approx(0.02)
    clock.now += 0.02
    assert b.seconds_left() == 0.0
    assert offsets(b.take()) == [0, 1]
    assert b.seconds_left() is None
    # the next batch's clock starts at its own first record
    clock.now += 5
    b.add(text(2))
    assert b.seconds_left() == pytest.approx(0.05)


def test_token_limit_closes_before_overflow(clock):
    b = Batcher(max_records=100, max_tokens=10, max_wait_s=10, clock=clock)
    b.add(text(0, tokens=4))
    b.add(text(1, tokens=4))
    b.add(text(2, tokens=4))  # 12 > 10: [0, 1] closes, 2 opens the next batch
    first = b.take()
    assert offsets(first) == [0, 1] and first.tokens == 8
    assert b.take() is None
    assert offsets(b.flush()) == [2]


def test_a_record_longer_than_the_token_limit_is_a_batch_of_its_own(clock):
    b = Batcher(max_records=100, max_tokens=10, max_wait_s=10, clock=clock)
    b.add(text(0, tokens=3))
    b.add(text(1, tokens=50))
    b.add(text(2, tokens=3))
    assert offsets(b.take()) == [0]
    assert offsets(b.take()) == [1]
    assert b.take() is None
    assert offsets(b.flush()) == [2]


def test_exactly_reaching_the_token_limit_closes(clock):
    b = Batcher(max_records=100, max_tokens=10, max_wait_s=10, clock=clock)
    b.add(text(0, tokens=10))
    assert offsets(b.take()) == [0]


def test_dead_letters_ride_along_without_tokens(clock):
    b = Batcher(max_records=3, max_tokens=5, max_wait_s=10, clock=clock)
    b.add(text(0, tokens=5 - 1))
    b.add(DeadLetter(source(1), "invalid_json", "x"))
    b.add(text(2, tokens=1))  # 4 + 0 + 1 = 5: closes at the token limit
    batch = b.take()
    assert offsets(batch) == [0, 1, 2]
    assert next_offsets(e.source for e in batch.entries) == {TopicPartition("in", 0): 3}


def test_drop_forgets_revoked_partitions_and_returns_them(clock):
    b = Batcher(max_records=2, max_tokens=1000, max_wait_s=10, clock=clock)
    b.add(text(0, partition=0))
    b.add(text(0, partition=1))  # closes [p0@0, p1@0]
    b.add(text(1, partition=1))
    b.add(text(1, partition=0))  # closes [p1@1, p0@1]
    b.add(text(2, partition=1))  # open
    dropped = b.drop({TopicPartition("in", 1)})
    assert sorted((e.source.partition, e.source.offset) for e in dropped) == [
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert len(b) == 2
    assert [(e.source.partition, e.source.offset) for e in b.take().entries] == [(0, 0)]
    assert [(e.source.partition, e.source.offset) for e in b.take().entries] == [(0, 1)]
    assert b.flush() is None


def test_flush_takes_an_open_batch_before_it_is_due(clock):
    b = Batcher(max_records=10, max_tokens=1000, max_wait_s=10, clock=clock)
    assert b.flush() is None
    b.add(text(0))
    assert b.take() is None
    assert offsets(b.flush()) == [0]
    assert len(b) == 0


def test_rejects_nonsense_limits():
    with pytest.raises(ValueError):
        Batcher(0, 10, 1)
    with pytest.raises(ValueError):
        Batcher(1, 0, 1)
    with pytest.raises(ValueError):
        Batcher(1, 1, -1)


def test_next_offsets_per_partition():
    batch = (text(5, partition=0), text(9, partition=1), text(6, partition=0))
    assert next_offsets(e.source for e in batch) == {
        TopicPartition("in", 0): 7,
        TopicPartition("in", 1): 10,
    }
