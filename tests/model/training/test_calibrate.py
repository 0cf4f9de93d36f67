"""Fitting the score calibration (`tagstream.model.training.calibrate`) and storing it in an
artifact."""

from __future__ import annotations

import random

import pytest

from tagstream.model import ArtifactError, load
from tagstream.model.calibration import logit, sigmoid
from tagstream.model.training.calibrate import examples, fit, fit_pair
from tagstream.model.training.evaluate import calibration as reliability
from tagstream.model.training.export import rescript


def overconfident(n: int, a: float, b: float, seed: int = 1) -> list[tuple[float, bool]]:
    """Raw scores whose true chance of being right is sigmoid(a * logit(raw) + b)."""
    rng = random.Random(seed)
    points = []
    for _ in range(n):
        p = rng.betavariate(8, 1)
        points.append((p, rng.random() < sigmoid(a * logit(p) + b)))
    return points


def test_the_fit_recovers_the_map_that_made_the_outcomes():
    a, b = fit_pair(overconfident(4000, 0.5, 0.3))
    assert a == pytest.approx(0.5, abs=0.1) and b == pytest.approx(0.3, abs=0.2)


def test_calibrated_scores_have_a_smaller_calibration_error():
    points = overconfident(4000, 0.5, 0.3)
    spans = [("PER", p, right) for p, right in points]
    cal = fit(spans)
    test = overconfident(4000, 0.5, 0.3, seed=2)
    sents = [(["x"], ["B-PER" if right else "O"]) for _, right in test]
    raw = [[(0, 1, "PER", p)] for p, _ in test]
    fixed = [[(0, 1, "PER", cal.apply("PER", p))] for p, _ in test]
    assert reliability(sents, fixed)["ece"] < reliability(sents, raw)["ece"] / 2
    assert examples(sents[:2], raw[:2]) == [
        ("PER", test[0][0], test[0][1]),
        ("PER", test[1][0], test[1][1]),
    ]


def test_a_label_with_few_spans_uses_the_default_pair():
    spans = [("PER", p, r) for p, r in overconfident(400, 0.5, 0.3)]
    spans += [("MISC", p, r) for p, r in overconfident(20, 2.0, 0.0)]
    cal = fit(spans, min_spans=50)
    assert set(cal.by_label) == {"PER"}


def test_the_tagger_applies_the_stored_calibration(tiny_model, tmp_path):
    text = ["Angela Merkel visited Paris and met Emmanuel Macron at the Elysee ."] * 3
    raw = load(tiny_model)
    calibrated = rescript(
        tiny_model,
        tmp_path / "cal.pt",
        calibration={"method": "platt", "default": [0.5, -1.0], "by_label": {}},
    )
    tagged = load(calibrated)
    assert "calibrated" in tagged.info["confidence"]
    before, after = raw.tag(text), tagged.tag(text)
    assert [[(s.start, s.end, s.label) for s in d] for d in before] == [
        [(s.start, s.end, s.label) for s in d] for d in after
    ]
    pairs = [(s.score, t.score) for d, e in zip(before, after) for s, t in zip(d, e)]
    assert pairs
    for raw_score, score in pairs:
        assert score == pytest.approx(sigmoid(0.5 * logit(raw_score) - 1.0), abs=1e-6)


def test_an_artifact_with_a_malformed_calibration_is_refused(tiny_model, tmp_path):
    bad = rescript(
        tiny_model,
        tmp_path / "bad.pt",
        calibration={"method": "platt", "default": [-1.0, 0.0], "by_label": {}},
    )
    with pytest.raises(ArtifactError, match="slope must be positive"):
        load(bad)
