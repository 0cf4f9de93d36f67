"""Delivery guarantees on the real broker: crash, drain, scale-out, exactly-once."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter

import pytest

from tests.integration.kit import ids_of, json_records, produce, read_all
from tests.kafka_local import broker_pid

TEXT = "Reuters reported that Siemens opened an office in Lisbon , Portugal ."
BATCH = 32


def wait_for_outputs(bootstrap, topic, n, timeout_s=60, isolation_level="read_uncommitted"):
    return read_all(bootstrap, topic, lambda rs: len(rs) >= n, timeout_s, isolation_level)


def test_kill_9_mid_stream_then_restart_loses_nothing(cluster, topics, start_worker, bootstrap):
    ids = [f"id-{i}" for i in range(3000)]
    produce(bootstrap, topics.input, json_records(ids, lambda _: TEXT))
    first = start_worker(topics, batching__max_batch_records=str(BATCH)).wait_ready()
    wait_for_outputs(bootstrap, topics.output, 300)
    first.kill9()  # mid-stream: no drain, no commit, no goodbye to the group
    assert sum(cluster.committed(topics.group, topics.input).values()) < len(ids), "not mid-stream"

    second = start_worker(topics, batching__max_batch_records=str(BATCH)).wait_ready()
    cluster.wait_all_committed(topics.group, topics.input, timeout_s=120)
    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= len(ids), settle_s=1.0)
    counts = Counter(ids_of(outputs))
    assert set(counts) == set(ids)  # every input id has an output
    duplicated = [i for i, c in counts.items() if c > 1]
    assert all(c == 2 for c in counts.values() if c > 1)
    assert len(duplicated) <= BATCH, f"{len(duplicated)} duplicates, more than one batch"
    assert second.terminate() == 0


def test_sigterm_drains_and_leaves_nothing_uncommitted(cluster, topics, start_worker, bootstrap):
    ids = [f"id-{i}" for i in range(4000)]
    produce(bootstrap, topics.input, json_records(ids, lambda _: TEXT))
    worker = start_worker(
        topics, batching__max_batch_records=str(BATCH), drain_timeout_s="20"
    ).wait_ready()
    wait_for_outputs(bootstrap, topics.output, 300)
    started = time.monotonic()
    assert worker.terminate(timeout_s=30) == 0
    assert time.monotonic() - started < 20
    assert "drained" in worker.log()

    # Everything the worker delivered is committed, and nothing beyond it: the committed
    # offsets count exactly the outputs (each input before them has exactly one output).
    committed = cluster.committed(topics.group, topics.input)
    outputs = read_all(
        bootstrap, topics.output, lambda rs: len(rs) >= sum(committed.values()), settle_s=1.0
    )
    assert len(outputs) == sum(committed.values())
    by_partition: dict[int, list[int]] = {}
    for rec in outputs:
        src = json.loads(rec.value)["source"]
        by_partition.setdefault(src["partition"], []).append(src["offset"])
    for partition, offsets in by_partition.items():
        assert sorted(offsets) == list(range(committed[partition]))

    # a restart picks up exactly where the drain stopped: no duplicates at all
    again = start_worker(topics, batching__max_batch_records=str(BATCH)).wait_ready()
    cluster.wait_all_committed(topics.group, topics.input, timeout_s=120)
    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= len(ids), settle_s=1.0)
    assert sorted(ids_of(outputs)) == sorted(ids)
    assert again.terminate() == 0


@pytest.mark.parametrize(
    ("strategy", "delivery"),
    [
        ("range", "at_least_once"),
        ("cooperative-sticky", "at_least_once"),
        ("range", "exactly_once"),
    ],
)
def test_a_second_worker_joins_mid_stream_and_together_they_label_every_id(
    cluster, topics, start_worker, bootstrap, strategy, delivery
):
    ids = [f"id-{i}" for i in range(8000)]
    produce(bootstrap, topics.input, json_records(ids[:6000], lambda _: TEXT, keys=50))
    settings = {
        "kafka__assignment_strategy": strategy,
        "batching__max_batch_records": str(BATCH),
        "delivery": delivery,
    }
    a = start_worker(topics, **settings, kafka__transactional_id=f"{topics.group}-a").wait_ready()
    wait_for_outputs(bootstrap, topics.output, 300, isolation_level="read_committed")
    # b joins: a rebalance, likely mid-stream
    b = start_worker(topics, **settings, kafka__transactional_id=f"{topics.group}-b").wait_ready()
    deadline = time.monotonic() + 30  # b is ready once it owns partitions; a may still be rejoining
    while True:
        owned = (
            a.sample("tagstream_assigned_partitions"),
            b.sample("tagstream_assigned_partitions"),
        )
        if sorted(owned) == [1, 2] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(owned) == [1, 2]
    produce(bootstrap, topics.input, json_records(ids[6000:], lambda _: TEXT, keys=50))

    cluster.wait_all_committed(topics.group, topics.input, timeout_s=120)
    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= len(ids), settle_s=1.0)
    counts = Counter(ids_of(outputs))
    assert set(counts) == set(ids)
    if delivery == "exactly_once":  # read_all reads committed data only
        assert max(counts.values()) == 1
    else:
        assert sum(c - 1 for c in counts.values()) <= BATCH  # a rebalance redoes at most a batch
    produced = [w.sample("tagstream_records_produced_total", topic=topics.output) for w in (a, b)]
    assert all(p and p > 0 for p in produced)
    assert a.terminate() == 0 and b.terminate() == 0


def test_exactly_once_across_a_crash(cluster, topics, start_worker, bootstrap):
    ids = [f"id-{i}" for i in range(3000)]
    produce(bootstrap, topics.input, json_records(ids, lambda _: TEXT))
    settings = {
        "delivery": "exactly_once",
        "kafka__transactional_id": f"tx-{topics.group}",  # stable across the restart
        "batching__max_batch_records": str(BATCH),
    }
    first = start_worker(topics, **settings).wait_ready()
    wait_for_outputs(bootstrap, topics.output, 300, isolation_level="read_committed")
    first.kill9()  # likely leaves an open transaction behind
    assert sum(cluster.committed(topics.group, topics.input).values()) < len(ids), "not mid-stream"

    second = start_worker(topics, **settings).wait_ready()
    cluster.wait_all_committed(topics.group, topics.input, timeout_s=120)
    outputs = read_all(
        bootstrap,
        topics.output,
        lambda rs: len(rs) >= len(ids),
        settle_s=2.0,
        isolation_level="read_committed",
    )
    counts = Counter(ids_of(outputs))
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1, "a read_committed reader saw an output twice"
    assert second.terminate() == 0


def test_a_drain_ends_by_its_timeout_when_the_broker_stops_answering(
    cluster, topics, start_worker, bootstrap
):
    """SIGTERM while the broker is frozen (SIGSTOP): waiting for acknowledgements and commits
    is cut short by the drain timeout, the worker exits 1, and a restart loses nothing."""
    pid = broker_pid(bootstrap)
    if pid is None:
        pytest.skip("the broker in use is not the one scripts/kafka-local runs: cannot pause it")
    drain_s = 3
    ids = [f"id-{i}" for i in range(6000)]
    produce(bootstrap, topics.input, json_records(ids, lambda _: TEXT))
    settings = {"batching__max_batch_records": "8", "drain_timeout_s": str(drain_s)}
    worker = start_worker(topics, **settings).wait_ready()
    wait_for_outputs(bootstrap, topics.output, 300)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(0.5)  # the worker is now waiting on the broker, mid-stream
        assert worker.sample("tagstream_assigned_partitions") == 3
        started = time.monotonic()
        status = worker.terminate(timeout_s=60)
        took = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert status == 1, worker.log()
    assert "drain timeout" in worker.log()
    # the drain, then closing at once (the producer) and leaving the group (1 s at most)
    assert took < drain_s + 6, f"the worker took {took:.1f} s to stop"

    again = start_worker(topics, **settings).wait_ready()
    cluster.wait_all_committed(topics.group, topics.input, timeout_s=120)
    outputs = read_all(bootstrap, topics.output, lambda rs: len(rs) >= len(ids), settle_s=1.0)
    assert set(ids_of(outputs)) == set(ids)
    assert again.terminate() == 0
