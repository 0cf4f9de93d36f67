"""Record values by format, in and out: JSON and bare text (`messages`), and Avro or JSON with a
Schema Registry in the Confluent wire format (`registry`).

In: ``input_format`` avro or json_schema reads the schema id in front of the value, gets the
writer's schema from the registry (once per id) and decodes; the text and id are then found by
their pointers, as in a JSON document (an Avro record is a dict). A value not in the wire
format, a schema id the registry does not know, a schema of the other kind or a value its schema
cannot decode is a dead letter; a registry that does not answer stops the worker rather than
skip a record (`RegistryUnavailable`).

Out: ``output.format`` avro writes the span document with `OUTPUT_AVRO` (worker/schemas/
output.avsc), or, enriching or redacting an Avro input, the input's schema with the entities
field added; json_schema writes the span document's JSON with the output JSON Schema's id. The
schemas are registered under ``<output topic>-value`` (the usual subject naming).
"""

from __future__ import annotations

import copy
import io
import json
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from . import messages
from .messages import InputDocument, InvalidMessage
from .pointers import parse
from .records import TextRecord
from .registry import (
    NotWireFormat,
    Registry,
    RegistryRefused,
    SchemaNotFound,
    join_wire,
    split_wire,
)
from .registry import RegistryUnavailable as RegistryUnavailable

if TYPE_CHECKING:
    from .settings import Settings

_AVRO_ENTITY = {
    "type": "record",
    "name": "Entity",
    "namespace": "dev.tagstream",
    "fields": [
        {"name": "start", "type": "int"},
        {"name": "end", "type": "int"},
        {"name": "label", "type": "string"},
        {"name": "text", "type": "string"},
        {"name": "score", "type": "double"},
    ],
}
_AVRO_REDACTED = {
    "type": "record",
    "name": "RedactedEntity",
    "namespace": "dev.tagstream",
    "fields": [f for f in _AVRO_ENTITY["fields"] if f["name"] != "text"],
}


@cache
def output_avro() -> dict[str, Any]:
    """The span document as an Avro schema (worker/schemas/output.avsc)."""
    return json.loads(files(__package__).joinpath("schemas", "output.avsc").read_text("utf-8"))


class Reader:
    """Record value -> `InputDocument`, by ``input_format``."""

    def __init__(self, settings: Settings, registry: Registry | None = None):
        self._format = settings.input_format
        self._max = settings.max_text_chars
        self._text = parse(settings.text_pointer)
        self._id = parse(settings.id_pointer)
        self._registry = registry
        self._parsed: dict[int, Any] = {}
        if self._format in ("avro", "json_schema") and registry is None:
            raise ValueError(f"input format {self._format} needs a schema registry")

    def read(self, value: bytes | None) -> InputDocument:
        if self._format in ("json", "text"):
            return messages.read_input(value, self._format, self._max, self._text, self._id)
        if value is None:
            raise InvalidMessage(messages.NULL_VALUE, "the record has no value (a tombstone)")
        try:
            schema_id, payload = split_wire(value)
        except NotWireFormat as exc:
            raise InvalidMessage(messages.NOT_WIRE_FORMAT, str(exc)) from None
        writer = self._writer_schema(schema_id)
        if self._format == "json_schema":
            try:
                doc = json.loads(payload.decode("utf-8"))
            except (ValueError, RecursionError) as exc:
                raise InvalidMessage(
                    messages.UNDECODABLE, f"schema {schema_id}: not UTF-8 JSON: {exc}"
                ) from None
            what = "JSON"
        else:
            doc = _avro_decode(payload, writer, schema_id)
            what = "an Avro"
        if isinstance(doc, str):  # a bare string schema: the value is the text
            found = messages.checked(InputDocument(None, doc), self._max)
        else:
            found = messages.from_document(doc, self._max, self._text, self._id, what)
        return InputDocument(found.id, found.text, found.document, schema_id)

    def _writer_schema(self, schema_id: int) -> Any:
        parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        assert self._registry is not None
        try:
            answer = self._registry.schema(schema_id)
        except SchemaNotFound:
            raise InvalidMessage(
                messages.SCHEMA_NOT_FOUND,
                f"the schema registry has no schema {schema_id}",
            ) from None
        except RegistryRefused as exc:  # credentials: not the record's fault
            raise RegistryUnavailable(str(exc)) from None
        kind = answer.get("schemaType", "AVRO")
        wanted = "AVRO" if self._format == "avro" else "JSON"
        if kind != wanted:
            raise InvalidMessage(
                messages.WRONG_SCHEMA_TYPE,
                f"schema {schema_id} is {kind}; input format {self._format} reads {wanted}",
            )
        if kind == "AVRO":
            import fastavro

            try:
                parsed = fastavro.parse_schema(json.loads(answer["schema"]))
            except Exception as exc:  # a schema fastavro cannot read: every record of it
                raise InvalidMessage(
                    messages.UNDECODABLE, f"schema {schema_id} cannot be read: {exc}"
                ) from None
        else:
            parsed = answer["schema"]
        self._parsed[schema_id] = parsed
        return parsed


