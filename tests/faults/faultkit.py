"""What the fault scenarios share: a reader that timestamps every output as it becomes visible,
control of the local broker (pause, kill, restart), and the one-line results the suite prints
and tabulates at the end (tests/faults/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass
from itertools import pairwise

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests import kafka_local

# Every client of the tests themselves (admin, input producer, readers) reconnects within
# 250-500 ms of a broker coming back, so the times measured are the worker's.
TEST_CLIENT_BACKOFF_MS = 250


# -- outputs as they become visible --------------------------------------------------------------


class OutputWatch(threading.Thread):
    """Reads the output topic from the start, in a thread, until stopped (or `max_s`), and
    notes when each output became visible (monotonic time of the poll that returned it).

    read_committed by default: an exactly-once output is there once its transaction commits."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        isolation_level: str = "read_committed",
        max_s: float = 600,
    ):
        super().__init__(daemon=True)
        self._servers = bootstrap
        self._topic = topic
        self._isolation = isolation_level
        self._max_s = max_s
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.first_seen: dict[str, float] = {}
        self.arrivals: list[float] = []  # ascending
        self.stamps: list[tuple[float, float]] = []  # (arrival, the record's CreateTime in s)
        self.records = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        consumer = None
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self._servers,
                isolation_level=self._isolation,
                enable_auto_commit=False,
                fetch_max_wait_ms=100,
                reconnect_backoff_max_ms=TEST_CLIENT_BACKOFF_MS,
                request_timeout_ms=10_000,
            )
            parts = [
                TopicPartition(self._topic, p) for p in consumer.partitions_for_topic(self._topic)
            ]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            self._ready.set()
            deadline = time.monotonic() + self._max_s
            while not self._done.is_set() and time.monotonic() < deadline:
                batches = consumer.poll(timeout_ms=100)
                now = time.monotonic()
                with self._lock:
                    for records in batches.values():
                        for rec in records:
                            self.records += 1
                            self.arrivals.append(now)
                            self.stamps.append((now, rec.timestamp / 1000))
                            self.first_seen.setdefault(json.loads(rec.value)["id"], now)
        except Exception as exc:  # noqa: BLE001 (reported by stop())
            self.error = exc
        finally:
            self._ready.set()
            if consumer is not None:
                consumer.close()

    def begin(self) -> OutputWatch:
        self.start()
        self._ready.wait(30)
        return self

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)
        assert self.error is None, f"the output reader failed: {self.error!r}"

    def present(self, ids) -> bool:
        with self._lock:
            return all(i in self.first_seen for i in ids)

    def missing(self, ids) -> int:
        with self._lock:
            return sum(i not in self.first_seen for i in ids)

    def all_present_at(self, ids) -> float:
        """When the last of `ids` became visible (all must be)."""
        with self._lock:
            return max(self.first_seen[i] for i in ids)

    def first_after(self, t: float, created_after: float | None = None) -> float | None:
        """The first arrival after `t` (of a record created after the wall time
        `created_after`, if given)."""
        with self._lock:
            if created_after is None:
                i = bisect_right(self.arrivals, t)
                return self.arrivals[i] if i < len(self.arrivals) else None
            return next((a for a, ts in self.stamps if a > t and ts >= created_after), None)

    def longest_gap(self, since: float, until: float) -> float:
        """The longest time between `since` and `until` in which no output became visible."""
        with self._lock:
            points = [since, *[a for a in self.arrivals if since < a < until], until]
        return max(b - a for a, b in pairwise(points))


