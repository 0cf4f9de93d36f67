"""Round trip on the real broker: every input labelled once, keys, headers and order kept."""

from __future__ import annotations

import json
from collections import defaultdict

from tests.integration.kit import ids_of, json_records, produce, read_all

TEXTS = [
    "Angela Merkel met Emmanuel Macron in Berlin on Tuesday .",
    "Shares of Siemens AG rose 3 % in Frankfurt .",
    "José and Zoë flew from Zürich to Kraków 🛫 yesterday.",
    "北京是中国的首都。 Mixed scripts: Ελλάδα, Россия.",
    "",
    "   ",
    "e\u0301 combining marks and a very long tail " + "word " * 300,
]


def text_for(doc_id: str) -> str:
    return TEXTS[int(doc_id.split("-")[1]) % len(TEXTS)]


def test_every_input_is_labelled_once_with_keys_headers_and_order(
    cluster, topics, start_worker, bootstrap
):
    ids = [f"doc-{i}" for i in range(400)]
    inputs = list(json_records(ids, text_for, keys=7))
    produce(bootstrap, topics.input, inputs)
    worker = start_worker(topics, batching__max_batch_records="16").wait_ready()

    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= len(ids), settle_s=1.0)
    assert sorted(ids_of(outputs)) == sorted(ids)  # each exactly once: no crash, no duplicates

    key_of = {json.loads(v)["id"]: k for k, v, _ in inputs}
    per_key_in: dict[bytes, list[str]] = defaultdict(list)
    for doc_id in ids:
        per_key_in[key_of[doc_id]].append(doc_id)
    per_key_out: dict[bytes, list[str]] = defaultdict(list)
    for rec in sorted(outputs, key=lambda r: (r.partition, r.offset)):
        doc = json.loads(rec.value)
        assert rec.key == key_of[doc["id"]]  # same key
        assert dict(rec.headers)["trace-id"] == doc["id"].encode()  # headers carried over
        per_key_out[rec.key].append(doc["id"])
        text = text_for(doc["id"])
        assert doc["model"] == "tiny-random@0.0.0"
        assert doc["source"]["topic"] == topics.input
        assert "text" not in doc  # echo is off by default
        for span in doc["spans"]:
            assert 0 <= span["start"] < span["end"] <= len(text)
            assert text[span["start"] : span["end"]] == span["text"]
            assert span["label"] in {"PER", "LOC", "ORG", "MISC"}
            assert 0.0 <= span["score"] <= 1.0
    assert per_key_out == per_key_in  # per-key order holds

    # the source coordinates point at the input record
    inputs_read = read_all(bootstrap, topics.input, lambda rs: len(rs) >= len(ids))
    by_coord = {(r.partition, r.offset): json.loads(r.value)["id"] for r in inputs_read}
    for rec in outputs:
        doc = json.loads(rec.value)
        assert by_coord[(doc["source"]["partition"], doc["source"]["offset"])] == doc["id"]

    cluster.wait_all_committed(topics.group, topics.input)
    assert worker.sample("tagstream_records_consumed_total", topic=topics.input) == len(ids)
    assert worker.sample("tagstream_records_produced_total", topic=topics.output) == len(ids)
    assert worker.sample("tagstream_end_to_end_latency_seconds_count") == len(ids)
    assert worker.sample("tagstream_batch_records_count") >= len(ids) / 16
    assert worker.sample("tagstream_assigned_partitions") == 3
    from tagstream.model.precision import choose_precision

    precision = choose_precision("auto").path  # the worker runs the default, auto
    assert (
        worker.sample(
            "tagstream_model_info", name="tiny-random", version="0.0.0", precision=precision
        )
        == 1
    )
    import time

    deadline = (
        time.monotonic() + 15
    )  # the gauge is refreshed every TAGSTREAM_KAFKA__LAG_INTERVAL_S (5 s)
    while True:  # everything is committed: the lag of every partition comes to 0
        lags = [
            worker.sample("tagstream_consumer_lag", topic=topics.input, partition=str(p))
            for p in range(3)
        ]
        if lags == [0, 0, 0] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert lags == [0, 0, 0]
    assert worker.terminate() == 0


def test_text_format_and_echo(cluster, topics, start_worker, bootstrap):
    texts = ["Paris is in France .", 'plain text with {"braces"}', "Łódź"]
    produce(bootstrap, topics.input, [(None, t.encode(), []) for t in texts])
    start_worker(topics, input_format="text", echo_text="true").wait_ready()
    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= len(texts), settle_s=0.5)
    docs = [json.loads(r.value) for r in outputs]
    assert sorted(d["text"] for d in docs) == sorted(texts)
    assert all(d["id"] is None for d in docs)
    for d in docs:
        for span in d["spans"]:
            assert d["text"][span["start"] : span["end"]] == span["text"]
