"""Delivering a tagged batch: outputs and dead letters to their topics, then its offsets.

At-least-once (the default):
    1. produce the outputs and dead letters, in consumption order;
    2. wait until every one is acknowledged (a failure raises: nothing is committed);
    3. only then commit the batch's offsets.
The pipeline delivers a batch only once the one before it is committed (`uncommitted`), so a
crash or a rebalance redoes at most one batch.

Exactly-once: 1. begin a transaction; 2. produce and wait; 3. add the batch's offsets to the
transaction; 4. commit it. A ``read_committed`` reader sees each input's output exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from . import messages
from .formats import Writer
from .logs import RateLimitedLog
from .metrics import Metrics
from .outputs import OutputError, shaper_of
from .ports import DeliveryError, Sink, Source
from .records import (
    DeadLetter,
    LabelledRecord,
    Outgoing,
    TopicPartition,
    next_offsets,
    source_of,
)
from .settings import Settings

log = logging.getLogger(__name__)

COMMIT_RETRY_S = 0.1  # how often a failed offset commit is retried

Result = LabelledRecord | DeadLetter


class Delivery:
    def __init__(
        self,
        settings: Settings,
        source: Source,
        sink: Sink,
        metrics: Metrics,
        model_ref: str,
        clock: Callable[[], float] = time.monotonic,
        waiting: Callable[[], float | None] = lambda: None,
        writer: Writer | None = None,
        model_refs: Mapping[str, str] | None = None,
    ):
        self._settings = settings
        # Called while waiting on the broker; returns a deadline (monotonic) to give up by, or
        # None for the client timeouts alone (the pipeline's: heartbeat, and the drain's end).
        self._waiting = waiting
        self._source = source
        self._sink = sink
        self._metrics = metrics
        self._shaper = shaper_of(settings, model_ref, writer, model_refs or {})
        self._clock = clock
        self._uncommitted: dict[TopicPartition, int] = {}  # delivered, commit failed: retry
        self._commit_tried_at = 0.0
        self._dead_letter_log = RateLimitedLog(log, 10.0)
        self._commit_log = RateLimitedLog(log, 10.0)

    def deliver(self, results: Sequence[Result]) -> bool:
        """Deliver one batch's results (in consumption order) and commit their offsets.

        Returns False when an exactly-once transaction was aborted: the caller must consume
        these records again. Raises `DeliveryError` (or a fatal producer error) when records
        could not be delivered within the delivery timeout, or by the deadline `waiting`
        returns: the worker must stop without committing.
        """
        outgoing = [self._outgoing(r) for r in results]
        offsets = next_offsets(source_of(r) for r in results)
        if self._sink.transactional:
            delivered = self._deliver_in_transaction(outgoing, offsets)
        else:
            delivered = self._deliver_then_commit(outgoing, offsets)
        if delivered is None:
            return False
        self._observe(delivered)
        return True

    @property
    def uncommitted(self) -> bool:
        """Offsets of a delivered batch still wait for a successful commit."""
        return bool(self._uncommitted)

    def retry_commit(self, force: bool = False) -> bool:
        """Retry a failed commit (at most every `COMMIT_RETRY_S` unless forced)."""
        if self._uncommitted and (force or self._clock() - self._commit_tried_at >= COMMIT_RETRY_S):
            return self._commit()
        return not self._uncommitted

    def forget(self, revoked: Collection[TopicPartition]) -> None:
        """Partitions revoked: their pending commits are the new owner's business now."""
        self._uncommitted = {tp: o for tp, o in self._uncommitted.items() if tp not in revoked}

    # -- the two delivery orders ---------------------------------------------------------------

    def _deliver_then_commit(
        self, outgoing: list[Outgoing], offsets: dict[TopicPartition, int]
    ) -> list[Outgoing]:
        # 1. Produce outputs and dead letters, in consumption order.
        # 2. Wait until every one is acknowledged (a failure raises: nothing gets committed).
        delivered = self._produce(outgoing)
        # 3. Commit the offsets, now that every output is acknowledged. A failed commit (say,
        #    during a rebalance) is counted and retried before the next delivery; if the
        #    partitions are revoked meanwhile, the revocation commits them (`Source`).
        self._uncommitted.update(offsets)
        self._commit()
        return delivered

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
            self._sink.send_offsets(offsets, self._source.group_metadata(), self._waiting)
            # 4. Commit: outputs and offsets become visible together, or not at all.
            self._sink.commit(self._waiting)
        except self._sink.fatal_errors:  # the producer cannot go on: stop the worker
            raise
        except DeliveryError:
            self._sink.abort(self._waiting)
            raise
        except self._sink.transaction_errors as exc:
            self._metrics.commit_failures.inc()
            log.warning(
                "transaction failed; aborting and consuming the batch again",
                extra={"error": repr(exc)},
            )
            self._sink.abort(self._waiting)
            return None
        self._source.record_committed(offsets)
        return delivered

    def _commit(self) -> bool:
        self._commit_tried_at = self._clock()
        try:
            self._source.commit(self._uncommitted, self._waiting)
        except self._source.commit_errors as exc:
            self._metrics.commit_failures.inc()
            owned = self._source.owned()
            self._uncommitted = {tp: o for tp, o in self._uncommitted.items() if tp in owned}
            # retried every COMMIT_RETRY_S while a rebalance lasts: one line per 10 s, with a count
            self._commit_log.warning("commit", "offset commit failed; will retry", error=repr(exc))
            return False
        self._uncommitted = {}
        return True

    # -- producing -----------------------------------------------------------------------------

    def _produce(self, outgoing: list[Outgoing]) -> list[Outgoing]:
        """Send and wait for acknowledgements; what a topic refuses as too large is re-routed
        (an output to the dead-letter topic; a dead letter without its value, then also
        without its key and original headers). Returns what was delivered."""
        delivered = list(outgoing)
        pending = outgoing
        for _ in range(4):  # output -> dead letter -> without the value -> without key, headers
            refused = self._sink.write(pending, self._waiting)
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
            if item.value is not None:
                return _dead_letter_outgoing(entry, topic, drop_value=True)
            if item.key is not None or entry.source.headers:
                return _dead_letter_outgoing(
                    entry, topic, drop_value=True, drop_key_and_headers=True
                )
            raise DeliveryError(
                [(item, ValueError(f"even with only the tagstream headers: {reason}"))]
            )
        dead = DeadLetter(entry.record.source, messages.OUTPUT_TOO_LARGE, f"the output is {reason}")
        return _dead_letter_outgoing(dead, topic)

    def _outgoing(self, result: Result) -> Outgoing:
        if isinstance(result, DeadLetter):
            return _dead_letter_outgoing(result, self._settings.kafka.dead_letter_topic)
        record = result.record
        try:
            value = self._shaper.value(record, result.spans)
        except OutputError as exc:
            dead = DeadLetter(record.source, exc.reason, exc.message)
            return _dead_letter_outgoing(dead, self._settings.kafka.dead_letter_topic)
        return Outgoing(
            self._settings.kafka.output_topic,
            record.source.key,
            value,
            self._shaper.headers(record.source.headers, self._shaper.ref_of(record)),
            result,
        )

    def _observe(self, delivered: list[Outgoing]) -> None:
        """Metrics (and a rate-limited log line per dead-letter reason) for acknowledged records."""
        now = time.time()
        produced = 0
        by_model: dict[str, int] = {}
        for item in delivered:
            entry = item.entry
            if isinstance(entry, DeadLetter):
                self._metrics.records_dead_lettered.labels(entry.reason).inc()
                src = entry.source
                self._dead_letter_log.warning(
                    entry.reason,
                    "record dead-lettered",
                    reason=entry.reason,
                    detail=entry.message,
                    topic=src.topic,
                    partition=src.partition,
                    offset=src.offset,
                )
                continue
            produced += 1
            model = entry.record.model
            by_model[model] = by_model.get(model, 0) + 1
            self._metrics.end_to_end_latency.observe(
                max(0.0, now - entry.record.source.timestamp_ms / 1000)
            )
            for span in entry.spans:
                self._metrics.spans.labels(span.label).inc()
        if produced:
            self._metrics.records_produced.labels(self._settings.kafka.output_topic).inc(produced)
        for model, count in by_model.items():
            self._metrics.records_labelled.labels(self._shaper.ref_named(model)).inc(count)


def _dead_letter_outgoing(
    dead: DeadLetter, topic: str, drop_value: bool = False, drop_key_and_headers: bool = False
) -> Outgoing:
    src = dead.source
    key, value = src.key, src.value
    if drop_key_and_headers:  # only tagstream's headers remain: where the input was, and why
        key = None
        headers = messages.error_headers(dead) + [
            (messages.HEADER_KEY_AND_HEADERS_DROPPED, b"true")
        ]
    else:
        headers = messages.dead_letter_headers(dead)
    if drop_value:
        value = None
        headers.append((messages.HEADER_VALUE_DROPPED, b"true"))
    if value is None and key is None:
        value = b""  # Kafka clients refuse a record with neither key nor value
    return Outgoing(topic, key, value, tuple(headers), dead)
