"""source → batcher → tagger → sink → commit: the worker's loop, and the only module that
joins the Kafka side (`worker`) to the model (`model`).

Threads: the main thread owns both Kafka clients and runs the loop below; one inference thread
runs the tagger. While a batch is being tagged the main thread goes on polling (with the
partitions paused once the next batch is full), so the consumer keeps its place in the group
however slow the model is, and the next batch is decoded and tokenised in the meantime.

Delivery of a batch, at-least-once (the default):
    1. produce its outputs and dead letters, in consumption order;
    2. flush and check every acknowledgement;
    3. only then commit its offsets.
A crash before step 3 redoes the batch (duplicates bounded by one batch); nothing is lost.

Exactly-once: 1. begin a transaction; 2. produce; 3. add the batch's offsets to the
transaction; 4. commit it. A ``read_committed`` reader sees each input's output exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kafka.errors import (
    AuthorizationError,
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
)

from worker import messages
from worker.batcher import Batcher
from worker.config import Settings
from worker.http import Health
from worker.logs import RateLimitedLog
from worker.messages import InvalidMessage
from worker.metrics import Metrics
from worker.records import (
    Batch,
    DeadLetter,
    Entry,
    LabelledRecord,
    SourceRecord,
    TextRecord,
    TopicPartition,
)
from worker.sink import DeliveryError, Outgoing, Sink
from worker.source import Source

log = logging.getLogger(__name__)

# Errors after which this producer can never commit again: end the worker (a restart recovers).
FATAL_PRODUCER_ERRORS = (ProducerFencedError, InvalidProducerEpochError, AuthorizationError)
_BUSY_POLL_S = 0.005  # poll interval while a batch is being tagged
_IDLE_POLL_S = 0.2  # longest poll when idle (how fast a stop request is noticed)
_COMMIT_RETRY_S = 0.1  # retry a failed commit this often


def load_tagger(path: Path | None, threads: int = 0) -> Tagger:
    """Load a TorchScript tagger artifact (None: the shipped default, en-news).

    Raises `model.ArtifactError` (a ValueError) for a missing, corrupt or incompatible file.
    """
    import model  # the one place the worker reaches into the model package

    with warnings.catch_warnings():  # torch marks TorchScript deprecated; it is what we ship
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        return model.load(path, threads=threads or None)


class Tagger(Protocol):
    """What the pipeline needs from `model.Tagger`."""

    name: str
    version: str

    def prepare(self, text: str) -> Any: ...

    def tag_prepared(self, docs: Sequence[Any]) -> list[list[Any]]: ...


@dataclass
class _InFlight:
    batch: Batch
    future: Future[list[LabelledRecord | DeadLetter]]  # one result per entry, in order
    revoked: set[TopicPartition] = field(default_factory=set)  # results to discard


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
    ):
        self._settings = settings
        self._tagger = tagger
        self._source = source
        self._sink = sink
        self._metrics = metrics
        self._health = health
        self._stop = stop
        self._clock = clock
        b = settings.batching
        self._batcher = Batcher(b.max_batch_records, b.max_batch_tokens, b.max_wait_ms / 1000, clock)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tagstream-infer")
        self._inflight: _InFlight | None = None
        self._uncommitted: dict[TopicPartition, int] = {}  # delivered, commit failed: retry
        self._rewind_to: dict[TopicPartition, int] = {}  # dropped in a rebalance: consume again
        self._generation = 0  # the source's assignment generation last seen
        self._commit_tried_at = 0.0
        self._model_ref = f"{tagger.name}@{tagger.version}"
        self._dead_letter_log = RateLimitedLog(log, 10.0)

    # -- lifecycle -----------------------------------------------------------------------

    def run(self) -> int:
        """Run until the stop flag is set, then drain. Returns the process exit status."""
        status = 1
        try:
            while not self._stop.is_set():
                self._health.beat()
                self._turn()
            status = self._drain()
        except Exception:
            log.exception("the worker stopped on an error; undelivered records stay uncommitted")
        finally:
            self._close()
        return status

    def _turn(self) -> None:
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
        if self._uncommitted and self._clock() - self._commit_tried_at >= _COMMIT_RETRY_S:
            self._commit_delivered()
        flight = self._inflight
        if flight is None or (flight.future.done() and not self._uncommitted):
            self._inflight = None
            batch = self._batcher.take()
            if batch is not None:
                self._inflight = self._submit(batch)
            if flight is not None:
                self._deliver(flight)
        self._source.update_lag()

    def _poll_timeout(self) -> float:
        if self._inflight is not None:
            return _BUSY_POLL_S
        left = self._batcher.seconds_left()
        return _IDLE_POLL_S if left is None else min(left, _IDLE_POLL_S)

    def _drain(self) -> int:
        """Stop polling; tag, deliver and commit what was already consumed; within the timeout."""
        self._health.draining = True
        deadline = self._clock() + self._settings.drain_timeout_s
        log.info("draining", extra={"records": len(self._batcher) + self._inflight_size()})
        while True:
            if self._inflight is None:
                batch = self._batcher.flush()
                if batch is None:
                    if not self._commit_delivered():
                        log.error("drained, but the last offsets could not be committed; "
                                  "their records will be redone by the next owner")
                        return 1
                    log.info("drained: everything consumed is delivered and committed")
                    return 0
                self._inflight = self._submit(batch)
            try:
                self._inflight.future.result(timeout=max(0.0, deadline - self._clock()))
            except FutureTimeout:
                log.error(
                    "drain timeout: undelivered records stay uncommitted and will be redone",
                    extra={"drain_timeout_s": self._settings.drain_timeout_s},
                )
                return 1
            flight, self._inflight = self._inflight, None
            batch = self._batcher.flush()
            if batch is not None:
                self._inflight = self._submit(batch)
            self._deliver(flight)

    def _close(self) -> None:
        self._health.draining = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        for name, close in (("producer", self._sink.close), ("consumer", self._source.close)):
            try:
                close()
            except Exception:
                log.exception("closing the %s failed", name)

    # -- stages --------------------------------------------------------------------------

    def _entry(self, record: SourceRecord) -> Entry:
        s = self._settings
        try:
            doc_id, text = messages.parse_input(record.value, s.input_format, s.max_text_chars)
        except InvalidMessage as exc:
            return DeadLetter(record, exc.reason, exc.message)
        try:
            prepared = self._tagger.prepare(text)
        except Exception as exc:  # the tagger promises not to raise; never let one record stop us
            log.exception("tokenising a record failed")
            return DeadLetter(record, messages.TAGGING_FAILED, f"tokenising failed: {exc!r}")
        return TextRecord(record, doc_id, text, prepared.num_tokens, prepared)

    def _submit(self, batch: Batch) -> _InFlight:
        self._metrics.batch_records.observe(len(batch.entries))
        self._metrics.batch_tokens.observe(batch.tokens)
        return _InFlight(batch, self._executor.submit(self._tag, batch))

    def _tag(self, batch: Batch) -> list[LabelledRecord | DeadLetter]:
        """Runs on the inference thread. One result per entry of the batch, in order."""
        texts = batch.texts
        spans_by_text: dict[int, list[Any] | DeadLetter] = {}
        if texts:
            start = time.perf_counter()
            try:
                for record, spans in zip(texts, self._tagger.tag_prepared([r.prepared for r in texts])):
                    spans_by_text[id(record)] = spans
            except Exception:  # isolate the record the tagger chokes on, tag the rest
                log.exception("tagging a batch failed; tagging its records one by one")
                for record in texts:
                    spans_by_text[id(record)] = self._tag_one(record)
            self._metrics.inference_seconds.observe(time.perf_counter() - start)
        out: list[LabelledRecord | DeadLetter] = []
        for entry in batch.entries:
            if isinstance(entry, DeadLetter):
                out.append(entry)
                continue
            result = spans_by_text[id(entry)]
            out.append(result if isinstance(result, DeadLetter) else LabelledRecord(entry, tuple(result)))
        return out

    def _tag_one(self, record: TextRecord) -> list[Any] | DeadLetter:
        try:
            return self._tagger.tag_prepared([record.prepared])[0]
        except Exception as exc:
            return DeadLetter(record.source, messages.TAGGING_FAILED, f"the tagger failed: {exc!r}")

    # -- delivery ------------------------------------------------------------------------

    def _deliver(self, flight: _InFlight) -> None:
        results = [
            r for r in flight.future.result() if _source_of(r).tp not in flight.revoked
        ]
        if not results:
            return
        outgoing = [self._outgoing(r) for r in results]
        offsets = _next_offsets(results)
        if self._sink.transactional:
            delivered = self._deliver_in_transaction(outgoing, offsets)
        else:
            delivered = self._deliver_then_commit(outgoing, offsets)
        if delivered is not None:
            self._observe(delivered)

    def _deliver_then_commit(
        self, outgoing: list[Outgoing], offsets: dict[TopicPartition, int]
    ) -> list[Outgoing]:
        # 1. Produce outputs and dead letters, in consumption order.
        # 2. Wait until every one is acknowledged (a failure raises: nothing gets committed).
        delivered = self._produce(outgoing)
        # 3. Commit the offsets, now that every output is acknowledged. A failed commit (say,
        #    during a rebalance) is counted and retried before the next delivery.
        self._uncommitted.update(offsets)
        self._commit_delivered()
        return delivered

    def _commit_delivered(self) -> bool:
        """Commit the offsets of delivered batches; True when nothing is left uncommitted."""
        if not self._uncommitted:
            return True
        self._commit_tried_at = self._clock()
        try:
            self._source.commit(self._uncommitted)
        except KafkaError as exc:
            self._metrics.commit_failures.inc()
            owned = self._source.owned()
            self._uncommitted = {tp: o for tp, o in self._uncommitted.items() if tp in owned}
            log.warning("offset commit failed; will retry", extra={"error": repr(exc)})
            return False
        self._uncommitted = {}
        return True

    def _deliver_in_transaction(
        self, outgoing: list[Outgoing], offsets: dict[TopicPartition, int]
    ) -> list[Outgoing] | None:
        # 1. Begin a transaction.
        self._sink.begin()
        try:
            # 2. Produce outputs and dead letters, in consumption order, and wait for them.
            delivered = self._produce(outgoing)
            # 3. Add the batch's offsets to the transaction; the group coordinator fences
            #    this step if the partitions moved to another worker meanwhile (KIP-447).
            self._sink.send_offsets(offsets, self._source.group_metadata())
            # 4. Commit: outputs and offsets become visible together, or not at all.
            self._sink.commit()
        except FATAL_PRODUCER_ERRORS:
            raise
        except DeliveryError:
            self._sink.abort()
            raise
        except KafkaError as exc:
            self._metrics.commit_failures.inc()
            log.warning("transaction failed; aborting and consuming the batch again",
                        extra={"error": repr(exc)})
            self._sink.abort()
            self._rewind(outgoing)
            return None
        self._source.record_committed(offsets)
        return delivered

    def _produce(self, outgoing: list[Outgoing]) -> list[Outgoing]:
        """Send and wait for acknowledgements; what a topic refuses as too large is re-routed
        (an output to the dead-letter topic; a dead letter without its value). Returns what
        was delivered."""
        delivered = list(outgoing)
        pending = outgoing
        for _ in range(3):  # output -> dead letter -> dead letter without the value
            refused = self._sink.write(pending)
            if not refused:
                return delivered
            gone = {id(item) for item, _ in refused}
            pending = [self._too_large(item, reason) for item, reason in refused]
            delivered = [o for o in delivered if id(o) not in gone] + pending
        raise DeliveryError([(item, ValueError(reason)) for item, reason in refused])

    def _too_large(self, item: Outgoing, reason: str) -> Outgoing:
        topic = self._settings.kafka.dead_letter_topic
        entry = item.entry
        if isinstance(entry, DeadLetter):  # the input itself is too large to pass on
            if item.value is None:
                raise DeliveryError([(item, ValueError(f"even without its value: {reason}"))])
            return _dead_letter_outgoing(entry, topic, drop_value=True)
        dead = DeadLetter(entry.record.source, messages.OUTPUT_TOO_LARGE, f"the output is {reason}")
        return _dead_letter_outgoing(dead, topic)

    def _rewind(self, aborted: list[Outgoing]) -> None:
        """After an abort: forget all undelivered work and consume it again from its start."""
        entries: list[Entry] = [o.entry for o in aborted]
        if self._inflight is not None:
            entries.extend(self._inflight.batch.entries)
            self._inflight.revoked |= {e.source.tp for e in self._inflight.batch.entries}
        entries.extend(self._batcher.drop(self._source.owned()))
        first: dict[TopicPartition, int] = {}
        for entry in entries:
            tp = entry.source.tp
            first[tp] = min(first.get(tp, entry.source.offset), entry.source.offset)
        self._source.seek(first)

    def _outgoing(self, result: LabelledRecord | DeadLetter) -> Outgoing:
        if isinstance(result, DeadLetter):
            return _dead_letter_outgoing(result, self._settings.kafka.dead_letter_topic)
        record = result.record
        value = messages.output_value(record, result.spans, self._model_ref, self._settings.echo_text)
        return Outgoing(
            self._settings.kafka.output_topic, record.source.key, value, record.source.headers, result
        )

    def _observe(self, delivered: list[Outgoing]) -> None:
        """Metrics for acknowledged records."""
        now = time.time()
        produced = 0
        for item in delivered:
            entry = item.entry
            if isinstance(entry, DeadLetter):
                self._metrics.records_dead_lettered.labels(entry.reason).inc()
                src = entry.source
                self._dead_letter_log.warning(
                    entry.reason, "record dead-lettered", reason=entry.reason, detail=entry.message,
                    topic=src.topic, partition=src.partition, offset=src.offset,
                )
                continue
            produced += 1
            self._metrics.end_to_end_latency.observe(max(0.0, now - entry.record.source.timestamp_ms / 1000))
            for span in entry.spans:
                self._metrics.spans.labels(span.label).inc()
        if produced:
            self._metrics.records_produced.labels(self._settings.kafka.output_topic).inc(produced)

    def _apply_rebalance(self) -> set[TopicPartition]:
        """Drop undelivered records of revoked partitions; once the new assignment is in,
        consume those of them that came back from their first dropped offset again.

        kafka-python keeps a partition's fetch position when it is revoked and assigned again
        in the same rebalance, so without the seek the dropped records would be skipped.
        Returns the partitions sought back: the records this poll returned for them are stale.
        """
        revoked = self._source.take_revoked()
        if revoked:
            dropped = self._batcher.drop(revoked)
            if self._inflight is not None:
                dropped.extend(e for e in self._inflight.batch.entries if e.source.tp in revoked)
                self._inflight.revoked |= revoked
            for entry in dropped:
                tp, offset = entry.source.tp, entry.source.offset
                self._rewind_to[tp] = min(self._rewind_to.get(tp, offset), offset)
            self._uncommitted = {tp: o for tp, o in self._uncommitted.items() if tp not in revoked}
            log.info("rebalance: undelivered records of revoked partitions dropped; "
                     "they will be consumed again", extra={"dropped": len(dropped)})
        sought: set[TopicPartition] = set()
        generation = self._source.take_assigned()
        if generation != self._generation:
            self._generation = generation
            owned = self._source.owned()
            back = {tp: offset for tp, offset in self._rewind_to.items() if tp in owned}
            self._source.seek(back)
            self._rewind_to = {}
            sought = set(back)
        self._health.assigned_partitions = len(self._source.owned())
        return sought

    def _inflight_size(self) -> int:
        return len(self._inflight.batch.entries) if self._inflight else 0


def _source_of(result: LabelledRecord | DeadLetter) -> SourceRecord:
    return result.source if isinstance(result, DeadLetter) else result.record.source


def _next_offsets(results: Sequence[LabelledRecord | DeadLetter]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for r in results:
        src = _source_of(r)
        out[src.tp] = max(out.get(src.tp, 0), src.offset + 1)
    return out


def _dead_letter_outgoing(dead: DeadLetter, topic: str, drop_value: bool = False) -> Outgoing:
    src = dead.source
    headers = messages.dead_letter_headers(dead)
    value = src.value
    if drop_value:
        value = None
        headers.append((messages.HEADER_VALUE_DROPPED, b"true"))
    if value is None and src.key is None:
        value = b""  # Kafka clients refuse a record with neither key nor value
    return Outgoing(topic, src.key, value, tuple(headers), dead)
