"""The message contract: what is accepted, what is dead-lettered and why, what goes out."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tagstream.worker import messages, tagging
from tagstream.worker.messages import InvalidMessage, parse_input
from tagstream.worker.records import DeadLetter, SourceRecord, TextRecord, Unreadable
from tagstream.worker.settings import load_settings


@dataclass
class FakeSpan:
    start: int
    end: int
    label: str
    text: str
    score: float


def reason(value, fmt="json", limit=1000) -> str:
    with pytest.raises(InvalidMessage) as info:
        parse_input(value, fmt, limit)
    return info.value.reason


def test_json_input():
    assert parse_input(b'{"id": "a", "text": "Paris", "lang": "en"}', "json", 100) == ("a", "Paris")
    assert parse_input(b'{"text": ""}', "json", 100) == (None, "")
    assert parse_input(b'{"id": null, "text": "x"}', "json", 100) == (None, "x")
    assert parse_input('\ufeff{"text": "é"}'.encode(), "json", 100) == (None, "é")


def test_text_input_is_the_whole_value():
    assert parse_input(' {"text": 1} '.encode(), "text", 100) == (None, ' {"text": 1} ')


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, messages.NULL_VALUE),
        (b"\xff\xfe", messages.INVALID_UTF8),
        (b"{not json", messages.INVALID_JSON),
        (b"", messages.INVALID_JSON),
        (b"[1, 2]", messages.NOT_AN_OBJECT),
        (b'"just a string"', messages.NOT_AN_OBJECT),
        (b'{"id": "x"}', messages.MISSING_TEXT),
        (b'{"text": 5}', messages.TEXT_NOT_A_STRING),
        (b'{"text": null}', messages.TEXT_NOT_A_STRING),
        (b'{"text": "ok", "id": 7}', messages.INVALID_ID),
        (b"[" * 100_000, messages.INVALID_JSON),  # deep nesting must not crash the worker
    ],
)
def test_bad_inputs_have_a_reason(value, expected):
    assert reason(value) == expected


def test_text_too_long_in_both_formats():
    assert reason(json.dumps({"text": "x" * 11}).encode(), limit=10) == messages.TEXT_TOO_LONG
    assert reason(b"x" * 11, fmt="text", limit=10) == messages.TEXT_TOO_LONG
    assert parse_input(b"x" * 10, "text", 10) == (None, "x" * 10)


def test_bad_utf8_in_text_format():
    assert reason(b"caf\xe9", fmt="text") == messages.INVALID_UTF8


def record(text: str, doc_id: str | None = "d1") -> TextRecord:
    src = SourceRecord("in", 3, 42, b"k", b"v", (("trace", b"abc"),), 1_700_000_000_000)
    return TextRecord(src, doc_id, text, 0, None)


def test_output_value_schema():
    text = "Ana visited Zürich."
    spans = [FakeSpan(0, 3, "PER", "Ana", 0.987654), FakeSpan(12, 18, "LOC", "Zürich", 0.5)]
    doc = json.loads(messages.output_value(record(text), spans, "en-news@1.0.0", echo_text=False))
    assert doc == {
        "id": "d1",
        "spans": [
            {"start": 0, "end": 3, "label": "PER", "text": "Ana", "score": 0.9877},
            {"start": 12, "end": 18, "label": "LOC", "text": "Zürich", "score": 0.5},
        ],
        "model": "en-news@1.0.0",
        "source": {"topic": "in", "partition": 3, "offset": 42},
    }
    for s in doc["spans"]:
        assert text[s["start"] : s["end"]] == s["text"]
    echoed = json.loads(messages.output_value(record(text), spans, "m@1", echo_text=True))
    assert echoed["text"] == text


def test_output_is_valid_utf8_even_with_a_lone_surrogate():
    text = json.loads('"a\\ud800b"')  # legal JSON, not encodable as UTF-8
    value = messages.output_value(record(text), [], "m@1", echo_text=True)
    assert json.loads(value.decode("utf-8"))["text"] == text


def test_dead_letter_headers_keep_input_headers_and_say_why():
    src = SourceRecord("in", 1, 7, None, b"{", (("trace", b"abc"),), 123)
    headers = dict(messages.dead_letter_headers(DeadLetter(src, messages.INVALID_JSON, "boom")))
    assert headers["trace"] == b"abc"
    assert headers[messages.HEADER_ERROR_CLASS] == b"invalid_json"
    assert headers[messages.HEADER_ERROR_MESSAGE] == b"boom"
    assert headers[messages.HEADER_SOURCE_TOPIC] == b"in"
    assert headers[messages.HEADER_SOURCE_PARTITION] == b"1"
    assert headers[messages.HEADER_SOURCE_OFFSET] == b"7"
    assert headers[messages.HEADER_SOURCE_TIMESTAMP] == b"123"


def test_the_workers_headers_come_first_and_an_input_cannot_pass_for_them():
    src = SourceRecord(
        "in", 1, 7, b"k", b"v", (("tagstream.error.class", b"spoofed"), ("trace", b"abc")), 123
    )
    headers = messages.dead_letter_headers(DeadLetter(src, messages.INVALID_JSON, "boom"))
    assert headers[0] == (messages.HEADER_ERROR_CLASS, b"invalid_json")
    assert [v for k, v in headers if k == messages.HEADER_ERROR_CLASS] == [b"invalid_json"]
    assert ("original.tagstream.error.class", b"spoofed") in headers
    assert headers[-1] == ("trace", b"abc")


def test_an_unreadable_range_names_its_first_and_last_offset():
    src = SourceRecord("in", 2, 41, None, None, (), 5, Unreadable(38, "CorruptRecordError()"))
    dead = tagging.decode(src, load_settings(), None)
    assert dead.reason == messages.UNREADABLE_RECORD
    assert "38-41" in dead.message
    headers = dict(messages.dead_letter_headers(dead))
    assert headers[messages.HEADER_SOURCE_FIRST_OFFSET] == b"38"
    assert headers[messages.HEADER_SOURCE_OFFSET] == b"41"
