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


def test_a_model_trained_on_all_of_dev_is_scored_and_calibrated_on_the_halves_models(
    tmp_path, monkeypatch, capsys
):
    import json

    from tagstream.model.artifact import read_meta
    from tagstream.model.training.calibrate import main as calibrate_main
    from tagstream.model.training.evaluate import main as evaluate_main
    from tagstream.model.training.train import main as train_main

    sentences = [
        ("John Smith lives in Paris .", "B-PER I-PER O O B-LOC O"),
        ("Mary Jones visited London .", "B-PER I-PER O B-LOC O"),
        ("In Berlin , Anna Lee said nothing .", "O B-LOC O B-PER I-PER O O O"),
    ]
    lines = []
    for text, tags in sentences * 6:
        lines += [f"{t} {g}" for t, g in zip(text.split(), tags.split())] + [""]
    (tmp_path / "train.txt").write_text("\n".join(lines))
    (tmp_path / "dev.txt").write_text("\n".join(lines))
    monkeypatch.setenv("TAGSTREAM_DATA_DIR", str(tmp_path))
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "r"\nversion = "1.0.0"\nlanguage = "en"\ntrain = ["train.txt"]\n'
        'dev = "dev.txt"\ndev-train = "all"\nkeep-last = true\nepochs = 2\nword-dim = 8\n'
        "char-dim = 4\nchar-filters = 4\nextra-dim = 2\nhidden = 8\nheads = 2\n"
        "batch-tokens = 32\nthreads = 1\n"
        f'output = "{tmp_path / "all.pt"}"\n'
    )
    for half in ("first", "last", "all"):
        given = ["--recipe", str(recipe), "--dev-train", half, "--output", f"{tmp_path}/{half}.pt"]
        assert train_main(given) == 0
    with pytest.raises(SystemExit):  # in-sample dev spans would make it over-confident
        calibrate_main(["--recipe", str(recipe)])
    halves = [str(tmp_path / "first.pt"), str(tmp_path / "last.pt")]
    assert calibrate_main(["--recipe", str(recipe), "--halves", *halves]) == 0
    cal = read_meta(tmp_path / "all.pt")["calibration"]
    assert "each half scored by the recipe trained on the other" in cal["fitted_on"]
    assert set(cal["ece"]) == {"dev halves, raw", "dev halves, cross-fitted"}
    printed = capsys.readouterr().out  # the out-of-sample table the card quotes, with its ECE
    assert f"calibration: ECE {cal['ece']['dev halves, cross-fitted']:.2f} over" in printed
    assert "min score" in printed

    assert evaluate_main(["--recipe", str(recipe)]) == 2  # its own dev scores are in-sample
    figures = tmp_path / "f.json"
    assert (
        evaluate_main(["--recipe", str(recipe), "--halves", *halves, "--json", str(figures)]) == 0
    )
    out = json.loads(figures.read_text())
    assert "dev" not in out
    assert out["dev_last"]["sentences"] == out["dev_first"]["sentences"] == 9
    assert "first.pt (first half trained on)" in out["dev_last"]["from"]
    # every form of dev is in train.txt: none is unseen
    assert out["dev_last"]["recall_by_novelty"]["unseen"]["gold"] == 0
    # a run of the recipe with a held-out slice: that slice alone, without the halves
    held = tmp_path / "held.json"
    given = [
        "--recipe",
        str(recipe),
        "--holdout-fraction",
        "0.5",
        "--model",
        str(tmp_path / "all.pt"),
    ]
    assert evaluate_main([*given, "--json", str(held)]) == 0
    out = json.loads(held.read_text())
    assert set(out) == {"model", "recipe", "holdout"} and out["holdout"]["sentences"] == 9


def test_a_recipe_without_a_held_out_slice_is_scored_on_one_by_a_run_that_kept_it_out(
    tmp_path, monkeypatch
):
    """A recipe that trains on all of its training file (en-news) was chosen by runs of it with
    the latest slice held out: ``evaluate --recipe R --holdout-fraction F --model RUN`` scores
    such a run on that slice, its entities unseen unless the rest of the file has them."""
    import json

    from tagstream.model.training.evaluate import main as evaluate_main
    from tagstream.model.training.train import main as train_main

    early = [("John Smith lives in Paris .", "B-PER I-PER O O B-LOC O")] * 6
    late = [("Olga Ivanova visited Kyiv .", "B-PER I-PER O B-LOC O")] * 6
    lines = []
    for text, tags in early + late:
        lines += [f"{t} {g}" for t, g in zip(text.split(), tags.split())] + [""]
    (tmp_path / "train.txt").write_text("\n".join(lines))
    (tmp_path / "dev.txt").write_text("\n".join(lines[: 7 * 6]))
    monkeypatch.setenv("TAGSTREAM_DATA_DIR", str(tmp_path))
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "r"\nversion = "1.0.0"\nlanguage = "en"\ntrain = ["train.txt"]\n'
        'dev = "dev.txt"\nepochs = 1\nword-dim = 8\nchar-dim = 4\nchar-filters = 4\n'
        "extra-dim = 2\nhidden = 8\nheads = 2\nbatch-tokens = 32\nthreads = 1\n"
        f'output = "{tmp_path / "all.pt"}"\n'
    )
    held = str(tmp_path / "held.pt")
    assert train_main(["--recipe", str(recipe), "--holdout-fraction", "0.5", "--output", held]) == 0
    figures = tmp_path / "f.json"
    given = ["--recipe", str(recipe), "--holdout-fraction", "0.5", "--model", held]
    assert evaluate_main([*given, "--json", str(figures)]) == 0
    out = json.loads(figures.read_text())
    assert out["holdout"]["sentences"] == 6
    assert out["holdout"]["recall_by_novelty"]["unseen"]["gold"] == 12  # Olga Ivanova, Kyiv
    assert out["dev"]["recall_by_novelty"]["unseen"]["gold"] == 0
    figures.unlink()
    assert evaluate_main(["--recipe", str(recipe), "--model", held, "--json", str(figures)]) == 0
    assert "holdout" not in json.loads(figures.read_text())  # the recipe as it is: no slice
