"""``tagstream_consumer_lag``: how far the group is behind the end of each owned partition.

`LagMonitor` is a thread of the `tagstream.worker.source.Source`: it asks the broker for the
end offsets with a client of its own and hands them to `Source.publish_lag`, which knows the
committed offsets and the partitions the worker owns.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition

from tagstream.worker.records import TopicPartition

if TYPE_CHECKING:
    from tagstream.worker.config import Settings
    from tagstream.worker.source import Source

log = logging.getLogger(__name__)


class LagMonitor(threading.Thread):
    """Refreshes ``tagstream_consumer_lag`` every ``lag_interval_s``: the end offsets of the
    owned partitions, asked of the broker by a consumer of its own (outside the group, so the
    figure does not depend on the worker's fetches, which stop while it is paused behind a
    backlog), minus the committed offsets. A failed refresh keeps the last figures."""

    def __init__(self, source: Source, settings: Settings):
        super().__init__(name="tagstream-lag", daemon=True)
        self._source = source
        self._settings = settings
        self._stop = threading.Event()
        self._warned = False

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        k = self._settings.kafka
        client: KafkaConsumer | None = None
        try:
            while not self._stop.wait(k.lag_interval_s):
                try:
                    if client is None:
                        client = KafkaConsumer(
                            bootstrap_servers=k.bootstrap_servers.split(","),
                            client_id=f"{k.client_id}-lag",
                            group_id=None,
                            enable_auto_commit=False,
                            request_timeout_ms=k.request_timeout_ms,
                            reconnect_backoff_max_ms=k.reconnect_backoff_max_ms,
                            **k.security_configs(),
                        )
                    self._refresh(client)
                except Exception as exc:  # the broker is away: keep the last figures, try again
                    if not self._warned:
                        log.warning(
                            "refreshing the consumer lag failed; will retry",
                            extra={"error": repr(exc)},
                        )
                        self._warned = True
        finally:
            if client is not None:
                client.close()

    def _refresh(self, client: KafkaConsumer) -> None:
        parts = sorted(self._source.owned())
        if not parts:
            return
        kparts = [KafkaTopicPartition(*tp) for tp in parts]
        ends = {
            TopicPartition(tp.topic, tp.partition): off
            for tp, off in client.end_offsets(kparts).items()
        }
        earliest: dict[TopicPartition, int] = {}
        if self._settings.kafka.auto_offset_reset == "earliest":
            earliest = {
                TopicPartition(tp.topic, tp.partition): off
                for tp, off in client.beginning_offsets(kparts).items()
            }
        self._source.publish_lag(ends, earliest)
        self._warned = False
