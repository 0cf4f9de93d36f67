"""Tokens -> the id tensors the network reads (shared by training and the tagger).

Per token: a word id (lower-cased lookup, then digits -> 0, then unknown), the extra features of
the artifact (``case``: casing/shape class; ``bigram_left`` / ``bigram_right``: ids of the
character bigrams ending / starting at the token, for character-level languages; ``lexicon``:
whether the token begins, is inside or ends a 2-4 token word of the artifact's lexicon;
``gazetteer``: the same for the lexicon's typed entries of 2-8 tokens, one bit triple per type of
``GAZETTEER_TYPES``; ``gazetteer_words``: the same for entries of 1-6 whole words, matched in
lower case, one bit triple per type of ``WORD_GAZETTEER_TYPES``), and the first
``max_word_chars`` code points of the token for the character CNN.

A lexicon is a list of lines: ``word`` or ``word<TAB>type`` (a gazetteer entry, also a word). The
entries of ``gazetteer_words`` are lower-cased tokens joined by one space (``new york``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from sys import getsizeof

import torch
from torch import Tensor

from .token_cache import LONGEST
from .vocab import CASES, UNK, Vocab, case_id, digit_key, word_key

FEATURES = ("case", "bigram_left", "bigram_right", "lexicon", "gazetteer", "gazetteer_words")
LEXICON_SIZE = (
    9  # ids of the lexicon feature: 0 padding, 1 + bitmask of (begins, inside, ends) a word
)
GAZETTEER_TYPES = ("person", "place", "organisation")
GAZETTEER_SIZE = 1 + 2 ** (3 * len(GAZETTEER_TYPES))  # 0 padding, 1 + (begins, inside, ends) a type
WORD_GAZETTEER_TYPES = ("place", "first_name", "surname")  # gazetteer_words: GAZETTEER_SIZE ids too
WORD_GAZETTEER_LONGEST = 6  # tokens of the longest gazetteer_words entry matched
_LEXICON_LENGTHS = (2, 3, 4)
_GAZETTEER_LENGTHS = range(2, 9)
# the (word id, case id) of distinct tokens, kept: at most this many bytes of keys and entries
# (some 90,000 words; then emptied). Tokens longer than LONGEST code points are never kept.
CACHE_BYTES = 16 * 2**20
WORD_ENTRY_BYTES = 128  # besides the key: the (word id, case id) tuple, its ints, the dict slot


def parse_lexicon(
    lines: Iterable[str], types: Sequence[str] = GAZETTEER_TYPES
) -> tuple[frozenset[str], dict[str, int]]:
    """``(words, {word: bitmask of its types})`` of lexicon lines, bit t for ``types[t]``;
    ValueError names an unknown type."""
    words: set[str] = set()
    typed: dict[str, int] = {}
    for line in lines:
        word, _, kind = line.partition("\t")
        words.add(word)
        if kind:
            if kind not in types:
                raise ValueError(f"lexicon entry {line!r}: unknown type {kind!r} (known: {types})")
            typed[word] = typed.get(word, 0) | 1 << types.index(kind)
    return frozenset(words), typed


class Featurizer:
    """Maps a text's tokens to ``(features (N, F) int64, chars (N, W) int32)``; F = 1 + extras."""

    def __init__(
        self,
        words: Vocab,
        features: list[str],
        bigrams: Vocab | None,
        max_word_chars: int,
        lexicon: Iterable[str] | None = None,
    ) -> None:
        unknown = set(features) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {FEATURES}")
        if ("bigram_left" in features or "bigram_right" in features) and bigrams is None:
            raise ValueError("bigram features need a bigram vocabulary")
        if "gazetteer" in features and "gazetteer_words" in features:
            raise ValueError("gazetteer and gazetteer_words read one lexicon: not both")
        self.lexicon, self.gazetteer = parse_lexicon(lexicon or (), gazetteer_types(features))
        self._words = dict.fromkeys(self.lexicon, 1)  # every word, of the one untyped kind
        if "lexicon" in features and lexicon is None:
            raise ValueError("the lexicon feature needs a lexicon")
        for f in ("gazetteer", "gazetteer_words"):
            if f in features and not self.gazetteer:
                raise ValueError(f"the {f} feature needs a lexicon with typed entries")
        # gazetteer_words: the first token of an entry -> the most tokens of an entry it begins
        self._firsts: dict[str, int] = {}
        if "gazetteer_words" in features:
            for entry in self.gazetteer:
                parts = entry.split(" ")
                if len(parts) <= WORD_GAZETTEER_LONGEST:
                    self._firsts[parts[0]] = max(self._firsts.get(parts[0], 0), len(parts))
        self.words = words
        self.features = list(features)
        self.bigrams = bigrams
        self.max_word_chars = max_word_chars
        self._use_case = "case" in features
        self._cache: dict[str, tuple[int, int]] = {}
        self.cache_bytes = 0  # the cache's keys and entries, at most CACHE_BYTES
        self._span = torch.arange(max_word_chars)  # (W,)

    def _word(self, tok: str) -> tuple[int, int]:
        hit = self._cache.get(tok)
        if hit is None:
            stoi = self.words.stoi
            wid = stoi.get(word_key(tok))
            if wid is None:
                wid = stoi.get(digit_key(tok), UNK)
            hit = (wid, case_id(tok))
            if len(tok) <= LONGEST:
                size = getsizeof(tok) + WORD_ENTRY_BYTES
                if self.cache_bytes + size > CACHE_BYTES:
                    self._cache.clear()
                    self.cache_bytes = 0
                self._cache[tok] = hit
                self.cache_bytes += size
        return hit

    def columns(self, tokens: list[str]) -> list[list[int]]:
        """One list of ids per column (word, then each extra feature) for ``tokens``."""
        pairs = [self._word(t) for t in tokens]
        cols = [[p[0] for p in pairs]]
        for f in self.features:
            if f == "case":
                cols.append([p[1] for p in pairs])
            elif f == "bigram_left":
                stoi = self.bigrams.stoi  # type: ignore[union-attr]
                cols.append([stoi.get(a + b, UNK) for a, b in zip(["<s>"] + tokens[:-1], tokens)])
            elif f == "bigram_right":
                stoi = self.bigrams.stoi  # type: ignore[union-attr]
                cols.append([stoi.get(a + b, UNK) for a, b in zip(tokens, tokens[1:] + ["</s>"])])
            elif f == "lexicon":
                cols.append(self.lexicon_ids(tokens))
            elif f == "gazetteer":
                cols.append(self.gazetteer_ids(tokens))
            elif f == "gazetteer_words":
                cols.append(self.word_gazetteer_ids(tokens))
        return cols

    def lexicon_ids(self, tokens: list[str]) -> list[int]:
        """1 + bitmask per token: 1 begins, 2 is inside, 4 ends a lexicon word of 2-4 tokens."""
        return _marks(tokens, self._words, _LEXICON_LENGTHS, 1)

    def gazetteer_ids(self, tokens: list[str]) -> list[int]:
        """1 + bitmask per token: for the type of index t, bit 3t begins, 3t+1 is inside, 3t+2
        ends a typed lexicon entry of 2-8 tokens."""
        return _marks(tokens, self.gazetteer, _GAZETTEER_LENGTHS, len(GAZETTEER_TYPES))

    def word_gazetteer_ids(self, tokens: list[str]) -> list[int]:
        """1 + bitmask per token: for the type of index t in ``WORD_GAZETTEER_TYPES``, bit 3t
        begins, 3t+1 is inside, 3t+2 ends an entry of 1-6 tokens (lower-cased, space-joined); a
        one-token entry both begins and ends at its token."""
        low = [t.lower() for t in tokens]
        n = len(low)
        bits = [0] * n
        firsts, typed = self._firsts, self.gazetteer
        for j, first in enumerate(low):
            longest = firsts.get(first)
            if longest is None:
                continue
            key = first
            for length in range(1, min(longest, n - j) + 1):
                if length > 1:
                    key = f"{key} {low[j + length - 1]}"
                found = typed.get(key, 0)
                if found:
                    _mark(bits, j, length, found, len(WORD_GAZETTEER_TYPES))
        return [b + 1 for b in bits]

    def encode(self, text: str, offsets: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """``(features (N, 1+E) int64, chars (N, W) int32 code points, 0-padded)`` for the tokens.

        W is the length of the longest token, at most ``max_word_chars``.
        """
        n = len(offsets)
        if n == 0:
            return torch.zeros(0, 1 + len(self.features), dtype=torch.long), torch.zeros(
                0, self.max_word_chars, dtype=torch.int32
            )
        tokens = [text[a:b] for a, b in offsets]
        feats = torch.tensor(self.columns(tokens), dtype=torch.long).t().contiguous()  # (N, F)
        cps = torch.frombuffer(
            bytearray(text.encode("utf-32-le", "surrogatepass")), dtype=torch.int32
        )  # (L,)
        bounds = torch.tensor(offsets, dtype=torch.long)  # (N, 2)
        width = min(self.max_word_chars, int((bounds[:, 1] - bounds[:, 0]).max()))
        idx = bounds[:, :1] + self._span[:width].unsqueeze(
            0
        )  # (N, W), W = longest token, at most max_word_chars
        valid = idx < bounds[:, 1:]  # (N, W)
        chars = torch.where(valid, cps[idx.clamp(max=cps.numel() - 1)], 0)  # (N, W)
        return feats, chars


def table_rows(feature: str, bigrams: int) -> int:
    """Rows of the network's embedding table for an extra feature (``bigrams``: the size of the
    bigram vocabulary)."""
    fixed = {
        "case": len(CASES),
        "lexicon": LEXICON_SIZE,
        "gazetteer": GAZETTEER_SIZE,
        "gazetteer_words": GAZETTEER_SIZE,
    }
    return fixed.get(feature, bigrams)


def gazetteer_types(features: Sequence[str]) -> tuple[str, ...]:
    """The types of the lexicon's typed entries for an artifact with these features."""
    return WORD_GAZETTEER_TYPES if "gazetteer_words" in features else GAZETTEER_TYPES


def _marks(
    tokens: list[str], entries: dict[str, int], lengths: Sequence[int], kinds: int
) -> list[int]:
    """1 + bitmask per token: for each kind t (bit t of an entry's value), bit 3t where an entry
    of ``lengths`` tokens begins, 3t+1 inside it, 3t+2 where it ends."""
    n = len(tokens)
    bits = [0] * n
    for j in range(n - 1):
        for length in lengths:
            if j + length > n:
                break
            found = entries.get("".join(tokens[j : j + length]), 0)
            if found:  # most windows are no entry: no call for them
                _mark(bits, j, length, found, kinds)
    return [b + 1 for b in bits]


def _mark(bits: list[int], j: int, length: int, found: int, kinds: int) -> None:
    """Marks in ``bits`` an entry of ``length`` tokens from token ``j`` for each kind t set in
    ``found``: bit 3t where it begins, 3t+1 inside it, 3t+2 where it ends."""
    for t in range(kinds):
        if found >> t & 1:
            bits[j] |= 1 << 3 * t
            bits[j + length - 1] |= 4 << 3 * t
            for k in range(j + 1, j + length - 1):
                bits[k] |= 2 << 3 * t
