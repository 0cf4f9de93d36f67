"""The records of the tagger's API: ``Span``, an entity found in a text, and ``Prepared``, a text
tokenised and cut into chunks (``Tagger.prepare``), ready for ``Tagger.tag_prepared``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """An entity: ``text[start:end]`` (code points, end exclusive) with its label and confidence."""

    start: int
    end: int
    label: str
    text: str
    score: float

    def to_dict(self) -> dict:
        return {
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "text": self.text,
            "score": self.score,
        }


@dataclass(frozen=True, slots=True)
class Prepared:
    """A text tokenised and cut into chunks, ready for the network (made by ``Tagger.prepare``)."""

    text: str
    num_tokens: int  # tokens over all chunks
    starts: tuple[int, ...]  # code-point offset of each token
    ends: tuple[int, ...]  # end (exclusive) of each token
    ids: tuple[list[int], ...]  # per feature column (word, extras...), one id per token
    chunks: tuple[tuple[int, int], ...]  # token ranges [a, b) of at most max_length tokens
