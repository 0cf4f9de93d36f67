"""Span-level precision / recall / F1 with conlleval semantics, and the ``evaluate`` command.

A predicted entity counts as correct only if its start, end and type all equal a gold
entity's. Chunks are read from tags with ``tagstream.model.spans.tags_to_spans`` (conlleval's
rules).
Precision = correct / predicted, recall = correct / gold, F1 their harmonic mean, per type and
micro-averaged over all entities, in percent.

    python -m tagstream.model.training.evaluate --model model/artifacts/en-news.pt \\
        --data ../shared/data/conll2003/valid.txt

The yardstick for choosing recipes goes further (`yardstick`): recall on the entities whose
surface form never occurs in the training data (what text a model has never seen is full of),
the calibration of the span scores, and precision and recall at each minimum score. With a
recipe it is measured on the recipe's dev split and on its held-out slice::

    python -m tagstream.model.training.evaluate --recipe model/recipes/en-news.toml
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence

from ..artifact import ArtifactError
from ..spans import tags_to_spans
from ..tagger import load
from .conll import add_split_options, dev_halves, read_conll, scored_slice
from .data import in_groups

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


def predict(tagger, sents) -> list[list[tuple[int, int, str, float]]]:
    """The tagger's entities on gold-tokenised sentences: ``(first token, last token + 1,
    label, score)`` per sentence."""
    docs = [tagger.prepare_tokens(tokens) for tokens, _ in sents]
    found = tagger.tag_prepared(docs)
    pred = []
    for doc, spans in zip(docs, found):
        index_of_start = {s: i for i, s in enumerate(doc.starts)}
        index_of_end = {e: i for i, e in enumerate(doc.ends)}
        pred.append(
            [(index_of_start[s.start], index_of_end[s.end] + 1, s.label, s.score) for s in spans]
        )
    return pred


def evaluate_tagger(tagger, sents) -> dict:
    """Score an artifact on gold-tokenised sentences (the tagger tags the gold tokens)."""
    pred = [[s[:3] for s in spans] for spans in predict(tagger, sents)]
    return score([tags_to_spans(tags) for _, tags in sents], pred)


# -- what the scores say about text the model has not seen -------------------------------------


def surface(tokens: Sequence[str], start: int, end: int) -> str:
    return " ".join(tokens[start:end]).lower()


def entity_surfaces(sents) -> set[str]:
    """The lower-cased surface forms of the gold entities of ``sents`` (tokens joined by one
    space, whatever the language)."""
    return {surface(tokens, a, b) for tokens, tags in sents for a, b, _ in tags_to_spans(tags)}


def recall_by_novelty(sents, pred, seen: set[str]) -> dict:
    """Recall of the gold entities whose surface form is in ``seen`` (entities of the training
    data) and of those whose form is not: ``{"seen": {...}, "unseen": {...}}`` with recall
    (percent), gold and correct counts."""
    counts = {"seen": [0, 0], "unseen": [0, 0]}  # gold, correct
    for (tokens, tags), spans in zip(sents, pred):
        found = {s[:3] for s in spans}
        for a, b, label in tags_to_spans(tags):
            group = counts["seen" if surface(tokens, a, b) in seen else "unseen"]
            group[0] += 1
            group[1] += (a, b, label) in found
    return {
        name: {
            "recall": round(100.0 * correct / gold, 2) if gold else 0.0,
            "gold": gold,
            "correct": correct,
        }
        for name, (gold, correct) in counts.items()
    }


def calibration(sents, pred, bins: int = 10) -> dict:
    """How well span scores predict correctness: each predicted span is correct or not (same
    start, end and label as a gold one); spans are put in ``bins`` equal score bins. Returns
    the expected calibration error (ECE, percent: the bins' |accuracy - mean score| weighted
    by their share of spans) and the table ``[(low, high, spans, mean score, accuracy)]``."""
    rows: list[list[float]] = [[0, 0.0, 0] for _ in range(bins)]  # spans, sum score, correct
    for (_, tags), spans in zip(sents, pred):
        gold = set(tags_to_spans(tags))
        for a, b, label, p in spans:
            row = rows[min(bins - 1, int(p * bins))]
            row[0] += 1
            row[1] += p
            row[2] += (a, b, label) in gold
    total = sum(r[0] for r in rows)
    table, ece = [], 0.0
    for i, (n, sum_p, correct) in enumerate(rows):
        if not n:
            continue
        confidence, accuracy = sum_p / n, correct / n
        ece += n / total * abs(accuracy - confidence)
        table.append((i / bins, (i + 1) / bins, n, round(confidence, 4), round(accuracy, 4)))
    return {"ece": round(100.0 * ece, 2), "spans": total, "table": table}


FLOORS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)


def at_floors(sents, pred, floors: Sequence[float] = FLOORS) -> dict[float, dict]:
    """Micro precision, recall and F1 keeping only the spans scored at or above each floor
    (``TAGSTREAM_MODEL__MIN_SCORE``)."""
    gold = [tags_to_spans(tags) for _, tags in sents]
    return {
        f: score(gold, [[s[:3] for s in spans if s[3] >= f] for spans in pred])["micro"]
        for f in floors
    }


def yardstick(tagger, sents, seen: set[str]) -> dict:
    """Everything this module measures of ``tagger`` on ``sents``: the scores, recall on seen
    and unseen entities, calibration, and the scores at each floor."""
    pred = predict(tagger, sents)
    return {
        "sentences": len(sents),
        "scores": score([tags_to_spans(t) for _, t in sents], [[s[:3] for s in p] for p in pred]),
        "recall_by_novelty": recall_by_novelty(sents, pred, seen),
        "calibration": calibration(sents, pred),
        "floors": {str(f): r for f, r in at_floors(sents, pred).items()},
    }


def format_yardstick(name: str, result: dict) -> str:
    novelty = result["recall_by_novelty"]
    cal = result["calibration"]
    lines = [
        f"== {name}: {result['sentences']} "
        + ("sentences" if result.get("per_text", 1) == 1 else f"texts of {result['per_text']}"),
        format_report(result["scores"]),
        f"recall, entities seen in train: {novelty['seen']['recall']:.2f} "
        f"({novelty['seen']['gold']}); unseen: {novelty['unseen']['recall']:.2f} "
        f"({novelty['unseen']['gold']})",
        format_reliability(cal, result["floors"]),
    ]
    return "\n".join(lines)


def format_reliability(cal: dict, floors: dict) -> str:
    """The calibration table (`calibration`) and the scores at each floor (`at_floors`)."""
    lines = [
        f"calibration: ECE {cal['ece']:.2f} over {cal['spans']} spans",
        f"{'score':<12}{'spans':>8}{'mean':>8}{'correct':>9}",
    ]
    for low, high, n, confidence, accuracy in cal["table"]:
        lines.append(f"{low:.1f}-{high:.1f}    {n:>8}{confidence:>8.3f}{accuracy:>9.3f}")
    lines.append(f"{'min score':<12}{'P':>8}{'R':>8}{'F1':>8}")
    for floor, r in floors.items():
        lines.append(f"{floor:<12}{r['precision']:>8.2f}{r['recall']:>8.2f}{r['f1']:>8.2f}")
    return "\n".join(lines)


def reporting_artifact_errors(body: Callable[[list[str] | None], int]):
    """``body`` as a command's main: a model file that is missing or not an artifact is an error
    message and exit status 2, not a traceback."""

    def main(argv: list[str] | None = None) -> int:
        try:
            return body(argv)
        except ArtifactError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    return main


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tagstream.model.training.evaluate", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--recipe",
        help="a training recipe: score its model (or --model) on the recipe's dev split and "
        "held-out slice, with recall on entities unseen in its training data, calibration and "
        "the scores at each min score",
    )
    ap.add_argument("--model", help="artifact (.pt) (default with --recipe: the recipe's output)")
    ap.add_argument("--data", help="CoNLL file with gold tags (last column), without --recipe")
    add_split_options(ap, scoring=True)
    ap.add_argument(
        "--seen-from",
        nargs="+",
        metavar="CONLL",
        help="without --recipe: the training data, to tell seen entities from unseen ones",
    )
    ap.add_argument(
        "--halves",
        nargs=2,
        metavar=("FIRST", "LAST"),
        help="with a --recipe that trains on all of dev: score the recipe on dev out of sample, "
        "each half with a model of the recipe trained with --dev-train first or last (the half "
        "it was not trained on)",
    )
    ap.add_argument(
        "--sentences-per-text",
        type=int,
        default=1,
        metavar="K",
        help="score texts of K consecutive sentences each (joined as the tokenizer joins "
        "tokens), as a user sends a paragraph, instead of each sentence alone",
    )
    ap.add_argument("--json", help="also write the figures to this file (JSON)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.recipe:
        return _by_recipe(args)
    if not args.model or not args.data:
        ap.error("--model and --data are required without --recipe")
    tagger = load(args.model, threads=args.threads)
    sents = read_conll(args.data)
    sents = scored_slice(sents, args.dev_fraction, args.split_seed, args.holdout_fraction)
    sents = in_groups(sents, args.sentences_per_text)
    t0 = time.perf_counter()
    if args.seen_from:
        seen = entity_surfaces([s for f in args.seen_from for s in read_conll(f)])
        result = yardstick(tagger, sents, seen)
        result["per_text"] = args.sentences_per_text
        report = format_yardstick(args.data, result)
    else:
        result = evaluate_tagger(tagger, sents)
        report = format_report(result)
    took = time.perf_counter() - t0
    print(
        f"{tagger.name}@{tagger.version} on {args.data}: {len(sents)} "
        f"{'sentences' if args.sentences_per_text <= 1 else 'texts'}, "
        f"{sum(len(t) for t, _ in sents)} tokens, {took:.1f} s"
    )
    print(report)
    _write_json(args.json, {"model": f"{tagger.name}@{tagger.version}", "data": result})
    return 0


def _by_recipe(args: argparse.Namespace) -> int:
    from .args import parse_args
    from .data import corpus_of

    given = ["--recipe", args.recipe]
    if args.holdout_fraction:  # a model of the recipe trained with this slice held out
        given += ["--holdout-fraction", str(args.holdout_fraction)]
    recipe = parse_args(given)
    corpus = corpus_of(recipe)
    tagger = load(args.model or recipe.output, threads=args.threads)
    seen = entity_surfaces(corpus.train)
    out: dict = {"model": f"{tagger.name}@{tagger.version}", "recipe": args.recipe}
    print(f"{out['model']}, recipe {args.recipe}: {len(corpus.train)} training pieces")
    scored = [("holdout", tagger, corpus.holdout, corpus.holdout_desc, seen)]
    if recipe.dev_train == "all" and not args.halves:  # its own dev scores are in-sample
        if not corpus.holdout:
            print(
                f"error: {args.recipe} trains on all of dev: score the recipe out of sample "
                "with --halves FIRST LAST",
                file=sys.stderr,
            )
            return 2
        print(f"{args.recipe} trains on all of dev: the held-out slice only (dev: --halves)")
    elif recipe.dev_train == "all":
        first, last = dev_halves(read_conll(recipe.dev))
        train_only = [s for f in recipe.train for s in read_conll(f)]
        for name, model, part, learnt in (
            ("dev_last", args.halves[0], last, first),
            ("dev_first", args.halves[1], first, last),
        ):
            other = "first" if name == "dev_last" else "last"
            desc = (
                f"the {name[4:]} half of {recipe.dev}, tagged by {model} ({other} half trained on)"
            )
            scored.append(
                (
                    name,
                    load(model, threads=args.threads),
                    part,
                    desc,
                    entity_surfaces(train_only + learnt),
                )
            )
    else:
        scored.insert(0, ("dev", tagger, corpus.dev, corpus.dev_desc, seen))
    k = args.sentences_per_text
    for name, scorer, sents, desc, known in scored:
        if sents:
            out[name] = yardstick(scorer, in_groups(sents, k), known)
            out[name]["per_text"] = k
            out[name]["from"] = desc
            print(format_yardstick(f"{name} ({desc})", out[name]))
    _write_json(args.json, out)
    return 0


def _write_json(path: str | None, figures: dict) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
            f.write("\n")


main = reporting_artifact_errors(_main)

if __name__ == "__main__":
    sys.exit(main())
