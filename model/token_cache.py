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
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import torch

Compute = Callable[[Sequence[Hashable], list[int]], torch.Tensor]


class TokenCache:
    """Rows of ``compute(keys, first)`` for distinct keys, kept between calls.

    Bounded: when ``rows`` keys are held and more are needed, the more often used half is kept
    (counts halved, so that the cache follows a changing stream) and the rest dropped.
    """

    def __init__(self, rows: int) -> None:
        if rows < 2:
            raise ValueError(f"a token cache needs at least 2 rows, not {rows}")
        self.rows = rows
        self._index: dict[Hashable, int] = {}
        self._keys: list[Hashable] = []  # row -> key
        self._table = torch.empty(0)
        self._uses = torch.zeros(rows, dtype=torch.long)
        self.computed = 0  # keys computed so far (misses), for tests and benchmarks

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, keys: Sequence[Hashable], compute: Compute) -> torch.Tensor:
        """(N, R) rows for ``keys``, computing those not held.

        ``compute`` gets the new distinct keys and, for each, the position of its first
        occurrence in ``keys`` (to read ids known per position); it returns one row per key.
        """
        table, rows = self.locate(keys, compute)
        return table.index_select(0, rows)

    def locate(
        self, keys: Sequence[Hashable], compute: Compute
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``lookup`` without the copy: ``(table, rows)``, key i's values being ``table[rows[i]]``
        (the table is the cache's own, valid until the next call)."""
        first: dict[Hashable, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        if len(first) > self.rows:  # more distinct keys than the cache holds: compute, keep none
            self.computed += len(first)
            at = {k: j for j, k in enumerate(first)}
            return compute(list(first), list(first.values())), torch.tensor([at[k] for k in keys])
        index = self._index
        new = [k for k in first if k not in index]
        if new:
            if (
                len(index) + len(new) > self.rows
            ):  # keep this call's held keys and the most used others
                self._evict(
                    [index[k] for k in first if k in index],
                    others=min(self.rows // 2, self.rows - len(first)),
                )
                index = self._index
            values = compute(new, [first[k] for k in new])  # (M, R)
            self.computed += len(new)
            if self._table.size(0) != self.rows:
                self._table = torch.empty(self.rows, values.size(1), dtype=values.dtype)
            at = len(self._keys)
            self._table[at : at + len(new)] = values
            index.update((k, at + j) for j, k in enumerate(new))
            self._keys += new
        rows = torch.tensor([index[k] for k in keys])
        self._uses += torch.bincount(rows, minlength=self.rows)
        return self._table, rows

    def _evict(self, needed: list[int], others: int) -> None:
        """Keep rows ``needed`` and the ``others`` most used of the rest, compacted to the front."""
        n = len(self._keys)
        uses = self._uses[:n].clone()
        rest = torch.ones(n, dtype=torch.bool)
        rest[needed] = False
        candidates = rest.nonzero().squeeze(1)
        top = candidates.index_select(
            0, uses.index_select(0, candidates).topk(min(others, candidates.numel())).indices
        )
        kept = torch.cat([torch.tensor(needed, dtype=torch.long), top]).sort().values
        self._table[: kept.numel()] = self._table.index_select(0, kept)
        self._keys = [self._keys[i] for i in kept.tolist()]
        self._index = {k: i for i, k in enumerate(self._keys)}
        self._uses.zero_()
        self._uses[: kept.numel()] = uses.index_select(0, kept) // 2
