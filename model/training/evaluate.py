"""Span-level precision / recall / F1 with conlleval semantics, and the ``evaluate`` command.

A predicted entity counts as correct only if its start, end and type all equal a gold
entity's. Chunks are read from tags with ``tagstream.model.spans.tags_to_spans`` (conlleval's
rules).
Precision = correct / predicted, recall = correct / gold, F1 their harmonic mean, per type and
micro-averaged over all entities, in percent.

    python -m tagstream.model.training.evaluate --model model/artifacts/en-news.pt \\
        --data ../shared/data/conll2003/valid.txt
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence

from ..spans import tags_to_spans
from ..tagger import load
from .conll import add_split_options, read_conll, scored_slice

SpanSet = Sequence[tuple[int, int, str]]


def score(gold: Sequence[SpanSet], pred: Sequence[SpanSet]) -> dict:
    """``{"micro": {...}, "per_type": {type: {...}}}`` with precision, recall, f1 (percent) and
    counts."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    tp: Counter = Counter()
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    for g, p in zip(gold, pred):
        gs, ps = set(g), set(p)
        for s in gs:
            n_gold[s[2]] += 1
        for s in ps:
            n_pred[s[2]] += 1
            if s in gs:
                tp[s[2]] += 1

    def prf(t: int, ng: int, np_: int) -> dict:
        p = 100.0 * t / np_ if np_ else 0.0
        r = 100.0 * t / ng if ng else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {
            "precision": round(p, 2),
            "recall": round(r, 2),
            "f1": round(f, 2),
            "gold": ng,
            "predicted": np_,
            "correct": t,
        }

    types = sorted(set(n_gold) | set(n_pred))
    return {
        "micro": prf(sum(tp.values()), sum(n_gold.values()), sum(n_pred.values())),
        "per_type": {t: prf(tp[t], n_gold[t], n_pred[t]) for t in types},
    }


def score_tags(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict:
    """``score`` of two tag sequences per sentence (any of IOB1 / IOB2 / BIOES)."""
    return score([tags_to_spans(t) for t in gold_tags], [tags_to_spans(t) for t in pred_tags])


def format_report(result: dict) -> str:
    lines = [f"{'type':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'gold':>8}{'pred':>8}"]
    for name, r in list(result["per_type"].items()) + [("micro", result["micro"])]:
        lines.append(
            f"{name:<16}{r['precision']:>10.2f}{r['recall']:>10.2f}{r['f1']:>10.2f}{r['gold']:>8}{r['predicted']:>8}"
        )
    return "\n".join(lines)


def evaluate_tagger(tagger, sents) -> dict:
    """Score an artifact on gold-tokenised sentences (the tagger tags the gold tokens)."""
    docs = [tagger.prepare_tokens(tokens) for tokens, _ in sents]
    found = tagger.tag_prepared(docs)
    pred = []
    for doc, spans in zip(docs, found):
        index_of_start = {s: i for i, s in enumerate(doc.starts)}
        index_of_end = {e: i for i, e in enumerate(doc.ends)}
        pred.append([(index_of_start[s.start], index_of_end[s.end] + 1, s.label) for s in spans])
    return score([tags_to_spans(tags) for _, tags in sents], pred)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tagstream.model.training.evaluate", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--model", required=True, help="artifact (.pt)")
    ap.add_argument("--data", required=True, help="CoNLL file with gold tags (last column)")
    add_split_options(ap, scoring=True)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    tagger = load(args.model, threads=args.threads)
    sents = read_conll(args.data)
    sents = scored_slice(sents, args.dev_fraction, args.split_seed, args.holdout_fraction)
    t0 = time.perf_counter()
    result = evaluate_tagger(tagger, sents)
    took = time.perf_counter() - t0
    print(
        f"{tagger.name}@{tagger.version} on {args.data}: {len(sents)} sentences, "
        f"{sum(len(t) for t, _ in sents)} tokens, {took:.1f} s"
    )
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
