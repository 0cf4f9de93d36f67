import pytest

from tagstream.model.training.evaluate import score, score_tags


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
