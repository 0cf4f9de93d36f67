import json

import pytest

from tagstream.model.training.evaluate import (
    FLOORS,
    at_floors,
    calibration,
    entity_surfaces,
    format_yardstick,
    recall_by_novelty,
    score,
    score_tags,
    yardstick,
)


def test_hand_worked_conlleval_example():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"], ["B-MISC", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O", "B-ORG"], ["I-MISC", "B-MISC"]]
    # gold: PER(0,2) LOC(3,4) ORG(5,6) | MISC(0,1)        -> 4
    # pred: PER(0,2) ORG(3,4) ORG(5,6) | MISC(0,1) MISC(1,2) -> 5,
    #       correct PER ORG(5,6) MISC(0,1) = 3
    r = score_tags(gold, pred)
    assert r["micro"]["correct"] == 3 and r["micro"]["predicted"] == 5 and r["micro"]["gold"] == 4
    assert r["micro"]["precision"] == 60.0 and r["micro"]["recall"] == 75.0
    assert r["micro"]["f1"] == pytest.approx(66.67)
    assert r["per_type"]["LOC"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "gold": 1,
        "predicted": 0,
        "correct": 0,
    }
    assert r["per_type"]["ORG"]["precision"] == 50.0 and r["per_type"]["ORG"]["recall"] == 100.0
    assert r["per_type"]["MISC"]["f1"] == pytest.approx(66.67)


def test_boundary_errors_count_twice():
    r = score([[(0, 2, "PER")]], [[(0, 1, "PER")]])
    assert r["micro"]["precision"] == 0 and r["micro"]["recall"] == 0


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        score([[]], [])


# -- the yardstick: unseen entities, calibration, floors ---------------------------------------

SENTS = [
    (
        ["Ada", "Lovelace", "met", "Babbage", "in", "London"],
        ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"],
    ),
    (["Paris", "is", "far"], ["B-LOC", "O", "O"]),
]
# predicted: Ada Lovelace right (0.9), Babbage wrong label (0.6), London right (0.95), Paris
# right (0.3), "far" a false LOC (0.55)
PRED = [
    [(0, 2, "PER", 0.9), (3, 4, "LOC", 0.6), (5, 6, "LOC", 0.95)],
    [(0, 1, "LOC", 0.3), (2, 3, "LOC", 0.55)],
]


def test_recall_is_split_by_whether_the_surface_form_was_seen_in_train():
    seen = entity_surfaces([(["ada", "lovelace"], ["B-PER", "I-PER"]), (["Babbage"], ["B-ORG"])])
    assert seen == {"ada lovelace", "babbage"}
    r = recall_by_novelty(SENTS, PRED, seen)
    assert r["seen"] == {"recall": 50.0, "gold": 2, "correct": 1}  # Ada Lovelace; Babbage missed
    assert r["unseen"] == {"recall": 100.0, "gold": 2, "correct": 2}  # London, Paris


def test_calibration_compares_each_bins_mean_score_with_its_accuracy():
    r = calibration(SENTS, PRED, bins=2)
    # bin 0-0.5: Paris (0.3, right); bin 0.5-1: 0.9 right, 0.6 wrong, 0.95 right, 0.55 wrong
    assert r["spans"] == 5
    assert r["table"] == [(0.0, 0.5, 1, 0.3, 1.0), (0.5, 1.0, 4, 0.75, 0.5)]
    assert r["ece"] == pytest.approx(100 * (1 / 5 * 0.7 + 4 / 5 * 0.25))


def test_a_floor_trades_recall_for_precision():
    r = at_floors(SENTS, PRED, floors=(0.0, 0.5, 0.9))
    assert (r[0.0]["correct"], r[0.0]["predicted"]) == (3, 5)
    assert (r[0.5]["correct"], r[0.5]["predicted"]) == (2, 4)  # Paris (0.3) is left out
    assert (r[0.9]["correct"], r[0.9]["predicted"]) == (2, 2)
    assert r[0.9]["precision"] == 100.0 and r[0.9]["recall"] == 50.0


def test_the_yardstick_of_a_model(tiny_model):
    from tagstream.model import load

    result = yardstick(load(tiny_model), SENTS, entity_surfaces(SENTS[:1]))
    assert result["sentences"] == 2
    assert set(result["floors"]) == {str(f) for f in FLOORS}
    novelty = result["recall_by_novelty"]
    assert (novelty["seen"]["gold"], novelty["unseen"]["gold"]) == (3, 1)
    assert "ECE" in format_yardstick("tiny", result)


def test_a_missing_model_file_is_a_clear_error(tmp_path, capsys):
    from tagstream.model.training.calibrate import main as calibrate_main
    from tagstream.model.training.evaluate import main as evaluate_main

    data = tmp_path / "d.conll"
    data.write_text("Paris B-LOC\n")
    missing = str(tmp_path / "nowhere.pt")
    assert evaluate_main(["--model", missing, "--data", str(data)]) == 2
    assert "nowhere.pt: does not exist" in capsys.readouterr().err
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'train = ["{data}"]\ndev = "{data}"\noutput = "{missing}"\n')
    assert calibrate_main(["--recipe", str(recipe)]) == 2
    assert "nowhere.pt: does not exist" in capsys.readouterr().err


def test_texts_of_several_sentences_keep_every_gold_entity(tiny_model, tmp_path):
    """``--sentences-per-text K`` scores texts of K consecutive sentences: fewer, longer texts,
    the same gold entities (two names meeting at a join stay two)."""
    from tagstream.model.training.evaluate import main as evaluate_main

    data = tmp_path / "d.conll"
    data.write_text(
        "Paris B-LOC\nis O\nnice O\n\nLondon B-LOC\n\nAnn B-PER\nsang O\n\nBob B-PER\n\nend O\n"
    )
    got = {}
    for k in (1, 2, 3):
        out = tmp_path / f"{k}.json"
        argv = ["--model", str(tiny_model), "--data", str(data), "--seen-from", str(data)]
        assert evaluate_main([*argv, "--sentences-per-text", str(k), "--json", str(out)]) == 0
        result = json.loads(out.read_text())["data"]
        got[k] = (result["sentences"], result["scores"]["micro"]["gold"])
    assert got == {1: (5, 4), 2: (3, 4), 3: (2, 4)}
