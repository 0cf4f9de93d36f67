import pytest

from tagstream.model.spans import (
    bioes_tags,
    bioes_transitions,
    detect_scheme,
    spans_to_tags,
    tags_to_spans,
)


@pytest.mark.parametrize(
    "tags, spans",
    [
        # IOB2
        (["B-PER", "I-PER", "O", "B-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),
        # IOB1: I- starts a chunk, B- only between two chunks of one type
        (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], [(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")]),
        # BIOES
        (
            ["S-ORG", "B-PER", "I-PER", "E-PER", "S-PER"],
            [(0, 1, "ORG"), (1, 4, "PER"), (4, 5, "PER")],
        ),
        # conlleval: a type change ends a chunk; I- after O starts one; E- closes
        (
            ["B-PER", "I-LOC", "I-LOC", "E-LOC", "I-LOC"],
            [(0, 1, "PER"), (1, 4, "LOC"), (4, 5, "LOC")],
        ),
        ([], []),
        (["O", "O"], []),
    ],
)
def test_tags_to_spans_follows_conlleval(tags, spans):
    assert tags_to_spans(tags) == spans


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "BIOES"])
def test_round_trip_through_every_scheme(scheme):
    spans = [(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC"), (6, 9, "ORG")]
    assert tags_to_spans(spans_to_tags(spans, 10, scheme)) == spans


def test_spans_to_tags_examples():
    assert spans_to_tags([(0, 2, "PER"), (3, 4, "LOC")], 5, "IOB2") == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
        "O",
    ]
    assert spans_to_tags([(0, 1, "PER"), (1, 2, "PER")], 2, "IOB1") == ["I-PER", "B-PER"]


@pytest.mark.parametrize("tag", ["X-PER", "B-", "BPER", "", "b-PER"])
def test_malformed_tags_raise(tag):
    with pytest.raises(ValueError):
        tags_to_spans(["O", tag])


@pytest.mark.parametrize(
    "spans", [[(0, 3, "PER")], [(1, 1, "PER")], [(0, 2, "PER"), (1, 2, "LOC")], [(0, 1, "")]]
)
def test_bad_spans_raise(spans):
    with pytest.raises(ValueError):
        spans_to_tags(spans, 2)


def test_detect_scheme():
    assert detect_scheme([["B-PER", "I-PER", "O"]]) == "IOB2"
    assert detect_scheme([["I-PER", "I-PER", "O"]]) == "IOB1"
    assert detect_scheme([["I-PER", "B-PER", "O", "I-LOC"]]) == "IOB1"
    assert detect_scheme([["B-PER", "O", "I-LOC"]]) == "IOB2", "a stray I- start in IOB2"
    assert detect_scheme([["S-PER", "O"]]) == "BIOES"


def test_bioes_transitions_forbid_broken_chunks():
    tags = bioes_tags(["PER", "LOC"])
    allowed, start, end = bioes_transitions(tags)
    i = {t: k for k, t in enumerate(tags)}
    assert allowed[i["B-PER"]][i["E-PER"]] and not allowed[i["B-PER"]][i["E-LOC"]]
    assert not allowed[i["O"]][i["I-PER"]] and allowed[i["E-PER"]][i["S-LOC"]]
    assert start[i["B-LOC"]] and not start[i["I-LOC"]] and end[i["E-PER"]] and not end[i["B-PER"]]
