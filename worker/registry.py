"""A Schema Registry client for the Confluent-compatible REST API (Confluent Schema Registry,
Apicurio Registry's ``/apis/ccompat/v7``, Karapace, Redpanda): schemas by id, cached for the
life of the process (an id never changes its schema), and registering the worker's output
schema under a subject.

The Confluent wire format (`split_wire`, `join_wire`): a zero byte, the schema id as a 4-byte
big-endian integer, then the encoded value.

Errors: `SchemaNotFound` (the registry answered that it has no such id: the record can never be
read, it is a dead letter) and `RegistryUnavailable` (no answer, or an error of the registry's
own: the record is fine, the worker must not move past it).
"""

from __future__ import annotations

import base64
import json
import ssl
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

MAGIC = 0
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaNotFound(Exception):
    pass


class RegistryUnavailable(Exception):
    pass


class NotWireFormat(ValueError):
    pass


def split_wire(value: bytes) -> tuple[int, bytes]:
    """``(schema id, payload)`` of a value in the Confluent wire format.

    >>> split_wire(bytes([0, 0, 0, 1, 44]) + b"x")
    (300, b'x')
    """
    if len(value) < 5 or value[0] != MAGIC:
        raise NotWireFormat(
            "not in the Schema Registry wire format (a zero byte and a 4-byte schema id first)"
        )
    return struct.unpack(">I", value[1:5])[0], value[5:]


def join_wire(schema_id: int, payload: bytes) -> bytes:
    return bytes([MAGIC]) + struct.pack(">I", schema_id) + payload


class Registry:
    """``url`` is the API's base (``http://host:8081``, or Apicurio's
    ``http://host:8080/apis/ccompat/v7``). Lookups that fail for want of an answer are retried
    with back-off for up to ``retry_s``, calling ``waiting`` between tries (the worker beats its
    liveness there: waiting on the registry is not a stall)."""

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        cafile: str | None = None,
        timeout_s: float = 5.0,
        retry_s: float = 30.0,
        waiting: Callable[[], None] = lambda: None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url.rstrip("/")
        self._auth = None
        if username:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"
        self._context = ssl.create_default_context(cafile=cafile) if cafile else None
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._waiting = waiting
        self._sleep = sleep
        self._schemas: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def schema(self, schema_id: int) -> dict[str, Any]:
        """The registry's answer for the id: ``{"schema": str, "schemaType": ...}``."""
        found = self._schemas.get(schema_id)
        if found is None:
            found = self._retrying(lambda: self._request("GET", f"/schemas/ids/{schema_id}"))
            with self._lock:
                self._schemas[schema_id] = found
        return found

    def register(self, subject: str, schema: str, schema_type: str = "AVRO") -> int:
        """The id of ``schema`` under ``subject``, registering it if new (the registry's
        compatibility rules apply: an incompatible change is refused with its reason)."""
        body: dict[str, Any] = {"schema": schema}
        if schema_type != "AVRO":
            body["schemaType"] = schema_type
        answer = self._retrying(
            lambda: self._request("POST", f"/subjects/{subject}/versions", body)
        )
        return int(answer["id"])

    def _retrying(self, call: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self._retry_s
        pause = 0.2
        while True:
            try:
                return call()
            except RegistryUnavailable:
                if time.monotonic() + pause > deadline:
                    raise
            self._waiting()
            self._sleep(pause)
            pause = min(pause * 2, 5.0)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", CONTENT_TYPE)
        if data is not None:
            request.add_header("Content-Type", CONTENT_TYPE)
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(
                request, timeout=self._timeout_s, context=self._context
            ) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if exc.code == 404:
                raise SchemaNotFound(f"{method} {path}: {detail}") from None
            if exc.code in (400, 401, 403, 409, 422):  # our request or credentials: no retry
                raise RegistryRefused(f"{method} {path}: HTTP {exc.code}: {detail}") from None
            raise RegistryUnavailable(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except (OSError, ValueError) as exc:  # refused, reset, timed out, not JSON
            raise RegistryUnavailable(f"{method} {path}: {exc}") from None


class RegistryRefused(Exception):
    """The registry understood and refused: bad credentials, an incompatible schema."""


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("message", ""))[:300]
    except (OSError, ValueError, AttributeError):
        return exc.reason if isinstance(exc.reason, str) else ""
