"""The broker paused (SIGSTOP) and killed (SIGKILL, then restarted with its data) under a
steady stream. Each scenario runs side by side pipelines (their own topics, group and worker) so
that one outage measures them all under the same conditions: nothing lost; exactly-once, no
duplicate; at-least-once, at most one batch per worker redone. Needs the broker that
scripts/kafka-local runs (skipped otherwise): `make chaos` starts one of its own.

Times are as a read_committed reader sees the outputs (tests/faults/faultkit.py OutputWatch);
every client of the test itself reconnects within 250-500 ms, so they are the worker's."""

from __future__ import annotations

import os
import time

import pytest

from tests.faults.faultkit import FaultResult, report, wait_for
from tests.faults.pipeline import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.integration]

PAUSE_S = float(os.environ.get("TAGSTREAM_FAULTS_PAUSE_S", "25"))
DOWN_S = float(os.environ.get("TAGSTREAM_FAULTS_DOWN_S", "10"))  # killed, before the restart
BATCH = 16
RATE = 50
SETTINGS = {
    "batching__max_batch_records": str(BATCH),
    "batching__max_wait_ms": "200",
    "drain_timeout_s": "20",
}


def _after(t: float | None, t0: float) -> str:
    return "never" if t is None else f"{t - t0:.1f} s"


def _check(t, delivery: str, workers: int = 1) -> None:
    assert not t.missing, f"{t.lost} of {t.inputs} inputs have no output"
    if delivery == "exactly_once":
        assert t.total_duplicates == 0, f"a read_committed reader saw duplicates: {t.duplicates}"
    else:
        assert t.total_duplicates <= BATCH * workers, (
            f"{t.total_duplicates} duplicates ({t.duplicates}): more than one batch of {BATCH} "
            f"per worker"
        )


def test_broker_paused_under_load(cluster, start_worker, bootstrap, broker):
    began = time.monotonic()
    deliveries = ["at_least_once", "exactly_once"]
    pipelines = [
        Pipeline(cluster, start_worker, bootstrap, rate=RATE, delivery=d, **SETTINGS)
        for d in deliveries
    ]
    try:
        for p in pipelines:
            p.start()
        for p in pipelines:
            p.wait_working()
        time.sleep(3)  # steady
        paused_wall = time.time()
        paused = broker.pause()
        time.sleep(PAUSE_S)
        resumed = broker.resume()
        sent = [list(p.stream.ids) for p in pipelines]  # by the end of the pause
        for p, ids in zip(pipelines, sent):
            wait_for(
                "every input sent during the pause has its output",
                lambda p=p, ids=ids: p.watch.present(ids),
                150,
                0.2,
            )
        first = [p.watch.first_after(resumed, created_after=paused_wall) for p in pipelines]
        caught_up = [p.watch.all_present_at(ids) for p, ids in zip(pipelines, sent)]
        gaps = [p.watch.longest_gap(paused - 2, c) for p, c in zip(pipelines, caught_up)]
    except BaseException:
        for p in pipelines:
            p.abandon()
        raise
    tallies = [p.finish() for p in pipelines]
    for d, (t, _), f, c, g in zip(deliveries, tallies, first, caught_up, gaps):
        report(
            FaultResult(
                f"broker SIGSTOP {PAUSE_S:.0f} s, {d}",
                t.inputs,
                t.lost,
                t.total_duplicates,
                f"first new output {_after(f, resumed)} after SIGCONT, all caught up after "
                f"{_after(c, resumed)}",
                f"1 worker, 4 partitions, {RATE} inputs/s; longest output gap {g:.1f} s",
                time.monotonic() - began,
            )
        )
    for d, (t, _) in zip(deliveries, tallies):
        _check(t, d)


# (delivery, TAGSTREAM_KAFKA__RECONNECT_BACKOFF_MAX_MS or None for the worker's default)
KILL_VARIANTS = [("at_least_once", "30000"), ("at_least_once", None), ("exactly_once", None)]


def test_broker_killed_and_restarted(cluster, start_worker, bootstrap, broker):
    from tagstream.worker.settings import KafkaSettings

    default_backoff = KafkaSettings.model_fields["reconnect_backoff_max_ms"].default
    began = time.monotonic()
    pipelines = []
    for delivery, backoff in KILL_VARIANTS:
        extra = {"kafka__reconnect_backoff_max_ms": backoff} if backoff else {}
        pipelines.append(
            Pipeline(
                cluster, start_worker, bootstrap, rate=RATE, delivery=delivery, **SETTINGS, **extra
            )
        )
    try:
        for p in pipelines:
            p.start()
        for p in pipelines:
            p.wait_working()
        time.sleep(3)
        killed_wall = time.time()
        killed = broker.kill()
        time.sleep(DOWN_S)
        opened, answering = broker.restart()
        sent = [list(p.stream.ids) for p in pipelines]
        for p, ids in zip(pipelines, sent):
            wait_for(
                "every input sent before the restart has its output",
                lambda p=p, ids=ids: p.watch.present(ids),
                180,
                0.2,
            )
        # the first output the worker produced after the broker died (created after the kill)
        first = [p.watch.first_after(opened, created_after=killed_wall) for p in pipelines]
        caught_up = [p.watch.all_present_at(ids) for p, ids in zip(pipelines, sent)]
    except BaseException:
        for p in pipelines:
            p.abandon()
        raise
    tallies = [p.finish() for p in pipelines]
    for (delivery, backoff), (t, _), f, c in zip(KILL_VARIANTS, tallies, first, caught_up):
        which = (
            f"reconnect backoff max {int(backoff) / 1000:g} s (kafka-python's default)"
            if backoff
            else f"reconnect backoff max {default_backoff / 1000:g} s (default)"
        )
        report(
            FaultResult(
                f"broker SIGKILL + restart, {delivery}, {which}",
                t.inputs,
                t.lost,
                t.total_duplicates,
                f"first new output {_after(f, opened)} after the port reopened, all caught up "
                f"after {_after(c, opened)}",
                f"1 worker, 4 partitions, {RATE} inputs/s; port closed {opened - killed:.1f} s, "
                f"broker answering {answering - opened:.1f} s after its port opened",
                time.monotonic() - began,
            )
        )
    for (delivery, _), (t, _) in zip(KILL_VARIANTS, tallies):
        _check(t, delivery)
