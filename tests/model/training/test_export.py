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


def test_int8_rows_are_within_half_a_step():
    from tagstream.model.artifact import int8_rows

    table = torch.randn(300, 16) * torch.rand(300, 1) * 5
    table[0] = 0.0  # the padding row
    rows, scale = int8_rows(table)
    assert rows.dtype == torch.int8 and scale.shape == (300,)
    error = (rows.float() * scale.unsqueeze(1) - table).abs()
    assert torch.all(error <= scale.unsqueeze(1) / 2 + 1e-6)
    assert torch.equal(rows[0], torch.zeros(16, dtype=torch.int8))
    assert rows.abs().amax(dim=1)[1:].eq(127).all()  # each row spans the whole int8 range


def test_a_big_frozen_word_table_is_stored_in_int8(tmp_path):
    from tagstream.model.artifact import plain_state

    path = export_random(tmp_path / "frozen.pt", frozen_words=6000)
    module = torch.jit.load(str(path))
    assert module.word_table.dtype == torch.int8 and module.word_scale.shape == (6000,)
    tuned = torch.jit.load(str(export_random(tmp_path / "tuned.pt")))
    assert tuned.word_table.dtype == torch.float32 and tuned.word_scale.numel() == 0

    # the network reads each row times its scale, as a float table of those values gives
    state = plain_state(module.state_dict())
    ids = torch.tensor([[5, 4000, 5999], [1, 2, 0]])
    with torch.inference_mode():
        got = module.word_vectors(ids)
    want = state["word_table"][ids]
    assert torch.allclose(got, want, atol=1e-6)

    tagger = load(path, threads=1)  # every load check passes
    again = load(rescript(path, tmp_path / "again.pt"), threads=1)  # float, then int8 again
    text = "Some text here about w17 and w5000 ."
    assert tagger.tag([text]) == again.tag([text])
    assert torch.equal(torch.jit.load(str(tmp_path / "again.pt")).word_table, module.word_table)


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
