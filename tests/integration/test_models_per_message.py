"""Two trained models in one worker on the real broker, chosen per message by a header (or a
field), the default for the rest; a name no loaded model has is a dead letter."""

from __future__ import annotations

import json

from tagstream.model.registry import resolve
from tests.integration.kit import produce, read_all

EN = "Angela Merkel met Emmanuel Macron in Berlin ."
ZH = "习近平在北京会见了普京。"


def test_two_models_chosen_per_message(cluster, topics, start_worker, bootstrap):
    records = []
    for i in range(20):
        records.append((None, json.dumps({"id": f"en-{i}", "text": EN}).encode(), []))
        records.append(
            (None, json.dumps({"id": f"zh-{i}", "text": ZH}).encode(), [("model", b"zh-news")])
        )
    records.append((None, json.dumps({"id": "f", "text": ZH, "m": "zh-news"}).encode(), []))
    records.append((None, json.dumps({"id": "x", "text": EN}).encode(), [("model", b"fr-news")]))
    produce(bootstrap, topics.input, records)
    worker = start_worker(
        topics,
        model=resolve("en-news"),
        model__extra='["zh-news"]',
        model__select_header="model",
        model__select_pointer="/m",
    ).wait_ready()

    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 41, settle_s=1.0)
    docs = {json.loads(r.value)["id"]: json.loads(r.value) for r in outputs}
    assert len(docs) == 41
    for doc_id, doc in docs.items():
        chinese = doc_id.startswith("zh") or doc_id == "f"
        assert doc["model"].split("@")[0] == ("zh-news" if chinese else "en-news"), doc
        found = {(s["label"], s["text"]) for s in doc["spans"]}
        if chinese:
            assert ("LOC", "北京") in found, doc
        else:
            assert ("PER", "Angela Merkel") in found, doc
    dead = read_all(bootstrap, topics.dead_letters, lambda rs: len(rs) >= 1)
    headers = dict(dead[0].headers)
    assert headers["tagstream.error.class"] == b"unknown_model"
    assert b"fr-news" in headers["tagstream.error.message"]

    metrics = worker.metrics()
    labelled = {
        dict(labels)["model"].split("@")[0]: value
        for (name, labels), value in metrics.items()
        if name == "tagstream_records_labelled_total"
    }
    assert labelled == {"en-news": 20.0, "zh-news": 21.0}
    loaded = {
        dict(labels)["name"]
        for (name, labels), _ in metrics.items()
        if name == "tagstream_model_info"
    }
    assert loaded == {"en-news", "zh-news"}
