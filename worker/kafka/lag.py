"""``tagstream_consumer_lag``: how far the group is behind the end of each owned partition.

`LagMonitor` is a thread of the `tagstream.worker.kafka.consumer.Source`: it asks the broker for
the end offsets with a client of its own and hands them to the source's `Partitions`
(`Partitions.publish_lag`), which knows the committed offsets and the partitions the worker
owns.
"""

from __future__ import annotations

import logging
import threading

from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition

from ..records import TopicPartition
from ..settings import Settings
from . import clients
from .partitions import Partitions

log = logging.getLogger(__name__)


class LagMonitor(threading.Thread):
    """Refreshes ``tagstream_consumer_lag`` every ``lag_interval_s``: the end offsets of the
    owned partitions, asked of the broker by a consumer of its own (outside the group, so the
    figure does not depend on the worker's fetches, which stop while it is paused behind a
    backlog), minus the committed offsets. A failed refresh keeps the last figures."""

    def __init__(self, partitions: Partitions, settings: Settings):
        super().__init__(name="tagstream-lag", daemon=True)
        self._partitions = partitions
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
                        client = clients.lag_consumer(k)
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
        parts = sorted(self._partitions.owned())
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
        self._partitions.publish_lag(ends, earliest)
        self._warned = False
