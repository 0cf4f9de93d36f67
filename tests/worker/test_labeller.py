"""The Python API (`tagstream.load`, `Labeller.pipe`), used as a library user would."""

from __future__ import annotations

import json

import pytest
import torch

import tagstream
from tagstream.worker.cli import main

TEXTS = ["Angela Merkel visited Paris .", "", "Zoë 🎉 e\u0301 北京", "word " * 300]


@pytest.fixture(scope="module")
def nlp(tiny_model):
    return tagstream.load(tiny_model)


def test_pipe_gives_one_document_per_text_in_order(nlp):
    docs = list(nlp.pipe(TEXTS, batch_size=3))
    assert [d["source"] for d in docs] == [{"index": i} for i in range(len(TEXTS))]
    for doc, text in zip(docs, TEXTS):
        assert doc["model"] == "tiny-random@0.0.0" and doc["id"] is None
        for span in doc["spans"]:
            assert text[span["start"] : span["end"]] == span["text"]
    assert docs[1]["spans"] == []
    assert nlp(TEXTS[0]) == {**docs[0], "source": {"index": 0}}


def test_pipe_is_lazy(nlp):
    pulled = []

    def texts():
        for i in range(10):
            pulled.append(i)
            yield f"text {i}"

    docs = nlp.pipe(texts(), batch_size=2)
    next(docs)
    assert pulled == [0, 1]


def test_tuples_carry_their_context_and_documents_their_id(nlp):
    items = [("Rome", {"row": 1}), ({"id": "x", "text": "Oslo"}, {"row": 2})]
    out = list(nlp.pipe(items, as_tuples=True))
    assert [context for _, context in out] == [{"row": 1}, {"row": 2}]
    assert [doc["id"] for doc, _ in out] == [None, "x"]


@pytest.mark.parametrize("bad", [3, {"text": 3}, {"id": 7, "text": "x"}, None])
def test_a_text_that_is_not_one_is_a_type_error_naming_it(nlp, bad):
    with pytest.raises(TypeError, match="text 1"):
        list(nlp.pipe(["fine", bad]))


def test_the_documents_are_the_ones_tagstream_tag_writes(nlp, tiny_model, tmp_path):
    inp, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    inp.write_text("\n".join(TEXTS) + "\n")
    assert main(["tag", "--model", str(tiny_model), "--input", str(inp), "--output", str(out),
                 "--input-format", "text", "--echo-text"]) == 0  # fmt: skip
    written = [json.loads(line) for line in out.read_text().splitlines()]
    echoing = tagstream.load(tiny_model, echo_text=True)
    piped = list(echoing.pipe(TEXTS))
    assert [{**d, "source": None} for d in written] == [{**d, "source": None} for d in piped]


def test_threads_apply_while_tagging_and_are_put_back(tiny_model, monkeypatch):
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    nlp = tagstream.load(tiny_model, threads=wanted)
    assert torch.get_num_threads() == before  # loading left the caller's setting alone
    seen = []
    tag_prepared = nlp.tagger.tag_prepared

    def recording(docs):
        seen.append(torch.get_num_threads())
        return tag_prepared(docs)

    monkeypatch.setattr(nlp.tagger, "tag_prepared", recording)
    list(nlp.pipe(["Rome", "Oslo"], batch_size=1))
    assert seen == [wanted, wanted] and torch.get_num_threads() == before


def test_min_scores_leave_out_spans_and_refuse_unknown_labels(tiny_model):
    every = [s for d in tagstream.load(tiny_model).pipe(TEXTS) for s in d["spans"]]
    assert every  # the random model finds something in these texts
    floor = sorted(s["score"] for s in every)[len(every) // 2]
    kept = [s for d in tagstream.load(tiny_model, min_score=floor).pipe(TEXTS) for s in d["spans"]]
    assert 0 < len(kept) < len(every) and all(s["score"] >= round(floor, 4) - 1e-4 for s in kept)
    with pytest.raises(ValueError, match="has no label GPE"):
        tagstream.load(tiny_model, min_score_by_label={"GPE": 0.5})
    with pytest.raises(ValueError, match="between 0 and 1"):
        tagstream.load(tiny_model, min_score=2)


def test_a_missing_model_is_a_value_error():
    with pytest.raises(ValueError, match="no model named .no-such-model."):
        tagstream.load("no-such-model")


def test_the_package_says_its_version_and_loads_lazily():
    assert tagstream.__version__ and tagstream.__all__ == ["__version__", "load"]
