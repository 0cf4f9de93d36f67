"""Tagging, the step between the batcher and delivery: decode and tokenise a record on the main
thread (`decode`), tag a batch on the inference thread (`tag_batch`), and the batch being tagged
there (`InFlight`; the pipeline has at most one in flight): handing it to the thread, waiting for
its results by a deadline, and discarding the results of partitions revoked (or to be consumed
again) meanwhile, which are then not delivered.

Nothing here raises for a record: one that cannot be labelled becomes a dead letter, and a batch
the tagger chokes on is tagged record by record, so one bad record never stops the worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import messages
from .deadline import Deadline
from .formats import Reader
from .messages import TAGGING_TIMEOUT, InvalidMessage
from .records import (
    Batch,
    DeadLetter,
    Entry,
    LabelledRecord,
    SourceRecord,
    Span,
    TextRecord,
    TopicPartition,
    source_of,
)
from .routing import UNKNOWN_MODEL, Models, UnknownModel

if TYPE_CHECKING:
    from .metrics import Metrics
    from .ports import Tagger
    from .settings import Settings

log = logging.getLogger(__name__)


def decode(
    record: SourceRecord,
    settings: Settings,
    tagger: Tagger,
    reader: Reader | None = None,
    models: Models | None = None,
) -> Entry:
    """The record's text, tokenised once (`Tagger.prepare`); or why it cannot be labelled.
    A schema registry that does not answer raises `RegistryUnavailable`: the record is fine,
    and the worker must not move past it."""
    if record.unreadable is not None:
        first, last = record.unreadable.first_offset, record.offset
        return DeadLetter(
            record,
            messages.UNREADABLE_RECORD,
            f"offsets {first}-{last} could not be read and were skipped: {record.unreadable.error}",
        )
    try:
        doc = (reader or Reader(settings)).read(record.value)
    except InvalidMessage as exc:
        return DeadLetter(record, exc.reason, exc.message)
    text = doc.text
    model = ""
    if models is not None:
        try:
            tagger = models.choose(record.headers, doc.document)
        except UnknownModel as exc:
            return DeadLetter(record, UNKNOWN_MODEL, str(exc))
        model = tagger.name
    try:
        prepared = tagger.prepare(text)
    except Exception as exc:  # the tagger promises not to raise; never let one record stop us
        log.exception("tokenising a record failed")
        return DeadLetter(record, messages.TAGGING_FAILED, f"tokenising failed: {exc!r}")
    kept = doc.document if settings.output.mode != "spans" else None
    return TextRecord(
        record, doc.id, text, prepared.num_tokens, prepared, kept, doc.schema_id, model
    )


@dataclass(frozen=True)
class ScoreFloor:
    """The lowest score a span needs to be kept: ``by_label`` for its label, else ``default``
    (settings ``model.min_score`` and ``model.min_score_by_label``)."""

    default: float = 0.0
    by_label: Mapping[str, float] = field(default_factory=dict)

    def keep(self, spans: Sequence[Span]) -> tuple[Span, ...]:
        if not self.default and not self.by_label:
            return tuple(spans)
        by_label, default = self.by_label, self.default
        return tuple(s for s in spans if s.score >= by_label.get(s.label, default))

    def unknown_labels(self, labels: Iterable[str]) -> list[str]:
        """The labels of ``by_label`` that are not among a model's ``labels``."""
        return sorted(set(self.by_label) - set(labels))


NO_FLOOR = ScoreFloor()


def tag_batch(
    tagger: Tagger | Models, batch: Batch, metrics: Metrics, floor: ScoreFloor = NO_FLOOR
) -> list[LabelledRecord | DeadLetter]:
    """Runs on the inference thread. One result per entry of the batch, in order; spans under
    the ``floor`` are left out. With several models, each model's texts are one call of it."""
    models = tagger if isinstance(tagger, Models) else Models(tagger)
    by_model: dict[str, list[TextRecord]] = {}
    for record in batch.texts:
        by_model.setdefault(record.model, []).append(record)
    spans_by_text: dict[int, list[Span] | DeadLetter] = {}
    if by_model:
        start = time.perf_counter()
        for name, texts in by_model.items():
            model = models.named(name) if name else models.default
            try:
                for record, spans in zip(texts, model.tag_prepared([r.prepared for r in texts])):
                    spans_by_text[id(record)] = spans
            except Exception:  # isolate the record the tagger chokes on, tag the rest
                log.exception("tagging a batch failed; tagging its records one by one")
                for record in texts:
                    spans_by_text[id(record)] = tag_one(model, record)
        metrics.inference_seconds.observe(time.perf_counter() - start)
    out: list[LabelledRecord | DeadLetter] = []
    for entry in batch.entries:
        if isinstance(entry, DeadLetter):
            out.append(entry)
            continue
        result = spans_by_text[id(entry)]
        out.append(
            result if isinstance(result, DeadLetter) else LabelledRecord(entry, floor.keep(result))
        )
    return out


def tag_one(tagger: Tagger, record: TextRecord) -> list[Span] | DeadLetter:
    try:
        return tagger.tag_prepared([record.prepared])[0]
    except Exception as exc:
        return DeadLetter(record.source, messages.TAGGING_FAILED, f"the tagger failed: {exc!r}")


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
        tagger: Tagger | Models,
        batch: Batch,
        metrics: Metrics,
        deadline: float = float("inf"),
        floor: ScoreFloor = NO_FLOOR,
    ) -> InFlight:
        """Hand the batch to the inference thread (`tag_batch`)."""
        metrics.batch_records.observe(len(batch.entries))
        metrics.batch_tokens.observe(batch.tokens)
        future = executor.submit(tag_batch, tagger, batch, metrics, floor)
        return cls(batch, future, deadline=deadline)

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
