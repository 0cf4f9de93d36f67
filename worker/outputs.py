"""What the worker writes for a labelled record, by ``output.mode``:

- ``spans``: the span document of the contract (`messages.output_doc`).
- ``enrich``: the input document unchanged but for the entities, written at
  ``output.entities_pointer``; their offsets refer to the input text.
- ``redact``: the input document with every entity mention in its text replaced, by label, with
  a mask (``[PER]``) or a keyed pseudonym (``PER_5d41402abc4b``, the same for the same mention
  and label as long as the key stays). The entities are written at ``output.entities_pointer``
  without their text, their offsets referring to the redacted text. The original text is in no
  output; a dead letter carries its input record unchanged (for replay), so the dead-letter topic
  belongs inside the input's trust boundary.

A value that cannot be built (the entities pointer runs into a string, say) raises
`OutputError` with the dead-letter reason.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import messages
from .pointers import PointerError, assign, parse
from .records import Span, TextRecord

if TYPE_CHECKING:
    from .formats import Writer
    from .settings import Settings

MASK = "mask"
PSEUDONYM = "pseudonym"
KEEP = "keep"
HEADER_OUTPUT = "tagstream.output"  # enrich or redact: the value is the input document's shape
HEADER_MODEL = "tagstream.model"  # name@version, since the value has no room for it


class OutputError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Redaction:
    """How each label's mentions are replaced: ``how`` by default, ``by_label`` for some labels
    (`MASK`, `PSEUDONYM` or `KEEP`); a mask is ``mask_format`` with ``{label}``; a pseudonym is
    the label, ``_`` and 12 hex digits of an HMAC-SHA256 of label and mention under ``key``."""

    how: str = MASK
    by_label: Mapping[str, str] = field(default_factory=dict)
    mask_format: str = "[{label}]"
    key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.key is None and PSEUDONYM in (self.how, *self.by_label.values()):
            raise ValueError("pseudonyms need a key")

    def replacement(self, label: str, mention: str) -> str | None:
        """What replaces ``mention``; None to keep it."""
        how = self.by_label.get(label, self.how)
        if how == KEEP:
            return None
        if how == MASK:
            return self.mask_format.replace("{label}", label)
        assert self.key is not None
        canonical = " ".join(unicodedata.normalize("NFC", mention).split())
        digest = hmac.new(self.key, f"{label}\x1f{canonical}".encode(), hashlib.sha256)
        return f"{label}_{digest.hexdigest()[:12]}"

    def apply(self, text: str, spans: Sequence[Span]) -> tuple[str, list[dict[str, Any]]]:
        """The redacted text and its entities (offsets into it; mentions kept stay as they were).

        >>> from types import SimpleNamespace as S
        >>> Redaction().apply("Ann met Bob", [S(start=0, end=3, label="PER", score=0.9),
        ...                                   S(start=8, end=11, label="PER", score=0.8)])[0]
        '[PER] met [PER]'
        """
        out: list[str] = []
        entities: list[dict[str, Any]] = []
        at = 0
        length = 0
        for span in sorted(spans, key=lambda s: s.start):
            if span.start < at:  # overlapping spans: the first one won
                continue
            out.append(text[at : span.start])
            length += span.start - at
            mention = text[span.start : span.end]
            new = self.replacement(span.label, mention)
            new = mention if new is None else new
            out.append(new)
            entities.append(
                {
                    "start": length,
                    "end": length + len(new),
                    "label": span.label,
                    "score": round(span.score, 4),
                }
            )
            length += len(new)
            at = span.end
        out.append(text[at:])
        return "".join(out), entities


@dataclass(frozen=True)
class Shaper:
    """Builds output values and headers for one mode (see the module's text)."""

    mode: str
    model_ref: str
    echo_text: bool = False
    input_format: str = "json"
    text_pointer: tuple[str, ...] = ("text",)
    entities_pointer: tuple[str, ...] = ("entities",)
    redaction: Redaction = Redaction()
    writer: Writer | None = None  # JSON when None
    model_refs: Mapping[str, str] = field(default_factory=dict)  # by a record's model name

    def ref_of(self, record: TextRecord) -> str:
        """name@version of the model that labelled the record."""
        return self.ref_named(record.model)

    def ref_named(self, model: str) -> str:
        """name@version of the model of that name ("": the worker's default model)."""
        return self.model_refs.get(model, self.model_ref)

    def value(self, record: TextRecord, spans: Sequence[Span]) -> bytes:
        if self.mode == "spans":
            doc = messages.record_doc(record, spans, self.ref_of(record), self.echo_text)
            return self._encode(doc, record)
        if self.mode == "enrich":
            return self._into_document(record, [_span_dict(s) for s in spans], None)
        text, entities = self.redaction.apply(record.text, spans)
        if self.input_format == "text":
            return text.encode("utf-8", "surrogatepass")
        return self._into_document(record, entities, text)

    def headers(
        self, input_headers: Sequence[tuple[str, bytes]], model_ref: str = ""
    ) -> tuple[tuple[str, bytes], ...]:
        model_ref = model_ref or self.model_ref
        base = messages.output_headers(_renamed(input_headers, (HEADER_OUTPUT, HEADER_MODEL)))
        if self.mode == "spans":
            return base
        return (*base, (HEADER_OUTPUT, self.mode.encode()), (HEADER_MODEL, model_ref.encode()))

    def _into_document(
        self, record: TextRecord, entities: list[dict[str, Any]], text: str | None
    ) -> bytes:
        doc = record.document
        if not isinstance(doc, dict):  # decode keeps the document in these modes
            raise OutputError(messages.TAGGING_FAILED, "the input document was not kept")
        try:
            if text is not None:
                assign(doc, self.text_pointer, text)
            assign(doc, self.entities_pointer, entities)
        except PointerError as exc:
            raise OutputError(messages.OUTPUT_POINTER_BLOCKED, f"entities pointer: {exc}") from None
        return self._encode(doc, record)

    def _encode(self, doc: Any, record: TextRecord) -> bytes:
        return self.writer.encode(doc, record) if self.writer else messages.dumps(doc)


def _span_dict(span: Span) -> dict[str, Any]:
    return {
        "start": span.start,
        "end": span.end,
        "label": span.label,
        "text": span.text,
        "score": round(span.score, 4),
    }


def _renamed(
    headers: Sequence[tuple[str, bytes]], names: Sequence[str]
) -> tuple[tuple[str, bytes], ...]:
    """An input's own headers named as the worker's are kept as ``original.<name>``."""
    return tuple((messages.ORIGINAL_PREFIX + n if n in names else n, v) for n, v in headers)


def shaper_of(
    settings: Settings,
    model_ref: str,
    writer: Writer | None = None,
    model_refs: Mapping[str, str] | None = None,
) -> Shaper:
    """The `Shaper` the settings ask for (``output.*``, ``echo_text``, the pointers)."""
    out = settings.output
    key = out.pseudonym_key.get_secret_value().encode() if out.pseudonym_key else None
    return Shaper(
        out.mode,
        model_ref,
        settings.echo_text,
        settings.input_format,
        parse(settings.text_pointer),
        parse(out.entities_pointer),
        Redaction(out.redact, dict(out.redact_by_label), out.mask_format, key)
        if out.mode == "redact"
        else Redaction(),
        writer,
        dict(model_refs or {}),
    )
