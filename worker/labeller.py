"""The Python API: a model loaded by name or file, labelling texts in batches into the very
documents the worker publishes (`tagstream.worker.messages.output_doc`)::

    import tagstream

    nlp = tagstream.load("en-news")
    for doc in nlp.pipe(["Angela Merkel met Emmanuel Macron in Paris."]):
        print([(s["text"], s["label"], s["score"]) for s in doc["spans"]])

``tagstream tag`` labels its lines through `Labeller.pipe` as well.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from .messages import output_doc
from .models import load_tagger
from .ports import Tagger
from .records import Span
from .tagging import ScoreFloor

Context = TypeVar("Context")
Text = str | Mapping[str, Any]  # a text, or an input document {"id": ..., "text": ...}


class Labeller:
    """A loaded model and how its output is shaped. ``pipe`` and ``__call__`` may be used from
    one thread at a time."""

    def __init__(
        self,
        name_or_path: str | os.PathLike | None = None,
        *,
        threads: int | None = None,
        precision: Literal["auto", "bfloat16", "float32"] = "auto",
        min_score: float = 0.0,
        min_score_by_label: Mapping[str, float] | None = None,
        echo_text: bool = False,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        ref = Path(name_or_path) if isinstance(name_or_path, os.PathLike) else name_or_path
        with _torch_threads(threads):  # a smoke test runs while loading
            self.tagger: Tagger = load_tagger(ref, 0, precision)
        self.threads = threads
        self.floor = ScoreFloor(min_score, dict(min_score_by_label or {}))
        if not 0 <= min_score <= 1 or not all(0 <= v <= 1 for v in self.floor.by_label.values()):
            raise ValueError("a minimum score is between 0 and 1")
        unknown = self.floor.unknown_labels(self.tagger.labels)
        if unknown:
            raise ValueError(
                f"min_score_by_label: {self.tagger.name} has no label {', '.join(unknown)} "
                f"(its labels: {', '.join(self.tagger.labels)})"
            )
        self.echo_text = echo_text

    @property
    def name(self) -> str:
        return self.tagger.name

    @property
    def version(self) -> str:
        return self.tagger.version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.tagger.labels

    def __repr__(self) -> str:
        return f"Labeller({self.name}@{self.version}, labels={self.labels})"

    def __call__(self, text: Text) -> dict[str, Any]:
        """The output document of one text."""
        return next(iter(self.pipe([text])))

    @overload
    def pipe(
        self, texts: Iterable[Text], *, batch_size: int = ..., as_tuples: Literal[False] = ...
    ) -> Iterator[dict[str, Any]]: ...

    @overload
    def pipe(
        self,
        texts: Iterable[tuple[Text, Context]],
        *,
        batch_size: int = ...,
        as_tuples: Literal[True],
    ) -> Iterator[tuple[dict[str, Any], Context]]: ...

    def pipe(
        self, texts: Iterable[Any], *, batch_size: int = 256, as_tuples: bool = False
    ) -> Iterator[Any]:
        """Label ``texts`` lazily, ``batch_size`` at a time, in order: one output document per
        text (``{"id", "spans", "model", "source": {"index"}}``, plus ``"text"`` with
        ``echo_text``). A text is a str, or an input document ``{"id": ..., "text": ...}``.
        With ``as_tuples``, items are ``(text, context)`` and ``(document, context)`` come back,
        as in spaCy's ``nlp.pipe``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        model_ref = f"{self.name}@{self.version}"
        batch: list[tuple[int, str | None, str, Any]] = []
        index = 0
        for item in texts:
            text, context = item if as_tuples else (item, None)
            doc_id, text = _text_of(text, index)
            batch.append((index, doc_id, text, context))
            index += 1
            if len(batch) == batch_size:
                yield from self._labelled(batch, model_ref, as_tuples)
                batch = []
        if batch:
            yield from self._labelled(batch, model_ref, as_tuples)

    def spans(self, texts: Iterable[str]) -> list[tuple[Span, ...]]:
        """The model's spans of each text (objects with ``start``, ``end``, ``label``, ``text``,
        ``score``), after the minimum scores; all at once."""
        texts = list(texts)
        with _torch_threads(self.threads):
            found = self.tagger.tag_prepared([self.tagger.prepare(t) for t in texts])
        return [self.floor.keep(spans) for spans in found]

    def _labelled(
        self, batch: list[tuple[int, str | None, str, Any]], model_ref: str, as_tuples: bool
    ) -> Iterator[Any]:
        found = self.spans([text for _, _, text, _ in batch])
        for (index, doc_id, text, context), spans in zip(batch, found):
            doc = output_doc(
                doc_id, spans, model_ref, {"index": index}, text if self.echo_text else None
            )
            yield (doc, context) if as_tuples else doc


def _text_of(item: Any, index: int) -> tuple[str | None, str]:
    if isinstance(item, str):
        return None, item
    if isinstance(item, Mapping):
        text, doc_id = item.get("text"), item.get("id")
        if isinstance(text, str) and (doc_id is None or isinstance(doc_id, str)):
            return doc_id, text
        raise TypeError(
            f'text {index}: an input document needs a str "text" and, if any, a str "id"'
        )
    raise TypeError(f"text {index}: expected a str or a mapping, got {type(item).__name__}")


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Torch's intra-op threads set to ``threads`` for the block, then put back (None: torch's
    own setting, untouched): a library must not change its caller's process."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