def _avro_decode(payload: bytes, schema: Any, schema_id: int) -> Any:
    import fastavro

    buffer = io.BytesIO(payload)
    try:
        datum = fastavro.schemaless_reader(buffer, schema, None)
    except Exception as exc:  # fastavro raises what the bytes make it raise
        raise InvalidMessage(
            messages.UNDECODABLE, f"the value does not decode with schema {schema_id}: {exc!r}"
        ) from None
    if buffer.tell() != len(payload):
        raise InvalidMessage(
            messages.UNDECODABLE,
            f"the value does not decode with schema {schema_id}: "
            f"{len(payload) - buffer.tell()} bytes left over",
        )
    return datum


class Writer:
    """An output document -> record value, by ``output.format``."""

    def __init__(self, settings: Settings, registry: Registry | None = None):
        self._format = settings.output.format
        self._mode = settings.output.mode
        self._subject = f"{settings.kafka.output_topic}-value"
        self._entities_field = parse(settings.output.entities_pointer)[:1]
        self._registry = registry
        self._ids: dict[int | None, tuple[int, Any]] = {}  # input schema id -> output id, parsed
        if self._format != "json" and registry is None:
            raise ValueError(f"output format {self._format} needs a schema registry")

    def register(self) -> None:
        """At start-up: register the span document's schema (spans mode), so that a refusal
        (an incompatible schema already under the subject) stops the worker at once."""
        if self._format == "avro" and self._mode == "spans":
            self._output_id(None, output_avro())
        elif self._format == "json_schema":
            self._output_id(None, messages.schema("output"))

    def encode(self, doc: Any, record: TextRecord) -> bytes:
        if self._format == "json":
            return messages.dumps(doc)
        if self._format == "json_schema":
            schema_id, _ = self._output_id(None, messages.schema("output"))
            return join_wire(schema_id, messages.dumps(doc))
        import fastavro

        if self._mode == "spans":
            schema_id, parsed = self._output_id(None, output_avro())
        else:
            schema_id, parsed = self._output_id(record.schema_id, self._enriched(record))
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, doc)
        return join_wire(schema_id, out.getvalue())

    def _enriched(self, record: TextRecord) -> dict[str, Any]:
        """The input's Avro schema with the entities field (an array, default empty) added."""
        assert self._registry is not None and record.schema_id is not None
        schema = copy.deepcopy(json.loads(self._registry.schema(record.schema_id)["schema"]))
        name = self._entities_field[0]
        item = _AVRO_REDACTED if self._mode == "redact" else _AVRO_ENTITY
        fields = [f for f in schema["fields"] if f["name"] != name]
        fields.append({"name": name, "type": {"type": "array", "items": item}, "default": []})
        schema["fields"] = fields
        return schema

    def _output_id(self, input_id: int | None, schema: dict[str, Any]) -> tuple[int, Any]:
        found = self._ids.get(input_id)
        if found is None:
            assert self._registry is not None
            kind = "JSON" if self._format == "json_schema" else "AVRO"
            schema_id = self._registry.register(self._subject, json.dumps(schema), kind)
            parsed: Any = schema
            if kind == "AVRO":
                import fastavro

                parsed = fastavro.parse_schema(schema)
            found = self._ids[input_id] = (schema_id, parsed)
        return found


def registry_of(settings: Settings, waiting: Any = lambda: None) -> Registry | None:
    """The registry client the settings ask for, or None."""
    sr = settings.schema_registry
    if sr.url is None:
        return None
    return Registry(
        sr.url,
        sr.username,
        sr.password.get_secret_value() if sr.password else None,
        str(sr.cafile) if sr.cafile else None,
        sr.timeout_s,
        sr.retry_s,
        waiting,
    )
