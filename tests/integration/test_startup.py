"""Start-up checks against the real broker."""

from __future__ import annotations

import os

from tests.integration.kit import Topics, WorkerProcess


def test_missing_topics_are_named_and_the_worker_exits_1(start_worker):
    topics = Topics("no-such-input", "no-such-output", "no-such-dlq", "group-missing")
    worker = start_worker(topics)
    assert worker.proc.wait(timeout=90) == 1
    log = worker.log()
    assert "topics do not exist" in log and "no-such-input" in log and "no-such-dlq" in log


def test_unreachable_broker_exits_1_without_hanging(topics, start_worker):
    worker = start_worker(
        topics,
        kafka__bootstrap_servers="127.0.0.1:1",
        kafka__request_timeout_ms="5000",
        kafka__delivery_timeout_ms="10000",
    )
    assert worker.proc.wait(timeout=120) == 1
    assert "cannot connect to Kafka" in worker.log()


def test_a_codec_without_its_library_is_a_settings_error(topics, bootstrap, tiny_model, tmp_path):
    """An install without lz4's library (simulated: kafka-python told it is missing) and
    TAGSTREAM_KAFKA__COMPRESSION_TYPE=lz4: a clear line and exit 2, no traceback."""
    (tmp_path / "sitecustomize.py").write_text(
        "from kafka.producer.kafka import KafkaProducer\n"
        "KafkaProducer._COMPRESSORS['lz4'] = "
        "(lambda: False, KafkaProducer._COMPRESSORS['lz4'][1])\n"
    )
    worker = WorkerProcess(
        bootstrap, topics, tiny_model, tmp_path / "worker.log", kafka__compression_type="lz4"
    )
    worker.env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])
    )
    try:
        assert worker.start().proc.wait(timeout=90) == 2
    finally:
        worker.stop_quietly()
    log = worker.log()
    assert "the Kafka client refuses these settings" in log and "lz4" in log
    assert "Traceback" not in log
