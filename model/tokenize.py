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

An artifact stores ``spec(kind)``: the kind, the version of its rules and their settings (what is
split off, what is kept whole). ``check_spec`` accepts only a version this code implements, with
exactly its settings; any change to the rules below must bump that kind's version (and keep the
old rules if artifacts made with them should still load).
"""

from __future__ import annotations

import copy
import re
import string
import sys
import unicodedata
from collections.abc import Sequence

from . import unicode_marks

KINDS = ("conll-en", "char")


def mark_ranges(scan: bool = False) -> list[tuple[int, int]]:
    """Code-point ranges of every combining mark (Unicode categories M*), first and last
    included: the stored table when it is of this Python's Unicode version (unless ``scan``),
    else scanned from ``unicodedata``."""
    if not scan and unicodedata.unidata_version == unicode_marks.UNIDATA_VERSION:
        pairs = (r.split("-") for r in unicode_marks.RANGES.split())
        return [(int(a, 16), int(b, 16)) for a, b in pairs]
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp))[0] == "M":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return ranges


def _mark_class() -> str:
    """A regex character class body of every combining mark (Unicode categories M*)."""
    ranges = mark_ranges()
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


_W = rf"(?:[^\W_]|[{_mark_class()}\u200c\u200d])"  # a letter/digit, or a mark joined to one
_ABBREVIATIONS = (
    "Mr|Mrs|Ms|Dr|St|Jr|Sr|Inc|Corp|Co|Ltd|Bros|Cos|vs|Gen|Lt|Col|Sen|Rep|Gov|Jan|Feb|Mar|Apr|"
    "Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Mt|Ft|Prof|Capt|Sgt|Adm|Rev|Messrs|Ave|Cmdr|Maj|Pte|Plc|"
    "No|Nos|Pty|Bhd|Ass|Dept|Gov|Ore|Calif|Mass|Conn|Ill|Fla|Mich|Penn|Wash|Ariz|Colo|Tenn|"
    "Okla|Ind|Wis|Minn|Ky|Va|Ga|La|Md|Mo|Neb|Nev|Del|Ala|Kan|Miss|etc|approx|Inc"
)
_CLITIC = r"(?:'(?:[sSdDmM]|re|RE|ve|VE|ll|LL)|[nN]'[tT])(?!\w)"
_URL = r"(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,;:!?)\]']"
# An e-mail address is a run of e-mail characters, "@" and a dotted host. Whether the run's
# e-mail alternative matches depends on the run alone (the "@" that must follow it, the host
# after that), not on where inside the run matching starts; so the pattern tries it only where
# the run starts (the lookbehind), and ``_pattern_tokens`` handles a match that ends inside a run
# that is an address. Tried at every position of a run, it read the rest of the run each time:
# time quadratic in the run's length ("a_" * n, "+.1" * n).
_EMAIL_CHAR = r"[\w.+-]"
_EMAIL_HOST = r"@\w+(?:\.\w+)+"
_CONLL_EN = re.compile(
    "|".join(
        (
            _URL,  # URL
            rf"(?<!{_EMAIL_CHAR}){_EMAIL_CHAR}+{_EMAIL_HOST}",  # e-mail
            r"(?:[^\W\d_]\.){2,}(?![^\W\d_])",  # U.S.  U.N.  a.m.
            rf"(?:{_ABBREVIATIONS})\.(?!\w)",  # Mr.  Corp.
            r"[A-Z]\.(?=\s|$)",  # an initial: J.
            r"\d{1,2}\.(?=\s)|\d+=",  # a rank in a list: "3."  "1="
            r"(?<![^\s(])[+-]?\.?\d+(?:[.,:]\d+)*(?=[\s)]|$)",  # +44  -0.5  .496
            r"[A-Z]{1,2}\$",  # C$  US$
            _CLITIC,  # 's  n't
            rf"{_W}+?(?=[nN]'[tT](?!\w))",  # "do" of "don't"
            # words
            rf"{_W}+(?:(?:[-.&/]|(?<=\d)[,:](?=\d)|'(?!(?:[sSdDmMtT]|re|ve|ll)(?!\w)))(?:{_W})+)*",
            r"\.{2,}|-{2,}|[\uD800-\uDFFF]|\S",  # ... -- and any other single symbol
        )
    )
)
_NON_SPACE = re.compile(r"\S")
_SPECS: dict[str, dict] = {
    # kind -> the version of its rules and their settings, as stored in artifacts (see check_spec)
    "conll-en": {
        "version": 1,
        "settings": {
            "split_on": ["whitespace", "punctuation"],
            "kept_whole": [
                "url",
                "email",
                "letter-dot abbreviation",
                "listed abbreviation",
                "initial",
                "list rank",
                "number",
                "currency prefix",
                "joined word",
            ],
            "word_joiners": ["-", ".", "&", "/", "'"],
            "number_joiners": [".", ",", ":"],
            "abbreviations": sorted(set(_ABBREVIATIONS.split("|"))),
            "clitics": ["'s", "'d", "'m", "'re", "'ve", "'ll", "n't"],
            "symbol_runs": ["...", "--"],
            "other_symbols": "one token per code point",
            "combining_marks": "attached to the preceding letter",
            "gold_token_separator": " ",
        },
    },
    "char": {
        "version": 1,
        "settings": {"split_on": ["whitespace", "every code point"], "gold_token_separator": ""},
    },
}
_CHUNK = re.compile(r"\S+")


# printable ASCII symbols: each, standing alone between whitespace, is one token
_LONE_SYMBOLS = frozenset(string.punctuation)


# The start and end of each run of e-mail characters that is followed by "@" and a host.
_EMAIL_RUN = re.compile(rf"(?<!{_EMAIL_CHAR}){_EMAIL_CHAR}+(?={_EMAIL_HOST})")
# What the token pattern matches at a position inside such a run: the URL alternative, which comes
# first, or the e-mail alternative from there (the other alternatives come after it).
_INSIDE_EMAIL_RUN = re.compile(rf"{_URL}|{_EMAIL_CHAR}+{_EMAIL_HOST}")


def _pattern_tokens(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    """Append the tokens of the chunk ``text[start:end]`` (no whitespace, whitespace or the text's
    ends around it), matched by the full pattern, to ``out``.

    The matches tile the chunk: each starts where the last ended. One can end inside a run of
    e-mail characters that it entered from outside (``jean.o'brien+news@example.com``: the word
    ``jean.o'brien`` ends inside the run ``brien+news``); if that run is followed by "@" and a
    host, the e-mail alternative matches from there, which ``_CONLL_EN`` (trying it only where a
    run starts) would miss: ``_INSIDE_EMAIL_RUN`` matches there instead. Matching stops at the
    first match past the chunk; lookarounds see the whole text."""
    has_at = text.find("@", start + 1, end) >= 0  # after some character
    runs = [r.span() for r in _EMAIL_RUN.finditer(text, start, end)] if has_at else []
    k = 0
    pos = start
    while pos < end:
        for t in _CONLL_EN.finditer(text, pos):
            a = t.start()
            if a >= end:
                return
            while k < len(runs) and runs[k][1] <= a:
                k += 1
            if k < len(runs) and runs[k][0] < a:  # inside a run of an address
                inside = _INSIDE_EMAIL_RUN.match(text, a)
                if inside is not None:  # always: the run is followed by "@" and a host
                    out.append(inside.span())
                    pos = inside.end()
                    break
            out.append(t.span())
        else:
            return


def _conll_en(text: str) -> list[tuple[int, int]]:
    # Fast paths: a whitespace-separated chunk of letters/digits only, or a lone ASCII symbol
    # (a fifth of the chunks of news text), is one token (the full pattern would give the same,
    # tests/model/test_tokenize.py checks it on the corpora); anything else goes through the
    # full pattern.
    out: list[tuple[int, int]] = []
    for m in _CHUNK.finditer(text):
        chunk = m.group()
        if chunk.isalnum() or chunk in _LONE_SYMBOLS:
            out.append(m.span())
        else:
            _pattern_tokens(text, m.start(), m.end(), out)
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


def spec(kind: str) -> dict:
    """What an artifact stores about its tokenizer: kind, rules version, settings, Unicode version.

    The Unicode version (of Python's ``unicodedata``, which decides what is a letter or a mark) is
    informational and not checked.
    """
    if kind not in _SPECS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {KINDS}")
    return {"kind": kind, **copy.deepcopy(_SPECS[kind]), "unicode": unicodedata.unidata_version}


def check_spec(stored: object, legacy: bool = False) -> str:
    """The kind of a stored tokenizer spec, or ValueError saying why this code cannot tokenise for
    it.

    ``legacy``: an artifact of format version 1, which stored only ``{"kind": ...}``; its rules are
    version 1 (the only ones there were).
    """
    if not isinstance(stored, dict):
        raise ValueError(f"expected an object with a kind and a version, got {stored!r}")
    kind = stored.get("kind")
    if kind not in _SPECS:
        raise ValueError(f"unknown kind {kind!r}; this tagstream implements {list(KINDS)}")
    if legacy and set(stored) == {"kind"}:
        return kind
    version, ours = stored.get("version"), _SPECS[kind]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{kind}: no rules version (got {version!r})")
    if version != ours["version"]:
        newer = "; upgrade tagstream" if version > ours["version"] else ""
        raise ValueError(
            f"{kind} rules version {version} is not implemented here (this tagstream has version "
            f"{ours['version']}){newer}"
        )
    if stored.get("settings") != ours["settings"]:
        theirs = stored.get("settings")
        diff = sorted(
            k
            for k in set(ours["settings"]) | set(theirs if isinstance(theirs, dict) else {})
            if not isinstance(theirs, dict) or theirs.get(k) != ours["settings"].get(k)
        )
        raise ValueError(
            f"{kind} version {version} settings differ from this tagstream's in {diff}"
        )
    return kind


def token_separator(kind: str) -> str:
    """What joins gold tokens into a text that ``kind`` tokenises back into them (" " or "")."""
    if kind not in _SPECS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {KINDS}")
    return _SPECS[kind]["settings"]["gold_token_separator"]


def tokenize(text: str, kind: str = "conll-en") -> list[str]:
    """The tokens of ``text`` as strings (``text[start:end]`` for each offset pair)."""
    return [text[a:b] for a, b in tokenize_offsets(text, kind)]


def join_tokens(tokens: Sequence[str], sep: str = " ") -> tuple[str, list[tuple[int, int]]]:
    """``(text, offsets)`` of tokens joined by ``sep``."""
    offsets = []
    pos = 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok) + len(sep)
    return sep.join(tokens), offsets
