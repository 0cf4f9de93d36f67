"""source → batcher → tagger → sink → commit: the worker's loop, on the ports of
`tagstream.worker.ports` (the Kafka adapters of `worker/kafka/` and the tagger are handed in).

Threads: the main thread owns both Kafka clients and runs the loop below; one inference thread
runs the tagger, a batch at a time (`tagstream.worker.tagging`). While a batch is being tagged
the main thread goes on polling (with the partitions paused once the next batch is full), so the
consumer keeps its place in the group however slow the model is, and the next batch is decoded
and tokenised in the meantime.

Delivery of a tagged batch (and the order of its steps) is `tagstream.worker.delivery`; the pipeline
hands it one batch at a time, and only once the one before it is committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from . import tagging
from .batcher import Batcher
from .delivery import Delivery
from .formats import Reader, RegistryUnavailable, Writer
from .http import Health
from .metrics import Metrics
from .ports import DeliveryError, Sink, Source, Tagger, UnreadableInput
from .records import Batch, Entry, SourceRecord, TopicPartition, source_of
from .rewinds import Rewinds
from .routing import Models
from .settings import Settings
from .tagging import InFlight

log = logging.getLogger(__name__)

_BUSY_POLL_S = 0.005  # poll interval while a batch is being tagged
_IDLE_POLL_S = 0.2  # longest poll when idle (how fast a stop request is noticed)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        tagger: Tagger,
        source: Source,
        sink: Sink,
        metrics: Metrics,
        health: Health,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        reader: Reader | None = None,
        writer: Writer | None = None,
        models: Models | None = None,
    ):
        self._settings = settings
        self._models = models or Models(tagger)
        self._reader = reader or Reader(settings)
        self._tagger = tagger
        self._source = source
        self._sink = sink
        self._metrics = metrics
        self._health = health
        self._stop = stop
        self._clock = clock
        self._floor = tagging.ScoreFloor(
            settings.model.min_score, dict(settings.model.min_score_by_label)
        )
        b = settings.batching
        self._batcher = Batcher(
            b.max_batch_records, b.max_batch_tokens, b.max_wait_ms / 1000, clock
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tagstream-infer")
        self._delivery = Delivery(
            settings,
            source,
            sink,
            metrics,
            f"{tagger.name}@{tagger.version}",
            clock,
            self._waiting,
            writer,
            {t.name: f"{t.name}@{t.version}" for t in self._models.all},
        )
        self._inflight: InFlight | None = None
        self._late: InFlight | None = None  # a batch timed out and still being tagged
        self._rewinds = Rewinds()  # records dropped by a rebalance, to consume again
        self._deadline: float | None = None  # the drain's, once a stop was requested
        self._aborted = False  # an exactly-once transaction was aborted (and rewound)

    # -- lifecycle -----------------------------------------------------------------------

    def run(self) -> int:
        """Run until the stop flag is set, then drain. Returns the process exit status."""
        status = 1
        try:
            unreadable = False
            try:
                while not self._stop.is_set():
                    self._health.beat()
                    self.turn()
            except UnreadableInput:  # logged by the source; deliver what came before it
                unreadable = True
            status = self._drain()
            if unreadable:
                status = 1
        except DeliveryError:
            if self._deadline is not None and self._clock() >= self._deadline:
                status = self._drain_timeout("waiting for acknowledgements")
            else:
                log.exception(
                    "the worker stopped: records were not acknowledged; "
                    "nothing undelivered was committed"
                )
        except RegistryUnavailable as exc:
            log.error(
                "the worker stopped: the schema registry does not answer (%s); the record that "
                "needs it and those after it stay uncommitted",
                exc,
            )
        except Exception:
            log.exception("the worker stopped on an error; undelivered records stay uncommitted")
        finally:
            self._close(clean=status == 0)
        return status

    def _waiting(self) -> float | None:
        """Called while the main thread waits on the broker: about every 0.2 s for
        acknowledgements, every second for a commit. Waiting is not stalling: beat the liveness
        heartbeat. A stop request starts the drain clock; returns the drain deadline (None: not
        stopping)."""
        self._health.beat()
        if self._deadline is None and self._stop.is_set():
            self._deadline = self._clock() + self._settings.drain_timeout_s
        return self._deadline

    def turn(self) -> None:
        """One turn of the loop: poll, apply rebalances, batch, tag, deliver. `run` turns it
        until the stop flag is set; a test may turn it by hand."""
        # 1. Poll. Fetch only while no closed batch is waiting: one batch being tagged plus
        #    one ready is enough. Paused or not, polling keeps the group membership alive.
        if self._batcher.closed() or self._batcher.room() == 0:
            self._source.pause()
        else:
            self._source.resume()
        records = self._source.poll(self._poll_timeout(), max(1, self._batcher.room()))
        # 2. Apply rebalances before touching what the poll returned.
        stale = self._apply_rebalance()
        # 3. Decode and tokenise each record once; bad ones become dead letters.
        for record in records:
            if record.tp not in stale:
                self._batcher.add(self._entry(record))
        # 4. When the tagger is free: start the next batch, then deliver the finished one. A
        #    batch is delivered only once the one before it is committed, so a crash or a
        #    rebalance redoes at most one batch.
        #    A batch tagged past its budget is delivered as dead letters at once; the next one
        #    starts when the model is free again.
        committed = self._delivery.retry_commit()
        flight = self._inflight
        if flight is not None and flight.late(self._clock()):
            flight = self._inflight = self._time_out(flight)
        if flight is None or (flight.future.done() and committed):
            self._inflight = None
            batch = self._batcher.take() if self._model_free() else None
            if batch is not None:
                self._inflight = self._submit(batch)
            if flight is not None:
                self._deliver(flight)

    def _poll_timeout(self) -> float:
        if self._inflight is not None or not self._model_free():
            return _BUSY_POLL_S
        left = self._batcher.seconds_left()
        return _IDLE_POLL_S if left is None else min(left, _IDLE_POLL_S)

    @property
    def queued(self) -> int:
        """Records consumed and waiting in the batcher (not yet handed to the tagger)."""
        return len(self._batcher)

    @property
    def busy(self) -> bool:
        """The inference thread is still tagging (after a drain timeout): the process must
        exit without waiting for it."""
        return self._inflight is not None and not self._inflight.future.done()

    def _drain(self) -> int:
        """Stop polling; tag, deliver and commit what was already consumed. The whole of it
        (waiting for the model, for acknowledgements and for the commit) ends by the drain
        deadline; what is not committed by then is redone by the partitions' next owner."""
        self._health.draining = True
        if self._deadline is None:  # else the clock started while waiting on the broker
            self._deadline = self._clock() + self._settings.drain_timeout_s
        deadline = self._deadline
        self._aborted = False
        log.info("draining", extra={"records": len(self._batcher) + self._inflight_size()})
        while True:
            if self._inflight is None:
                batch = self._batcher.flush()
                if batch is None:
                    break
                self._inflight = self._submit(batch)
            if not self._inflight.wait(deadline, self._waiting, self._clock):
                return self._drain_timeout("tagging")
            flight, self._inflight = self._inflight, None
            batch = self._batcher.flush()
            if batch is not None:
                self._inflight = self._submit(batch)
            self._deliver(flight)
        if self._aborted:
            log.error(
                "drained, but a transaction was aborted; its records stay uncommitted "
                "and will be redone by the next owner"
            )
            return 1
        if not self._delivery.retry_commit(force=True):
            log.error(
                "drained, but the last offsets could not be committed; "
                "their records will be redone by the next owner"
            )
            return 1
        log.info("drained: everything consumed is delivered and committed")
        return 0

    def _drain_timeout(self, doing: str) -> int:
        log.error(
            "drain timeout while %s: undelivered records stay uncommitted and will be redone",
            doing,
            extra={"drain_timeout_s": self._settings.drain_timeout_s},
        )
        return 1

    def _close(self, clean: bool) -> None:
        """Close both clients. After a failure nothing is left worth waiting for (whatever is
        unacknowledged is uncommitted too): close at once, and leave the group in 1 s or let
        the session timeout notice."""
        self._health.draining = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        closing = (
            ("producer", self._sink.close, 5.0 if clean else 0.0),
            ("consumer", self._source.close, 5.0 if clean else 1.0),
        )
        for name, close, timeout_s in closing:
            try:
                close(timeout_s)
            except Exception:
                log.exception("closing the %s failed", name)

    # -- stages --------------------------------------------------------------------------

    def _entry(self, record: SourceRecord) -> Entry:
        return tagging.decode(
            record,
            self._settings,
            self._tagger,
            self._reader,
            self._models,
        )

    def _submit(self, batch: Batch) -> InFlight:
        deadline = self._clock() + self._budget_s(batch)
        return InFlight.submit(
            self._executor, self._models, batch, self._metrics, deadline, self._floor
        )

    def _budget_s(self, batch: Batch) -> float:
        """How long tagging this batch may take (settings ``model.batch_timeout_s`` and
        ``model.timeout_ms_per_token``)."""
        m = self._settings.model
        return m.batch_timeout_s + m.timeout_ms_per_token * batch.tokens / 1000

    def _time_out(self, flight: InFlight) -> InFlight:
        """A batch past its budget: its records become dead letters (tagging_timeout), to be
        delivered in its place; the inference thread finishes it on its own, and /healthz
        reports a model that stays stuck (`Health.late_since`)."""
        budget = self._budget_s(flight.batch)
        log.error(
            "tagging a batch took longer than its budget: its records go to the dead-letter "
            "topic (tagging_timeout); the next batch starts when the model is free",
            extra={
                "records": len(flight.batch.entries),
                "tokens": flight.batch.tokens,
                "budget_s": round(budget, 1),
            },
        )
        self._late = flight
        self._health.late_since = flight.deadline
        return flight.timed_out(budget)

    def _model_free(self) -> bool:
        """No batch that timed out is still being tagged."""
        if self._late is not None and self._late.future.done():
            self._late = None
            self._health.late_since = None
        return self._late is None

    # -- delivery ------------------------------------------------------------------------

    def _deliver(self, flight: InFlight) -> None:
        results = flight.results()
        if results and not self._delivery.deliver(results):
            self._aborted = True
            self._rewind([source_of(r) for r in results])

    def _rewind(self, aborted: list[SourceRecord]) -> None:
        """After an aborted transaction: forget all undelivered work, consume it again."""
        sources = list(aborted)
        if self._inflight is not None:
            sources.extend(e.source for e in self._inflight.discard_all())
        sources.extend(e.source for e in self._batcher.drop(self._source.owned()))
        first: dict[TopicPartition, int] = {}
        for src in sources:
            first[src.tp] = min(first.get(src.tp, src.first_offset), src.first_offset)
        self._source.seek(first)

    def _apply_rebalance(self) -> set[TopicPartition]:
        """Drop undelivered records of revoked partitions, and consume again those that keep
        their fetch position once the new assignment is in (`tagstream.worker.rewinds`).
        Returns the partitions sought back: the records this poll returned for them are stale."""
        revoked = self._source.take_revoked()
        if revoked:
            dropped = self._batcher.drop(revoked)
            if self._inflight is not None:
                dropped.extend(self._inflight.discard(revoked))
            self._rewinds.dropped(dropped)
            self._delivery.forget(revoked)
            log.info(
                "rebalance: undelivered records of revoked partitions dropped; "
                "they will be consumed again",
                extra={"dropped": len(dropped)},
            )
        sought = self._rewinds.apply(self._source)
        self._health.assigned_partitions = len(self._source.owned())
        return sought

    def _inflight_size(self) -> int:
        return len(self._inflight.batch.entries) if self._inflight else 0
