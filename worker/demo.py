"""``tagstream demo``: the whole job on one machine, for a newcomer.

1. bring up the local Kafka broker (``scripts/kafka-local up``) unless one is given;
2. create an input, an output and a dead-letter topic;
3. start a real ``tagstream run`` worker process and wait until it is ready;
4. stream the embedded sentences at a steady rate, printing each labelled result as it arrives;
5. send a burst of them as fast as possible to measure throughput;
6. print a summary (messages/s, messages per CPU-second, p50/p99 end-to-end latency);
7. clean up: stop the worker (SIGTERM: it drains), delete the topics, stop the broker.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_LOCAL = REPO_ROOT / "scripts" / "kafka-local"
SENTENCES = Path(__file__).with_name("demo_sentences.txt")
BURST_REPEAT = 10  # the burst sends the sentences this many times


def run(args: argparse.Namespace) -> int:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    sentences = _sentences(args.sentences)
    if not sentences:
        _say(f"tagstream demo: {args.sentences} has no sentences")
        return 2
    started_broker = False
    worker: subprocess.Popen | None = None
    admin = None
    topics: list[str] = []
    bootstrap: str | None = None
    workdir = Path(tempfile.mkdtemp(prefix="tagstream-demo-"))
    try:
        bootstrap = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            bootstrap = _broker_up()
            started_broker = True
        _say(f"broker       {bootstrap}")

        tag = uuid.uuid4().hex[:8]
        input_topic, output_topic, dlq_topic = (f"demo-{n}-{tag}" for n in ("input", "output", "dead-letters"))
        topics = [input_topic, output_topic, dlq_topic]
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tagstream-demo")
        admin.create_topics(
            {t: {"num_partitions": args.partitions, "replication_factor": 1} for t in topics},
            wait_for_metadata=True,
        )
        _say(f"topics       {input_topic} -> {output_topic} (dead letters: {dlq_topic})")

        port = _free_port()
        env = {
            **os.environ,
            "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "TAGSTREAM_KAFKA__INPUT_TOPIC": input_topic,
            "TAGSTREAM_KAFKA__OUTPUT_TOPIC": output_topic,
            "TAGSTREAM_KAFKA__DEAD_LETTER_TOPIC": dlq_topic,
            "TAGSTREAM_KAFKA__GROUP_ID": f"demo-{tag}",
            "TAGSTREAM_HTTP__HOST": "127.0.0.1",
            "TAGSTREAM_HTTP__PORT": str(port),
            "TAGSTREAM_LOG__LEVEL": "WARNING",
        }
        if isinstance(args.model, Path):
            env["TAGSTREAM_MODEL__PATH"] = str(args.model.resolve())
        elif args.model:
            env["TAGSTREAM_MODEL__NAME"] = args.model
        log_path = workdir / "worker.log"
        with open(log_path, "wb") as log_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tagstream.worker.cli", "run"], env=env,
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        _wait_ready(worker, port, log_path)
        model_ref = _model_ref(port)
        _say(f"worker       pid {worker.pid}, model {model_ref}, metrics http://127.0.0.1:{port}/metrics\n")

        outputs = _OutputReader(bootstrap, output_topic)
        outputs.start()
        try:
            streamed = _stream(bootstrap, input_topic, sentences, args.rate, outputs)
            cpu_before = _cpu_seconds(port)
            burst = _burst(bootstrap, input_topic, sentences * BURST_REPEAT, outputs)
            cpu_used = _cpu_seconds(port) - cpu_before
        finally:
            outputs.stop()
        dead = _metric_sum(port, "tagstream_records_dead_lettered_total")
        rss = _metric_sum(port, "process_resident_memory_bytes")
        _summary(model_ref, args, streamed, burst, cpu_used, rss, dead, outputs.labels)
        return 0
    except _DemoError as exc:
        _say(f"demo failed: {exc}")
        return exc.status
    except KafkaError as exc:
        _say(f"demo failed: Kafka at {bootstrap} did not answer: {exc!r}")
        return 1
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=40)
            except subprocess.TimeoutExpired:
                worker.kill()
        if admin is not None:
            try:
                admin.delete_topics(topics)
            except Exception:
                pass
            admin.close()
        if started_broker and not args.keep_broker:
            subprocess.run(["bash", str(KAFKA_LOCAL), "down"], capture_output=True, check=False)


class _DemoError(Exception):
    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status  # the demo's exit status


def _say(line: str) -> None:
    print(line, flush=True)


def _sentences(path: Path | None) -> list[str]:
    lines = (path or SENTENCES).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()]


def _broker_up() -> str:
    if not KAFKA_LOCAL.exists():
        raise _DemoError(
            "no broker: pass --bootstrap-servers or set KAFKA_BOOTSTRAP_SERVERS "
            "(scripts/kafka-local is only in a source checkout)"
        )
    _say("broker       starting the local Kafka (first time: downloads its jars from Maven Central)")
    proc = subprocess.run(["bash", str(KAFKA_LOCAL), "up"], capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("KAFKA_BOOTSTRAP_SERVERS="):
        raise _DemoError(f"scripts/kafka-local up failed:\n{proc.stderr[-3000:]}")
    return lines[-1].split("=", 1)[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def _wait_ready(worker: subprocess.Popen, port: int, log_path: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise _DemoError(  # 2: the worker refused its settings or the model file
                f"the worker exited ({worker.returncode}):\n{log_path.read_text()[-3000:]}",
                status=2 if worker.returncode == 2 else 1,
            )
        if _get(port, "/readyz")[0] == 200:
            return
        time.sleep(0.2)
    raise _DemoError(f"the worker was not ready after {timeout_s:.0f}s:\n{log_path.read_text()[-3000:]}")


def _metrics(port: int) -> list:
    from prometheus_client.parser import text_string_to_metric_families

    status, body = _get(port, "/metrics")
    if status != 200:
        raise _DemoError(f"/metrics answered {status}")
    return [s for family in text_string_to_metric_families(body) for s in family.samples]


def _metric_sum(port: int, name: str) -> float:
    return sum(s.value for s in _metrics(port) if s.name == name)


def _cpu_seconds(port: int) -> float:
    return _metric_sum(port, "process_cpu_seconds_total")


def _model_ref(port: int) -> str:
    for s in _metrics(port):
        if s.name == "tagstream_model_info":
            return f"{s.labels['name']}@{s.labels['version']} ({s.labels.get('precision', '?')})"
    return "?"


class _OutputReader(threading.Thread):
    """Reads the output topic; hands (arrival time, record value) to the main thread."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True, name="demo-output-reader")
        from kafka import KafkaConsumer, TopicPartition

        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10)
        parts = [TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic)]
        self._consumer.assign(parts)
        self._consumer.seek_to_beginning(*parts)
        self.arrivals: queue.Queue[tuple[float, int, dict]] = queue.Queue()
        self.labels: Counter[str] = Counter()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for records in self._consumer.poll(timeout_ms=50).values():
                now = time.time()
                for r in records:
                    doc = json.loads(r.value)
                    self.labels.update(s["label"] for s in doc["spans"])
                    self.arrivals.put((now, r.timestamp, doc))
        self._consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def _stream(bootstrap: str, topic: str, sentences: list[str], rate: float, outputs: _OutputReader) -> dict:
    """Phase 1: a steady stream; every result printed as it arrives."""
    from kafka import KafkaProducer

    _say(f"streaming    {len(sentences)} sentences at {rate:g} messages/s\n")
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    texts = {f"s{i:04d}": s for i, s in enumerate(sentences)}
    latencies: list[float] = []
    start = time.monotonic()
    for i, (doc_id, text) in enumerate(texts.items()):
        due = start + i / rate
        while time.monotonic() < due:
            _print_arrivals(outputs, texts, latencies, wait_s=min(0.01, due - time.monotonic()))
        _SENT[doc_id] = time.time()
        producer.send(topic, json.dumps({"id": doc_id, "text": text}).encode())
        producer.flush()
    deadline = time.monotonic() + 60
    while len(latencies) < len(texts) and time.monotonic() < deadline:
        _print_arrivals(outputs, texts, latencies, wait_s=0.05)
    producer.close()
    if len(latencies) < len(texts):
        raise _DemoError(f"only {len(latencies)} of {len(texts)} outputs arrived")
    return {"messages": len(texts), "rate": rate, "latencies": latencies}


