"""Which dead letters a replay takes, and the record each stands for."""

from __future__ import annotations

import argparse

import pytest

from tagstream.worker import messages
from tagstream.worker.cli.replay import timestamp_ms
from tagstream.worker.records import DeadLetter, SourceRecord, Unreadable
from tagstream.worker.replay import Filter, NotReplayable, group_for, original


def dead_letter(reason="invalid_json", partition=2, headers=(("trace", b"t"),), **source):
    src = SourceRecord("in", partition, 40, b"key", b"value", tuple(headers), 1_000, **source)
    return messages.dead_letter_headers(DeadLetter(src, reason, "why"))


def test_the_original_record_comes_back_with_its_own_headers_only():
    own = (("trace", b"t"), ("tagstream.contract", b"9"), ("original.x", b"y"))
    back = original(b"key", b"value", dead_letter(headers=own))
    assert back.topic == "in" and back.key == b"key" and back.value == b"value"
    # the worker's headers are gone; the input's own tagstream.* header has its name back
    assert back.headers == own


@pytest.mark.parametrize(
    "headers, words",
    [
        ([("trace", b"t")], "not a dead letter"),
        (dead_letter("unreadable_record", unreadable=Unreadable(38, "crc")), "could not be read"),
        (dead_letter() + [(messages.HEADER_VALUE_DROPPED, b"true")], "too large"),
    ],
)
def test_what_cannot_be_replayed_says_why(headers, words):
    with pytest.raises(NotReplayable, match=words):
        original(None, b"", headers)


def test_filters():
    headers = dead_letter("missing_text", partition=2)
    assert Filter().takes(headers, 5)
    assert Filter(reasons=frozenset({"missing_text"})).takes(headers, 5)
    assert not Filter(reasons=frozenset({"invalid_json"})).takes(headers, 5)
    assert Filter(partitions=frozenset({1, 2})).takes(headers, 5)
    assert not Filter(partitions=frozenset({0})).takes(headers, 5)
    assert Filter(since_ms=5, until_ms=6).takes(headers, 5)
    assert not Filter(since_ms=6).takes(headers, 5)
    assert not Filter(until_ms=5).takes(headers, 5)


def test_a_spoofed_reason_from_the_input_does_not_fool_the_filter():
    # the input carried its own tagstream.error.class; the worker's comes first
    headers = dead_letter("missing_text", headers=(("tagstream.error.class", b"invalid_json"),))
    assert not Filter(reasons=frozenset({"invalid_json"})).takes(headers, 0)


def test_one_group_per_replay_command():
    a = group_for("dlq", None, Filter(reasons=frozenset({"missing_text"})))
    assert a == group_for("dlq", None, Filter(reasons=frozenset({"missing_text"})))
    assert a != group_for("dlq", None, Filter())
    assert a != group_for("dlq", "other", Filter(reasons=frozenset({"missing_text"})))


def test_times():
    assert timestamp_ms("1700000000000") == 1_700_000_000_000
    assert timestamp_ms("2023-11-14T22:13:20") == 1_700_000_000_000  # UTC when unsaid
    assert timestamp_ms("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    with pytest.raises(argparse.ArgumentTypeError):
        timestamp_ms("yesterday")
