"""The message contract: input values in, output values and dead-letter headers out.

Input value (``input_format="json"``): a UTF-8 JSON object ``{"id": str (optional), "text": str,
...}``; other fields are ignored. With ``input_format="text"`` the whole value is the text.

Output value: ``{"id", "spans": [{"start", "end", "label", "text", "score"}],
"model": "name@version", "source": {"topic", "partition", "offset"}}`` plus ``"text"`` when
echoing is on. ``start``/``end`` are code-point offsets into the input text, end exclusive.

The contract is also written as JSON Schemas, shipped in the package (`schema`): the input
value, the output value, and the headers of a dead letter. Every output and dead letter carries
the contract's version in the header ``tagstream.contract`` (`CONTRACT_VERSION`); it changes when
a consumer that follows the schemas could break (docs/messages.md#versions).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from .pointers import resolve
from .records import DeadLetter, SourceRecord, TextRecord

CONTRACT_VERSION = "1"
HEADER_CONTRACT = "tagstream.contract"
SCHEMAS = ("input", "output", "dead-letter-headers")

# Dead-letter reasons (the ``tagstream.error.class`` header and the metric's ``reason`` label).
NULL_VALUE = "null_value"
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_TEXT = "missing_text"
TEXT_NOT_A_STRING = "text_not_a_string"
INVALID_ID = "invalid_id"
TEXT_TOO_LONG = "text_too_long"
OUTPUT_TOO_LARGE = "output_too_large"
TAGGING_FAILED = "tagging_failed"
TAGGING_TIMEOUT = "tagging_timeout"
UNREADABLE_RECORD = "unreadable_record"
OUTPUT_POINTER_BLOCKED = "output_pointer_blocked"
NOT_WIRE_FORMAT = "not_wire_format"
SCHEMA_NOT_FOUND = "schema_not_found"
WRONG_SCHEMA_TYPE = "wrong_schema_type"
UNDECODABLE = "undecodable"
UNKNOWN_MODEL = "unknown_model"  # worker/routing.py
REASONS = (
    NULL_VALUE,
    INVALID_UTF8,
    INVALID_JSON,
    NOT_AN_OBJECT,
    MISSING_TEXT,
    TEXT_NOT_A_STRING,
    INVALID_ID,
    TEXT_TOO_LONG,
    OUTPUT_TOO_LARGE,
    TAGGING_FAILED,
    TAGGING_TIMEOUT,
    UNREADABLE_RECORD,
    OUTPUT_POINTER_BLOCKED,
    NOT_WIRE_FORMAT,
    SCHEMA_NOT_FOUND,
    WRONG_SCHEMA_TYPE,
    UNDECODABLE,
    UNKNOWN_MODEL,
)

HEADER_ERROR_CLASS = "tagstream.error.class"
HEADER_ERROR_MESSAGE = "tagstream.error.message"
HEADER_SOURCE_TOPIC = "tagstream.source.topic"
HEADER_SOURCE_PARTITION = "tagstream.source.partition"
HEADER_SOURCE_OFFSET = "tagstream.source.offset"
HEADER_SOURCE_TIMESTAMP = "tagstream.source.timestamp"
# On an unreadable_record dead letter: the first offset skipped (the last is the source offset).
HEADER_SOURCE_FIRST_OFFSET = "tagstream.source.first_offset"
# An input's own headers named like tagstream's keep their value under this prefix, so that a
# producer cannot pass for the worker (`dead_letter_headers`).
ORIGINAL_PREFIX = "original."
# Set on a dead letter whose input value was too large to pass on (its coordinates remain).
HEADER_VALUE_DROPPED = "tagstream.error.value_dropped"
# Set when even that was too large: the input's key and headers were dropped as well.
HEADER_KEY_AND_HEADERS_DROPPED = "tagstream.error.key_and_headers_dropped"


class InvalidMessage(Exception):
    """The value cannot be labelled; `reason` is one of `REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class InputDocument:
    """What a record value holds: the text, its id, and (JSON input) the whole document."""

    id: str | None
    text: str
    document: Any = None
    schema_id: int | None = None  # the Schema Registry's id of the value's schema


def parse_input(
    value: bytes | None, input_format: str, max_text_chars: int
) -> tuple[str | None, str]:
    """Return ``(id, text)`` from a record value, or raise `InvalidMessage`.

    >>> parse_input(b'{"id": "a1", "text": "Paris"}', "json", 100)
    ('a1', 'Paris')
    """
    doc = read_input(value, input_format, max_text_chars)
    return doc.id, doc.text


def read_input(
    value: bytes | None,
    input_format: str,
    max_text_chars: int,
    text_pointer: tuple[str, ...] = ("text",),
    id_pointer: tuple[str, ...] = ("id",),
) -> InputDocument:
    """The text and id of a record value, found in a JSON object by their pointers
    (`tagstream.worker.pointers`); or raise `InvalidMessage`.

    >>> read_input(b'{"payload": {"body": "Paris"}}', "json", 100, ("payload", "body"), ()).text
    'Paris'
    """
    if value is None:
        raise InvalidMessage(NULL_VALUE, "the record has no value (a tombstone)")
    try:
        decoded = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(INVALID_UTF8, f"value is not UTF-8: {exc}") from None
    if input_format == "text":
        return checked(InputDocument(None, decoded), max_text_chars)
    try:
        doc = json.loads(decoded.removeprefix("\ufeff"))
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage(INVALID_JSON, f"value is not JSON: {exc}") from None
    return from_document(doc, max_text_chars, text_pointer, id_pointer)


def from_document(
    doc: Any,
    max_text_chars: int,
    text_pointer: tuple[str, ...] = ("text",),
    id_pointer: tuple[str, ...] = ("id",),
    what: str = "JSON",
) -> InputDocument:
    """The text and id of a decoded input document (JSON, or an Avro record as Python data)."""
    if not isinstance(doc, dict):
        raise InvalidMessage(NOT_AN_OBJECT, f"value is {what} {type(doc).__name__}, not an object")
    text = resolve(doc, text_pointer, _NOTHING)
    if text is _NOTHING:
        raise InvalidMessage(MISSING_TEXT, f"the object has no text at {_show(text_pointer)}")
    if not isinstance(text, str):
        raise InvalidMessage(
            TEXT_NOT_A_STRING,
            f"the text at {_show(text_pointer)} is {type(text).__name__}, not a string",
        )
    doc_id = resolve(doc, id_pointer, None) if id_pointer else None
    if doc_id is not None and not isinstance(doc_id, str):
        raise InvalidMessage(
            INVALID_ID,
            f"the id at {_show(id_pointer)} is {type(doc_id).__name__}, not a string",
        )
    return checked(InputDocument(doc_id, text, doc), max_text_chars)


def checked(doc: InputDocument, max_text_chars: int) -> InputDocument:
    if len(doc.text) > max_text_chars:
        raise InvalidMessage(
            TEXT_TOO_LONG,
            f"text has {len(doc.text)} characters, more than max_text_chars={max_text_chars}",
        )
    return doc


_NOTHING = object()


def _show(tokens: tuple[str, ...]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def output_value(
    record: TextRecord, spans: Sequence[Any], model_ref: str, echo_text: bool
) -> bytes:
    """The output record's value for a labelled record."""
    return dumps(record_doc(record, spans, model_ref, echo_text))


def record_doc(
    record: TextRecord, spans: Sequence[Any], model_ref: str, echo_text: bool
) -> dict[str, Any]:
    """The span document of a labelled record from the input topic."""
    src = record.source
    source = {"topic": src.topic, "partition": src.partition, "offset": src.offset}
    return output_doc(record.id, spans, model_ref, source, record.text if echo_text else None)


def output_doc(
    doc_id: str | None,
    spans: Sequence[Any],
    model_ref: str,
    source: dict[str, Any],
    text: str | None,
) -> dict[str, Any]:
    """The output document; `text` is echoed when not None."""
    doc: dict[str, Any] = {
        "id": doc_id,
        "spans": [
            {
                "start": s.start,
                "end": s.end,
                "label": s.label,
                "text": s.text,
                "score": round(s.score, 4),
            }
            for s in spans
        ],
        "model": model_ref,
        "source": source,
    }
    if text is not None:
        doc["text"] = text
    return doc


def dumps(doc: Any) -> bytes:
    """Compact UTF-8 JSON; lone surrogates (legal in a JSON escape) fall back to ASCII escapes."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=_jsonable)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(doc, ensure_ascii=True, separators=(",", ":"), default=_jsonable).encode(
            "ascii"
        )


def _jsonable(value: Any) -> Any:
    """Avro data JSON has no type for: bytes as Avro's JSON encoding writes them (one code
    point per byte), decimals, times and UUIDs as strings."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def dead_letter_headers(dead: DeadLetter) -> list[tuple[str, bytes]]:
    """The error and where the record came from, then the input's own headers; those named
    ``tagstream.*`` are renamed ``original.tagstream.*``, so every ``tagstream.*`` header of a
    dead letter is the worker's."""
    own = [
        (ORIGINAL_PREFIX + name if name.startswith("tagstream.") else name, value)
        for name, value in dead.source.headers
    ]
    return [*error_headers(dead), *own]


def output_headers(input_headers: Sequence[tuple[str, bytes]]) -> tuple[tuple[str, bytes], ...]:
    """An output's headers: the input's, then the contract's version (an input's own
    ``tagstream.contract`` is renamed ``original.tagstream.contract``)."""
    own = tuple(
        (ORIGINAL_PREFIX + name if name == HEADER_CONTRACT else name, value)
        for name, value in input_headers
    )
    return (*own, (HEADER_CONTRACT, CONTRACT_VERSION.encode()))


def error_headers(dead: DeadLetter) -> list[tuple[str, bytes]]:
    """The headers tagstream adds to a dead letter: the error and where the record came from."""
    src: SourceRecord = dead.source
    return [
        (HEADER_ERROR_CLASS, dead.reason.encode()),
        (HEADER_ERROR_MESSAGE, dead.message[:1000].encode("utf-8", "replace")),
        (HEADER_SOURCE_TOPIC, src.topic.encode()),
        (HEADER_SOURCE_PARTITION, str(src.partition).encode()),
        (HEADER_SOURCE_OFFSET, str(src.offset).encode()),
        (HEADER_SOURCE_TIMESTAMP, str(src.timestamp_ms).encode()),
        *(
            [(HEADER_SOURCE_FIRST_OFFSET, str(src.unreadable.first_offset).encode())]
            if src.unreadable
            else []
        ),
        (HEADER_CONTRACT, CONTRACT_VERSION.encode()),
    ]


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the contract's ``name``: "input", "output" or "dead-letter-headers"
    (the headers as an object of UTF-8 strings)."""
    if name not in SCHEMAS:
        raise ValueError(f"no schema {name!r}; there are {', '.join(SCHEMAS)}")
    text = files(__package__).joinpath("schemas", f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)
