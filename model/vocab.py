"""String <-> id tables, and the token features the network reads.

Id 0 is padding and id 1 the unknown string in every table. Tables are saved in the artifact
as UTF-8 text, one entry a line, in id order (entries never contain a newline).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PAD, UNK = 0, 1
_DIGITS = re.compile(r"\d")


class Vocab:
    """An ordered set of strings; ``vocab[s]`` is the id of ``s`` or ``UNK``."""

    def __init__(self, items: Iterable[str] = ()) -> None:
        self.itos: list[str] = ["<pad>", "<unk>"]
        self.stoi: dict[str, int] = {}
        for s in items:
            self.add(s)

    def add(self, s: str) -> int:
        if "\n" in s:
            raise ValueError(f"vocabulary entries cannot contain a newline: {s!r}")
        i = self.stoi.get(s)
        if i is None:
            i = self.stoi[s] = len(self.itos)
            self.itos.append(s)
        return i

    def __getitem__(self, s: str) -> int:
        return self.stoi.get(s, UNK)

    def __contains__(self, s: str) -> bool:
        return s in self.stoi

    def __len__(self) -> int:
        return len(self.itos)

    def dumps(self) -> str:
        return "\n".join(self.itos[2:])

    @classmethod
    def loads(cls, text: str) -> "Vocab":
        """The table ``dumps`` wrote (built in one pass: loading a model reads 40,000 words)."""
        vocab = cls()
        items = text.split("\n") if text else []
        vocab.stoi = {s: i for i, s in enumerate(items, start=2)}
        if len(vocab.stoi) != len(items):  # a repeated entry: fall back to add's first-wins ids
            return cls(items)
        vocab.itos += items
        return vocab


def word_key(token: str) -> str:
    """The word table's key: lower case (the pretrained vectors are uncased)."""
    return token.lower()


def digit_key(token: str) -> str:
    """The fallback key: lower case with every digit replaced by 0 (``1996`` -> ``0000``)."""
    return _DIGITS.sub("0", token.lower())


# Casing / shape classes of a token (the network embeds the id).
CASES = ("<pad>", "other", "lower", "upper", "title", "numeric", "has_digit", "mixed", "punct")


def case_id(token: str) -> int:
    """The casing / shape class of a token, an index into ``CASES``."""
    if token.isdigit():
        return 5
    if token.islower():
        return 2
    if token.isupper():
        return 3
    if token.istitle():
        return 4
    if any(c.isdigit() for c in token):
        return 6
    if any(c.isalpha() for c in token):
        return 7
    return 8 if not token.isalnum() else 1
