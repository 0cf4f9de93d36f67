"""Helpers for tests on the real broker, beyond tests/integration/kit.py: a steady stream, the
group's progress, and the outputs' tally (scaling and fault tests)."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaProducer

from tests.integration.kit import Cluster, Topics, WorkerProcess

# -- a steady stream, the group's progress, and the outputs' tally (scaling and fault tests) ----

STREAM_TEXT = "Reuters reported that Siemens opened an office in Lisbon , Portugal ."


class Stream(threading.Thread):
    """Produces JSON inputs ("id-<n>") at a steady rate until stopped (or `max_records`).

    Idempotent, so a retry after a broker fault never doubles an input; its reconnect backoff is
    short, so after a broker outage the inputs flow again at once (the worker's own clients are
    what a fault test measures)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        rate: float = 100,
        max_records: int = 6000,
        keys: int = 60,
        text: str = STREAM_TEXT,
    ):
        super().__init__(daemon=True)
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=5,
            acks="all",
            enable_idempotence=True,
            reconnect_backoff_max_ms=250,
        )
        self._topic = topic
        self._rate = rate
        self._max = max_records
        self._keys = keys
        self._text = text
        self._done = threading.Event()
        self.ids: list[str] = []
        self.failed: list[Exception] = []
        self.error: Exception | None = None

    def run(self) -> None:
        start = time.monotonic()
        try:
            while not self._done.is_set() and len(self.ids) < self._max:
                doc_id = f"id-{len(self.ids)}"
                value = json.dumps({"id": doc_id, "text": self._text}).encode()
                key = f"key-{len(self.ids) % self._keys}".encode()
                self._producer.send(self._topic, key=key, value=value).add_errback(
                    self.failed.append
                )
                self.ids.append(doc_id)
                ahead = len(self.ids) / self._rate - (time.monotonic() - start)
                if ahead > 0:
                    self._done.wait(ahead)
            self._producer.flush()
        except Exception as exc:  # noqa: BLE001 (reported by stop())
            self.error = exc
        finally:
            self._producer.close()

    def stop(self) -> list[str]:
        """Stop, wait until every input is acknowledged; the ids sent."""
        self._done.set()
        self.join(timeout=150)
        assert not self.is_alive(), "the input producer did not finish within 150 s"
        assert self.error is None, f"producing failed: {self.error!r}"
        assert not self.failed, f"{len(self.failed)} inputs not acknowledged: {self.failed[0]!r}"
        return self.ids


class CommittedWatch:
    """Samples the group's committed offsets; each partition's must never go backwards. Keeps
    (time, total committed) so that the longest stall of progress can be told."""

    def __init__(self, cluster: Cluster, topics: Topics):
        self._cluster = cluster
        self._topics = topics
        self.highest: dict[int, int] = {}
        self.backwards: list[str] = []
        self.timeline: list[tuple[float, int]] = []

    def sample(self) -> dict[int, int]:
        committed = self._cluster.committed(self._topics.group, self._topics.input)
        for p, offset in committed.items():
            if offset < self.highest.get(p, 0):
                self.backwards.append(f"partition {p}: {self.highest[p]} -> {offset}")
            self.highest[p] = max(self.highest.get(p, 0), offset)
        self.timeline.append((time.monotonic(), sum(committed.values())))
        return committed

    def progress(self) -> int:
        return sum(self.sample().values())

    def longest_stall(self, since: float = 0.0, until: float = float("inf")) -> float:
        """The longest time (s) between `since` and `until` in which the committed total did
        not grow (samples are 0.2-0.5 s apart: that is the resolution)."""
        longest, last_change, last_total = 0.0, None, None
        for t, total in self.timeline:
            if t < since or t > until:
                continue
            if last_change is None or total != last_total:
                if last_change is not None:
                    longest = max(longest, t - last_change)
                last_change, last_total = t, total
        return longest


def wait_until(
    what: str,
    cond: Callable[[], bool],
    watch: CommittedWatch | None = None,
    timeout_s: float = 45,
    every_s: float = 0.2,
) -> float:
    """Until `cond()` holds (sampling `watch` meanwhile); the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout_s
    while not cond():
        if watch is not None:
            watch.sample()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting until {what}")
        time.sleep(every_s)
    return time.monotonic() - start


def owned(worker: WorkerProcess) -> int:
    """Input partitions the worker owns (0 while it is not answering)."""
    try:
        return int(worker.sample("tagstream_assigned_partitions") or 0)
    except AssertionError:  # /metrics not up (a restarting worker)
        return 0


def produced(worker: WorkerProcess, topic: str) -> float:
    """Outputs the worker had acknowledged (0 while it is not answering)."""
    try:
        return worker.sample("tagstream_records_produced_total", topic=topic) or 0
    except AssertionError:
        return 0


def partition_moves(workers: list[WorkerProcess]) -> dict[int, int]:
    """From the workers' logs: how often each partition changed owner."""
    events = []
    for i, w in enumerate(workers):
        for line in Path(w.log_path).read_text(errors="replace").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("msg") == "partitions assigned":
                for name in doc["partitions"]:
                    events.append((doc["ts"], i, int(name.rsplit("-", 1)[1])))
    owner: dict[int, int] = {}
    moves: dict[int, int] = defaultdict(int)
    for _, worker, partition in sorted(events):
        if partition in owner and owner[partition] != worker:
            moves[partition] += 1
        owner[partition] = worker
    return moves


@dataclass
class Tally:
    """Inputs against outputs: the inputs without an output, and the outputs beyond the first
    per input, by input partition."""

    inputs: int
    missing: set[str]
    duplicates: dict[int, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return len(self.missing)

    @property
    def total_duplicates(self) -> int:
        return sum(self.duplicates.values())


def tally(ids: list[str], outputs: list) -> Tally:
    duplicates: dict[int, int] = defaultdict(int)
    labelled: set[str] = set()
    for rec in outputs:
        doc = json.loads(rec.value)
        if doc["id"] in labelled:
            # by input partition: the span document names it; an enriched or redacted one is
            # the input's shape, and its output partition (same key, as many partitions) stands in
            duplicates[doc["source"]["partition"] if "source" in doc else rec.partition] += 1
        labelled.add(doc["id"])
    return Tally(len(ids), set(ids) - labelled, dict(duplicates))
