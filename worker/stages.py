"""What the pipeline does to one record and to one batch: decode and tokenise a record on the
main thread (`decode`), tag a batch on the inference thread (`tag_batch`). Neither raises: a
record that cannot be labelled becomes a dead letter, and a batch the tagger chokes on is tagged
record by record, so one bad record never stops the worker."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from tagstream.worker import messages
from tagstream.worker.messages import InvalidMessage
from tagstream.worker.records import (
    Batch,
    DeadLetter,
    Entry,
    LabelledRecord,
    SourceRecord,
    TextRecord,
)

if TYPE_CHECKING:
    from tagstream.worker.config import Settings
    from tagstream.worker.metrics import Metrics
    from tagstream.worker.ports import Span, Tagger

log = logging.getLogger(__name__)


def decode(record: SourceRecord, settings: Settings, tagger: Tagger) -> Entry:
    """The record's text, tokenised once (`Tagger.prepare`); or why it cannot be labelled."""
    if record.unreadable is not None:
        first, last = record.unreadable.first_offset, record.offset
        return DeadLetter(
            record,
            messages.UNREADABLE_RECORD,
            f"offsets {first}-{last} could not be read and were skipped: {record.unreadable.error}",
        )
    try:
        doc_id, text = messages.parse_input(
            record.value, settings.input_format, settings.max_text_chars
        )
    except InvalidMessage as exc:
        return DeadLetter(record, exc.reason, exc.message)
    try:
        prepared = tagger.prepare(text)
    except Exception as exc:  # the tagger promises not to raise; never let one record stop us
        log.exception("tokenising a record failed")
        return DeadLetter(record, messages.TAGGING_FAILED, f"tokenising failed: {exc!r}")
    return TextRecord(record, doc_id, text, prepared.num_tokens, prepared)


def tag_batch(tagger: Tagger, batch: Batch, metrics: Metrics) -> list[LabelledRecord | DeadLetter]:
    """Runs on the inference thread. One result per entry of the batch, in order."""
    texts = batch.texts
    spans_by_text: dict[int, list[Span] | DeadLetter] = {}
    if texts:
        start = time.perf_counter()
        try:
            for record, spans in zip(texts, tagger.tag_prepared([r.prepared for r in texts])):
                spans_by_text[id(record)] = spans
        except Exception:  # isolate the record the tagger chokes on, tag the rest
            log.exception("tagging a batch failed; tagging its records one by one")
            for record in texts:
                spans_by_text[id(record)] = tag_one(tagger, record)
        metrics.inference_seconds.observe(time.perf_counter() - start)
    out: list[LabelledRecord | DeadLetter] = []
    for entry in batch.entries:
        if isinstance(entry, DeadLetter):
            out.append(entry)
            continue
        result = spans_by_text[id(entry)]
        out.append(
            result if isinstance(result, DeadLetter) else LabelledRecord(entry, tuple(result))
        )
    return out


def tag_one(tagger: Tagger, record: TextRecord) -> list[Span] | DeadLetter:
    try:
        return tagger.tag_prepared([record.prepared])[0]
    except Exception as exc:
        return DeadLetter(record.source, messages.TAGGING_FAILED, f"the tagger failed: {exc!r}")
