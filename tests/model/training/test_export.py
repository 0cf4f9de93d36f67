import json
import time
import zipfile

import pytest
import torch

import tagstream.model.artifact
import tagstream.model.registry
import tagstream.model.training.export
from tagstream.model import ArtifactError, load
from tagstream.model.training.export import export_random, read_meta, rescript


@pytest.mark.parametrize(
    "language, labels", [("en", ("PER", "LOC", "ORG", "MISC")), ("zh", ("PER", "LOC", "ORG"))]
)
def test_export_random_is_quick_and_loadable(tmp_path, language, labels):
    t0 = time.perf_counter()
    path = export_random(
        tmp_path / "r.pt", language=language, max_length=16, name="r", version="9.9.9"
    )
    assert time.perf_counter() - t0 < 5
    tagger = load(path, threads=1)
    assert (tagger.name, tagger.version, tagger.labels, tagger.max_length) == (
        "r",
        "9.9.9",
        labels,
        16,
    )
    text = "Some text here ." if language == "en" else "中国人民银行在北京。"
    (spans,) = tagger.tag([text])
    assert all(s.text == text[s.start : s.end] for s in spans)


def test_missing_default_names_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(tagstream.model.registry, "_SHIPPED", tmp_path / "nope")
    with pytest.raises(ArtifactError, match="nope/en-news.pt"):
        load()


def test_truncated_file(tmp_path):
    path = export_random(tmp_path / "r.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        load(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(ArtifactError, match="not a TorchScript archive"):
        load(path)


def test_foreign_torchscript_file(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(ArtifactError, match="not a tagstream model"):
        load(path)


def test_newer_format_version(tmp_path, monkeypatch):
    with monkeypatch.context() as m:  # written by a newer tagstream
        m.setattr(
            tagstream.model.artifact, "FORMAT_VERSION", tagstream.model.artifact.FORMAT_VERSION + 1
        )
        path = export_random(tmp_path / "new.pt")
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("extra/tagstream.json"))
        assert (
            json.loads(z.read(name))["format_version"]
            == tagstream.model.artifact.FORMAT_VERSION + 1
        )
    with pytest.raises(ArtifactError, match="newer"):
        load(path)


def test_rescript_keeps_weights_and_outputs(tmp_path):
    from tagstream.model.training.export import rescript

    src = export_random(tmp_path / "a.pt", language="zh")
    dst = rescript(src, tmp_path / "b.pt")
    a, b = load(src), load(dst)
    assert a.info == b.info
    text = "中国人民银行在北京开会。"
    assert a.tag([text]) == b.tag([text])
    renamed = load(rescript(src, tmp_path / "c.pt", version="9.1.0"))
    assert renamed.info["version"] == "9.1.0" and renamed.tag([text]) == a.tag([text])


def test_artifact_without_the_decode_method_is_incompatible(tmp_path):
    """An artifact written before emissions/decode existed (all else valid) is refused."""

    class Old(torch.nn.Module):
        def __init__(self, rows: int, tags: int) -> None:
            super().__init__()
            self.word_table = torch.nn.Parameter(torch.zeros(rows, 2))
            self.out = torch.nn.Linear(2, tags)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(x)

    good = export_random(tmp_path / "new.pt")
    files = {"tagstream.json": "", "words.txt": ""}
    new = torch.jit.load(str(good), _extra_files=files)
    path = tmp_path / "old.pt"
    old = torch.jit.script(Old(new.word_table.size(0), new.out.out_features))
    torch.jit.save(old, str(path), _extra_files=files)
    with pytest.raises(ArtifactError, match="older tagstream"):
        load(path)


def test_rescript_rescores_on_dev_or_drops_the_scores(tmp_path):
    from tagstream.model.training.conll import read_conll_lines
    from tagstream.model.training.evaluate import evaluate_tagger

    src = export_random(tmp_path / "a.pt")
    dev = read_conll_lines(
        [
            "John NNP B-PER",
            "Smith NNP I-PER",
            "visited VBD O",
            "Paris NNP B-LOC",
            "",
            "The DT O",
            "league NN B-ORG",
        ]
    )
    scored = rescript(src, tmp_path / "b.pt", dev=dev, dev_desc="two sentences")
    meta = read_meta(scored)
    assert (
        meta["dev_scores"] == evaluate_tagger(load(scored), dev)
        and meta["dev_scores"]["micro"]["gold"] == 3
    )
    assert meta["dev_scored_on"].startswith("two sentences: this artifact")
    assert read_meta(rescript(scored, tmp_path / "c.pt"))["dev_scores"] == {}, (
        "not re-scored: dropped"
    )
    assert read_meta(rescript(scored, scored, dev=dev))["dev_scores"] == meta["dev_scores"], (
        "in place"
    )
