"""The message contract as files: the shipped JSON Schemas agree with what the worker, `tagstream
tag` and the Python API write, and refuse what they never write."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tagstream.worker import messages
from tagstream.worker.records import DeadLetter, SourceRecord, TextRecord, Unreadable
from tests.contract import check_dead_letter, check_output, header_object, problems, validator

SOURCE = SourceRecord("texts", 3, 18211, b"k", b'{"id": "42", "text": "Paris"}', (), 1_700_000)


class S:
    def __init__(self, start, end, label, text, score):
        self.start, self.end, self.label, self.text, self.score = start, end, label, text, score


@pytest.mark.parametrize("name", messages.SCHEMAS)
def test_each_schema_is_a_valid_2020_12_schema(name):
    assert validator(name).schema["$id"] == f"urn:tagstream:contract:1:{name}"


def test_what_the_worker_writes_passes_the_output_schema():
    record = TextRecord(SOURCE, "42", "Paris", 1, None)
    for echo in (False, True):
        value = messages.output_value(record, [S(0, 5, "LOC", "Paris", 0.99)], "en-news@1", echo)
        headers = messages.output_headers([("trace", b"abc"), ("tagstream.contract", b"0")])
        doc = check_output(value, headers)
        assert ("text" in doc) == echo
        assert header_object(headers)["original.tagstream.contract"] == "0"


def test_tagstream_tag_lines_and_pipe_documents_pass_it_too():
    for source in ({"file": "-", "line": 1}, {"index": 0}):
        assert not problems("output", messages.output_doc(None, [], "m@1", source, None))
    error_line = {"id": None, "error": {"class": "invalid_json", "message": "x"}, "source": {}}
    tag_error = validator("output").schema["$defs"]["tagError"]
    assert problems("output", error_line)  # not a labelled document
    error_line["source"] = {"file": "in.jsonl", "line": 2}
    from jsonschema import Draft202012Validator

    schema = {**validator("output").schema, **tag_error}
    assert not list(Draft202012Validator(schema).iter_errors(error_line))


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda d: d["spans"][0].update(score=1.5), "greater than the maximum"),
        (lambda d: d.pop("model"), "'model' is a required property"),
        (lambda d: d.update(source={"topic": "t"}), "is not valid under any of the given schemas"),
        (lambda d: d["spans"][0].update(start=-1), "less than the minimum"),
    ],
)
def test_the_output_schema_refuses_what_the_worker_never_writes(change, says):
    doc = messages.output_doc(
        "1",
        [S(0, 5, "LOC", "Paris", 0.5)],
        "en-news@1",
        {"topic": "t", "partition": 0, "offset": 0},
        None,
    )
    change(doc)
    assert any(says in p for p in problems("output", doc)), problems("output", doc)


def dead_letters() -> list[DeadLetter]:
    unreadable = replace(SOURCE, key=None, value=None, unreadable=Unreadable(10, "crc"))
    with_own = replace(SOURCE, headers=(("tagstream.error.class", b"fake"), ("trace", b"1")))
    out = [DeadLetter(SOURCE, reason, f"because {reason}") for reason in messages.REASONS]
    out += [DeadLetter(unreadable, messages.UNREADABLE_RECORD, "offsets 10-18211")]
    out += [DeadLetter(with_own, messages.INVALID_JSON, "x" * 5000)]
    return out


@pytest.mark.parametrize("dead", dead_letters(), ids=lambda d: d.reason)
def test_every_dead_letter_passes_the_header_schema(dead):
    named = check_dead_letter(messages.dead_letter_headers(dead))
    assert named["tagstream.contract"] == messages.CONTRACT_VERSION
    dropped = messages.error_headers(dead) + [
        (messages.HEADER_VALUE_DROPPED, b"true"),
        (messages.HEADER_KEY_AND_HEADERS_DROPPED, b"true"),
    ]
    check_dead_letter(dropped)


def test_the_header_schema_names_every_reason_and_refuses_foreign_tagstream_headers():
    schema = messages.schema("dead-letter-headers")
    assert schema["properties"]["tagstream.error.class"]["enum"] == list(messages.REASONS)
    headers = header_object(messages.dead_letter_headers(dead_letters()[0]))
    assert not problems("dead-letter-headers", headers)
    assert problems("dead-letter-headers", {**headers, "tagstream.something": "x"})
    assert problems("dead-letter-headers", {**headers, "tagstream.error.class": "oops"})


@pytest.mark.parametrize(
    "value",
    [b'{"text": "Paris"}', b'{"id": "a", "text": "", "lang": "en"}', b'{"id": null, "text": "x"}'],
)
def test_inputs_the_worker_reads_pass_the_input_schema(value):
    messages.parse_input(value, "json", 100)
    assert not problems("input", json.loads(value))


@pytest.mark.parametrize(
    "value", [b'{"id": "a"}', b'{"text": 3}', b'{"id": 7, "text": "x"}', b"[1]"]
)
def test_inputs_the_worker_dead_letters_fail_the_input_schema(value):
    with pytest.raises(messages.InvalidMessage):
        messages.parse_input(value, "json", 100)
    assert problems("input", json.loads(value))


def test_an_unknown_schema_name_is_refused():
    with pytest.raises(ValueError, match="no schema 'outputs'"):
        messages.schema("outputs")
