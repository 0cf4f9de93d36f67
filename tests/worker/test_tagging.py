"""The score floor (settings ``model.min_score`` and ``model.min_score_by_label``): which spans
it keeps, and that the worker's loop delivers only those."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tagstream.worker.records import TopicPartition
from tagstream.worker.tagging import ScoreFloor
from tests.worker.fakes import EchoTagger, record
from tests.worker.test_pipeline import make, turn_until


@dataclass(frozen=True)
class S:
    start: int
    end: int
    label: str
    text: str
    score: float

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "label": self.label, "score": self.score}


SPANS = [
    S(0, 3, "PER", "Ada", 0.95),
    S(4, 9, "MISC", "Latin", 0.55),
    S(10, 15, "LOC", "Paris", 0.7),
]


def labels(spans) -> list[str]:
    return [s.label for s in spans]


def test_no_floor_keeps_every_span():
    assert ScoreFloor().keep(SPANS) == tuple(SPANS)


def test_the_default_floor_drops_what_scores_below_it():
    assert labels(ScoreFloor(0.7).keep(SPANS)) == ["PER", "LOC"]  # 0.7 itself is kept
    assert labels(ScoreFloor(0.96).keep(SPANS)) == []


def test_a_label_floor_replaces_the_default_for_its_label():
    floor = ScoreFloor(0.6, {"MISC": 0.5, "PER": 0.99})
    assert labels(floor.keep(SPANS)) == ["MISC", "LOC"]
    assert floor.unknown_labels(["PER", "LOC", "ORG"]) == ["MISC"]


class ScoredTagger(EchoTagger):
    """Finds the three spans of `SPANS` in every text."""

    labels = ("PER", "MISC", "LOC")

    def tag_prepared(self, docs) -> list[list]:
        super().tag_prepared(docs)
        return [list(SPANS) for _ in docs]


@pytest.mark.parametrize(
    "model, kept",
    [
        ({}, ["PER", "MISC", "LOC"]),
        ({"min_score": 0.6}, ["PER", "LOC"]),
        ({"min_score": 0.6, "min_score_by_label": {"LOC": 0.8, "MISC": 0.5}}, ["PER", "MISC"]),
    ],
)
def test_the_worker_delivers_the_spans_above_the_floor(model, kept):
    journal, source, sink, _, pipeline = make(tagger=ScoredTagger(), batch=2, model=model)
    source.polls.append([record("in", 0, 0), record("in", 0, 1)])
    turn_until(pipeline, lambda: source.committed.get(TopicPartition("in", 0)) == 2)
    assert [labels(o.entry.spans) for o in sink.delivered] == [kept, kept]
