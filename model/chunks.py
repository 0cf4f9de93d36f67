"""Cutting texts into chunks the network reads, and chunks into sub-batches it runs together.

A blank line always ends a chunk; paragraphs longer than a model's ``max_length`` tokens are
cut after a sentence end, else at whitespace between tokens, else hard (``chunk_bounds``);
chunks sorted longest first are grouped into sub-batches of similar length, bounded in size and
in padding (``sub_batches``).

Then the inputs of one sub-batch (chunks ``(length, doc, first token)`` sorted longest first,
see ``Tagger.tag_prepared``): ``gather`` collects its ids and the real tokens' offsets into the
docs' texts joined (each doc's text once); ``char_grid`` and ``token_code_points`` the Unicode
code points the character CNN reads. Shapes: B chunks, T tokens in the longest, N real tokens,
W characters per token.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .texts import Prepared

_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")  # a line of nothing but whitespace
_SENTENCE_ENDS = frozenset(".!?;。！？；…")
_MAX_BATCH_TOKENS = 8192  # padded tokens per network call
_MAX_BATCH_CHUNKS = 256
_MIN_SPLIT = 16  # chunks in a sub-batch before it may be cut to save padding
_MAX_PADDING = 1.5  # padded / real tokens allowed in a sub-batch


def chunk_bounds(
    text: str, starts: Sequence[int], ends: Sequence[int], max_length: int
) -> list[tuple[int, int]]:
    """Cut ``n`` tokens into ranges of at most ``max_length`` tokens.

    A blank line between two tokens always ends a chunk: paragraphs are read apart, as the
    models learnt from single sentences (a headline or a dateline without a final full stop
    would otherwise run into the next line's reading). Within a paragraph each cut is after the
    last sentence-ending token in the second half of the window, else at the last whitespace
    between tokens there, else at the window's end.
    """
    n = len(starts)
    chunks: list[tuple[int, int]] = []
    first = 0
    for blank in _BLANK_LINE.finditer(text):  # tokens hold no line break: each is between two
        j = bisect_left(starts, blank.end(), first)
        if first < j < n:
            chunks += _windows(text, starts, ends, first, j, max_length)
            first = j
    chunks += _windows(text, starts, ends, first, n, max_length)
    return chunks


def _windows(
    text: str, starts: Sequence[int], ends: Sequence[int], s: int, n: int, max_length: int
) -> list[tuple[int, int]]:
    """Tokens ``[s, n)`` cut into ranges of at most ``max_length`` (``chunk_bounds``)."""
    chunks: list[tuple[int, int]] = []
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


@dataclass(frozen=True, slots=True)
class ChunkBatch:
    """A sub-batch's tensors and its real tokens in row order (chunk by chunk)."""

    lengths: torch.Tensor  # (B,) tokens per chunk
    real: torch.Tensor  # (B, T) True at the real tokens
    cols: list[list[int]]  # per feature column, the N real tokens' ids
    text: str  # the docs' texts joined, each doc's once
    starts: list[int]  # (N) each real token's code-point offset in ``text``
    ends: list[int]  # (N) its end (exclusive)

    def id_grid(self) -> torch.Tensor:
        """(B, T, 1 + E) feature ids (word, extras...), 0 at padding (the float32 path, which
        reads ``cols`` per distinct token, does not build it)."""
        ids = torch.zeros(*self.real.shape, len(self.cols), dtype=torch.long)
        ids[self.real] = torch.tensor(self.cols).t()
        return ids


def gather(docs: Sequence[Prepared], batch: list[tuple[int, int, int]]) -> ChunkBatch:
    """The ChunkBatch of chunks ``(length, doc, first token)`` sorted longest first."""
    T = batch[0][0]
    lengths = torch.tensor([n for n, _, _ in batch])  # (B,)
    ncols = len(docs[batch[0][1]].ids)
    cols: list[list[int]] = [[] for _ in range(ncols)]
    starts: list[int] = []
    ends: list[int] = []
    base: dict[int, int] = {}
    texts: list[str] = []
    total = 0
    for n, d, a in batch:
        doc = docs[d]
        if d not in base:  # each doc's text once in the code point buffer
            base[d] = total
            total += len(doc.text)
            texts.append(doc.text)
        for k in range(ncols):
            cols[k] += doc.ids[k][a : a + n]
        offset = base[d]
        starts += [offset + x for x in doc.starts[a : a + n]]
        ends += [offset + x for x in doc.ends[a : a + n]]
    real = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    return ChunkBatch(lengths, real, cols, "".join(texts), starts, ends)


def char_grid(batch: ChunkBatch, max_chars: int) -> torch.Tensor:
    """(B, T, W) code points of each real token's first ``max_chars`` characters (0 = padding),
    gathered from the batch's text at once."""
    B, T = batch.real.shape
    cps = torch.frombuffer(
        bytearray(batch.text.encode("utf-32-le", "surrogatepass")), dtype=torch.int32
    )
    first = torch.tensor(batch.starts)  # (N,)
    size = (torch.tensor(batch.ends) - first).clamp(max=max_chars)  # (N,)
    W = int(size.max())
    at = first.unsqueeze(1) + torch.arange(W).unsqueeze(0)  # (N, W)
    flat = torch.where(
        at < (first + size).unsqueeze(1), cps[at.clamp(max=cps.numel() - 1)], 0
    )  # (N, W)
    chars = torch.zeros(B, T, W, dtype=torch.long)
    chars[batch.real] = flat.long()  # (B, T, W)
    return chars


def token_code_points(tokens: Sequence[str], max_chars: int) -> torch.Tensor:
    """(M, W) code points of ``tokens`` (their first ``max_chars`` characters), 0 = padding."""
    cut = [t[:max_chars] for t in tokens]
    sizes = torch.tensor([len(t) for t in cut])  # (M,)
    W = max(1, int(sizes.max()))
    flat = torch.frombuffer(
        bytearray("".join(cut).encode("utf-32-le", "surrogatepass")), dtype=torch.int32
    )
    cps = torch.zeros(len(cut), W, dtype=torch.long)  # (M, W) code points, 0 = padding
    cps[torch.arange(W).unsqueeze(0) < sizes.unsqueeze(1)] = flat.long()
    return cps


def by_length(
    tokens: Sequence[str], compute: Callable[[list[str]], torch.Tensor], piece: int = 512
) -> torch.Tensor:
    """``compute(tokens)`` (one row per token), for many tokens in pieces of ``piece`` tokens of
    similar length, rows put back in the tokens' order: each piece's tensors stay in the CPU's
    cache and are padded to its own longest token (for the character CNN, four times faster
    than one call on 12,000 news tokens)."""
    if len(tokens) <= piece:
        return compute(list(tokens))
    order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
    rows = torch.cat(
        [compute([tokens[i] for i in order[a : a + piece]]) for a in range(0, len(order), piece)]
    )  # in length order
    return torch.empty_like(rows).index_copy_(0, torch.tensor(order), rows)
