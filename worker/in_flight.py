"""The batch being tagged on the inference thread (`InFlight`): the pipeline has at most one
in flight. Handing a batch to the thread (`InFlight.submit`), waiting for its results by a
deadline (`InFlight.wait`), and discarding the results of partitions revoked (or to be consumed
again) while it was being tagged (`InFlight.discard`): those are not delivered (`results`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tagstream.worker import stages
from tagstream.worker.deadline import Deadline
from tagstream.worker.messages import TAGGING_TIMEOUT
from tagstream.worker.records import (
    Batch,
    DeadLetter,
    Entry,
    LabelledRecord,
    TopicPartition,
    source_of,
)

if TYPE_CHECKING:
    from tagstream.worker.metrics import Metrics
    from tagstream.worker.ports import Tagger


@dataclass
class InFlight:
    """A batch handed to the inference thread, and the partitions whose results to discard."""

    batch: Batch
    future: Future[list[LabelledRecord | DeadLetter]]  # one result per entry, in order
    revoked: set[TopicPartition] = field(default_factory=set)  # results to discard
    deadline: float = float("inf")  # when its tagging is late (on the pipeline's clock)

    @classmethod
    def submit(
        cls,
        executor: Executor,
        tagger: Tagger,
        batch: Batch,
        metrics: Metrics,
        deadline: float = float("inf"),
    ) -> InFlight:
        """Hand the batch to the inference thread (`stages.tag_batch`)."""
        metrics.batch_records.observe(len(batch.entries))
        metrics.batch_tokens.observe(batch.tokens)
        return cls(
            batch, executor.submit(stages.tag_batch, tagger, batch, metrics), deadline=deadline
        )

    def late(self, now: float) -> bool:
        """Still tagging past its deadline."""
        return now > self.deadline and not self.future.done()

    def timed_out(self, budget_s: float) -> InFlight:
        """What to deliver instead of a late batch: every entry as a dead letter
        (`messages.TAGGING_TIMEOUT`), in order; the partitions discarded stay discarded."""
        reason = f"tagging its batch of {len(self.batch.entries)} took longer than {budget_s:.1f} s"
        dead: Future[list[LabelledRecord | DeadLetter]] = Future()
        dead.set_result(
            [
                e if isinstance(e, DeadLetter) else DeadLetter(e.source, TAGGING_TIMEOUT, reason)
                for e in self.batch.entries
            ]
        )
        return InFlight(self.batch, dead, set(self.revoked))

    def discard(self, partitions: set[TopicPartition]) -> list[Entry]:
        """Discard the results of these partitions; returns their entries."""
        self.revoked |= partitions
        return [e for e in self.batch.entries if e.source.tp in partitions]

    def discard_all(self) -> list[Entry]:
        """Discard every result; returns every entry."""
        return self.discard({e.source.tp for e in self.batch.entries})

    def results(self) -> list[LabelledRecord | DeadLetter]:
        """The results to deliver, in order: those of the partitions not discarded. Waits for
        the tagging to end."""
        return [r for r in self.future.result() if source_of(r).tp not in self.revoked]

    def wait(
        self, deadline: float, waiting: Callable[[], float | None], clock: Callable[[], float]
    ) -> bool:
        """Wait for the tagging to end, calling `waiting` meanwhile (`Deadline`); False at the
        deadline (on `clock`)."""
        wait = Deadline(max(0.0, deadline - clock()), waiting, clock)
        try:
            wait.wait(lambda seconds: self.future.result(timeout=seconds), (FutureTimeout,))
            return True
        except FutureTimeout:
            return False
