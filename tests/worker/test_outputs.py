"""Output modes: the span document, the input enriched, the input redacted."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from tagstream.worker import messages, tagging
from tagstream.worker.delivery import Delivery
from tagstream.worker.metrics import Metrics
from tagstream.worker.outputs import (
    HEADER_MODEL,
    HEADER_OUTPUT,
    OutputError,
    Redaction,
    shaper_of,
)
from tagstream.worker.records import DeadLetter, LabelledRecord, SourceRecord
from tagstream.worker.settings import ConfigError, load_settings
from tests.worker.fakes import FakeSink, FakeSource, Journal

KEY = "k" * 32


@dataclass
class Span:
    start: int
    end: int
    label: str
    text: str
    score: float


class Tagger:
    """Labels every occurrence of the words it knows."""

    name, version, labels = "fake", "1", ("PER", "LOC")
    KNOWN = {"Ann": "PER", "Bob": "PER", "Paris": "LOC"}

    @dataclass(frozen=True)
    class Prepared:
        text: str
        num_tokens: int = 1

    def prepare(self, text):
        return self.Prepared(text)

    def spans(self, text):
        out, at = [], 0
        for word in text.split(" "):
            if word in self.KNOWN:
                out.append(Span(at, at + len(word), self.KNOWN[word], word, 0.9))
            at += len(word) + 1
        return out


def labelled(value: dict | str, **settings):
    s = load_settings(**settings)
    raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
    src = SourceRecord("in", 0, 7, b"k", raw, (("trace", b"1"),), 0)
    entry = tagging.decode(src, s, Tagger())
    assert not isinstance(entry, DeadLetter), entry
    return s, entry, Tagger().spans(entry.text)


def shaped(value, **settings):
    s, record, spans = labelled(value, **settings)
    shaper = shaper_of(s, "fake@1")
    return shaper.value(record, spans), dict(shaper.headers(record.source.headers))


def test_spans_mode_is_the_span_document():
    value, headers = shaped({"id": "a", "text": "Ann in Paris"})
    doc = json.loads(value)
    assert [s["text"] for s in doc["spans"]] == ["Ann", "Paris"]
    assert HEADER_OUTPUT not in headers and headers[messages.HEADER_CONTRACT] == b"1"


def test_text_and_id_by_pointer():
    doc = {"data": {"message": {"text": "Bob", "ref": "m-1"}}, "text": "not this"}
    value, _ = shaped(doc, text_pointer="/data/message/text", id_pointer="/data/message/ref")
    out = json.loads(value)
    assert out["id"] == "m-1" and [s["text"] for s in out["spans"]] == ["Bob"]


@pytest.mark.parametrize(
    "doc, reason",
    [
        ({"payload": {}}, messages.MISSING_TEXT),
        ({"payload": "flat"}, messages.MISSING_TEXT),
        ({"payload": {"body": ["x"]}}, messages.TEXT_NOT_A_STRING),
        ({"payload": {"body": "x"}, "meta": {"id": 5}}, messages.INVALID_ID),
    ],
)
def test_a_missing_or_wrong_target_is_a_dead_letter_naming_the_pointer(doc, reason):
    s = load_settings(text_pointer="/payload/body", id_pointer="/meta/id")
    src = SourceRecord("in", 0, 7, None, json.dumps(doc).encode(), (), 0)
    dead = tagging.decode(src, s, Tagger())
    assert isinstance(dead, DeadLetter) and dead.reason == reason
    assert "/payload/body" in dead.message or "/meta/id" in dead.message


def test_enrich_is_the_input_plus_entities_with_offsets_into_the_input_text():
    doc = {"id": "a", "payload": {"body": "Ann met Bob in Paris", "lang": "en"}, "n": [1, 2]}
    value, headers = shaped(
        doc,
        text_pointer="/payload/body",
        output={"mode": "enrich", "entities_pointer": "/payload/ner"},
    )
    out = json.loads(value)
    entities = out["payload"].pop("ner")
    assert out == doc  # nothing else changed
    text = doc["payload"]["body"]
    assert [(e["label"], text[e["start"] : e["end"]]) for e in entities] == [
        ("PER", "Ann"),
        ("PER", "Bob"),
        ("LOC", "Paris"),
    ]
    assert headers[HEADER_OUTPUT] == b"enrich" and headers[HEADER_MODEL] == b"fake@1"


def test_redact_with_masks_leaves_no_mention_and_offsets_point_at_the_masks():
    doc = {"id": "a", "text": "Ann met Bob in Paris", "other": "kept"}
    value, headers = shaped(doc, output={"mode": "redact"})
    out = json.loads(value)
    assert out["text"] == "[PER] met [PER] in [LOC]"
    assert out["other"] == "kept"
    for name in ("Ann", "Bob", "Paris"):
        assert name.encode() not in value
    assert [out["text"][e["start"] : e["end"]] for e in out["entities"]] == [
        "[PER]",
        "[PER]",
        "[LOC]",
    ]
    assert all("text" not in e for e in out["entities"])
    assert headers[HEADER_OUTPUT] == b"redact"


def test_pseudonyms_are_stable_per_key_and_label_and_differ_between_names():
    def redact(text, key=KEY):
        value, _ = shaped(
            {"text": text},
            output={"mode": "redact", "redact": "pseudonym", "pseudonym_key": key},
        )
        return json.loads(value)["text"]

    first = redact("Ann met Bob").split(" ")
    again = redact("Bob saw Ann").split(" ")
    assert first[0] == again[2] and first[2] == again[0] and first[0] != first[2]
    assert first[0].startswith("PER_") and len(first[0]) == 4 + 12
    assert redact("Ann", key="x" * 32) != first[0]  # another key, other pseudonyms


def test_redact_by_label_keeps_or_masks_per_label():
    value, _ = shaped(
        {"text": "Ann in Paris"},
        output={"mode": "redact", "redact_by_label": {"LOC": "keep"}, "mask_format": "<{label}>"},
    )
    assert json.loads(value)["text"] == "<PER> in Paris"


def test_redact_of_bare_text_is_the_redacted_text():
    value, _ = shaped("Ann in Paris", input_format="text", output={"mode": "redact"})
    assert value == b"[PER] in [LOC]"


def test_overlapping_spans_redact_once():
    spans = [Span(0, 5, "PER", "Ann B", 0.9), Span(4, 7, "LOC", "Bob", 0.8)]
    text, entities = Redaction().apply("Ann Bob x", spans)
    assert text == "[PER]ob x" and len(entities) == 1


def test_an_entities_pointer_through_a_string_is_a_dead_letter(tmp_path):
    s, record, spans = labelled(
        {"text": "Ann", "meta": "flat"},
        output={"mode": "enrich", "entities_pointer": "/meta/entities"},
    )
    with pytest.raises(OutputError) as info:
        shaper_of(s, "fake@1").value(record, spans)
    assert info.value.reason == messages.OUTPUT_POINTER_BLOCKED
    # delivery turns it into a dead letter carrying the input unchanged
    journal = Journal()
    sink = FakeSink(journal)
    metrics = Metrics(CollectorRegistry(), process_metrics=False)
    delivery = Delivery(s, FakeSource(journal), sink, metrics, "fake@1")
    assert delivery.deliver([LabelledRecord(record, tuple(spans))])
    [out] = sink.written
    assert out.topic == s.kafka.dead_letter_topic and out.value == record.source.value
    assert dict(out.headers)[messages.HEADER_ERROR_CLASS] == b"output_pointer_blocked"


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"output": {"mode": "redact", "redact": "pseudonym"}}, "16 bytes"),
        (
            {"output": {"mode": "redact", "redact": "pseudonym", "pseudonym_key": "short"}},
            "16 bytes",
        ),
        ({"output": {"mode": "enrich"}, "echo_text": True}, "echo"),
        ({"output": {"mode": "enrich"}, "input_format": "text"}, "JSON input"),
        ({"output": {"mode": "redact", "entities_pointer": "/text"}}, "overwrite the text"),
        (
            {"output": {"mode": "redact", "entities_pointer": "/a/b"}, "text_pointer": "/a"},
            "inside",
        ),
        ({"output": {"entities_pointer": ""}}, "whole document"),
        ({"text_pointer": "text"}, "JSON Pointer"),
        ({"text_pointer": ""}, "whole document"),
    ],
)
def test_unusable_output_settings_are_refused(settings, words):
    with pytest.raises(ConfigError, match=words):
        load_settings(**settings)


def test_the_key_never_shows_in_the_settings_log():
    s = load_settings(output={"mode": "redact", "redact": "pseudonym", "pseudonym_key": KEY})
    assert KEY not in json.dumps(s.redacted())
