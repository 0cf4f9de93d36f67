"""Artifacts on load: damaged (flipped bytes) and incompatible (metadata, tokenizer, CRF,
non-finite scores) ones are rejected with a clear reason."""

import json
import zipfile

import pytest
import torch

from tagstream.model import ArtifactError, load
from tagstream.model.spans import bioes_tags
from tagstream.model.tokenize import spec as tokenizer_spec
from tagstream.model.training.export import export_random, read_meta, rescript

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
            "2 features .* 4 feature tables",
        ),
        (
            "zh",
            _set(features=["lexicon", "bigram_left", "bigram_right", "gazetteer"]),
            None,
            "feature 'lexicon' needs a table of 9 rows",
        ),
        (
            "zh",
            _set(features=["bigram_left", "bigram_right", "gazetteer", "lexicon"]),
            None,
            "feature 'gazetteer' needs a table of 513 rows",
        ),
        (
            "zh",
            None,
            lambda f: f.update({"lexicon.txt": "北京\tcity\n中国"}),
            "lexicon.txt: lexicon entry .*: unknown type 'city'",
        ),
        (
            "zh",
            None,
            lambda f: f.update({"lexicon.txt": "北京\n中国"}),
            "the gazetteer feature without typed entries in lexicon.txt",
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
            "the lexicon or gazetteer feature without a lexicon.txt",
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
