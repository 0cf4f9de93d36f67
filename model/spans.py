"""Tag sequences <-> entity spans, with the chunk semantics of the CoNLL ``conlleval`` script.

A span here is ``(start, end, type)`` over *token* indices, ``end`` exclusive. Tags are
``"O"`` or ``"<P>-<TYPE>"`` with ``P`` one of ``B I E S`` (IOB1, IOB2 and BIOES all decode
with the same rules, as conlleval does):

- a chunk starts at ``B`` or ``S``; at ``I``/``E`` after ``O``, ``E`` or ``S``; or at any tag
  whose type differs from the previous tag's type;
- a chunk ends after ``E`` or ``S``; before ``B``, ``S`` or ``O``; or before a change of type.

>>> tags_to_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "E-LOC"])
[(0, 2, 'PER'), (3, 4, 'LOC'), (4, 6, 'LOC')]
>>> spans_to_tags([(0, 2, "PER"), (3, 4, "LOC")], 5, "BIOES")
['B-PER', 'E-PER', 'O', 'S-LOC', 'O']
"""

from __future__ import annotations

from collections.abc import Sequence

SCHEMES = ("IOB1", "IOB2", "BIOES")
_PREFIXES = frozenset("BIES")


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``; ValueError if malformed."""
    if tag == "O":
        return "O", ""
    if not isinstance(tag, str) or len(tag) < 3 or tag[1] != "-" or tag[0] not in _PREFIXES:
        raise ValueError(f"malformed tag {tag!r}: expected 'O' or one of B-, I-, E-, S- and a type")
    return tag[0], tag[2:]


def tags_to_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Entity spans ``(start, end, type)`` (token indices, end exclusive) in a tag sequence."""
    spans: list[tuple[int, int, str]] = []
    start = -1
    prev_p, prev_t = "O", ""
    for i, tag in enumerate(tags):
        p, t = split_tag(tag)
        # conlleval endOfChunk(prev, cur)
        ends = (
            prev_p in ("E", "S")
            or (prev_p in ("B", "I") and p in ("B", "S", "O"))
            or (prev_p != "O" and prev_t != t)
        )
        if ends and start >= 0:
            spans.append((start, i, prev_t))
            start = -1
        # conlleval startOfChunk(prev, cur)
        starts = (
            p in ("B", "S")
            or (prev_p in ("E", "S", "O") and p in ("E", "I"))
            or (p != "O" and prev_t != t)
        )
        if starts:
            start = i
        prev_p, prev_t = p, t
    if start >= 0:
        spans.append((start, len(tags), prev_t))
    return spans


def spans_to_tags(
    spans: Sequence[tuple[int, int, str]], length: int, scheme: str = "BIOES"
) -> list[str]:
    """The tag sequence of ``length`` tokens with the given spans, in ``scheme``.

    Raises ValueError for an unknown scheme, an empty, out-of-range or overlapping span, or an
    empty type.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tagging scheme {scheme!r}; expected one of {SCHEMES}")
    tags = ["O"] * length
    for start, end, typ in sorted(spans):
        if not (0 <= start < end <= length):
            raise ValueError(f"span ({start}, {end}) is empty or outside 0..{length}")
        if not typ or not isinstance(typ, str):
            raise ValueError(f"span ({start}, {end}) has an empty type")
        if any(t != "O" for t in tags[start:end]):
            raise ValueError(f"span ({start}, {end}, {typ!r}) overlaps another span")
        if scheme == "BIOES" and end - start == 1:
            tags[start] = f"S-{typ}"
            continue
        first = "B"
        if scheme == "IOB1" and not (
            start > 0 and tags[start - 1] not in ("O",) and tags[start - 1][2:] == typ
        ):
            first = "I"
        tags[start] = f"{first}-{typ}"
        for i in range(start + 1, end):
            tags[i] = f"I-{typ}"
        if scheme == "BIOES":
            tags[end - 1] = f"E-{typ}"
    return tags


def detect_scheme(tag_sequences: Sequence[Sequence[str]]) -> str:
    """Best guess of the scheme of a corpus.

    BIOES if it uses E- or S-; IOB1 if chunks start with I- and B- never starts a chunk after
    ``O`` or another type (in IOB1, B- only separates two adjacent chunks of one type); else IOB2
    (a few stray I- starts in an IOB2 corpus are read as chunk starts, as conlleval does).
    """
    seen_es = i_start = b_start = False
    for tags in tag_sequences:
        prev_p, prev_t = "O", ""
        for tag in tags:
            p, t = split_tag(tag)
            if p in ("E", "S"):
                seen_es = True
            if prev_p == "O" or prev_t != t:
                i_start = i_start or p == "I"
                b_start = b_start or p == "B"
            prev_p, prev_t = p, t
    if seen_es:
        return "BIOES"
    return "IOB1" if i_start and not b_start else "IOB2"


def bioes_tags(labels: Sequence[str]) -> list[str]:
    """The network's tag set for entity ``labels``: ``O`` then ``B- I- E- S-`` of each label."""
    return ["O"] + [f"{p}-{label}" for label in labels for p in "BIES"]


def bioes_transitions(tags: Sequence[str]) -> tuple[list[list[bool]], list[bool], list[bool]]:
    """Which BIOES transitions are legal:
    ``(allowed[i][j] for i -> j, allowed_start, allowed_end)``."""
    parts = [split_tag(t) for t in tags]

    def ok(a: tuple[str, str], b: tuple[str, str]) -> bool:
        if a[0] in ("B", "I"):
            return b[0] in ("I", "E") and b[1] == a[1]
        return b[0] in ("O", "B", "S")

    allowed = [[ok(a, b) for b in parts] for a in parts]
    return (
        allowed,
        [p[0] in ("O", "B", "S") for p in parts],
        [p[0] in ("O", "E", "S") for p in parts],
    )
