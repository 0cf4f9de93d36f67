"""Texts of the shapes an untrusted producer may send, for timing the per-text path.

``pathological_texts(n)``: ``n`` characters each of shapes that give a tokeniser, a featuriser or
the network the most work per character: runs of one-character tokens (up to one token per
character), runs of the characters the token pattern's alternatives start on, no whitespace at
all, combining marks, emoji sequences, Chinese with punctuation, one token a paragraph (a chunk
each). ``ordinary_text(tokens, joiner, n)``: ``n`` characters of a model's own training
sentences, the yardstick the bound of a hostile text is set against (twice its time, or 3 s,
whichever is more).

``python -m tagstream.model.training.hostile --model en-news`` prints the seconds each takes to
tag (``Tagger.tag``, which ``tagstream tag`` runs, beyond start-up); `make bench` records it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import string
import sys
import time

from .conll import data_dir, read_conll

TEXT_CHARS = 100_000  # the worker's default TAGSTREAM_MAX_TEXT_CHARS
BOUND_S = 3.0  # no text may take longer than this, or twice an ordinary text, whichever is more

# a model's training file and how its tokens join into text, for its ordinary text
TRAINING_TEXT = {
    "en-news": ("conll2003/train.txt", " "),
    "en-social": ("wnut17/train.conll", " "),
    "zh-news": ("msra/train.bio", ""),
}


def _repeat(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


def pathological_texts(n: int = TEXT_CHARS) -> dict[str, str]:
    """``n`` characters of each hostile shape, by name."""
    rng = random.Random(7)
    no_space = string.ascii_letters + string.digits + string.punctuation
    marks = "".join(chr(c) for c in range(0x300, 0x370))  # combining diacritical marks
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\U0001f44d\U0001f3fd"  # ZWJ, skin tone
    emoji = "".join(chr(0x1F600 + i % 80) for i in range(n // 2)) + family * (n // 2 // 7 + 1)
    texts = {
        "a_ repeated": _repeat("a_", n),
        "_ repeated": _repeat("_", n),
        "+.1 repeated": _repeat("+.1", n),
        "a. repeated": _repeat("a.", n),
        "' repeated": _repeat("'", n),
        "- repeated": _repeat("-", n),
        ". repeated": _repeat(".", n),
        "a, repeated": _repeat("a, ", n),
        "1 repeated": _repeat("1 ", n),
        "a\\n\\n repeated": _repeat("a\n\n", n),  # every token a paragraph, a chunk
        "no whitespace": "".join(rng.choices(no_space, k=n)),
        "combining marks": "".join(rng.choices(marks, k=n)),
        "emoji": emoji[:n],
        "中， repeated": _repeat("中，", n),
    }
    assert all(len(t) == n for t in texts.values())
    return texts


def ordinary_text(model: str, n: int = TEXT_CHARS) -> str:
    """``n`` characters of ``model``'s training sentences (``TRAINING_TEXT``), in file order."""
    file, joiner = TRAINING_TEXT[model]
    parts, size = [], 0
    for tokens, _ in read_conll(data_dir() / file):
        parts.append(joiner.join(tokens))
        size += len(parts[-1]) + 1
        if size > n:
            break
    return " ".join(parts)[:n]


def tag_times(model: str, texts: dict[str, str], runs: int = 3) -> dict[str, float]:
    """Median seconds ``Tagger.tag([text])`` (what ``tagstream tag`` runs per batch) takes on
    each text, after a warm-up, with torch's default threads (one per core) as in ``tagstream
    tag``."""
    import warnings

    from ..tagger import load

    with warnings.catch_warnings():  # torch marks TorchScript deprecated; it is what we ship
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        tagger = load(model)
    tagger.tag(["A warm-up text from Paris."])
    out = {}
    for name, text in texts.items():
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            tagger.tag([text])
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tagstream.model.training.hostile", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--model", default="en-news", choices=sorted(TRAINING_TEXT))
    ap.add_argument("--runs", type=int, default=3, help="runs of each text (medians)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    texts = {"ordinary": ordinary_text(args.model), **pathological_texts()}
    times = tag_times(args.model, texts, args.runs)
    bound = max(BOUND_S, 2 * times["ordinary"])
    if args.json:
        print(json.dumps({"model": args.model, "bound_s": bound, "seconds": times}))
    else:
        for name, s in times.items():
            print(f"{args.model}  {name:<16} {s:6.2f} s")
        print(f"{args.model}  bound {bound:.2f} s; slowest {max(times.values()):.2f} s")
    return 0 if max(times.values()) <= bound else 1


if __name__ == "__main__":
    sys.exit(main())
