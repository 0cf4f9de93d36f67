"""The output side: one idempotent producer (acks=all) for the output and dead-letter topics.

In exactly-once mode the producer is transactional: the pipeline wraps each batch's outputs and
its consumed offsets in one transaction (`begin`, `write`, `send_offsets`, `commit`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from kafka.structs import OffsetAndMetadata

from worker.config import Settings
from worker.records import DeadLetter, Entry, TopicPartition

log = logging.getLogger(__name__)

TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


class DeliveryError(Exception):
    """Records could not be delivered; nothing of the batch may be committed."""

    def __init__(self, failures: list[tuple[Outgoing, BaseException]]):
        self.failures = failures
        first = failures[0][1]
        super().__init__(f"{len(failures)} record(s) not delivered; first error: {first!r}")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce, and the input entry it stands for."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    entry: Entry

    @property
    def is_dead_letter(self) -> bool:
        return isinstance(self.entry, DeadLetter)


class Sink:
    def __init__(self, settings: Settings):
        k = settings.kafka
        self.transactional = settings.delivery == "exactly_once"
        extra = {}
        if self.transactional:
            extra = {
                "transactional_id": k.effective_transactional_id(),
                "transaction_timeout_ms": k.transaction_timeout_ms,
            }
        self._delivery_timeout_s = k.delivery_timeout_ms / 1000
        self._producer = KafkaProducer(
            bootstrap_servers=k.bootstrap_servers.split(","),
            client_id=k.client_id,
            acks="all",
            enable_idempotence=True,  # no duplicates or reordering from producer retries
            linger_ms=k.linger_ms,
            compression_type=None if k.compression_type == "none" else k.compression_type,
            delivery_timeout_ms=k.delivery_timeout_ms,
            request_timeout_ms=k.request_timeout_ms,
            max_request_size=k.max_request_size,
            allow_auto_create_topics=False,
            **extra,
            **k.security_configs(),
        )
        if self.transactional:
            # Fences an earlier instance with the same transactional id and aborts its open
            # transaction, so a restarted worker never races its crashed predecessor.
            self._producer.init_transactions()

    def write(self, items: list[Outgoing]) -> list[tuple[Outgoing, BaseException]]:
        """Send `items` in order, flush, and return the ones that failed (with their errors).

        Called once per batch (and again for records re-routed to the dead-letter topic).
        Raises nothing for a record's own failure; raises KafkaError if the producer itself is
        broken (e.g. fenced), which ends the worker.
        """
        pending = []
        failures: list[tuple[Outgoing, BaseException]] = []
        for item in items:
            try:
                future = self._producer.send(
                    item.topic, value=item.value, key=item.key, headers=list(item.headers)
                )
            except TOO_LARGE as exc:
                failures.append((item, exc))
                continue
            pending.append((item, future))
        if pending:
            self._producer.flush(timeout=self._delivery_timeout_s)
        for item, future in pending:
            if not future.is_done:
                failures.append((item, TimeoutError("not acknowledged within the delivery timeout")))
            elif future.exception is not None:
                failures.append((item, future.exception))
        return failures

    # -- exactly-once --------------------------------------------------------------------

    def begin(self) -> None:
        self._producer.begin_transaction()

    def send_offsets(self, offsets: dict[TopicPartition, int], group_metadata: object) -> None:
        self._producer.send_offsets_to_transaction(
            {KafkaTopicPartition(*tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()},
            group_metadata,
        )

    def commit(self) -> None:
        self._producer.commit_transaction()

    def abort(self) -> None:
        try:
            self._producer.abort_transaction()
        except KafkaError:
            log.exception("aborting the transaction failed")
            raise

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.close(timeout=timeout_s)