def _print_arrivals(outputs: _OutputReader, texts: dict[str, str], latencies: list[float], wait_s: float) -> None:
    try:
        arrived, _, doc = outputs.arrivals.get(timeout=max(0.0, wait_s))
    except queue.Empty:
        return
    text = texts.get(doc["id"], "")
    latencies.append(arrived - _SENT[doc["id"]])
    _say(f"{doc['id']}  {_highlight(text, doc['spans'])}")


# When each demo message was sent (epoch seconds), by id: latency = arrival - sent.
_SENT: dict[str, float] = {}


def _highlight(text: str, spans: list[dict]) -> str:
    """'Ryanair[ORG] flies to Kraków[LOC]' style, spans in order of appearance."""
    out, at = [], 0
    for s in sorted(spans, key=lambda s: s["start"]):
        out.append(text[at:s["start"]])
        out.append(f"\033[1m{s['text']}\033[0m[{s['label']}]" if sys.stdout.isatty() else f"{s['text']}[{s['label']}]")
        at = s["end"]
    out.append(text[at:])
    return "".join(out)


def _burst(bootstrap: str, topic: str, sentences: list[str], outputs: _OutputReader) -> dict:
    """Phase 2: everything at once; throughput from the first send to the last output."""
    from kafka import KafkaProducer

    _say(f"\nburst        {len(sentences)} messages as fast as the producer sends them ...")
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    ids = []
    start = time.time()
    for i, text in enumerate(sentences):
        doc_id = f"b{i:05d}"
        ids.append(doc_id)
        _SENT[doc_id] = time.time()
        producer.send(topic, json.dumps({"id": doc_id, "text": text}).encode())
    producer.flush()
    producer.close()
    wanted, latencies, last = set(ids), [], start
    deadline = time.monotonic() + 180
    while wanted and time.monotonic() < deadline:
        try:
            arrived, _, doc = outputs.arrivals.get(timeout=0.5)
        except queue.Empty:
            continue
        if doc["id"] in wanted:
            wanted.discard(doc["id"])
            latencies.append(arrived - _SENT[doc["id"]])
            last = arrived
    if wanted:
        raise _DemoError(f"{len(wanted)} burst outputs did not arrive")
    return {"messages": len(ids), "seconds": last - start, "latencies": latencies}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _summary(model_ref, args, streamed, burst, cpu_used, rss, dead, labels) -> None:
    lat = streamed["latencies"]
    blat = burst["latencies"]
    per_s = burst["messages"] / burst["seconds"]
    _say("\n== summary ==")
    _say(f"model         {model_ref}; 1 worker; {args.partitions} partitions")
    _say(f"streamed      {streamed['messages']} messages at {streamed['rate']:g}/s: end-to-end latency "
         f"p50 {_percentile(lat, 0.5) * 1000:.0f} ms, p99 {_percentile(lat, 0.99) * 1000:.0f} ms")
    _say(f"burst         {burst['messages']} messages in {burst['seconds']:.2f} s: {per_s:,.0f} messages/s; "
         f"latency p50 {_percentile(blat, 0.5) * 1000:.0f} ms, p99 {_percentile(blat, 0.99) * 1000:.0f} ms "
         "(includes queueing behind the burst)")
    if cpu_used > 0:
        _say(f"cpu           {cpu_used:.2f} CPU-seconds for the burst: "
             f"{burst['messages'] / cpu_used:,.0f} messages per CPU-second")
    _say(f"memory        {rss / 2**20:,.0f} MiB resident (the worker process)")
    _say("entities      " + ", ".join(f"{label} {n}" for label, n in labels.most_common()))
    _say(f"dead letters  {dead:.0f}")
