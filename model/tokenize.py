"""Tokenisation: raw text in, tokens with character offsets out.

Offsets are Python ``str`` indices (code points), end exclusive, so for every token
``text[start:end]`` is the token. Whitespace is never part of a token. Two kinds:

``"conll-en"``  English, split the way CoNLL-2003 tokens are split: whitespace first, then
    punctuation is split off words, except inside abbreviations (``U.S.``, ``Mr.``, ``J.``),
    numbers (``1,000``, ``3.5``, ``1996-08-22``), hyphenated words (``Anglo-Dutch``) and
    names with an apostrophe (``O'Neill``); the clitics ``'s ' n't 're 've 'll 'd 'm``
    become tokens of their own, as do ``...`` and ``--`` runs and every other symbol
    (emoji included). Combining marks stay with the letter they modify.

    >>> tokenize("Mr. O'Neill's U.S. trip cost $1,000.", "conll-en")
    ['Mr.', "O'Neill", "'s", 'U.S.', 'trip', 'cost', '$', '1,000', '.']

``"char"``  one token per non-whitespace code point (Chinese and other scripts written
    without spaces).

    >>> tokenize("中国 人", "char")
    ['中', '国', '人']

Both are pure functions of the text; they never raise for a ``str`` (lone surrogates and
control characters included) and raise ``ValueError`` for anything else or an unknown kind.
"""
from __future__ import annotations

import re
import sys
import unicodedata

KINDS = ("conll-en", "char")


def _mark_class() -> str:
    """A regex character class body of every combining mark (Unicode categories M*)."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp))[0] == "M":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
    )


_W = rf"(?:[^\W_]|[{_mark_class()}\u200c\u200d])"  # a letter/digit, or a mark joined to one
_ABBREVIATIONS = (
    "Mr|Mrs|Ms|Dr|St|Jr|Sr|Inc|Corp|Co|Ltd|Bros|Cos|vs|Gen|Lt|Col|Sen|Rep|Gov|Jan|Feb|Mar|Apr|"
    "Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Mt|Ft|Prof|Capt|Sgt|Adm|Rev|Messrs|Ave|Cmdr|Maj|Pte|Plc|"
    "No|Nos|Pty|Bhd|Ass|Dept|Gov|Ore|Calif|Mass|Conn|Ill|Fla|Mich|Penn|Wash|Ariz|Colo|Tenn|"
    "Okla|Ind|Wis|Minn|Ky|Va|Ga|La|Md|Mo|Neb|Nev|Del|Ala|Kan|Miss|etc|approx|Inc"
)
_CLITIC = r"(?:'(?:[sSdDmM]|re|RE|ve|VE|ll|LL)|[nN]'[tT])(?!\w)"
_CONLL_EN = re.compile(
    "|".join(
        (
            r"(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,;:!?)\]']",  # URL
            r"[\w.+-]+@\w+(?:\.\w+)+",  # e-mail
            r"(?:[^\W\d_]\.){2,}(?![^\W\d_])",  # U.S.  U.N.  a.m.
            rf"(?:{_ABBREVIATIONS})\.(?!\w)",  # Mr.  Corp.
            r"[A-Z]\.(?=\s|$)",  # an initial: J.
            r"\d{1,2}\.(?=\s)|\d+=",  # a rank in a list: "3."  "1="
            r"(?<![^\s(])[+-]?\.?\d+(?:[.,:]\d+)*(?=[\s)]|$)",  # +44  -0.5  .496
            r"[A-Z]{1,2}\$",  # C$  US$
            _CLITIC,  # 's  n't
            rf"{_W}+?(?=[nN]'[tT](?!\w))",  # "do" of "don't"
            rf"{_W}+(?:(?:[-.&/]|(?<=\d)[,:](?=\d)|'(?!(?:[sSdDmMtT]|re|ve|ll)(?!\w)))(?:{_W})+)*",  # words
            r"\.{2,}|-{2,}|[\uD800-\uDFFF]|\S",  # ... -- and any other single symbol
        )
    )
)
_NON_SPACE = re.compile(r"\S")
_CHUNK = re.compile(r"\S+")


def _conll_en(text: str) -> list[tuple[int, int]]:
    # Fast path: a whitespace-separated chunk of letters/digits only is one token (the full
    # pattern would give the same); anything else goes through the full pattern.
    out: list[tuple[int, int]] = []
    for m in _CHUNK.finditer(text):
        if m.group().isalnum():
            out.append(m.span())
        else:
            end = m.end()
            for t in _CONLL_EN.finditer(text, m.start()):  # no endpos: lookarounds see the whole text
                if t.start() >= end:
                    break
                out.append(t.span())
    return out


def tokenize_offsets(text: str, kind: str = "conll-en") -> list[tuple[int, int]]:
    """``(start, end)`` of every token of ``text`` in order; see the module docstring."""
    if not isinstance(text, str):
        raise ValueError(f"tokenize expects str, got {type(text).__name__}")
    if kind == "conll-en":
        return _conll_en(text)
    if kind == "char":
        return [m.span() for m in _NON_SPACE.finditer(text)]
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {KINDS}")


def tokenize(text: str, kind: str = "conll-en") -> list[str]:
    """The tokens of ``text`` as strings (``text[start:end]`` for each offset pair)."""
    return [text[a:b] for a, b in tokenize_offsets(text, kind)]
