"""Workers killed with kill -9 under a steady stream: nothing lost; exactly-once, no duplicate
for a read_committed reader; at-least-once, at most one batch redone per kill (docs/delivery.md).

* kill -9 cycles: two workers of one group, one killed and restarted at once, alternately, 3-5 s
  apart (and only once the victim works again), `KILLS` times; in the span output mode with
  both guarantees, and enriching (at-least-once) and redacting (exactly-once);
* exactly-once, killed inside the transaction: a worker whose commits wait a moment after the
  batch's outputs are acknowledged and its offsets added (tests/faults/crashpoint.py) is killed
  in that window, `CRASHES` times; its restart (same transactional id) aborts the open
  transaction."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.faults.crashpoint import MARKER
from tests.faults.faultkit import FaultResult, report, wait_for
from tests.faults.pipeline import Pipeline
from tests.integration.kit_stream import owned, produced

pytestmark = [pytest.mark.faults, pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("TAGSTREAM_FAULTS_KILLS", "10"))
CRASHES = int(os.environ.get("TAGSTREAM_FAULTS_TXN_CRASHES", "5"))
BATCH = 16
SETTINGS = {
    "batching__max_batch_records": str(BATCH),
    "batching__max_wait_ms": "200",
    "drain_timeout_s": "20",
}


@pytest.mark.parametrize(
    "delivery, mode",
    [
        ("at_least_once", "spans"),
        ("exactly_once", "spans"),
        ("at_least_once", "enrich"),
        ("exactly_once", "redact"),
    ],
)
def test_kill9_cycles(cluster, start_worker, bootstrap, delivery, mode):
    began = time.monotonic()
    rng = random.Random(12)
    p = Pipeline(
        cluster,
        start_worker,
        bootstrap,
        partitions=4,
        workers=2,
        rate=100,
        delivery=delivery,
        output__mode=mode,
        **SETTINGS,
    )
    out = p.topics.output
    kills: list[float] = []
    try:
        p.start().wait_working()
        for i in range(KILLS):
            victim = p.workers[i % 2]
            # Each kill hits a working worker (it owns partitions and has produced since its
            # restart), 3-5 s after the kill before.
            wait_for(
                f"worker {i % 2} works again (kill {i + 1})",
                lambda v=victim: owned(v) > 0 and produced(v, out) > 0,
                90,
            )
            if kills:
                time.sleep(max(0.0, kills[-1] + rng.uniform(3, 5) - time.monotonic()))
            victim.kill9()
            kills.append(time.monotonic())
            victim.start()
        before_last = list(p.stream.ids)  # sent up to the last kill
        wait_for(
            "every input sent before the last kill has its output",
            lambda: p.watch.present(before_last),
            120,
            0.2,
        )
        recover = p.watch.all_present_at(before_last) - kills[-1]
    except BaseException:
        p.abandon()
        raise
    t, aborted = p.finish()
    period = (kills[-1] - kills[0]) / max(1, len(kills) - 1)
    notes = f"2 workers, 4 partitions, 100 inputs/s, {len(kills)} kills {period:.1f} s apart"
    if delivery == "exactly_once":
        notes += f"; {aborted} outputs of aborted transactions (read_uncommitted)"
    report(
        FaultResult(
            f"kill -9 cycles, {delivery}" + ("" if mode == "spans" else f", {mode}"),
            t.inputs,
            t.lost,
            t.total_duplicates,
            f"{recover:.1f} s from the last kill to every output",
            notes,
            time.monotonic() - began,
        )
    )
    assert not t.missing, f"{t.lost} of {t.inputs} inputs have no output"
    if delivery == "exactly_once":
        assert t.total_duplicates == 0, f"a read_committed reader saw duplicates: {t.duplicates}"
    else:
        assert t.total_duplicates <= BATCH * len(kills), (
            f"{t.total_duplicates} duplicates ({t.duplicates}): more than one batch of {BATCH} "
            f"per kill ({len(kills)} kills)"
        )


def test_exactly_once_killed_between_produce_and_commit(
    cluster, start_worker, bootstrap, monkeypatch
):
    began = time.monotonic()
    monkeypatch.setenv("TAGSTREAM_FAULT_COMMIT_DELAY_S", "0.6")
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    p = Pipeline(
        cluster,
        start_worker,
        bootstrap,
        partitions=4,
        workers=1,
        rate=10,
        module="tests.faults.crashpoint",
        delivery="exactly_once",
        **{**SETTINGS, "batching__max_batch_records": "64"},
    )
    worker = p.workers[0]
    kills: list[float] = []

    def windows() -> int:  # transactions that reached their commit (all runs of the worker)
        return Path(worker.log_path).read_text(errors="replace").count(MARKER)

    try:
        p.start()
        for i in range(CRASHES):
            seen = windows()
            wait_for(
                f"a transaction waits for its commit (crash {i + 1})",
                lambda seen=seen: windows() > seen,
                90,
                0.05,
            )
            time.sleep(0.2)  # inside the 0.6 s window: outputs acknowledged, offsets added
            worker.kill9()
            kills.append(time.monotonic())
            worker.start()
        before_last = list(p.stream.ids)
        wait_for(
            "every input sent before the last crash has its output",
            lambda: p.watch.present(before_last),
            120,
            0.2,
        )
        recover = p.watch.all_present_at(before_last) - kills[-1]
    except BaseException:
        p.abandon()
        raise
    t, aborted = p.finish()
    report(
        FaultResult(
            "exactly-once, kill -9 between produce and commit",
            t.inputs,
            t.lost,
            t.total_duplicates,
            f"{recover:.1f} s from the last kill to every output",
            f"1 worker, 4 partitions, 10 inputs/s, {len(kills)} kills inside an open "
            f"transaction; {aborted} outputs of aborted transactions (read_uncommitted)",
            time.monotonic() - began,
        )
    )
    assert not t.missing, f"{t.lost} of {t.inputs} inputs have no output"
    assert t.total_duplicates == 0, f"a read_committed reader saw duplicates: {t.duplicates}"
    assert aborted > 0, "no kill landed inside a transaction with outputs"
