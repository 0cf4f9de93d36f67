"""Cutting texts into chunks the network reads, and chunks into sub-batches it runs together.

Texts longer than a model's ``max_length`` tokens are cut after a sentence end, else at
whitespace between tokens, else hard (``chunk_bounds``); chunks sorted longest first are grouped
into sub-batches of similar length, bounded in size and in padding (``sub_batches``).
"""

from __future__ import annotations

from collections.abc import Sequence

_SENTENCE_ENDS = frozenset(".!?;。！？；…")
_MAX_BATCH_TOKENS = 8192  # padded tokens per network call
_MAX_BATCH_CHUNKS = 256
_MIN_SPLIT = 16  # chunks in a sub-batch before it may be cut to save padding
_MAX_PADDING = 1.5  # padded / real tokens allowed in a sub-batch


def chunk_bounds(
    text: str, starts: Sequence[int], ends: Sequence[int], max_length: int
) -> list[tuple[int, int]]:
    """Cut ``n`` tokens into ranges of at most ``max_length`` tokens.

    Each cut is after the last sentence-ending token in the second half of the window, else at
    the last whitespace between tokens there, else at the window's end.
    """
    n = len(starts)
    chunks: list[tuple[int, int]] = []
    s = 0
    while n - s > max_length:
        e = s + max_length
        lo = s + max(1, max_length // 2)
        cut = next(
            (
                j
                for j in range(e, lo, -1)
                if ends[j - 1] - starts[j - 1] == 1 and text[starts[j - 1]] in _SENTENCE_ENDS
            ),
            0,
        )
        if not cut:
            cut = next((j for j in range(e, lo, -1) if starts[j] > ends[j - 1]), e)
        chunks.append((s, cut))
        s = cut
    if n > s:
        chunks.append((s, n))
    return chunks


def sub_batches(lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Cut chunk lengths sorted longest first into ranges ``[i, j)`` to run together.

    A range ends when it reaches ``_MAX_BATCH_CHUNKS`` chunks or ``_MAX_BATCH_TOKENS`` padded
    tokens, or when padding would exceed a third of it (and it has at least
    ``_MIN_SPLIT`` chunks): less padding for attention, output layer and CRF, at the cost of
    more LSTM steps.
    """
    out = []
    i, n = 0, len(lengths)
    while i < n:
        longest = lengths[i]
        j, real = i, 0
        while (
            j < n
            and j - i < _MAX_BATCH_CHUNKS
            and (j - i + 1) * longest <= max(_MAX_BATCH_TOKENS, longest)
        ):
            if j - i >= _MIN_SPLIT and (j - i + 1) * longest > _MAX_PADDING * (real + lengths[j]):
                break
            real += lengths[j]
            j += 1
        out.append((i, j))
        i = j
    return out
