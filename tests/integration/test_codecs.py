"""Compressed topics on the real broker: input batches compressed with each codec a producer
may use are all labelled, and the worker's own output is compressed as its setting says."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.integration.kit import ids_of, json_records, read_all

CODECS = ("gzip", "snappy", "lz4", "zstd")
# the codec id in a v2 record batch's attributes (the low three bits)
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def batch_codecs(topic: str) -> set[int] | None:
    """The codec ids of the record batches stored for ``topic`` by the local broker (read from
    its log segments), or None when the broker's data directory is not on this machine."""
    state = Path(
        os.environ.get("TAGSTREAM_KAFKA_STATE")
        or Path(os.environ.get("TMPDIR", "/tmp")) / "tagstream-kafka"
    )
    dirs = list((state / "data").glob(f"{topic}-*"))
    if not dirs:
        return None
    codecs = set()
    for log in (f for d in dirs for f in d.glob("*.log")):
        data = log.read_bytes()
        pos = 0
        while pos + 23 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)  # after the base offset
            if length <= 0:
                break
            (attributes,) = struct.unpack_from(">h", data, pos + 21)  # 8 + 4 + 4 + magic 1 + crc 4
            if not attributes & 0x20:  # control batches (transaction markers) are not compressed
                codecs.add(attributes & 0x07)
            pos += 12 + length
    return codecs


@pytest.mark.parametrize("codec", CODECS)
def test_compressed_input_is_labelled_and_output_compressed(
    codec, cluster, topics, start_worker, bootstrap
):
    ids = [f"{codec}-{i}" for i in range(120)]
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=20)
    # kafka-python sends a batch uncompressed when compressing does not make it smaller, as with
    # a batch of one short record (a loaded machine sends such batches): each text repeats itself
    for key, value, headers in json_records(
        ids, lambda d: f"Anna Lee flew to Paris with {d} . " * 8
    ):
        producer.send(topics.input, key=key, value=value, headers=headers)
    producer.flush()
    producer.close()
    assert batch_codecs(topics.input) in (None, {CODEC_IDS[codec]}), (
        "the input really is compressed"
    )

    worker = start_worker(
        topics, kafka__compression_type=codec, batching__max_batch_records="32"
    ).wait_ready()
    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= len(ids), settle_s=0.5)
    assert sorted(ids_of(outputs)) == sorted(ids)
    cluster.wait_all_committed(topics.group, topics.input)
    assert worker.terminate() == 0
    stored = batch_codecs(topics.output)
    assert stored is None or stored == {CODEC_IDS[codec]}, (
        f"output batches stored with codecs {stored}"
    )
    dead = read_all(bootstrap, topics.dead_letters, lambda rs: False, timeout_s=1.0)
    assert dead == []
