"""Read CoNLL-style corpora: one token a line, the tag in the last column, blank lines between
sentences, ``-DOCSTART-`` lines ignored, columns separated by tabs or spaces.

>>> read_conll_lines(["-DOCSTART- -X- O", "", "EU NNP B-ORG", "rejects VBZ O", ""])
[(['EU', 'rejects'], ['B-ORG', 'O'])]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import random
from collections.abc import Iterable

from ..spans import split_tag

Sentence = tuple[list[str], list[str]]  # (tokens, tags)


def read_conll_lines(lines: Iterable[str], source: str = "<lines>") -> list[Sentence]:
    """Sentences of a CoNLL file's lines; ValueError naming the line for a malformed one."""
    sents: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n").replace("\ufeff", "")  # byte-order marks count as nothing
        if not line.strip():
            if tokens:
                sents.append((tokens, tags))
                tokens, tags = [], []
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        cols = [c.strip() for c in cols if c.strip()]
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2:
            raise ValueError(f"{source}:{n}: expected a token and a tag, got {line!r}")
        try:
            split_tag(cols[-1])
        except ValueError as e:
            raise ValueError(f"{source}:{n}: {e}") from None
        tokens.append(cols[0])
        tags.append(cols[-1])
    if tokens:
        sents.append((tokens, tags))
    return sents


def read_conll(path: str | os.PathLike) -> list[Sentence]:
    """Sentences of a CoNLL file (UTF-8)."""
    with open(path, encoding="utf-8") as f:
        return read_conll_lines(f, os.fspath(path))


def split_dev(
    sents: list[Sentence], fraction: float, seed: int
) -> tuple[list[Sentence], list[Sentence]]:
    """``(train, dev)``: a seeded random ``fraction`` of the sentences set aside as dev.

    Rule: shuffle sentence indices with ``random.Random(seed)``; the first
    ``round(fraction * len)`` indices are dev; both parts keep the file order.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"dev fraction must be in (0, 1), got {fraction}")
    order = list(range(len(sents)))
    random.Random(seed).shuffle(order)
    dev_ids = set(order[: round(fraction * len(sents))])
    return [s for i, s in enumerate(sents) if i not in dev_ids], [
        s for i, s in enumerate(sents) if i in dev_ids
    ]


def dev_halves(sents: list[Sentence]) -> tuple[list[Sentence], list[Sentence]]:
    """A dev file's first and last halves in file order, as ``--dev-train`` splits it."""
    half = len(sents) // 2
    return sents[:half], sents[half:]


def split_latest(sents: list[Sentence], fraction: float) -> tuple[list[Sentence], list[Sentence]]:
    """``(earlier, latest)``: the last ``round(fraction * len)`` sentences in file order set aside.

    CoNLL-2003's training file is in time order, and its test split is later than its dev split:
    the latest training sentences are the nearest thing to text the model will see after it was
    trained, so they make a held-out slice that dev selection never looks at.

    >>> split_latest([(["a"], ["O"]), (["b"], ["O"]), (["c"], ["O"]), (["d"], ["O"])], 0.25)
    ([(['a'], ['O']), (['b'], ['O']), (['c'], ['O'])], [(['d'], ['O'])])
    """
    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    cut = len(sents) - round(fraction * len(sents))
    return sents[:cut], sents[cut:]


SPLIT_SEED = 13  # the seed of the dev slice cut from train when a corpus has no dev split


def add_split_options(ap: argparse.ArgumentParser, scoring: bool, holdout: bool = True) -> None:
    """The options that cut train into slices, the same for every command: ``--dev-fraction``,
    ``--split-seed`` and ``--holdout-fraction``. ``scoring``: the command scores a slice
    `train` set aside (`scored_slice`), rather than setting one aside."""
    if scoring:
        dev_help = "score only the dev slice set aside by train (e.g. 0.05 for MSRA)"
        holdout_help = (
            "score only the held-out slice set aside by train (the last F of the data, or with "
            "--dev-fraction of what the dev slice leaves); with --recipe, the recipe as trained "
            "with that slice held out (--model: such a run), its dev and held-out slice"
        )
    else:
        dev_help = "slice of train used as dev when --dev is not given"
        holdout_help = (
            "set the latest (last in file order) training sentences aside as a held-out slice: "
            "never trained on, never used to select, scored and stored with the artifact "
            "(0: none)"
        )
    ap.add_argument("--dev-fraction", type=float, default=0.0 if scoring else 0.05, help=dev_help)
    ap.add_argument(
        "--split-seed", type=int, default=SPLIT_SEED, help="seed of the dev slice (split_dev)"
    )
    if holdout:
        ap.add_argument("--holdout-fraction", type=float, default=0.0, help=holdout_help)


def scored_slice(
    sents: list[Sentence], dev_fraction: float, split_seed: int, holdout_fraction: float = 0.0
) -> list[Sentence]:
    """The slice of ``sents`` that train set aside with these options: the held-out slice if
    ``holdout_fraction``, else the dev slice if ``dev_fraction``, else all of them. As in train,
    the dev slice is cut first and the held-out slice from what it leaves."""
    if dev_fraction:
        rest, dev = split_dev(sents, dev_fraction, split_seed)
        return split_latest(rest, holdout_fraction)[1] if holdout_fraction else dev
    if holdout_fraction:
        return split_latest(sents, holdout_fraction)[1]
    return sents


def data_dir() -> pathlib.Path:
    """The corpora: ``$TAGSTREAM_DATA_DIR``, default ``../shared/data`` beside the repository."""
    env = os.environ.get("TAGSTREAM_DATA_DIR")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
