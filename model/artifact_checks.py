"""The checks of a read artifact (``tagstream.model.artifact.read``): ``check`` validates the
metadata (format and version, tokenizer, labels and tags, features) and then the vocabularies and
the network's tables against it, raising ArtifactError for the first inconsistency."""

from __future__ import annotations

import json
import pathlib

import torch

from .artifact import (
    BIGRAMS_FILE,
    FORMAT,
    FORMAT_VERSION,
    LEXICON_FILE,
    META_FILE,
    WORDS_FILE,
    ArtifactError,
)
from .features import FEATURES, gazetteer_types, parse_lexicon, table_rows
from .spans import bioes_tags, bioes_transitions
from .tokenize import check_spec
from .vocab import Vocab


def _is_int(x: object, least: int = 1) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= least


def check(
    path: pathlib.Path, module: torch.jit.ScriptModule, files: dict[str, str]
) -> tuple[dict, dict]:
    """The metadata and vocabularies (``words``, ``bigrams``, ``lexicon``), checked against each
    other and against the network's tables; ArtifactError naming the first inconsistency."""
    if not files[META_FILE]:
        raise ArtifactError(
            path, f"has no {META_FILE}: a TorchScript file, but not a tagstream model"
        )
    try:
        meta = json.loads(files[META_FILE])
    except json.JSONDecodeError as e:
        raise ArtifactError(path, f"{META_FILE} is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(
            path, f"{META_FILE} does not declare format {FORMAT!r}: not a tagstream model"
        )
    version = meta.get("format_version")
    if not _is_int(version):
        raise ArtifactError(path, f"bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            path,
            f"format version {version} is newer than this tagstream reads ({FORMAT_VERSION}); "
            "upgrade tagstream",
        )
    required = (
        "name",
        "version",
        "language",
        "tokenizer",
        "max_length",
        "max_word_chars",
        "labels",
        "tags",
        "features",
    )
    missing = [k for k in required if k not in meta]
    if missing:
        raise ArtifactError(path, f"{META_FILE} lacks {missing}")

    def bad(reason: str) -> ArtifactError:
        return ArtifactError(path, f"incompatible metadata: {reason}")

    try:
        check_spec(meta["tokenizer"], legacy=version == 1)
    except ValueError as e:
        raise bad(f"tokenizer: {e}") from None
    for key in ("max_length", "max_word_chars"):
        if not _is_int(meta[key]):
            raise bad(f"{key} must be a positive integer, got {meta[key]!r}")
    labels, features = meta["labels"], meta["features"]
    if not (
        isinstance(labels, list)
        and labels
        and all(isinstance(x, str) and x and x.strip() == x for x in labels)
        and len(set(labels)) == len(labels)
    ):
        raise bad(f"labels must be a non-empty list of distinct names, got {labels!r}")
    if meta["tags"] != bioes_tags(labels):
        raise bad(
            f"the tags are not the BIOES tags of labels {labels!r}: labels renamed, reordered or "
            f"dropped without re-training? (tags: {meta['tags']!r})"
        )
    if not (isinstance(features, list) and all(isinstance(f, str) for f in features)):
        raise bad(f"features must be a list of names, got {features!r}")
    if set(features) - set(FEATURES) or len(set(features)) != len(features):
        raise bad(f"unknown or repeated features {features!r} (known: {list(FEATURES)})")

    missing_methods = [m for m in ("emissions", "decode") if not hasattr(module, m)]
    if missing_methods:
        raise ArtifactError(
            path,
            f"the network lacks {missing_methods}: written by an older tagstream; re-export it "
            "with tagstream.model.training.export.rescript",
        )
    try:
        return _check_network(module, meta, files, bad)
    except AttributeError as e:  # a TorchScript module with emissions/decode, but not this network
        raise ArtifactError(path, f"the network is not a tagstream TaggerNet: {e}") from e


def _check_network(
    module: torch.jit.ScriptModule, meta: dict, files: dict[str, str], bad
) -> tuple[dict, dict]:
    features = meta["features"]
    words = Vocab.loads(files[WORDS_FILE])
    rows = module.word_table.size(0)
    lines = len(files[WORDS_FILE].split("\n")) if files[WORDS_FILE] else 0
    if lines + 2 != rows or len(words) != rows:
        raise bad(
            f"{WORDS_FILE} has {lines} lines ({len(words) - 2} distinct) for a word table of "
            f"{rows} rows (2 + one a word)"
        )
    vocabs: dict = {"words": words, "bigrams": None, "lexicon": None}
    tables = [emb.weight.size(0) for _, emb in module.extras.named_children()]
    if len(tables) != len(features):
        raise bad(
            f"{len(features)} features {features!r} for a network with {len(tables)} feature tables"
        )
    if "bigram_left" in features or "bigram_right" in features:
        if not files[BIGRAMS_FILE]:
            raise bad(f"bigram features without a {BIGRAMS_FILE}")
        vocabs["bigrams"] = Vocab.loads(files[BIGRAMS_FILE])
    gazetteer = {"gazetteer", "gazetteer_words"} & set(features)
    if "lexicon" in features or gazetteer:
        if not files[LEXICON_FILE]:
            raise bad(f"the lexicon or gazetteer feature without a {LEXICON_FILE}")
        vocabs["lexicon"] = frozenset(files[LEXICON_FILE].split("\n"))
        try:
            typed = parse_lexicon(vocabs["lexicon"], gazetteer_types(features))[1]
        except ValueError as e:
            raise bad(f"{LEXICON_FILE}: {e}") from e
        if gazetteer and not typed:
            raise bad(f"the gazetteer feature without typed entries in {LEXICON_FILE}")
    for feature, n in zip(features, tables):
        want = table_rows(feature, len(vocabs["bigrams"] or ()))
        if n != want:
            raise bad(f"feature {feature!r} needs a table of {want} rows, the network's has {n}")
    if module.chars is not None and int(module.char_table.max()) >= module.chars.embed.weight.size(
        0
    ):
        raise bad("the character table maps to ids beyond the character embedding")
    if module.out.out_features != len(meta["tags"]):
        raise bad(f"the network has {module.out.out_features} outputs for {len(meta['tags'])} tags")
    if module.crf is not None:
        allowed, start, end = (torch.tensor(x) for x in bioes_transitions(meta["tags"]))
        if not (
            torch.equal(module.crf.penalty == 0, allowed)
            and torch.equal(module.crf.start_penalty == 0, start)
            and torch.equal(module.crf.end_penalty == 0, end)
        ):
            raise bad("the CRF's allowed tag transitions are not those of the tags")
    network = meta.get("network")
    if isinstance(network, dict):
        declared = {"num_words": rows, "extra_sizes": tables, "num_tags": len(meta["tags"])}
        wrong = {
            k: (network.get(k), v) for k, v in declared.items() if k in network and network[k] != v
        }
        if wrong:
            raise bad(f"network sizes (declared, actual) disagree with the network: {wrong}")
    return meta, vocabs
