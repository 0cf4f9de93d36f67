"""Where the text is and what comes out, on the real broker: text and id by JSON Pointer, the
input enriched with its entities, the input redacted (with a trained model, so that there are
names to hide) with the original mentions nowhere: not in the outputs, the dead letters, the
log or the metrics."""

from __future__ import annotations

import json

import pytest

from tagstream.model.registry import resolve
from tests.integration.kit import produce, read_all

NEWS = [
    "Angela Merkel met Emmanuel Macron in Berlin on Tuesday .",
    "Shares of Siemens rose 3 % in Frankfurt after the report .",
    "Barack Obama spoke to reporters at the White House in Washington .",
    "Rain is expected across the region tomorrow .",
]


@pytest.fixture(scope="module")
def en_news():
    return resolve("en-news")


def nested(i: int, text: str) -> dict:
    return {"meta": {"ref": f"m-{i}", "source": "wire"}, "payload": {"body": text, "n": i}}


def test_nested_text_and_id_by_pointer(cluster, topics, start_worker, bootstrap):
    docs = [nested(i, f"Text number {i} .") for i in range(30)]
    records = [(None, json.dumps(d).encode(), []) for d in docs]
    records.append((None, b'{"payload": {"text": "at the wrong place"}}', []))
    produce(bootstrap, topics.input, records)
    start_worker(topics, text_pointer="/payload/body", id_pointer="/meta/ref").wait_ready()
    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 30, settle_s=1.0)
    assert sorted(json.loads(r.value)["id"] for r in outputs) == sorted(f"m-{i}" for i in range(30))
    dead = read_all(bootstrap, topics.dead_letters, lambda rs: len(rs) >= 1)
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["tagstream.error.class"] == b"missing_text"
    assert b"/payload/body" in headers["tagstream.error.message"]


def test_enrich_then_redact_with_a_trained_model(cluster, topics, start_worker, bootstrap, en_news):
    inputs = [nested(i, NEWS[i % len(NEWS)]) for i in range(40)]
    produce(bootstrap, topics.input, [(b"k", json.dumps(d).encode(), []) for d in inputs])

    # enrich: each output is its input, plus the entities at the pointer
    worker = start_worker(
        topics,
        model=en_news,
        text_pointer="/payload/body",
        id_pointer="/meta/ref",
        output__mode="enrich",
        output__entities_pointer="/payload/entities",
    ).wait_ready()
    enriched = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 40, settle_s=1.0)
    assert worker.terminate() == 0
    by_ref = {d["meta"]["ref"]: d for d in inputs}
    mentions: set[str] = set()
    assert len(enriched) == 40
    for record in enriched:
        doc = json.loads(record.value)
        entities = doc["payload"].pop("entities")
        original = by_ref[doc["meta"]["ref"]]
        assert doc == original
        text = original["payload"]["body"]
        for e in entities:
            assert text[e["start"] : e["end"]] == e["text"]
            mentions.add(e["text"])
    # the trained model finds the names these texts are about
    assert {"Angela Merkel", "Berlin", "Frankfurt", "Washington"} <= mentions

    # redact, on the same inputs, into a fresh group and output topic
    again = cluster.create_topics(partitions=3)
    try:
        produce(bootstrap, again.input, [(b"k", json.dumps(d).encode(), []) for d in inputs])
        worker = start_worker(
            again,
            model=en_news,
            text_pointer="/payload/body",
            id_pointer="/meta/ref",
            output__mode="redact",
            output__entities_pointer="/payload/entities",
            output__redact="pseudonym",
            output__redact_by_label='{"LOC": "mask"}',
            output__pseudonym_key="a-test-key-of-32-bytes-0123456789",
            log__level="DEBUG",
        ).wait_ready()
        redacted = read_all(bootstrap, again.output, lambda rs: len(rs) >= 40, settle_s=1.0)
        metrics_page = worker.get("/metrics")[1]
        assert worker.terminate() == 0
        dead = read_all(bootstrap, again.dead_letters, lambda rs: False, timeout_s=2)
        log = worker.log_path.read_text(errors="replace")
    finally:
        cluster.delete(again)
    assert len(redacted) == 40 and dead == []
    pseudonyms: dict[str, set[str]] = {}
    for record in redacted:
        doc = json.loads(record.value)
        text = doc["payload"]["body"]
        for e in doc["payload"]["entities"]:
            replacement = text[e["start"] : e["end"]]
            if e["label"] == "LOC":
                assert replacement == "[LOC]"
            else:
                assert replacement.startswith(e["label"] + "_")
            pseudonyms.setdefault(doc["meta"]["ref"].split("-")[1], set()).add(replacement)
        assert doc["meta"] == by_ref[doc["meta"]["ref"]]["meta"]
    # the same text gets the same pseudonyms every time it comes
    by_text: dict[int, set[frozenset]] = {}
    for ref, found in pseudonyms.items():
        by_text.setdefault(int(ref) % len(NEWS), set()).add(frozenset(found))
    assert all(len(variants) == 1 for variants in by_text.values())
    for mention in mentions:
        needle = mention.encode()
        assert not any(needle in r.value for r in redacted), mention
        assert not any(needle in v for r in redacted for _, v in r.headers), mention
        assert mention not in log, mention
        assert mention not in metrics_page, mention
