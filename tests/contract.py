"""The message contract's JSON Schemas (`tagstream.worker.messages.schema`), as the tests apply
them: every output and dead letter a test reads from a real broker is validated
(`tests/integration/kit.read_all`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from tagstream.worker import messages
from tagstream.worker.outputs import HEADER_MODEL, HEADER_OUTPUT
from tagstream.worker.registry import split_wire


@cache
def validator(name: str) -> Draft202012Validator:
    schema = messages.schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(name: str, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator(name).iter_errors(instance)
    ]


def header_object(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    return {name: (value or b"").decode("utf-8") for name, value in headers}


def check_output(value: bytes, headers: Iterable[tuple[str, bytes | None]] = ()) -> Any:
    """An output record's value against the output schema, and its contract header. An enriched
    or redacted output (header ``tagstream.output``) has the input's shape: only its headers
    are checked."""
    named = header_object(headers)
    assert named.get(messages.HEADER_CONTRACT) == messages.CONTRACT_VERSION, named
    if named.get(HEADER_OUTPUT) in ("enrich", "redact"):
        assert "@" in named[HEADER_MODEL], named
        return value
    if value[:1] == b"\x00":  # the Schema Registry's wire format: Avro is checked by its codec
        _, value = split_wire(value)
        if not value.startswith(b"{"):
            return value
    doc = json.loads(value)
    found = problems("output", doc)
    assert not found, f"an output breaks the schema: {found}: {doc}"
    return doc


def check_dead_letter(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    named = header_object(headers)
    found = problems("dead-letter-headers", named)
    assert not found, f"a dead letter's headers break the schema: {found}: {named}"
    return named


def check_record(topic: str, record: Any) -> None:
    """A record read from a test's topics: ``out-*`` outputs and ``dlq-*`` dead letters (the
    names `tests.integration.kit.Cluster` gives them) are checked; inputs are not."""
    if topic.startswith("out-"):
        check_output(record.value, record.headers)
    elif topic.startswith("dlq-"):
        check_dead_letter(record.headers)