def wait_for(what: str, cond, timeout_s: float, every_s: float = 0.1) -> float:
    """Until `cond()` holds; the seconds it took (AssertionError after `timeout_s`)."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting until {what}")
        time.sleep(every_s)
    return time.monotonic() - start


# -- the broker --------------------------------------------------------------------------------


class Broker:
    """The local broker that scripts/kafka-local runs at `bootstrap` (in the state dir of
    $TAGSTREAM_KAFKA_STATE): paused, killed, restarted with its data. A test that uses it is
    skipped for any other broker."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.host, port = bootstrap.split(",")[0].rsplit(":", 1)
        self.port = int(port)
        pid = kafka_local.broker_pid(bootstrap)
        if pid is None:
            pytest.skip(
                f"{bootstrap} is not a broker that scripts/kafka-local runs here "
                "(same TAGSTREAM_KAFKA_STATE): cannot pause or kill it"
            )
        self.pid = pid
        self.paused = False
        self.killed = False

    def pause(self) -> float:
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True
        return time.monotonic()

    def resume(self) -> float:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False
        return time.monotonic()

    def kill(self) -> float:
        os.kill(self.pid, signal.SIGKILL)
        self.killed = True
        wait_for("the broker process is gone", lambda: not _alive(self.pid), 10, 0.02)
        return time.monotonic()

    def restart(self, timeout_s: float = 180) -> tuple[float, float]:
        """`scripts/kafka-local restart`: the same ports and data. Returns (when its port
        accepted connections again, when the script found it answering), monotonic."""
        opened: list[float] = []
        stop = threading.Event()

        def watch_port() -> None:
            deadline = time.monotonic() + timeout_s
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    with socket.create_connection((self.host, self.port), timeout=0.2):
                        opened.append(time.monotonic())
                        return
                except OSError:
                    time.sleep(0.05)

        watcher = threading.Thread(target=watch_port, daemon=True)
        watcher.start()
        try:
            proc = subprocess.run(
                ["bash", str(kafka_local.SCRIPT), "restart"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        finally:
            answering = time.monotonic()
            stop.set()
            watcher.join(timeout=5)
        assert proc.returncode == 0, f"kafka-local restart failed:\n{proc.stdout}\n{proc.stderr}"
        assert proc.stdout.strip().splitlines()[-1] == f"KAFKA_BOOTSTRAP_SERVERS={self.bootstrap}"
        pid = kafka_local.broker_pid(self.bootstrap)
        assert pid is not None
        self.pid, self.killed = pid, False
        return (opened[0] if opened else answering), answering

    def heal(self) -> None:
        """Whatever a failed test left: resume a paused broker, restart a killed one."""
        if self.paused:
            self.resume()
        if self.killed or not _alive(self.pid):
            self.restart()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# -- results -------------------------------------------------------------------------------------


@dataclass
class FaultResult:
    scenario: str
    inputs: int
    lost: int
    duplicates: int
    recover: str  # time to recover, with what was timed
    notes: str = ""
    seconds: float = 0.0  # the scenario's own run time

    def line(self) -> str:
        notes = f"; {self.notes}" if self.notes else ""
        return (
            f"fault {self.scenario}: {self.inputs} inputs, lost {self.lost}, duplicates "
            f"{self.duplicates}, recovered: {self.recover}{notes} [{self.seconds:.0f} s]"
        )


RESULTS: list[FaultResult] = []


def report(result: FaultResult) -> FaultResult:
    """Print the scenario's line (shown with -s) and keep it for the suite's table."""
    RESULTS.append(result)
    print(result.line(), flush=True)
    return result


def cpu() -> str:
    """The CPU as /proc/cpuinfo names it, its logical cores and its vector extensions."""
    model, flags, cores = "unknown CPU", set(), 0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "processor":
                    cores += 1
                elif key == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]
    have = [f for f in wanted if f in flags]
    return (
        f"{model}, {cores} logical cores, flags: {' '.join(have) or 'none of ' + ' '.join(wanted)}"
    )


def table() -> str:
    rows = [
        "| scenario | inputs | lost | duplicates | time to recover | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in RESULTS:
        rows.append(
            f"| {r.scenario} | {r.inputs} | {r.lost} | {r.duplicates} | {r.recover} | {r.notes} |"
        )
    return "\n".join(rows)
