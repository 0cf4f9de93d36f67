"""Every kind of bad input lands, unchanged, in the dead-letter topic with headers saying why;
the worker keeps going and the good records around them are labelled."""

from __future__ import annotations

import json

from tests.integration.kit import ids_of, produce, read_all

BAD = {
    "invalid_utf8": (b"k1", b"\xff\xfe not utf-8"),
    "invalid_json": (b"k2", b'{"text": "unterminated'),
    "not_an_object": (b"k3", b'["a", "list"]'),
    "missing_text": (b"k4", b'{"id": "no-text"}'),
    "text_not_a_string": (b"k5", b'{"id": "num", "text": 42}'),
    "invalid_id": (b"k6", b'{"id": 7, "text": "Paris"}'),
    "text_too_long": (b"k7", json.dumps({"id": "long", "text": "y" * 2501}).encode()),
    "null_value": (b"k8", None),
    # labelled fine, but the output (text echoed, spans) exceeds max_request_size
    "output_too_large": (b"k9", json.dumps({"id": "big", "text": "Paris Texas " * 200}).encode()),
}


def test_each_malformed_kind_is_dead_lettered_with_headers(
    cluster, topics, start_worker, bootstrap
):
    records = []
    for i in range(10):  # good records before, between and after the bad ones
        records.append((b"good", json.dumps({"id": f"good-{i}", "text": "Rome ."}).encode(), []))
        if i < len(BAD):
            reason, (key, value) = list(BAD.items())[i]
            records.append((key, value, [("origin", reason.encode())]))
    produce(bootstrap, topics.input, records)
    worker = start_worker(
        topics, max_text_chars="2500", echo_text="true", kafka__max_request_size="3000"
    ).wait_ready()

    dead = read_all(bootstrap, topics.dead_letters, lambda rs: len(rs) >= len(BAD), settle_s=1.0)
    good = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 10, settle_s=0.5)
    assert sorted(ids_of(good)) == sorted(f"good-{i}" for i in range(10))
    assert len(dead) == len(BAD)

    inputs = {
        (r.partition, r.offset): r
        for r in read_all(bootstrap, topics.input, lambda rs: len(rs) >= len(records))
    }
    for rec in dead:
        headers = dict(rec.headers)
        reason = headers["origin"].decode()  # the input's own header survives
        assert headers["tagstream.error.class"] == reason.encode()
        assert headers["tagstream.error.message"]
        assert headers["tagstream.source.topic"] == topics.input.encode()
        source = inputs[
            (int(headers["tagstream.source.partition"]), int(headers["tagstream.source.offset"]))
        ]
        key, value = BAD[reason]
        assert rec.key == key == source.key  # unchanged
        assert rec.value == value == source.value  # unchanged (a null value stays null)

    cluster.wait_all_committed(topics.group, topics.input)
    for reason in BAD:
        assert worker.sample("tagstream_records_dead_lettered_total", reason=reason) == 1, reason
    assert worker.proc.poll() is None  # still running
    assert worker.terminate() == 0


def test_an_output_larger_than_the_topic_accepts_is_dead_lettered(cluster, start_worker, bootstrap):
    # The output topic takes at most 1500-byte records (a broker-side limit the worker reads at
    # start-up); one input's labelled output would be larger.
    topics = cluster.create_topics(partitions=1, output_configs={"max.message.bytes": "1500"})
    try:
        big = json.dumps({"id": "big", "text": "Lisbon and Porto " * 80}).encode()
        records = [
            (None, json.dumps({"id": f"a{i}", "text": "Madrid ."}).encode(), []) for i in range(30)
        ]
        records += [(None, big, [])]
        records += [
            (None, json.dumps({"id": f"b{i}", "text": "Madrid ."}).encode(), []) for i in range(30)
        ]
        produce(bootstrap, topics.input, records)
        worker = start_worker(topics, echo_text="true").wait_ready()
        good = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 60, settle_s=0.5)
        dead = read_all(bootstrap, topics.dead_letters, lambda rs: len(rs) >= 1, settle_s=0.5)
        assert sorted(ids_of(good)) == sorted(
            [f"a{i}" for i in range(30)] + [f"b{i}" for i in range(30)]
        )
        assert [r.value for r in dead] == [big]
        assert dict(dead[0].headers)["tagstream.error.class"] == b"output_too_large"
        cluster.wait_all_committed(topics.group, topics.input)
        assert worker.terminate() == 0
    finally:
        cluster.delete(topics)


