"""The places where tagstream reaches into kafka-python's private API, all in one module: check
them here when upgrading kafka-python (the tests pin the version the reader fix was written for).

* `fix_transport`: a socket reader that does not drop a broker's last answer (below);
* `build_ssl_context`: the TLS context exactly as kafka-python builds it, for the start-up check
  of the certificate files (`tagstream.worker.kafka.preflight`);
* `estimate_size`: the size of a record batch as the producer computes it, to dead-letter an
  output the broker would refuse (`tagstream.worker.kafka.producer`);
* `forget_failed_offsets`: offsets a failed transaction leaves in the producer, which its next
  transaction would otherwise commit (below);
* `drop_failed_fetch`: the fetched data a record the consumer cannot parse leaves behind, on
  which every later poll would spin (below);
* `transaction_step`: the producer's transactional steps with a deadline (kafka-python waits
  on them without one);
* `stop_sender`: the producer's sender thread, stopped when its close gave up.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

import kafka
import kafka.errors as Errors
from kafka import KafkaConsumer, KafkaProducer
from kafka.net.transport import KafkaSSLTransport, KafkaTCPTransport


def build_ssl_context(ssl_configs: dict[str, Any]) -> ssl.SSLContext:
    """kafka-python's own SSLContext of these ``ssl_*`` settings (its defaults filled in);
    raises ssl.SSLError, OSError or ValueError for a file that is not what it should be."""
    return KafkaSSLTransport._build_ssl_context(ssl_configs)


def estimate_size(
    producer: KafkaProducer,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]],
) -> int:
    """The record batch size the broker will check (what kafka-python estimates too)."""
    return producer._estimate_size_in_bytes(key, value, headers)


# -- kafka-python 3.0.12: offsets of a failed transaction ride along in the next one ----------
#
# The producer's transaction manager gathers the offsets given to send_offsets_to_transaction in
# one dict and removes a partition's entry only once the group coordinator accepts it. When the
# coordinator refuses them (ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID while the group rebalances),
# the transaction is aborted but the entries stay, and the next transaction's TxnOffsetCommit
# sends them along with its own offsets. For a partition the next batch does not touch, the
# aborted batch's end offset is then committed although none of its records was delivered; if
# the partition has meanwhile moved to another worker (the rebalance that caused the refusal),
# that worker starts past them and they are never labelled.


def forget_failed_offsets(producer: KafkaProducer) -> dict:
    """Drop the offsets a failed transaction left in the producer; call it before a transaction
    begins (nothing is in flight then). Returns what was dropped, {TopicPartition: offset}."""
    manager = getattr(producer, "_transaction_manager", None)
    pending = getattr(manager, "_pending_txn_offset_commits", None)
    if not pending:
        return {}
    with manager._lock:
        dropped = dict(pending)
        pending.clear()
    return dropped


# -- kafka-python 3.0.12: a poll after an unparsable record spins forever ---------------------
#
# When the consumer cannot parse a record (CorruptRecordError), the fetched data it was reading
# stays the fetcher's current one, with its record iterator ended by the error. The next poll
# takes nothing from it, does not drop it, and loops on it without end. The position is still
# that of the unparsable record, so dropping the data loses nothing: the next poll fetches it
# again (and fails again, or reads it if the fetch was garbled in transit).


def drop_failed_fetch(consumer: KafkaConsumer) -> None:
    """Drop the fetched data a CorruptRecordError left behind; call it right after one."""
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None:
        current.drain()
        fetcher._next_partition_records = None


# -- kafka-python 3.0.12: transactional steps wait without a timeout -------------------------
#
# send_offsets_to_transaction, commit_transaction and abort_transaction each wait on their
# request's result with no timeout: a coordinator that never answers holds the caller forever.
# These start the same step and hand back its result, whose wait(timeout_ms) says whether it
# ended (and raises its error).


def transaction_step(producer: KafkaProducer, step: str, *args: Any) -> Any:
    """Start ``step`` ("send_offsets", "commit" or "abort") as KafkaProducer does; returns its
    result (``wait(timeout_ms)``: True once done, raising the step's error)."""
    manager = producer._transaction_manager
    if manager is None:
        raise Errors.IllegalStateError("the producer is not transactional")
    if step == "send_offsets":
        result = manager.send_offsets_to_transaction(*args)
    elif step == "commit":
        result = manager.begin_commit()
    elif step == "abort":
        result = manager.begin_abort()
    else:
        raise ValueError(f"unknown transaction step {step!r}")
    producer._sender.wakeup()
    return result


def stop_sender(producer: KafkaProducer) -> None:
    """Stop the sender thread of a producer whose close() gave up in its flush (kafka-python
    then leaves the thread running until exit)."""
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()


# -- kafka-python 3.0.12: a response followed by the end of the stream ----------------------
#
# When a broker rejects a SASL exchange it answers with the error (SaslAuthenticate:
# "Authentication failed ... invalid credentials"; SaslHandshake: unsupported mechanism) and
# closes the connection at once. If both arrive in one read, kafka-python 3.0.12's transport
# drops the answer and reports only "socket disconnected". This reader hands the bytes to the
# connection first, lets it act on them, and then closes. Applied to that version only.

FIXED_VERSIONS = {"3.0.12"}


async def read_from_sock(self):  # noqa: ANN001 (KafkaTCPTransport method)
    while self._read and not self._closed:
        await self._net.wait_read(self._sock)
        data, err = self._sock_recv()
        if data:
            self.last_read = time.monotonic()
            if self._protocol and self._protocol._sensors:
                self._protocol._sensors.bytes_received.record(len(data))
            try:
                self._protocol.data_received(data)
            except Errors.KafkaProtocolError as e:
                return self.abort(error=e)
        if err:
            if data:
                await self._net.sleep(0)  # let the request's waiter see the answer first
            return self.abort(error=err)


def fix_transport() -> bool:
    """Install the reader above on the kafka-python version it was written for."""
    if kafka.__version__ not in FIXED_VERSIONS:
        return False
    KafkaTCPTransport._read_from_sock = read_from_sock
    return True
