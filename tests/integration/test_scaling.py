"""Scaling a group 1 -> 3 -> 1 workers under a steady stream (issue 12): nothing lost, no
exactly-once duplicates, at most one batch redone per moved partition, and the group's
committed offsets never go backwards, with the eager and the cooperative protocol alike.

`scale_1_3_1` is the scenario itself; the fault suite (tests/faults) runs it too."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import pytest

from tests.integration.kit import Cluster, Topics, read_all
from tests.integration.kit_stream import (
    CommittedWatch,
    Stream,
    Tally,
    owned,
    partition_moves,
    tally,
    wait_until,
)

PARTITIONS = 6
BATCH = 16  # max records per batch: what a rebalance may redo per moved partition (at-least-once)
RATE = 100  # records per second: the steady stream (2,000-3,000 records in all)
MAX_RECORDS = 6000  # a cap for a stream not stopped (the test normally stops it well before)


@dataclass
class ScalingResult:
    tally: Tally
    moves: dict[int, int]  # partition -> changes of owner
    backwards: list[str]  # committed offsets that went backwards
    longest_stall_s: float  # longest time the group committed nothing, from 1 -> 3 to back at 1
    seconds: float  # the whole scenario


def scale_1_3_1(
    cluster: Cluster, topics: Topics, start_worker, bootstrap: str, strategy: str, delivery: str
) -> ScalingResult:
    """One worker, then three, then one again, on a topic of PARTITIONS partitions fed RATE
    records/s; every output read back with a read_committed reader."""
    began = time.monotonic()
    # Small batches that close on their size while the stream flows, and a long wait for a
    # partial one (no records come while the group rebalances): the undelivered records stay
    # until the rebalance revokes their partitions.
    settings = {
        "kafka__assignment_strategy": strategy,
        "batching__max_batch_records": str(BATCH),
        "batching__max_wait_ms": "5000",
        "delivery": delivery,
        "drain_timeout_s": "20",
    }
    watch = CommittedWatch(cluster, topics)
    progress = watch.progress

    a = start_worker(topics, **settings, kafka__transactional_id=f"{topics.group}-a").wait_ready()
    stream = Stream(bootstrap, topics.input, rate=RATE, max_records=MAX_RECORDS)
    stream.start()
    try:
        # 1 -> 3: the new workers take partitions over while records keep coming (they start
        # now, and the first one works alone while they load the model: several seconds)
        resized = time.monotonic()
        b = start_worker(topics, **settings, kafka__transactional_id=f"{topics.group}-b")
        c = start_worker(topics, **settings, kafka__transactional_id=f"{topics.group}-c")
        wait_until("the first worker commits", lambda: progress() >= 100, watch)
        wait_until("the new workers are ready", lambda: ready(b) and ready(c), watch, 90)
        workers = [a, b, c]
        wait_until(
            "three workers share the six partitions",
            lambda: sorted(map(owned, workers)) == [2, 2, 2],
            watch,
        )
        mark = progress()
        wait_until("the three workers commit", lambda: progress() >= mark + 400, watch)

        # 3 -> 1: SIGTERM two of them; their partitions go back to the first
        for w in (b, c):
            w.proc.send_signal(signal.SIGTERM)
        wait_until(
            "the two have stopped", lambda: None not in (b.proc.poll(), c.proc.poll()), watch, 60
        )
        assert b.proc.returncode == 0, b.log()
        assert c.proc.returncode == 0, c.log()
        wait_until(
            "the first worker owns every partition again", lambda: owned(a) == PARTITIONS, watch
        )
        mark = progress()
        wait_until("the first worker commits alone", lambda: progress() >= mark + 150, watch)
        settled = time.monotonic()
    finally:
        ids = stream.stop()

    # Once the first worker has caught up (what is left fits in its partial batch, and nothing
    # more gets committed), its drain delivers and commits the rest at once.
    end = sum(cluster.end_offsets(topics.input).values())
    seen: list[int] = []

    def caught_up() -> bool:
        seen.append(progress())
        return end - seen[-1] < BATCH and seen[-3:] == [seen[-1]] * 3

    wait_until("the first worker catches up", caught_up, watch, 60)
    assert a.terminate() == 0
    wait_until("the drain has committed every input", lambda: progress() == end, watch, 10)
    outputs = read_all(
        bootstrap,
        topics.output,
        lambda rs: len(rs) >= len(ids),
        timeout_s=30,
        settle_s=1.0,
        isolation_level="read_committed",
    )
    return ScalingResult(
        tally(ids, outputs),
        partition_moves(workers),
        watch.backwards,
        watch.longest_stall(resized, settled),
        time.monotonic() - began,
    )


def ready(worker) -> bool:
    """/readyz says 200 (AssertionError with its log if the worker has exited)."""
    assert worker.proc.poll() is None, (
        f"worker exited with {worker.proc.returncode}:\n{worker.log()}"
    )
    return worker.get("/readyz")[0] == 200


def check_scaling(result: ScalingResult, delivery: str) -> None:
    """Nothing lost, offsets never backwards; exactly-once: no duplicate; at-least-once: at
    most one batch per move of a partition."""
    t = result.tally
    assert not t.missing, f"{t.lost} of {t.inputs} inputs have no output"
    assert not result.backwards, f"committed offsets went backwards: {result.backwards}"
    if delivery == "exactly_once":  # read_all read committed data only
        assert t.total_duplicates == 0, (
            f"a read_committed reader saw {t.total_duplicates} outputs twice: {t.duplicates}"
        )
    else:
        over = {p: n for p, n in t.duplicates.items() if n > BATCH * result.moves.get(p, 0)}
        assert not over, (
            f"{t.total_duplicates} duplicates ({t.duplicates}): more than one batch "
            f"of {BATCH} per move ({dict(result.moves)}) on partitions {sorted(over)}"
        )


@pytest.fixture
def six_partitions(cluster: Cluster) -> Topics:
    t = cluster.create_topics(partitions=PARTITIONS)
    yield t
    cluster.delete(t)


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_scaling_1_to_3_to_1_under_a_steady_stream(
    cluster, six_partitions, start_worker, bootstrap, strategy, delivery
):
    result = scale_1_3_1(cluster, six_partitions, start_worker, bootstrap, strategy, delivery)
    t = result.tally
    print(
        f"{strategy}/{delivery}: {t.inputs} inputs, {t.total_duplicates} duplicates "
        f"{t.duplicates}, committed offsets went backwards {len(result.backwards)} times"
    )
    check_scaling(result, delivery)
