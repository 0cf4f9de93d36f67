"""Helpers for tests on the real broker: unique topics, producing, reading back, and the
worker as a real ``tagstream run`` process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from tests.contract import check_record


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Topics:
    input: str
    output: str
    dead_letters: str
    group: str


class Cluster:
    def __init__(self, bootstrap: str, **admin_configs):
        self.bootstrap = bootstrap
        self.admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="tagstream-tests", **admin_configs
        )

    def create_topics(
        self,
        partitions: int = 3,
        output_configs: dict[str, str] | None = None,
        dead_letter_configs: dict[str, str] | None = None,
    ) -> Topics:
        tag = uuid.uuid4().hex[:10]
        topics = Topics(f"in-{tag}", f"out-{tag}", f"dlq-{tag}", f"group-{tag}")
        specs = {
            name: {"num_partitions": partitions, "replication_factor": 1}
            for name in (topics.input, topics.output, topics.dead_letters)
        }
        if output_configs:
            specs[topics.output]["configs"] = output_configs
        if dead_letter_configs:
            specs[topics.dead_letters]["configs"] = dead_letter_configs
        self.admin.create_topics(specs, wait_for_metadata=True)
        return topics

    def delete(self, topics: Topics) -> None:
        try:
            self.admin.delete_topics([topics.input, topics.output, topics.dead_letters])
        except Exception:  # cleanup only
            pass

    def committed(self, group: str, topic: str) -> dict[int, int]:
        offsets = self.admin.list_group_offsets(group).get(group, {})
        return {
            tp.partition: om.offset
            for tp, om in offsets.items()
            if tp.topic == topic and om.offset >= 0
        }

    def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
        try:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
        finally:
            consumer.close()

    def wait_all_committed(self, group: str, topic: str, timeout_s: float = 60) -> dict[int, int]:
        """Until the group has committed every record of the topic."""
        end = self.end_offsets(topic)
        deadline = time.monotonic() + timeout_s
        committed: dict[int, int] = {}
        while time.monotonic() < deadline:
            committed = self.committed(group, topic)
            if all(committed.get(p, 0) >= off for p, off in end.items()):
                return committed
            time.sleep(0.25)
        raise AssertionError(f"group {group} committed {committed}, the topic ends at {end}")

    def close(self) -> None:
        self.admin.close()


def kafka_settings(bootstrap: str, topics: Topics, **extra: object) -> dict:
    """The ``kafka`` group of the settings for an in-process worker on these topics."""
    return {
        "bootstrap_servers": bootstrap,
        "input_topic": topics.input,
        "output_topic": topics.output,
        "dead_letter_topic": topics.dead_letters,
        "group_id": topics.group,
        **extra,
    }


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    n = 0
    for key, value, headers in records:
        producer.send(topic, key=key, value=value, headers=headers)
        n += 1
    producer.flush()
    producer.close()
    return n


def json_records(ids: Iterable[str], text: Callable[[str], str], keys: int = 7):
    """JSON inputs with a key per id bucket, so per-key order can be checked."""
    for i, doc_id in enumerate(ids):
        value = json.dumps({"id": doc_id, "text": text(doc_id)}).encode()
        yield f"key-{i % keys}".encode(), value, [("trace-id", doc_id.encode())]


def read_all(
    bootstrap: str,
    topic: str,
    done: Callable[[list], bool],
    timeout_s: float = 60,
    isolation_level: str = "read_committed",
    settle_s: float = 0.0,
) -> list:
    """Read the topic from the start until `done(records)` holds (then `settle_s` more). The
    records of output and dead-letter topics are checked against the contract's schemas."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level=isolation_level, enable_auto_commit=False
    )
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    records: list = []
    deadline = time.monotonic() + timeout_s
    settle_until = None
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            if settle_until is None and done(records):
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() >= settle_until:
                break
    finally:
        consumer.close()
    for record in records:
        check_record(topic, record)
    return records


def ids_of(records: list) -> list[str]:
    return [json.loads(r.value)["id"] for r in records]


class WorkerProcess:
    """``tagstream run`` in a child process, configured through its environment."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        model: Path,
        log_path: Path,
        module: str = "tagstream.worker.cli",
        **settings: str,
    ):
        self.port = free_port()
        self.log_path = log_path
        self.module = (
            module  # run as `python -m <module> run` (a fault test wraps tagstream.worker.cli)
        )
        self.env = {
            **os.environ,
            "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "TAGSTREAM_KAFKA__INPUT_TOPIC": topics.input,
            "TAGSTREAM_KAFKA__OUTPUT_TOPIC": topics.output,
            "TAGSTREAM_KAFKA__DEAD_LETTER_TOPIC": topics.dead_letters,
            "TAGSTREAM_KAFKA__GROUP_ID": topics.group,
            "TAGSTREAM_KAFKA__SESSION_TIMEOUT_MS": "6000",  # a killed worker is noticed fast
            "TAGSTREAM_KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
            "TAGSTREAM_MODEL__PATH": str(model),
            "TAGSTREAM_MODEL__THREADS": "1",
            "TAGSTREAM_HTTP__HOST": "127.0.0.1",
            "TAGSTREAM_HTTP__PORT": str(self.port),
            "TAGSTREAM_LOG__FORMAT": "json",
        }
        self.env.update({f"TAGSTREAM_{k.upper()}": v for k, v in settings.items()})
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 (owned by the child)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "run"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        return self

    def wait_ready(self, timeout_s: float = 90) -> WorkerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if self.get("/readyz")[0] == 200:
                return self
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout_s}s:\n{self.log()}")

    def metrics(self) -> dict[tuple[str, tuple], float]:
        status, body = self.get("/metrics")
        assert status == 200, body
        out = {}
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def sample(self, metric: str, **labels: str) -> float | None:
        return self.metrics().get((metric, tuple(sorted(labels.items()))))

    def terminate(self, timeout_s: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop_quietly(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def get(self, path: str) -> tuple[int, str]:
        """(HTTP status, body) of GET path on the worker's HTTP server; status 0 if it does not
        answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)
