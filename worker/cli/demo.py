"""``tagstream demo``: the whole job on one machine, for a newcomer.

1. bring up the local Kafka broker (``scripts/kafka-local up``) unless one is given;
2. create an input, an output and a dead-letter topic;
3. start a real ``tagstream run`` worker process and wait until it is ready;
4. stream the embedded sentences at a steady rate, printing each labelled result as it arrives;
5. send a burst of them as fast as possible to measure throughput;
6. print a summary (messages/s, messages per CPU-second, p50/p99 end-to-end latency);
7. clean up: stop the worker (SIGTERM: it drains), delete the topics, stop the broker.

This module sets up (1-3), and cleans up (7); the measuring and the summary (4-6) are
`tagstream.worker.cli.demo_measure`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from .demo_measure import (
    BURST_REPEAT,
    DemoError,
    OutputReader,
    print_summary,
    run_burst,
    run_stream,
    say,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_LOCAL = REPO_ROOT / "scripts" / "kafka-local"
SENTENCES = Path(__file__).with_name("demo_sentences.txt")


def cmd_demo(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from ..kafka import clients

    sentences = _sentences(args.sentences)
    if not sentences:
        say(f"tagstream demo: {args.sentences} has no sentences")
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
        say(f"broker       {bootstrap}")

        tag = uuid.uuid4().hex[:8]
        input_topic, output_topic, dlq_topic = (
            f"demo-{n}-{tag}" for n in ("input", "output", "dead-letters")
        )
        topics = [input_topic, output_topic, dlq_topic]
        admin = clients.local_admin(bootstrap, "tagstream-demo")
        admin.create_topics(
            {t: {"num_partitions": args.partitions, "replication_factor": 1} for t in topics},
            wait_for_metadata=True,
        )
        say(f"topics       {input_topic} -> {output_topic} (dead letters: {dlq_topic})")

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
            "TAGSTREAM_OUTPUT__MODE": args.output_mode,
        }
        if isinstance(args.model, Path):
            env["TAGSTREAM_MODEL__PATH"] = str(args.model.resolve())
        elif args.model:
            env["TAGSTREAM_MODEL__NAME"] = args.model
        log_path = workdir / "worker.log"
        with open(log_path, "wb") as log_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tagstream.worker.cli", "run"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        _wait_ready(worker, port, log_path)
        model_ref = _model_ref(port)
        say(
            f"worker       pid {worker.pid}, model {model_ref}, metrics http://127.0.0.1:{port}/metrics\n"
        )

        outputs = OutputReader(bootstrap, output_topic)
        outputs.start()
        try:
            streamed = run_stream(bootstrap, input_topic, sentences, args.rate, outputs)
            cpu_before = _cpu_seconds(port)
            burst = run_burst(bootstrap, input_topic, sentences * BURST_REPEAT, outputs)
            cpu_used = _cpu_seconds(port) - cpu_before
        finally:
            outputs.stop()
        dead = _metric_sum(port, "tagstream_records_dead_lettered_total")
        rss = _metric_sum(port, "process_resident_memory_bytes")
        print_summary(model_ref, args, streamed, burst, cpu_used, rss, dead, outputs.labels)
        return 0
    except DemoError as exc:
        say(f"demo failed: {exc}")
        return exc.status
    except KafkaError as exc:
        say(f"demo failed: Kafka at {bootstrap} did not answer: {exc!r}")
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


def _sentences(path: Path | None) -> list[str]:
    lines = (path or SENTENCES).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()]


def _broker_up() -> str:
    if not KAFKA_LOCAL.exists():
        raise DemoError(
            "no broker: pass --bootstrap-servers or set KAFKA_BOOTSTRAP_SERVERS "
            "(scripts/kafka-local is only in a source checkout)"
        )
    say("broker       starting the local Kafka (first time: downloads its jars from Maven Central)")
    proc = subprocess.run(
        ["bash", str(KAFKA_LOCAL), "up"], capture_output=True, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("KAFKA_BOOTSTRAP_SERVERS="):
        raise DemoError(f"scripts/kafka-local up failed:\n{proc.stderr[-3000:]}")
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


def _wait_ready(
    worker: subprocess.Popen, port: int, log_path: Path, timeout_s: float = 180
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise DemoError(  # 2: the worker refused its settings or the model file
                f"the worker exited ({worker.returncode}):\n{log_path.read_text()[-3000:]}",
                status=2 if worker.returncode == 2 else 1,
            )
        if _get(port, "/readyz")[0] == 200:
            return
        time.sleep(0.2)
    raise DemoError(
        f"the worker was not ready after {timeout_s:.0f}s:\n{log_path.read_text()[-3000:]}"
    )


def _metrics(port: int) -> list:
    from prometheus_client.parser import text_string_to_metric_families

    status, body = _get(port, "/metrics")
    if status != 200:
        raise DemoError(f"/metrics answered {status}")
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
