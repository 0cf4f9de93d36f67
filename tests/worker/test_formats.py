"""Avro and JSON values in the Schema Registry's wire format, in and out (the registry itself is
tested for real in tests/integration/test_schema_registry.py; here a table stands in for it)."""

from __future__ import annotations

import io
import json

import fastavro
import pytest

from tagstream.worker import messages, tagging
from tagstream.worker.formats import Reader, RegistryUnavailable, Writer, output_avro
from tagstream.worker.messages import InvalidMessage
from tagstream.worker.outputs import shaper_of
from tagstream.worker.records import DeadLetter, SourceRecord
from tagstream.worker.registry import SchemaNotFound, join_wire, split_wire
from tagstream.worker.settings import ConfigError, load_settings
from tests.worker.test_outputs import Tagger

URL = "http://registry.invalid:8081"
ARTICLE = {
    "type": "record",
    "name": "Article",
    "fields": [
        {"name": "ref", "type": "string"},
        {"name": "body", "type": {"type": "record", "name": "Body", "fields": [
            {"name": "text", "type": "string"}, {"name": "lang", "type": "string"}]}},
        {"name": "blob", "type": "bytes", "default": ""},
    ],
}  # fmt: skip


class Table:
    """Schemas by id, as a registry holds them; `down` makes every lookup fail."""

    def __init__(self):
        self.schemas = {
            1: {"schema": json.dumps(ARTICLE)},
            2: {"schema": "{}", "schemaType": "JSON"},
        }
        self.registered: dict[str, list[str]] = {}
        self.down = False

    def schema(self, schema_id):
        if self.down:
            raise RegistryUnavailable("connection refused")
        if schema_id not in self.schemas:
            raise SchemaNotFound(str(schema_id))
        return self.schemas[schema_id]

    def register(self, subject, schema, schema_type="AVRO"):
        versions = self.registered.setdefault(subject, [])
        if schema not in versions:
            versions.append(schema)
        new_id = 100 + len(self.schemas)
        self.schemas[new_id] = {"schema": schema, "schemaType": schema_type}
        return new_id


def avro(datum, schema=ARTICLE, schema_id=1) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), datum)
    return join_wire(schema_id, out.getvalue())


ARTICLE_1 = {
    "ref": "a-1",
    "body": {"text": "Ann met Bob in Paris", "lang": "en"},
    "blob": b"\x00\xff",
}


def settings(**more):
    base = {
        "input_format": "avro",
        "text_pointer": "/body/text",
        "id_pointer": "/ref",
        "schema_registry": {"url": URL},
    }
    return load_settings(**{**base, **more})


def source(value):
    return SourceRecord("in", 0, 3, None, value, (), 0)


def test_wire_format_round_trip():
    assert split_wire(join_wire(70000, b"abc")) == (70000, b"abc")
    with pytest.raises(ValueError, match="wire format"):
        split_wire(b"\x01\x00\x00\x00\x01x")


def test_an_avro_record_is_read_by_its_pointers():
    doc = Reader(settings(), Table()).read(avro(ARTICLE_1))
    assert (doc.id, doc.text, doc.schema_id) == ("a-1", "Ann met Bob in Paris", 1)


@pytest.mark.parametrize(
    "value, reason",
    [
        (b'{"text": "json, not avro"}', messages.NOT_WIRE_FORMAT),
        (join_wire(9, b"\x02"), messages.SCHEMA_NOT_FOUND),
        (join_wire(2, b"{}"), messages.WRONG_SCHEMA_TYPE),
        (join_wire(1, b"\x99\x99\x99\x99\x99\x99"), messages.UNDECODABLE),
        (avro(ARTICLE_1) + b"extra", messages.UNDECODABLE),
        (None, messages.NULL_VALUE),
    ],
)
def test_what_cannot_be_read_is_a_dead_letter_with_its_reason(value, reason):
    entry = tagging.decode(source(value), settings(), Tagger(), Reader(settings(), Table()))
    assert isinstance(entry, DeadLetter) and entry.reason == reason, entry


def test_a_registry_that_does_not_answer_raises_instead_of_dead_lettering():
    table = Table()
    table.down = True
    with pytest.raises(RegistryUnavailable):
        Reader(settings(), table).read(avro(ARTICLE_1))


