"""Hostile text costs time linear in its length.

Each shape repeats a few characters that let some alternative of the token pattern (or a later
stage of the per-text path) start at every position and fail late, which is quadratic unless the
pattern prevents it. For each, the time on a text of 4n characters must stay well below 16
times that on n characters (quadratic), close to 4 (linear). Times are the best of several runs,
on lengths where a run takes milliseconds, so that a busy machine does not make a linear stage
look quadratic.
"""

import gc
import math
import time
from collections.abc import Callable

import pytest

from tagstream.model.chunks import chunk_bounds
from tagstream.model.features import Featurizer
from tagstream.model.tokenize import tokenize_offsets
from tagstream.model.vocab import Vocab

_RATIO = 8  # time(4n) / time(n) allowed: 4 when linear, 16 when quadratic
_MIN_SECONDS = 0.002  # n doubles until a run on n characters takes this long
_MAX_N = 64_000
_RUNS = (3, 6)  # at least, at most: runs of each length, until the best times pass


def _repeat(unit: str) -> Callable[[int], str]:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


def _address_after(prefix: str, unit: str) -> Callable[[int], str]:
    """A long run of e-mail characters entered from outside (``prefix``), then an address host."""
    return lambda n: prefix + _repeat(unit)(n) + "@x.com"


_ENGLISH = {
    # e-mail characters [\w.+-] that are not one token: the e-mail alternative at every start
    "a_": _repeat("a_"),
    "_": _repeat("_"),
    "+.1": _repeat("+.1"),
    "a+": _repeat("a+"),
    "-.": _repeat("-."),
    ".-": _repeat(".-"),
    "a..": _repeat("a.."),
    "..a": _repeat("..a"),
    "a.a.b_": _repeat("a.a.b_"),
    "a_ then @x": lambda n: _repeat("a_")(n) + "@x",
    "O'a_ … @x.com": _address_after("O'", "a_"),
    "'s.a_ … @x.com": _address_after("'s", ".a_"),
    "a&b_ … @x.com": _address_after("a&", "b_"),
    "a@b.c-d@ …": _repeat("a@b.c-d"),
    "a@": _repeat("a@"),
    "x@ then host b.": lambda n: "x@" + _repeat("b.")(n),
    # the other alternatives
    "www.,": lambda n: "www." + _repeat(",")(n),
    "http://": _repeat("http://"),
    "www.": _repeat("www."),
    "a.": _repeat("a."),
    "A.": _repeat("A."),
    "U.S.a": _repeat("U.S.a"),
    "Mr.": _repeat("Mr."),
    "'": _repeat("'"),
    "'s": _repeat("'s"),
    "a'": _repeat("a'"),
    "1,": _repeat("1,"),
    "1.": _repeat("1."),
    "(1.": _repeat("(1."),
    "(1,1": lambda n: "(" + _repeat("1,")(n) + "x",
    "1 then =": lambda n: "1" * n + "x=",
    "A$": _repeat("A$"),
    "don'": _repeat("don'"),
    "a then n't": lambda n: "a" * n + "n'tx",
    "-": _repeat("-"),
    ".": _repeat("."),
    "a\u0301": _repeat("a\u0301"),
    "\u0301a_": _repeat("\u0301a_"),
    "a\u200d": _repeat("a\u200d"),
    "\ud800": _repeat("\ud800"),
    "emoji": _repeat("\U0001f600"),
}


def _time(f: Callable[[], object]) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        f()
        return time.perf_counter() - start
    finally:
        gc.enable()


def _growth(run: Callable[[int], Callable[[], object]]) -> tuple[int, float]:
    """``(n, best time of 4n / best time of n)`` for ``run(n)``, a call on input of size n."""
    n = 1000
    while True:
        small = run(n)
        if _time(small) >= _MIN_SECONDS or n >= _MAX_N:
            break
        n *= 2
    large = run(4 * n)
    best_small = best_large = math.inf
    for i in range(_RUNS[1]):
        best_small = min(best_small, _time(small))
        best_large = min(best_large, _time(large))
        if i + 1 >= _RUNS[0] and best_large < _RATIO * best_small:
            break
    return n, best_large / best_small


@pytest.mark.parametrize("shape", list(_ENGLISH))
def test_english_tokenizer_is_linear(shape):
    text = _ENGLISH[shape]
    n, ratio = _growth(lambda n: lambda t=text(n): tokenize_offsets(t, "conll-en"))
    assert ratio < _RATIO, f"{shape!r}: {4 * n} characters take {ratio:.1f} times {n}"


@pytest.mark.parametrize("unit", ["中", "a ", "\U0001f600"])
def test_char_tokenizer_is_linear(unit):
    n, ratio = _growth(lambda n: lambda t=_repeat(unit)(n): tokenize_offsets(t, "char"))
    assert ratio < _RATIO, f"{unit!r}: {4 * n} characters take {ratio:.1f} times {n}"


@pytest.mark.parametrize("unit", ["a_", "中", "a ", "a.", ". ", "a\n\n"])
def test_chunk_bounds_are_linear(unit):
    def run(n: int) -> Callable[[], object]:
        text = _repeat(unit)(n)
        offsets = tokenize_offsets(text, "char")
        starts, ends = [a for a, _ in offsets], [b for _, b in offsets]
        return lambda: chunk_bounds(text, starts, ends, 128)

    n, ratio = _growth(run)
    assert ratio < _RATIO, f"{unit!r}: {4 * n} tokens take {ratio:.1f} times {n}"


@pytest.mark.parametrize("unit", ["a", "a" * 1000])
def test_word_gazetteer_is_linear(unit):
    """Every token begins entries of every length up to the longest (``a``, ``a a``, ...)."""
    lexicon = [" ".join([unit] * k) + "\tplace" for k in range(1, 7)]
    featurizer = Featurizer(Vocab(), ["gazetteer_words"], None, 20, lexicon=lexicon)

    def run(n: int) -> Callable[[], object]:
        tokens = [unit.upper()] * (n // len(unit) + 1)
        return lambda: featurizer.columns(tokens)

    n, ratio = _growth(run)
    assert ratio < _RATIO, f"{unit[:5]!r}: {4 * n} tokens take {ratio:.1f} times {n}"


@pytest.mark.parametrize("unit", ["中", "中国", "a"])
def test_lexicon_features_are_linear(unit):
    """A text made of lexicon words only: every position begins words of every length."""
    words = [unit * k for k in range(1, 9)]
    featurizer = Featurizer(
        Vocab(words), ["lexicon"], None, 20, lexicon=[f"{w}\tplace" for w in words]
    )

    def run(n: int) -> Callable[[], object]:
        tokens = list(_repeat(unit)(n))
        return lambda: (featurizer.columns(tokens), featurizer.gazetteer_ids(tokens))

    n, ratio = _growth(run)
    assert ratio < _RATIO, f"{unit!r}: {4 * n} tokens take {ratio:.1f} times {n}"