def test_a_dead_letter_too_large_for_its_topic_still_says_where_the_input_was(
    cluster, start_worker, bootstrap
):
    # The dead-letter topic takes at most 1500-byte records. An invalid input with a 2000-byte
    # header cannot go there unchanged, nor without its value: it goes with tagstream's headers
    # only, so the record is accounted for and can be found at its source offset.
    topics = cluster.create_topics(partitions=1, dead_letter_configs={"max.message.bytes": "1500"})
    try:
        records = [
            (b"small", b"{oops", []),
            (b"k" * 100, b"{oops" * 100, [("big", b"x" * 2000)]),
            (None, json.dumps({"id": "after", "text": "Madrid ."}).encode(), []),
        ]
        produce(bootstrap, topics.input, records)
        worker = start_worker(topics).wait_ready()
        good = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 1, settle_s=0.5)
        dead = read_all(bootstrap, topics.dead_letters, lambda rs: len(rs) >= 2, settle_s=0.5)
        assert ids_of(good) == ["after"]
        assert (dead[0].key, dead[0].value) == (b"small", b"{oops")  # unchanged
        stripped = dead[1]
        headers = dict(stripped.headers)
        assert stripped.key is None and stripped.value == b""
        assert "big" not in headers
        assert headers["tagstream.error.class"] == b"invalid_json"
        assert headers["tagstream.error.value_dropped"] == b"true"
        assert headers["tagstream.error.key_and_headers_dropped"] == b"true"
        assert headers["tagstream.source.offset"] == b"1"
        cluster.wait_all_committed(topics.group, topics.input)
        assert worker.sample("tagstream_records_dead_lettered_total", reason="invalid_json") == 2
        assert worker.terminate() == 0
    finally:
        cluster.delete(topics)


class _NotUtf8HeaderName(str):
    """A header name that kafka-python's producer writes as bytes that are not UTF-8 (Java
    clients cannot produce it; the broker lets it through)."""

    def encode(self, *args, **kwargs):
        return b"\xff\xfe-name"


def test_with_on_unreadable_stop_a_record_the_client_cannot_parse_stops_the_worker_saying_where(
    cluster, start_worker, bootstrap
):
    """kafka-python cannot read such a record, nor past it in its batch: the worker delivers
    what came before it, then stops (exit 1) with an error naming the partition's position,
    and commits nothing past it."""
    topics = cluster.create_topics(partitions=1)
    try:
        records = [
            (None, json.dumps({"id": f"a{i}", "text": "Madrid ."}).encode(), []) for i in range(5)
        ]
        records += [(b"bad", b'{"id": "bad", "text": "Rome"}', [(_NotUtf8HeaderName("x"), b"v")])]
        produce(bootstrap, topics.input, records)
        worker = start_worker(topics, kafka__on_unreadable="stop")
        assert worker.proc.wait(timeout=90) == 1
        assert "cannot read a record of the input topic" in worker.log()
        assert "drained" in worker.log()  # what came before it was delivered and committed
        assert f'"positions": {{"{topics.input}-0": 5}}' in worker.log()
        assert cluster.committed(topics.group, topics.input) == {0: 5}
        assert sorted(ids_of(read_all(bootstrap, topics.output, lambda rs: len(rs) >= 5))) == [
            f"a{i}" for i in range(5)
        ]
    finally:
        cluster.delete(topics)


def test_by_default_the_worker_moves_past_unreadable_records_with_one_dead_letter_naming_them(
    cluster, start_worker, bootstrap
):
    """The same record, with two more after it in its batch (kafka-python cannot read those
    either) and a batch of good records after that: the worker moves past offsets 5-7 with one
    dead letter naming them, labels everything else, commits to the end and keeps running."""
    topics = cluster.create_topics(partitions=1)
    try:

        def good(name: str):
            return (None, json.dumps({"id": name, "text": "Madrid ."}).encode(), [])

        bad = (b"bad", b'{"id": "bad", "text": "Rome"}', [(_NotUtf8HeaderName("x"), b"v")])
        # one produce call, one batch: offsets 0-4 readable, 5 unreadable, 6-7 behind it
        produce(
            bootstrap,
            topics.input,
            [*(good(f"a{i}") for i in range(5)), bad, good("c0"), good("c1")],
        )
        produce(bootstrap, topics.input, [good(f"b{i}") for i in range(5)])  # offsets 8-12
        worker = start_worker(topics).wait_ready()
        dead = read_all(bootstrap, topics.dead_letters, lambda rs: len(rs) >= 1, settle_s=1.0)
        labelled = read_all(bootstrap, topics.output, lambda rs: len(rs) >= 10, settle_s=0.5)
        assert sorted(ids_of(labelled)) == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
        assert len(dead) == 1, dead
        headers = dict(dead[0].headers)
        assert headers["tagstream.error.class"] == b"unreadable_record"
        assert headers["tagstream.source.topic"] == topics.input.encode()
        assert headers["tagstream.source.partition"] == b"0"
        assert headers["tagstream.source.first_offset"] == b"5"
        assert headers["tagstream.source.offset"] == b"7"
        assert b"5-7" in headers["tagstream.error.message"]
        assert cluster.wait_all_committed(topics.group, topics.input) == {0: 13}
        assert worker.sample("tagstream_unreadable_offsets_total", topic=topics.input) == 3
        assert (
            worker.sample("tagstream_records_dead_lettered_total", reason="unreadable_record") == 1
        )
        assert "moved past input records the Kafka client cannot read" in worker.log()
        assert worker.terminate() == 0
    finally:
        cluster.delete(topics)
