"""Fit an artifact's score calibration on its recipe's dev split, and store it in the artifact
(`tagstream.model.calibration`: Platt scaling per label).

Each predicted dev span is an example: its raw score, and whether it is right (same start, end
and label as a gold span). A label's pair ``(a, b)`` maximises the likelihood of those outcomes
under ``sigmoid(a * logit(raw) + b)``, with a small pull towards the identity ``(1, 0)``; a
label with fewer than `MIN_SPANS` dev spans, or without both outcomes, uses the pair fitted on
every label. The weights and the spans do not change: only the scores, and only monotonically.
The artifact is re-exported with the calibration (`tagstream.model.training.export.rescript`),
and its stored dev and held-out scores measured again.

How well it worked is measured where it was not fitted: on the recipe's held-out slice, and on
dev by two-fold cross-fitting (each half scored with the pair fitted on the other)::

    python -m tagstream.model.training.calibrate --recipe model/recipes/en-news.toml
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
from collections.abc import Sequence

from ..artifact import read_meta
from ..calibration import Calibration, logit, sigmoid
from ..spans import tags_to_spans
from ..tagger import load
from .conll import dev_halves, read_conll
from .evaluate import at_floors, format_reliability, predict, reporting_artifact_errors
from .evaluate import calibration as reliability
from .export import rescript

MIN_SPANS = 50  # dev spans a label needs for a pair of its own
PULL = 1.0  # strength of the pull towards the identity (a Gaussian prior on a - 1 and b)

Example = tuple[str, float, bool]  # label, raw score, right


def examples(sents, pred) -> list[Example]:
    """``(label, raw score, right)`` of every predicted span."""
    out = []
    for (_, tags), spans in zip(sents, pred):
        gold = set(tags_to_spans(tags))
        out.extend((label, p, (a, b, label) in gold) for a, b, label, p in spans)
    return out


def fit_pair(points: Sequence[tuple[float, bool]], pull: float = PULL) -> tuple[float, float]:
    """Newton's method, each step halved until it lowers the objective, on the penalised
    negative log-likelihood of ``sigmoid(a * x + b)`` (x the logit of the raw score); starts at,
    and is pulled towards, the identity."""
    xs = [logit(p) for p, _ in points]
    ys = [1.0 if right else 0.0 for _, right in points]

    def objective(a: float, b: float) -> float:
        total = 0.5 * pull * ((a - 1.0) ** 2 + b * b)
        for x, y in zip(xs, ys):
            z = a * x + b
            # -log sigmoid(z) if right, -log(1 - sigmoid(z)) if not, without overflow
            total += max(z, 0.0) - z * y + math.log1p(math.exp(-abs(z)))
        return total

    a, b = 1.0, 0.0
    current = objective(a, b)
    for _ in range(100):
        ga, gb = pull * (a - 1.0), pull * b
        haa, hab, hbb = pull, 0.0, pull
        for x, y in zip(xs, ys):
            q = sigmoid(a * x + b)
            w = q * (1.0 - q)
            ga += (q - y) * x
            gb += q - y
            haa += w * x * x
            hab += w * x
            hbb += w
        det = haa * hbb - hab * hab
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        step = 1.0
        while step > 1e-6:
            trial = objective(a - step * da, b - step * db)
            if trial <= current:
                break
            step /= 2
        else:
            break
        a, b = a - step * da, b - step * db
        improved, current = current - trial, trial
        if improved < 1e-10 * max(1.0, abs(current)):
            break
    return max(a, 1e-3), b  # a positive slope keeps the map monotone


def fit(spans: Sequence[Example], min_spans: int = MIN_SPANS) -> Calibration:
    """The default pair on every span, and a pair per label that has enough of both outcomes."""
    default = fit_pair([(p, right) for _, p, right in spans])
    by_label = {}
    for label in sorted({label for label, _, _ in spans}):
        points = [(p, right) for lab, p, right in spans if lab == label]
        if len(points) >= min_spans and 0 < sum(r for _, r in points) < len(points):
            by_label[label] = fit_pair(points)
    return Calibration(default, by_label)


def calibrated(sents, pred, calibration: Calibration) -> list[list[tuple]]:
    return [[(a, b, label, calibration.apply(label, p)) for a, b, label, p in s] for s in pred]


def cross_fitted(sents, pred) -> list[list[tuple]]:
    """Dev spans scored out of sample: even sentences with the pair fitted on odd ones, and the
    other way round."""
    halves = [list(range(0, len(sents), 2)), list(range(1, len(sents), 2))]
    out: list[list[tuple]] = [[] for _ in sents]
    for mine, other in (halves, halves[::-1]):
        cal = fit(examples([sents[i] for i in other], [pred[i] for i in other]))
        for i in mine:
            out[i] = calibrated([sents[i]], [pred[i]], cal)[0]
    return out


def out_of_sample(halves: Sequence[str], dev_file: str, threads: int | None = None):
    """The sentences of ``dev_file`` and their raw spans, each half (in file order, as
    ``--dev-train`` splits it) tagged by the model of ``halves`` trained on the other half:
    ``halves[0]`` was trained on the first half and tags the last, ``halves[1]`` the reverse."""
    first, last = dev_halves(read_conll(dev_file))
    pred = []
    for model, part in zip(halves, (last, first)):
        tagger = load(model, threads=threads)
        tagger.calibration = Calibration()
        pred.append(predict(tagger, part))
    return last + first, pred[0] + pred[1]


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tagstream.model.training.calibrate", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--recipe", required=True, help="the model's training recipe")
    ap.add_argument("--model", help="artifact (.pt) (default: the recipe's output)")
    ap.add_argument("--output", help="where to write it (default: over --model)")
    ap.add_argument("--version", help="the artifact's new version (same weights, new scores)")
    ap.add_argument(
        "--halves",
        nargs=2,
        metavar=("FIRST", "LAST"),
        help="for a recipe with dev-train all (whose dev scores are in-sample): fit on the "
        "spans of two models of the recipe trained with --dev-train first and last instead, "
        "each on the half of dev it was not trained on",
    )
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    from .args import parse_args
    from .data import corpus_of

    recipe = parse_args(["--recipe", args.recipe])
    corpus = corpus_of(recipe)
    path = pathlib.Path(args.model or recipe.output)
    if recipe.dev_train == "all" and not args.halves:
        ap.error("the recipe trains on all of dev: fit on --halves FIRST LAST")
    fitted_on = corpus.dev_desc
    tagger = load(path, threads=args.threads)
    tagger.calibration = Calibration()  # fit on the raw scores
    if args.halves:
        sents, dev_pred = out_of_sample(args.halves, recipe.dev, args.threads)
        fitted_on = (
            f"{recipe.dev}, each half scored by the recipe trained on the other "
            f"({' '.join(pathlib.Path(h).name for h in args.halves)})"
        )
        where = "dev halves"
    else:
        sents, dev_pred, where = corpus.dev, predict(tagger, corpus.dev), "dev"
    cal = fit(examples(sents, dev_pred))
    out_of_fit = cross_fitted(sents, dev_pred)
    out_of_fit_table = reliability(sents, out_of_fit)
    ece = {
        f"{where}, raw": reliability(sents, dev_pred)["ece"],
        f"{where}, cross-fitted": out_of_fit_table["ece"],
    }
    print(f"{where}, each span's score calibrated by the pair fitted on the other sentences:")
    print(format_reliability(out_of_fit_table, at_floors(sents, out_of_fit)))
    if corpus.holdout:
        held_pred = predict(tagger, corpus.holdout)
        ece["held-out slice, raw"] = reliability(corpus.holdout, held_pred)["ece"]
        ece["held-out slice, calibrated"] = reliability(
            corpus.holdout, calibrated(corpus.holdout, held_pred, cal)
        )["ece"]
    for name, value in ece.items():
        print(f"expected calibration error, {name}: {value:.2f}")
    for label, (a, b) in [("(default)", cal.default), *sorted(cal.by_label.items())]:
        print(f"{label:<16} a {a:.4f}  b {b:+.4f}")
    out = pathlib.Path(args.output or path)
    rescript(
        path,
        out,
        dev=corpus.dev,
        dev_desc=corpus.dev_desc,
        holdout=corpus.holdout,
        holdout_desc=corpus.holdout_desc,
        version=args.version,
        calibration=cal.to_meta(fitted_on=fitted_on, ece=ece),
    )
    meta = read_meta(out)
    print(f"{meta['name']}@{meta['version']}: calibration stored in {out}")
    return 0


main = reporting_artifact_errors(_main)

if __name__ == "__main__":
    sys.exit(main())