def test_json_schema_input():
    s = settings(input_format="json_schema")
    value = join_wire(2, json.dumps({"body": {"text": "Bob"}, "ref": "j"}).encode())
    assert Reader(s, Table()).read(value).text == "Bob"


def labelled_output(s, table, value):
    record = tagging.decode(source(value), s, Tagger(), Reader(s, table))
    shaper = shaper_of(s, "fake@1", Writer(s, table))
    return shaper.value(record, Tagger().spans(record.text))


def read_avro(value, table):
    schema_id, payload = split_wire(value)
    schema = fastavro.parse_schema(json.loads(table.schemas[schema_id]["schema"]))
    return fastavro.schemaless_reader(io.BytesIO(payload), schema, None)


def test_spans_as_avro_with_the_shipped_schema_registered_under_the_topic_subject():
    table = Table()
    s = settings(output={"format": "avro"}, kafka={"output_topic": "labelled"})
    Writer(s, table).register()
    assert json.loads(table.registered["labelled-value"][0]) == output_avro()
    doc = read_avro(labelled_output(s, table, avro(ARTICLE_1)), table)
    assert doc["id"] == "a-1" and [x["text"] for x in doc["spans"]] == ["Ann", "Bob", "Paris"]
    assert doc["source"] == {"topic": "in", "partition": 0, "offset": 3} and doc["text"] is None


def test_enrich_avro_adds_the_entities_field_to_the_inputs_schema():
    table = Table()
    s = settings(output={"format": "avro", "mode": "enrich"})
    doc = read_avro(labelled_output(s, table, avro(ARTICLE_1)), table)
    entities = doc.pop("entities")
    assert doc == ARTICLE_1
    assert [(e["label"], e["text"]) for e in entities] == [
        ("PER", "Ann"),
        ("PER", "Bob"),
        ("LOC", "Paris"),
    ]


def test_redact_avro_keeps_the_inputs_schema_and_hides_the_names():
    table = Table()
    s = settings(output={"format": "avro", "mode": "redact"})
    value = labelled_output(s, table, avro(ARTICLE_1))
    doc = read_avro(value, table)
    assert doc["body"]["text"] == "[PER] met [PER] in [LOC]"
    assert all("text" not in e for e in doc["entities"])
    assert b"Paris" not in value


def test_enrich_json_of_an_avro_input_writes_bytes_as_avro_json_does():
    table = Table()
    s = settings(output={"mode": "enrich"})
    doc = json.loads(labelled_output(s, table, avro(ARTICLE_1)))
    assert doc["blob"] == "\u0000\u00ff" and len(doc["entities"]) == 3


def test_spans_as_json_schema():
    table = Table()
    s = settings(output={"format": "json_schema"})
    value = labelled_output(s, table, avro(ARTICLE_1))
    schema_id, payload = split_wire(value)
    assert table.schemas[schema_id]["schemaType"] == "JSON"
    assert json.loads(payload)["id"] == "a-1"


@pytest.mark.parametrize(
    "more, words",
    [
        ({"schema_registry": {}}, "SCHEMA_REGISTRY__URL"),
        ({"output": {"format": "json_schema", "mode": "enrich"}}, "use json or avro"),
        ({"input_format": "json", "output": {"format": "avro", "mode": "enrich"}}, "must be avro"),
        (
            {"output": {"format": "avro", "mode": "enrich", "entities_pointer": "/a/b"}},
            "one name",
        ),
    ],
)
def test_settings_that_cannot_work_are_refused(more, words):
    with pytest.raises(ConfigError, match=words):
        settings(**more)


def test_bad_json_in_the_wire_format():
    with pytest.raises(InvalidMessage) as info:
        Reader(settings(input_format="json_schema"), Table()).read(join_wire(2, b"{nope"))
    assert info.value.reason == messages.UNDECODABLE


def test_a_registry_that_does_not_answer_is_retried_then_given_up_on():
    from tagstream.worker.registry import Registry
    from tests.integration.kit import free_port

    beats, pauses = [], []
    registry = Registry(
        f"http://127.0.0.1:{free_port()}",  # nothing listens there
        retry_s=1.0,
        waiting=lambda: beats.append(1),
        sleep=pauses.append,
    )
    with pytest.raises(RegistryUnavailable):
        registry.schema(1)
    assert beats and pauses[:3] == [0.2, 0.4, 0.8]  # backing off, beating liveness meanwhile
