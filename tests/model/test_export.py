import json
import time
import zipfile

import pytest
import torch

import tagstream.model.artifact
import tagstream.model.export
import tagstream.model.registry
from tagstream.model import ArtifactError, export_random, load
from tagstream.model.export import read_meta, rescript
from tagstream.model.spans import bioes_tags
from tagstream.model.tokenize import spec as tokenizer_spec


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
    from tagstream.model.export import rescript

    src = export_random(tmp_path / "a.pt", language="zh")
    dst = rescript(src, tmp_path / "b.pt")
    a, b = load(src), load(dst)
    assert a.info == b.info
    text = "中国人民银行在北京开会。"
    assert a.tag([text]) == b.tag([text])


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


# --- damaged and incompatible artifacts: rejected on load with a clear reason -------------------


def test_bytes_flipped_inside_a_tensor_fail_the_crc_check(tmp_path):
    """Same length, valid zip structure and TorchScript: only the member's CRC shows the damage."""
    path = export_random(tmp_path / "r.pt")
    with zipfile.ZipFile(path) as z:
        member = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        assert member.compress_type == zipfile.ZIP_STORED
    data = bytearray(path.read_bytes())
    start = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra)
    for k in range(0, member.file_size, 101):
        data[start + k] ^= 0x5A
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(bytes(data))
    assert corrupt.stat().st_size == path.stat().st_size
    torch.jit.load(str(corrupt))  # TorchScript alone does not notice
    with pytest.raises(ArtifactError, match=f"zip member '{member.filename}' fails its CRC check"):
        load(corrupt)


def rewrite(src, dst, meta_fn=None, files_fn=None, module_fn=None):
    """Save ``src``'s module again with edited metadata / extra files / weights (valid CRCs)."""
    files = {"tagstream.json": "", "words.txt": "", "bigrams.txt": "", "lexicon.txt": ""}
    module = torch.jit.load(str(src), _extra_files=files)
    files = {k: v.decode() if isinstance(v, bytes) else v for k, v in files.items()}
    meta = json.loads(files["tagstream.json"])
    if meta_fn:
        meta_fn(meta)
    files["tagstream.json"] = json.dumps(meta)
    if files_fn:
        files_fn(files)
    if module_fn:
        module_fn(module)
    torch.jit.save(module, str(dst), _extra_files={k: v for k, v in files.items() if v})
    return dst


@pytest.fixture(scope="module")
def en(tmp_path_factory):
    return export_random(tmp_path_factory.mktemp("en") / "en.pt")


@pytest.fixture(scope="module")
def zh(tmp_path_factory):
    return export_random(tmp_path_factory.mktemp("zh") / "zh.pt", language="zh")


def test_the_rewritten_copy_itself_loads(en, zh, tmp_path):
    load(rewrite(en, tmp_path / "en.pt"))
    load(rewrite(zh, tmp_path / "zh.pt"))


def _set(**kw):
    return lambda meta: meta.update(kw)


