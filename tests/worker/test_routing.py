"""Several models in one worker, chosen per record."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from tagstream.worker import tagging
from tagstream.worker.metrics import Metrics
from tagstream.worker.records import Batch, DeadLetter, LabelledRecord, SourceRecord
from tagstream.worker.routing import UNKNOWN_MODEL, Models, UnknownModel
from tagstream.worker.settings import ConfigError, load_settings
from tests.worker.test_outputs import Span


class Named:
    """Labels a whole text with its own name; records the batches it was called with."""

    precision = "float32"
    version = "1"

    def __init__(self, name):
        self.name = name
        self.labels = (name.upper(),)
        self.calls: list[list[str]] = []

    @dataclass(frozen=True)
    class Prepared:
        text: str
        num_tokens: int = 1

    def prepare(self, text):
        return self.Prepared(text)

    def tag_prepared(self, docs):
        self.calls.append([d.text for d in docs])
        return [[Span(0, len(d.text), self.labels[0], d.text, 1.0)] for d in docs]


def source(value: dict, headers=()):
    return SourceRecord("in", 0, 1, None, json.dumps(value).encode(), tuple(headers), 0)


@pytest.fixture
def models():
    return Models.of([Named("en"), Named("zh"), Named("social")], "model", ("meta", "model"))


def test_header_then_field_then_default(models):
    assert models.choose([("model", b"zh")], {"meta": {"model": "social"}}).name == "zh"
    assert models.choose([], {"meta": {"model": "social"}}).name == "social"
    assert models.choose([("other", b"zh")], {"text": "x"}).name == "en"
    with pytest.raises(UnknownModel, match="no model 'fr'.*en, zh, social"):
        models.choose([("model", b"fr")], {})
    with pytest.raises(UnknownModel, match="not a model's name"):
        models.choose([], {"meta": {"model": 3}})


def test_an_unknown_model_is_a_dead_letter(models):
    s = load_settings()
    entry = tagging.decode(
        source({"text": "x"}, [("model", b"fr")]), s, models.default, None, models
    )
    assert isinstance(entry, DeadLetter) and entry.reason == UNKNOWN_MODEL


def test_each_models_texts_are_one_call_of_it_and_order_is_kept(models):
    s = load_settings()
    picks = ["zh", "en", "zh", "social", "en"]
    entries = [
        tagging.decode(
            source({"text": f"t{i}"}, [("model", m.encode())]), s, models.default, None, models
        )
        for i, m in enumerate(picks)
    ]
    entries.insert(2, DeadLetter(source({}), "invalid_json", "x"))
    metrics = Metrics(CollectorRegistry(), process_metrics=False)
    out = tagging.tag_batch(models, Batch(tuple(entries), 5), metrics)
    assert models.named("zh").calls == [["t0", "t2"]]
    assert models.named("en").calls == [["t1", "t4"]]
    assert models.named("social").calls == [["t3"]]
    labels = [r.spans[0].label if isinstance(r, LabelledRecord) else "dead" for r in out]
    assert labels == ["ZH", "EN", "dead", "ZH", "SOCIAL", "EN"]


def test_a_model_loaded_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        Models.of([Named("en"), Named("en")])


def test_settings():
    s = load_settings(model={"extra": ["zh-news"], "select_header": "tagstream-model"})
    assert s.model.extra == ["zh-news"]
    with pytest.raises(ConfigError, match="listed twice"):
        load_settings(model={"extra": ["zh-news", "zh-news"]})
    with pytest.raises(ConfigError, match="JSON Pointer"):
        load_settings(model={"select_pointer": "lang"})


def test_the_output_names_the_model_that_labelled_it(models):
    from tagstream.worker.outputs import shaper_of

    s = load_settings()
    record = tagging.decode(
        source({"text": "x"}, [("model", b"zh")]), s, models.default, None, models
    )
    refs = {t.name: f"{t.name}@{t.version}" for t in models.all}
    shaper = shaper_of(s, "en@1", None, refs)
    assert json.loads(shaper.value(record, []))["model"] == "zh@1"
    assert shaper.ref_of(record) == "zh@1"
