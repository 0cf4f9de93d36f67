"""The 1 -> 3 -> 1 resize over and over under one steady stream, so that a rare interleaving (a
transaction refused just before a revocation: issue 21) gets its chances: one worker stays, two
more join and are stopped with SIGTERM, `TAGSTREAM_FAULTS_REBALANCE_CYCLES` times (10 unless
set). Each cycle is reported with the inputs produced during it that were lost or labelled
twice (read_committed) and the offset commits the group refused meanwhile (failed transactions
in exactly-once mode, failed offset commits in at-least-once mode)."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.faultkit import FaultResult, report
from tests.integration.kit import read_all
from tests.integration.kit_stream import CommittedWatch, Stream, owned, tally, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration]

CYCLES = int(os.environ.get("TAGSTREAM_FAULTS_REBALANCE_CYCLES", "10"))
PARTITIONS = 6
RATE = 150  # inputs per second, as in the run that showed the loss
BATCH = 16
REFUSED = ("transaction failed; aborting", "offset commit failed", "committing delivered records")


@dataclass
class Cycle:
    first_id: int  # the stream's first input produced during the cycle
    refused: int = 0  # offset commits the group refused, over the three workers
    seconds: float = 0.0


class LogCursor:
    """Counts the lines of a worker's JSON log, from where it last stopped, that say the group
    refused an offset commit."""

    def __init__(self, path: Path):
        self._path = path
        self._at = 0

    def refused(self) -> int:
        try:
            with open(self._path, "rb") as f:
                f.seek(self._at)
                text = f.read()
                self._at = f.tell()
        except OSError:
            return 0
        n = 0
        for line in text.decode(errors="replace").splitlines():
            try:
                msg = json.loads(line).get("msg", "")
            except ValueError:
                continue
            n += msg.startswith(REFUSED)
        return n


@pytest.mark.parametrize(
    ("strategy", "delivery"),
    [
        ("cooperative-sticky", "exactly_once"),
        ("range", "exactly_once"),
        ("cooperative-sticky", "at_least_once"),
        ("range", "at_least_once"),
    ],
)
def test_rebalance_1_3_1_cycles(cluster, start_worker, bootstrap, strategy, delivery):
    topics = cluster.create_topics(partitions=PARTITIONS)
    settings = {
        "kafka__assignment_strategy": strategy,
        "batching__max_batch_records": str(BATCH),
        "batching__max_wait_ms": "2000",
        "delivery": delivery,
        "drain_timeout_s": "20",
    }
    began = time.monotonic()
    watch = CommittedWatch(cluster, topics)
    first = start_worker(topics, **settings, kafka__transactional_id=f"{topics.group}-a")
    first.wait_ready()
    first_log = LogCursor(first.log_path)
    stream = Stream(bootstrap, topics.input, rate=RATE, max_records=RATE * 60 * (CYCLES + 2))
    stream.start()
    cycles: list[Cycle] = []
    try:
        for k in range(CYCLES):
            cycle = Cycle(len(stream.ids))
            cycles.append(cycle)
            started = time.monotonic()
            joined = [
                start_worker(
                    topics, **settings, kafka__transactional_id=f"{topics.group}-{name}{k}"
                )
                for name in "bc"
            ]
            workers = [first, *joined]
            wait_until(
                "three workers share the partitions",
                lambda: sorted(map(owned, workers)) == [2, 2, 2],  # noqa: B023
                watch,
                120,
            )
            mark = watch.progress()
            wait_until("the three commit", lambda: watch.progress() >= mark + 300, watch, 60)
            for w in joined:
                w.proc.send_signal(signal.SIGTERM)
            for w in joined:
                assert w.proc.wait(60) == 0, w.log()
            wait_until("the first owns every partition", lambda: owned(first) == PARTITIONS, watch)
            mark = watch.progress()
            wait_until("the first commits alone", lambda: watch.progress() >= mark + 150, watch)
            cycle.refused = first_log.refused() + sum(
                LogCursor(w.log_path).refused() for w in joined
            )
            cycle.seconds = time.monotonic() - started
    finally:
        ids = stream.stop()

    end = sum(cluster.end_offsets(topics.input).values())
    wait_until("the first worker catches up", lambda: end - watch.progress() < BATCH, watch, 60)
    assert first.terminate() == 0, first.log()
    wait_until("every input is committed", lambda: watch.progress() == end, watch, 20)
    outputs = read_all(
        bootstrap,
        topics.output,
        lambda rs: len(rs) >= len(ids),
        timeout_s=60,
        settle_s=1.0,
        isolation_level="read_committed",
    )
    whole = tally(ids, outputs)
    seen: dict[str, int] = {}
    for rec in outputs:
        doc_id = json.loads(rec.value)["id"]
        seen[doc_id] = seen.get(doc_id, 0) + 1
    lines = []
    for k, cycle in enumerate(cycles):
        last = cycles[k + 1].first_id if k + 1 < len(cycles) else len(ids)
        span = ids[cycle.first_id : last]
        lost = sum(i not in seen for i in span)
        twice = sum(seen.get(i, 0) - 1 for i in span if seen.get(i, 0) > 1)
        lines.append(
            f"cycle {k + 1}: {len(span)} inputs, lost {lost}, duplicates {twice}, "
            f"refused commits {cycle.refused} [{cycle.seconds:.0f} s]"
        )
    print("\n".join(lines), flush=True)
    refused = sum(c.refused for c in cycles) + first_log.refused()
    report(
        FaultResult(
            f"rebalance 1→3→1 × {CYCLES}, {strategy}, {delivery}",
            whole.inputs,
            whole.lost,
            whole.total_duplicates,
            f"{max(c.seconds for c in cycles):.0f} s for the longest cycle",
            f"{PARTITIONS} partitions, {RATE} inputs/s; {refused} refused offset commits "
            f"({sum(c.refused > 0 for c in cycles)} of {CYCLES} cycles); committed offsets "
            f"backwards {len(watch.backwards)} times",
            time.monotonic() - began,
        )
    )
    assert not whole.missing, (
        f"{whole.lost} of {whole.inputs} inputs have no output:\n" + "\n".join(lines)
    )
    assert not watch.backwards, f"committed offsets went backwards: {watch.backwards}"
    if delivery == "exactly_once":
        assert whole.total_duplicates == 0, "\n".join(lines)
    cluster.delete(topics)
