"""How the tagger cuts a long text into chunks (tagstream.model.tagger.chunk_bounds)."""

import random

import pytest


def _glued(text: str) -> tuple[list[int], list[int]]:
    """Offsets of the tokens of `text`: runs of letters, and single other non-space characters."""
    import re

    spans = [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)]
    return [a for a, _ in spans], [b for _, b in spans]


@pytest.mark.parametrize(
    ("text", "max_length", "chunks"),
    [
        # a sentence end in the second half of the window: cut after it
        ("a b c . d e f g h", 6, [(0, 4), (4, 9)]),
        # no sentence end: cut at the last whitespace between tokens in the second half
        ("aa bb cc dd,ee,ff", 5, [(0, 3), (3, 8)]),
        # neither: a hard cut at the window's end
        ("a,b,c,d,e,f,g", 4, [(0, 4), (4, 8), (8, 12), (12, 13)]),
        # short enough: one chunk
        ("one two three", 3, [(0, 3)]),
        # a blank line always ends a chunk (also one of spaces, or CRLF); a line break does not
        ("a b\n\nc d e", 10, [(0, 2), (2, 5)]),
        ("a b\r\n  \r\nc d e\nf", 10, [(0, 2), (2, 6)]),
        # and the windows go on within each paragraph
        ("a b c . d e f g h\n\ni j", 6, [(0, 4), (4, 9), (9, 11)]),
    ],
)
def test_chunk_bounds_cut_at_blank_lines_then_sentence_ends_then_whitespace(
    text, max_length, chunks
):
    from tagstream.model.tagger import chunk_bounds

    starts, ends = _glued(text)
    assert chunk_bounds(text, starts, ends, max_length) == chunks


def test_chunk_bounds_cover_every_token_once_within_the_limit():
    from tagstream.model.tagger import chunk_bounds

    rng = random.Random(7)
    for _ in range(200):
        words = [
            rng.choice(["word", "x", ".", ",", "Paris", "!"]) for _ in range(rng.randint(1, 300))
        ]
        text = "".join(w + rng.choice(["", " ", "  "]) for w in words)
        starts, ends = _glued(text)
        limit = rng.randint(1, 40)
        chunks = chunk_bounds(text, starts, ends, limit)
        assert chunks[0][0] == 0 and chunks[-1][1] == len(starts)
        assert all(a < b <= a + limit for a, b in chunks)
        assert all(prev[1] == nxt[0] for prev, nxt in zip(chunks, chunks[1:]))


def test_by_length_runs_pieces_of_similar_length_and_keeps_the_order():
    import torch

    from tagstream.model.chunks import by_length

    tokens = [("x" * n) for n in (5, 1, 9, 3, 3, 7, 2, 8)]
    pieces = []

    def compute(piece):
        pieces.append([len(t) for t in piece])
        return torch.tensor([[float(len(t)), float(ord(t[0]))] for t in piece])

    rows = by_length(tokens, compute, piece=3)
    assert rows[:, 0].tolist() == [len(t) for t in tokens]  # the tokens' own order
    assert pieces == [[1, 2, 3], [3, 5, 7], [8, 9]]  # shortest first, at most 3 a call
    pieces.clear()
    assert by_length(tokens[:2], compute, piece=3)[:, 0].tolist() == [5.0, 1.0]
    assert pieces == [[5, 1]]  # few tokens: one call, as given
