"""Per-token results of the network, computed once per distinct token and kept.

The first layers of the tagger see one token at a time: the character CNN reads a token's
characters, and the BiLSTM's input projection (the largest matrix product of the network) reads
a token's word vector, character features and extra features. Text repeats a small set of tokens,
so ``Tagger`` keeps these results per distinct token and runs the layers on new tokens only.

>>> import torch
>>> calls = []
>>> def compute(keys, first):
...     calls.append(list(keys))
...     return torch.tensor([[float(len(k))] for k in keys])
>>> cache = TokenCache(rows=4)
>>> cache.lookup(["a", "bb", "a"], compute).flatten().tolist()
[1.0, 2.0, 1.0]
>>> cache.lookup(["bb", "ccc"], compute).flatten().tolist()
[2.0, 3.0]
>>> calls  # each distinct token computed once
[['a', 'bb'], ['ccc']]
>>> cache.lookup(["x" * 1000, "a"], compute).flatten().tolist()  # a long token: never kept
[1000.0, 1.0]
>>> len(cache), cache.key_bytes <= cache.max_key_bytes
(3, True)

Memory is bounded in bytes, whatever the input. A cache of ``rows`` rows of R values holds:

- its table of values, ``rows`` x R, allocated once when the first values arrive, and an
  int64 use count per row;
- its keys: each held key's ``sys.getsizeof`` (a tuple key's items included) plus
  ``ENTRY_BYTES`` for its index entry, at most ``max_key_bytes`` in all (default
  ``KEY_BYTES_PER_ROW`` per row). A word's key costs about 120 bytes, so a cache of words
  fills its rows first; long or wide (4-byte code point) keys fill the key budget first and
  the least used keys are evicted by it;
- never a token longer than ``LONGEST`` code points (a key's token: the key, or a tuple key's
  first item). Such a token is computed on every call, in the same call as the new tokens, and
  forgotten: it is not a word (no token of CoNLL-2003 or MSRA, about one in 8,000 tokens of
  WNUT-2017's tweets: URLs), and a stream of distinct long tokens would otherwise
  fill the cache with keys of unbounded size.

So ``nbytes`` (table + counters + keys) never exceeds ``max_bytes`` = ``rows`` x (R x value
size + 8) + ``max_key_bytes``: the resident memory a cache adds to a process is that bound
(plus the allocator's slack on freed keys), whatever the length or number of distinct tokens
of the stream.

A ``Tagger`` keeps one such cache per path, and its featurizer a cache of word ids
(``tagstream.model.features``; keys and entries at most ``CACHE_BYTES``, 16 MiB, long tokens never
kept). On the float32 path the BiLSTM input gates: 64 MiB of values (rows = 64 MiB / 32 H) and
264 bytes a row besides, under 70 MiB for H >= 96; on the bfloat16 path the character features:
65,536 rows of F float32 values and 264 bytes, 29 MiB at F = 50. So the token caches of a
loaded tagger stay under 90 MiB, whatever the stream: a process's resident memory is bounded by
the model, these caches, and the working memory of the batch being tagged (proportional to the
characters of its texts), and does not grow with the number of distinct tokens it has seen.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Sequence

import torch

Compute = Callable[[Sequence[Hashable], list[int]], torch.Tensor]

LONGEST = 64  # code points: tokens longer than this are computed every time, never kept
ENTRY_BYTES = 64  # a held key's index entry: dict slot, row number, list slot, allocator rounding
KEY_BYTES_PER_ROW = 256  # the default key budget per row: a word's key costs about 120 bytes
_COUNTER_BYTES = 8  # per row: its uses, int64


def key_size(key: Hashable, longest: int = LONGEST) -> int:
    """Bytes a held ``key`` costs (``sys.getsizeof``, a tuple's items included, plus
    ``ENTRY_BYTES``), or 0 if it is never kept: its token (the key, or a tuple key's first item)
    is longer than ``longest`` code points. Cheap: ``len`` before anything is measured."""
    if isinstance(key, tuple):
        token = key[0] if key else None
        if isinstance(token, str) and len(token) > longest:
            return 0
        return sys.getsizeof(key) + sum(map(sys.getsizeof, key)) + ENTRY_BYTES
    if isinstance(key, str) and len(key) > longest:
        return 0
    return sys.getsizeof(key) + ENTRY_BYTES


class TokenCache:
    """Rows of ``compute(keys, first)`` for distinct keys, kept between calls.

    Bounded in rows and in bytes (see the module's docstring): when ``rows`` keys are held or
    their keys would take more than ``max_key_bytes`` (default ``rows`` x ``KEY_BYTES_PER_ROW``)
    and more are needed, the more often used half is kept (counts halved, so that the cache
    follows a changing stream) and the rest dropped. Keys whose token is longer than ``longest``
    code points are computed on every call and never kept.
    """

    def __init__(self, rows: int, max_key_bytes: int | None = None, longest: int = LONGEST) -> None:
        if rows < 2:
            raise ValueError(f"a token cache needs at least 2 rows, not {rows}")
        self.rows = rows
        self.max_key_bytes = rows * KEY_BYTES_PER_ROW if max_key_bytes is None else max_key_bytes
        if self.max_key_bytes < 0:
            raise ValueError(f"a key budget cannot be negative: {max_key_bytes}")
        self.longest = longest
        self._index: dict[Hashable, int] = {}
        self._keys: list[Hashable] = []  # row -> key
        self._table = torch.empty(0)
        self._uses = torch.zeros(rows, dtype=torch.long)
        self.key_bytes = 0  # bytes of the held keys (``key_size``), at most max_key_bytes
        self.computed = 0  # keys computed so far (misses), for tests and benchmarks
        self._lent = 0  # rows [0, _lent) may be read by the callers of locate since the last settle

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def nbytes(self) -> int:
        """Bytes held now: the table of values, the use counts and the held keys."""
        return self._table.nbytes + self._uses.nbytes + self.key_bytes

    def max_bytes(self, row_bytes: int) -> int:
        """The most ``nbytes`` can reach with rows of ``row_bytes`` bytes of values."""
        return self.rows * (row_bytes + _COUNTER_BYTES) + self.max_key_bytes

    def lookup(self, keys: Sequence[Hashable], compute: Compute) -> torch.Tensor:
        """(N, R) rows for ``keys``, computing those not held.

        ``compute`` gets the new distinct keys and, for each, the position of its first
        occurrence in ``keys`` (to read ids known per position); it returns one row per key.
        """
        table, rows = self.locate(keys, compute)
        return table.index_select(0, rows)

    def locate(
        self,
        keys: Sequence[Hashable],
        compute: Compute,
        settle: Callable[[], None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``lookup`` without the copy: ``(table, rows)``, key i's values being ``table[rows[i]]``
        (the table is the cache's own, valid until the next call).

        ``settle``: for a caller still reading tables and rows an earlier call returned (on
        another thread) while it locates the next keys. The rows those calls returned are not
        written until ``settle()`` has been called, which must return once their readers are
        done: a call that would evict, or write a row an earlier call returned (one of its
        rows computed only for it), calls it first. New keys written past every row returned
        so far need no settling.
        """
        first: dict[Hashable, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        if len(first) > self.rows:  # more distinct keys than the cache holds: compute, keep none
            self.computed += len(first)
            at = {k: j for j, k in enumerate(first)}
            return compute(list(first), list(first.values())), torch.tensor([at[k] for k in keys])
        index = self._index
        new = [k for k in first if k not in index]
        scratch: list[Hashable] = []  # computed into the free rows after the held ones, not kept
        if new:
            if set(map(type, new)) == {str} and max(map(len, new)) <= self.longest:
                size = sum(map(sys.getsizeof, new)) + ENTRY_BYTES * len(new)  # words, at C speed
            else:  # long tokens are never kept; other keys measured one by one
                sizes = [key_size(k, self.longest) for k in new]
                scratch = [k for k, s in zip(new, sizes) if not s]
                new = [k for k, s in zip(new, sizes) if s]
                size = sum(sizes)
            over_rows = len(index) + len(new) + len(scratch) > self.rows
            if over_rows or self.key_bytes + size > self.max_key_bytes:
                needed = [index[k] for k in first if k in index]  # this call's held keys stay
                held = (self._keys[i] for i in needed)
                room = self.max_key_bytes - sum(key_size(k, self.longest) for k in held)
                if size > room:  # this call's keys alone exceed the key budget: keep no new one
                    scratch, new, size = scratch + new, [], 0
                if over_rows or self.key_bytes + size > self.max_key_bytes:
                    self._settle(settle)  # eviction moves rows
                    self._evict(
                        needed,
                        others=min(self.rows // 2, self.rows - len(first)),
                        room=min(self.max_key_bytes // 2, room - size),
                    )
                    index = self._index
            values = compute(new + scratch, [first[k] for k in new + scratch])  # (M, R)
            self.computed += len(new) + len(scratch)
            if self._table.size(0) != self.rows:
                self._table = torch.empty(self.rows, values.size(1), dtype=values.dtype)
            at = len(self._keys)
            if at < self._lent:  # rows an earlier call returned for its own use only
                self._settle(settle)
            self._table[at : at + values.size(0)] = values
            if new:
                index.update((k, at + j) for j, k in enumerate(new))
                self._keys += new
                self.key_bytes += size
            if scratch:  # rows for this call only, after the held ones
                index.update((k, at + len(new) + j) for j, k in enumerate(scratch))
        rows = torch.tensor([index[k] for k in keys])
        self._uses += torch.bincount(rows, minlength=self.rows)
        self._lent = max(self._lent, len(self._keys) + len(scratch))
        if scratch:  # the scratch rows are free again
            for k in scratch:
                del index[k]
            self._uses[len(self._keys) :] = 0
        return self._table, rows

    def _settle(self, settle: Callable[[], None] | None) -> None:
        """Wait (``settle``) for the readers of rows returned so far, if any may be reading."""
        if settle is not None and self._lent:
            settle()
        self._lent = 0

    def _evict(self, needed: list[int], others: int, room: int) -> None:
        """Keep rows ``needed`` and the most used of the rest, at most ``others`` of them with
        keys of at most ``room`` bytes, compacted to the front."""
        n = len(self._keys)
        uses = self._uses[:n].clone()
        rest = torch.ones(n, dtype=torch.bool)
        rest[needed] = False
        candidates = rest.nonzero().squeeze(1)
        top = candidates.index_select(
            0, uses.index_select(0, candidates).topk(min(others, candidates.numel())).indices
        )  # most used first
        fits, held = 0, 0
        for i in top.tolist():
            held += key_size(self._keys[i], self.longest)
            if held > room:
                break
            fits += 1
        kept = torch.cat([torch.tensor(needed, dtype=torch.long), top[:fits]]).sort().values
        self._table[: kept.numel()] = self._table.index_select(0, kept)
        self._keys = [self._keys[i] for i in kept.tolist()]
        self._index = {k: i for i, k in enumerate(self._keys)}
        self._uses.zero_()
        self._uses[: kept.numel()] = uses.index_select(0, kept) // 2
        self.key_bytes = sum(key_size(k, self.longest) for k in self._keys)