@pytest.mark.parametrize(
    "language, meta_fn, files_fn, reason",
    [
        ("en", _set(features=[]), None, r"0 features \[\] for a network with 1 feature tables"),
        (
            "zh",
            _set(features=["bigram_left", "bigram_right"]),
            None,
            "2 features .* 3 feature tables",
        ),
        (
            "zh",
            _set(features=["lexicon", "bigram_left", "bigram_right"]),
            None,
            "feature 'lexicon' needs a table of 9 rows",
        ),
        ("en", _set(features=["case", "case"]), None, "unknown or repeated features"),
        ("en", _set(labels=["A", "B", "C", "D"]), None, "are not the BIOES tags of labels"),
        ("en", _set(labels=["PER", "LOC", "ORG"], tags=None), None, "outputs for 13 tags"),
        ("en", _set(labels=[]), None, "labels must be a non-empty list"),
        (
            "en",
            _set(tokenizer="conll-en"),
            None,
            "tokenizer: expected an object with a kind and a version",
        ),
        ("en", _set(tokenizer={"kind": "conll-en"}), None, "conll-en: no rules version"),
        (
            "en",
            _set(tokenizer={"kind": "whitespace", "version": 1}),
            None,
            "tokenizer: unknown kind 'whitespace'",
        ),
        (
            "en",
            lambda m: m["tokenizer"].update(version=99),
            None,
            "rules version 99 is not implemented.*upgrade",
        ),
        (
            "en",
            lambda m: m["tokenizer"]["settings"]["clitics"].pop(),
            None,
            r"settings differ .* in \['clitics'\]",
        ),
        (
            "zh",
            lambda m: m.update(tokenizer=dict(m["tokenizer"], kind="conll-en")),
            None,
            "settings differ",
        ),
        ("en", _set(max_length=0), None, "max_length must be a positive integer"),
        (
            "en",
            None,
            lambda f: f.update({"words.txt": f["words.txt"] + "\nextra"}),
            "words.txt has .* for a word table",
        ),
        (
            "en",
            None,
            lambda f: f.update({"words.txt": f["words.txt"].replace("the", "of", 1)}),
            "words.txt has",
        ),
        (
            "zh",
            None,
            lambda f: f.update({"bigrams.txt": f["bigrams.txt"].rsplit("\n", 1)[0]}),
            "feature 'bigram_left' needs a table of",
        ),
        (
            "zh",
            None,
            lambda f: f.update({"lexicon.txt": ""}),
            "the lexicon feature without a lexicon.txt",
        ),
        ("en", lambda m: m["network"].update(num_words=5), None, "network sizes .* disagree"),
    ],
)
def test_incompatible_metadata_is_rejected_on_load(
    en, zh, tmp_path, language, meta_fn, files_fn, reason
):
    def edit(meta):
        meta_fn(meta)
        if "tags" in meta and meta["tags"] is None:  # recompute: labels and tags consistent
            meta["tags"] = bioes_tags(meta["labels"])

    path = rewrite(
        en if language == "en" else zh, tmp_path / "bad.pt", edit if meta_fn else None, files_fn
    )
    with pytest.raises(ArtifactError, match="incompatible metadata: .*" + reason):
        load(path)


def test_format_1_artifacts_with_only_the_tokenizer_kind_still_load(en, tmp_path):
    """Format 1 stored {"kind": ...} only; its rules were version 1, which this code implements."""
    path = rewrite(en, tmp_path / "v1.pt", _set(format_version=1, tokenizer={"kind": "conll-en"}))
    assert load(path).tokenizer == "conll-en"
    assert read_meta(rescript(path, tmp_path / "v2.pt"))["tokenizer"] == tokenizer_spec("conll-en")


def test_the_stored_tokenizer_spec_is_this_codes(en, zh):
    assert load(en).info["tokenizer"] == tokenizer_spec("conll-en")
    assert load(zh).info["tokenizer"]["settings"] == tokenizer_spec("char")["settings"]


def test_a_crf_whose_transitions_are_not_the_tags_is_rejected(en, tmp_path):
    def allow_all(module):
        module.crf.penalty.zero_()

    with pytest.raises(
        ArtifactError, match="the CRF's allowed tag transitions are not those of the tags"
    ):
        load(rewrite(en, tmp_path / "crf.pt", module_fn=allow_all))


def test_a_network_giving_non_finite_scores_fails_the_smoke_test(en, tmp_path):
    def poison(module):
        with torch.no_grad():
            module.word_table.fill_(float("nan"))

    path = rewrite(en, tmp_path / "nan.pt", module_fn=poison)
    with pytest.raises(ArtifactError, match="fails a test tagging of .*non-finite scores"):
        load(path)


def test_rescript_rescores_on_dev_or_drops_the_scores(tmp_path):
    from tagstream.model.conll import read_conll_lines
    from tagstream.model.evaluate import evaluate_tagger

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
