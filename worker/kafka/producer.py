"""The output side: one idempotent producer (acks=all) for the output and dead-letter topics.

In exactly-once mode the producer is transactional: the pipeline wraps each batch's outputs and
its consumed offsets in one transaction (`begin`, `write`, `send_offsets`, `commit`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import (
    AuthorizationError,
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    ProducerFencedError,
    RecordListTooLargeError,
)
from kafka.structs import OffsetAndMetadata

from ..deadline import Deadline
from ..ports import DeliveryError
from ..records import Outgoing, TopicPartition
from ..settings import Settings
from . import clients
from .patches import (
    estimate_size,
    forget_failed_offsets,
    stop_sender,
    transaction_step,
)

log = logging.getLogger(__name__)

TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
WAIT_SLICE_S = 0.2  # how often `write` reports that it is still waiting for acknowledgements


class TransactionTimeout(KafkaTimeoutError):
    """A transactional step got no answer within the delivery timeout: the transaction's
    outcome is not known here. The worker must stop; a restart with the same transactional id
    settles it (fences this producer, and completes or aborts the transaction)."""


class Sink:
    """The `tagstream.worker.ports.Sink` on a Kafka producer."""

    # After these the producer can never commit again, or cannot know whether it did.
    fatal_errors = (
        ProducerFencedError,
        InvalidProducerEpochError,
        AuthorizationError,
        TransactionTimeout,
    )
    transaction_errors = (KafkaError,)

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        k = settings.kafka
        self.transactional = settings.delivery == "exactly_once"
        self._delivery_timeout_s = k.delivery_timeout_ms / 1000
        # Records larger than their topic accepts are refused here, before sending: a broker-side
        # rejection would fail the whole produce batch (and kafka-python does not recover).
        topic_limits = _max_message_bytes(settings, [k.output_topic, k.dead_letter_topic])
        self._limits = {t: min(k.max_request_size, n) for t, n in topic_limits.items()}
        self._default_limit = k.max_request_size
        # a batch must fit every topic
        self._producer = clients.producer(settings, min([16_384, *self._limits.values()]))
        for topic in (k.output_topic, k.dead_letter_topic):
            # Learn the topics' partitions now: send() would otherwise block on the metadata
            # the first time it sees a topic (up to max_block_ms), outside any deadline.
            self._producer.partitions_for(topic)
        if self.transactional:
            # Fences an earlier instance with the same transactional id and aborts its open
            # transaction, so a restarted worker never races its crashed predecessor.
            self._producer.init_transactions()

    def write(
        self, items: list[Outgoing], waiting: Callable[[], float | None] = lambda: None
    ) -> list[tuple[Outgoing, str]]:
        """Send `items` in order and wait until every one is acknowledged.

        Called once per batch (and again for the records it re-routes). Returns the items
        refused before sending because they are larger than their topic accepts, with the
        reason. Raises `DeliveryError` if a sent record is not acknowledged within the
        delivery timeout, or by the deadline (monotonic) that `waiting` returns: the caller
        must not commit. `waiting` is called about every `WAIT_SLICE_S` while waiting (the
        pipeline beats its heartbeat there, and returns the drain's deadline once stopping).
        """
        pending = []
        refused: list[tuple[Outgoing, str]] = []
        for item in items:
            # kafka-python itself refuses records over max_request_size; check only stricter topics.
            limit = self._limits.get(item.topic, self._default_limit)
            if limit < self._default_limit and (size := self._size(item)) > limit:
                refused.append(
                    (item, f"{size} bytes, more than the {limit} that {item.topic} accepts")
                )
                continue
            try:
                future = self._producer.send(
                    item.topic, value=item.value, key=item.key, headers=list(item.headers)
                )
            except TOO_LARGE as exc:
                refused.append((item, str(exc)))
                continue
            pending.append((item, future))
        if not pending:
            return refused
        deadline = Deadline(self._delivery_timeout_s, waiting, self._clock, WAIT_SLICE_S)
        # Send what is queued now: nothing else joins it before these acknowledgements, so
        # linger_ms would only add to every batch's latency. Failures show in the futures.
        with contextlib.suppress(KafkaTimeoutError):
            deadline.wait(
                lambda seconds: self._producer.flush(timeout=seconds), (KafkaTimeoutError,)
            )
        failures: list[tuple[Outgoing, BaseException]] = []
        for item, future in pending:
            try:
                deadline.wait(lambda seconds: future.get(timeout=seconds), (KafkaTimeoutError,))
            except KafkaError as exc:
                failures.append((item, exc))
        if failures:
            raise DeliveryError(failures)
        return refused

    def _size(self, item: Outgoing) -> int:
        """The record batch size the broker will check (what kafka-python estimates too)."""
        return estimate_size(self._producer, item.key, item.value, list(item.headers))

    # -- exactly-once --------------------------------------------------------------------

    def begin(self) -> None:
        # A transaction refused by the group coordinator leaves its offsets in kafka-python's
        # transaction manager, to be committed by the next one (`forget_failed_offsets`).
        dropped = forget_failed_offsets(self._producer)
        if dropped:
            log.info(
                "offsets of the aborted transaction dropped from the producer",
                extra={"partitions": sorted(f"{tp.topic}-{tp.partition}" for tp in dropped)},
            )
        self._producer.begin_transaction()

    def send_offsets(
        self,
        offsets: dict[TopicPartition, int],
        group_metadata: object,
        waiting: Callable[[], float | None] = lambda: None,
    ) -> None:
        kafka_offsets = {
            KafkaTopicPartition(*tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()
        }
        self._finish("send_offsets", waiting, kafka_offsets, group_metadata)

    def commit(self, waiting: Callable[[], float | None] = lambda: None) -> None:
        self._finish("commit", waiting)

    def abort(self, waiting: Callable[[], float | None] = lambda: None) -> None:
        try:
            self._finish("abort", waiting)
        except KafkaError:
            log.exception("aborting the transaction failed")
            raise

    def _finish(self, step: str, waiting: Callable[[], float | None], *args: object) -> None:
        """Run a transactional step and wait for it within the delivery timeout, or by the
        deadline `waiting` returns (called about every `WAIT_SLICE_S`); `TransactionTimeout`
        if it does not end by then, or the step's own error."""
        result = transaction_step(self._producer, step, *args)
        deadline = Deadline(self._delivery_timeout_s, waiting, self._clock, WAIT_SLICE_S)

        def attempt(seconds: float) -> None:
            if not result.wait(timeout_ms=seconds * 1000):
                raise TransactionTimeout(f"the transaction's {step} got no answer")

        deadline.wait(attempt, (TransactionTimeout,))

    def close(self, timeout_s: float = 5.0) -> None:
        """Close, waiting up to `timeout_s` for records in flight (0: drop them)."""
        try:
            self._producer.close(timeout=timeout_s)
        except KafkaTimeoutError:
            # kafka-python's close() gives up in its flush without stopping the sender thread;
            # stop it here, or it would linger until exit.
            log.warning("the producer closed with records unacknowledged; they were not committed")
            stop_sender(self._producer)


def _max_message_bytes(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Each topic's effective ``max.message.bytes``; {} if the cluster won't tell (e.g. ACLs)."""
    k = settings.kafka
    admin = None
    try:
        admin = clients.admin(k)
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, t, {"max.message.bytes": None}) for t in topics
        ]
        described = admin.describe_configs(resources, config_filter="all").get("topic", {})
        return {
            t: int(described[t]["max.message.bytes"]["value"]) for t in topics if t in described
        }
    except (KafkaError, KeyError, ValueError) as exc:
        log.warning(
            "cannot read max.message.bytes of the output topics; relying on max_request_size alone",
            extra={"error": repr(exc)},
        )
        return {}
    finally:
        if admin is not None:
            admin.close()
