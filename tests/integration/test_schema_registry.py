"""Avro in, Avro out through a real Schema Registry on the real broker: the text found by its
pointer in an Avro record, the span document written in Avro under the output topic's subject;
values the worker cannot read dead-lettered with their reason; a registry that stops answering
for a while costs time, not records."""

from __future__ import annotations

import functools
import http.client
import io
import json
import time
import urllib.request

import fastavro
import pytest

from tagstream.worker.formats import output_avro
from tagstream.worker.registry import join_wire, split_wire
from tests import registry_local
from tests.integration.kit import produce, read_all

ARTICLE = {
    "type": "record",
    "name": "Article",
    "namespace": "test.news",
    "fields": [
        {"name": "ref", "type": "string"},
        {
            "name": "body",
            "type": {
                "type": "record",
                "name": "Body",
                "fields": [{"name": "text", "type": "string"}, {"name": "lang", "type": "string"}],
            },
        },
    ],
}
CT = "application/vnd.schemaregistry.v1+json"


@pytest.fixture(scope="module")
def registry():
    try:
        url = registry_local.ensure_registry()
    except registry_local.RegistryLocalError as exc:
        pytest.fail(
            "no schema registry: set SCHEMA_REGISTRY_URL or make scripts/registry-local "
            f"work:\n{exc}"
        )
    yield url
    registry_local.stop_registry()


def call(url: str, method: str = "GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(3):  # a GET is asked again if the registry drops the connection
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": CT}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read())
        except (http.client.RemoteDisconnected, ConnectionResetError):
            if method != "GET" or attempt == 2:
                raise
            time.sleep(0.5)


def register(registry: str, subject: str, schema: dict) -> int:
    return call(f"{registry}/subjects/{subject}/versions", "POST", {"schema": json.dumps(schema)})[
        "id"
    ]


def encode(schema_id: int, schema: dict, datum: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), datum)
    return join_wire(schema_id, out.getvalue())


@functools.cache
def schema_of(registry: str, schema_id: int) -> dict:
    return fastavro.parse_schema(json.loads(call(f"{registry}/schemas/ids/{schema_id}")["schema"]))


def decode(registry: str, value: bytes) -> dict:
    schema_id, payload = split_wire(value)
    return fastavro.schemaless_reader(io.BytesIO(payload), schema_of(registry, schema_id), None)


def article(i: int) -> dict:
    return {"ref": f"a-{i}", "body": {"text": f"Report number {i} from the desk .", "lang": "en"}}


def test_avro_in_avro_out_and_what_cannot_be_read(
    registry, cluster, topics, start_worker, bootstrap
):
    schema_id = register(registry, f"{topics.input}-value", ARTICLE)
    records = [(None, encode(schema_id, ARTICLE, article(i)), []) for i in range(30)]
    records += [
        (None, b'{"text": "plain JSON"}', []),  # not_wire_format
        (None, join_wire(2_000_000_000, b"\x00"), []),  # schema_not_found
        (None, join_wire(schema_id, b"\xff\xff\xff\xff\xff"), []),  # undecodable
    ]
    produce(bootstrap, topics.input, records)
    start_worker(
        topics,
        input_format="avro",
        output__format="avro",
        text_pointer="/body/text",
        id_pointer="/ref",
        schema_registry__url=registry,
    ).wait_ready()

    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 30, settle_s=1.0)
    docs = [decode(registry, r.value) for r in outputs]
    assert sorted(d["id"] for d in docs) == sorted(f"a-{i}" for i in range(30))
    assert all(d["source"]["topic"] == topics.input for d in docs)
    # the span document's schema is registered under the output topic's subject
    latest = call(f"{registry}/subjects/{topics.output}-value/versions/latest")
    assert fastavro.parse_schema(json.loads(latest["schema"])) == fastavro.parse_schema(
        output_avro()
    )

    dead = read_all(bootstrap, topics.dead_letters, lambda rs: len(rs) >= 3, settle_s=0.5)
    reasons = sorted(dict(r.headers)["tagstream.error.class"].decode() for r in dead)
    assert reasons == ["not_wire_format", "schema_not_found", "undecodable"]


def test_enrich_avro_and_a_registry_pause_loses_nothing(
    registry, cluster, topics, start_worker, bootstrap
):
    pid = registry_local.registry_pid()
    if pid is None:
        pytest.skip("the registry is not local (SCHEMA_REGISTRY_URL): it cannot be paused here")
    schema_id = register(registry, f"{topics.input}-value", ARTICLE)
    produce(
        bootstrap,
        topics.input,
        [(None, encode(schema_id, ARTICLE, article(i)), []) for i in range(10)],
    )
    worker = start_worker(
        topics,
        input_format="avro",
        output__format="avro",
        output__mode="enrich",
        text_pointer="/body/text",
        id_pointer="/ref",
        schema_registry__url=registry,
        schema_registry__timeout_s="1",
        schema_registry__retry_s="60",
    ).wait_ready()
    first = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 10, settle_s=0.5)
    assert len(first) == 10

    # a new schema version the worker has not seen, produced while the registry is paused
    evolved = json.loads(json.dumps(ARTICLE))
    evolved["fields"].append({"name": "desk", "type": "string", "default": "news"})
    new_id = register(registry, f"{topics.input}-value", evolved)
    registry_local.pause(pid)
    try:
        later = [{**article(i), "desk": "sport"} for i in range(10, 20)]
        produce(bootstrap, topics.input, [(None, encode(new_id, evolved, d), []) for d in later])
        time.sleep(8)  # the worker retries meanwhile, its liveness beating
        assert worker.get("/healthz")[0] == 200
        assert worker.proc.poll() is None
    finally:
        registry_local.resume(pid)
    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 20, settle_s=1.0)
    docs = {d["ref"]: d for d in (decode(registry, r.value) for r in outputs)}
    assert sorted(docs) == sorted(f"a-{i}" for i in range(20))
    assert docs["a-15"]["desk"] == "sport" and isinstance(docs["a-15"]["entities"], list)
    dead = read_all(bootstrap, topics.dead_letters, lambda rs: False, timeout_s=2)
    assert dead == []
