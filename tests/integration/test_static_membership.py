"""Static membership (KIP-345): a worker killed with kill -9 and restarted with the same group
instance id gets its partitions back and produces again at once, without a rebalance of the
others and without waiting for its old session to expire."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime

from kafka import KafkaProducer

from tests.integration.kit import ids_of, read_all

SESSION_TIMEOUT_MS = 30_000  # a dynamic member's restart would wait for this


def wait_for(condition, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_a_restarted_static_member_resumes_at_once(cluster, start_worker, bootstrap):
    topics = cluster.create_topics(partitions=4)
    tag = uuid.uuid4().hex[:6]
    common = {
        "kafka__session_timeout_ms": str(SESSION_TIMEOUT_MS),
        "kafka__heartbeat_interval_ms": "1000",
        "batching__max_batch_records": "16",
    }
    a = start_worker(topics, kafka__group_instance_id=f"a-{tag}", **common).wait_ready()
    b = start_worker(topics, kafka__group_instance_id=f"b-{tag}", **common).wait_ready()
    owned = lambda w: w.sample("tagstream_assigned_partitions")  # noqa: E731
    wait_for(lambda: owned(a) == 2 and owned(b) == 2, 60, "the two workers split the 4 partitions")

    sent: list[str] = []
    stop = threading.Event()

    def stream() -> None:  # 40 messages/s over all partitions until stopped
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        i = 0
        while not stop.is_set():
            doc_id = f"m{i}"
            producer.send(
                topics.input,
                value=f'{{"id": "{doc_id}", "text": "Oslo is in Norway ."}}'.encode(),
                partition=i % 4,
            )
            sent.append(doc_id)
            i += 1
            time.sleep(0.025)
        producer.flush()
        producer.close()

    producer = threading.Thread(target=stream)
    producer.start()
    try:
        wait_for(
            lambda: (a.sample("tagstream_records_produced_total", topic=topics.output) or 0) > 0,
            30,
            "worker a labels its share",
        )
        b_rebalances = b.sample("tagstream_rebalances_total")
        a.kill9()
        restarted = time.monotonic()
        restarted_wall = time.time()
        a.start()
        wait_for(lambda: _produced(a, topics.output) > 0, 60, "the restarted worker produces again")
        since_restart = time.monotonic() - restarted
        assert owned(a) == 2
        assert b.sample("tagstream_rebalances_total") == b_rebalances, "no rebalance of the others"
        # From the restarted process's model being loaded (start-up is torch and the model, seconds
        # on a busy machine) to its partitions: at once, not after the old session's 30 s.
        events = _log_times(a.log(), after=restarted_wall)
        rejoin = events["partitions assigned"] - events["model loaded"]
        print(
            f"restarted worker: partitions back {rejoin:.2f} s after its model loaded; "
            f"produced again {since_restart:.1f} s after the restart"
        )
        assert rejoin < 5.0, f"the restarted static member waited {rejoin:.1f} s for its partitions"
    finally:
        stop.set()
        producer.join(timeout=30)
    outputs = read_all(
        bootstrap, topics.output, lambda rs: set(ids_of(rs)) >= set(sent), timeout_s=90
    )
    assert set(ids_of(outputs)) >= set(sent), "nothing lost"
    assert a.terminate() == 0 and b.terminate() == 0
    cluster.delete(topics)


def _log_times(log: str, after: float) -> dict[str, float]:
    """The first time (epoch seconds) of each log message written after ``after``."""
    out: dict[str, float] = {}
    for line in log.splitlines():
        try:
            event = json.loads(line)
            at = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        if at >= after - 0.5:
            out.setdefault(event["msg"], at)
    return out


def _produced(worker, topic: str) -> float:
    try:
        return worker.sample("tagstream_records_produced_total", topic=topic) or 0
    except Exception:  # the restarted worker's HTTP server is not up yet
        return 0
