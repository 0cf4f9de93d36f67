"""Build a network for a label set, and export trained networks as artifacts with their dev
scores (the file format itself is ``tagstream.model.artifact``).

Dev scores stored in an artifact are those of the artifact itself (loaded back from disk and scored
on gold tokens exactly as ``python -m tagstream.model.training.evaluate`` does, with the numeric
path and the CPU recorded beside them), not of the float32 network it was exported from. Re-export
an artifact with this version's network code (same weights) and re-score it::

    python -m tagstream.model.training.export model/artifacts/en-news.pt \\
        model/artifacts/en-news.pt --data ../shared/data/conll2003/valid.txt
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import sys
from collections.abc import Sequence

import torch

from ..artifact import (
    BIGRAMS_FILE,
    LEXICON_FILE,
    META_FILE,
    WORDS_FILE,
    char_table,
    plain_state,
    read,
    read_meta,
    save,
    save_again,
)
from ..features import GAZETTEER_SIZE, LEXICON_SIZE
from ..network import NetworkConfig, TaggerNet
from ..spans import bioes_tags, bioes_transitions
from ..tagger import load
from ..tokenize import check_spec
from ..tokenize import spec as tokenizer_spec
from ..vocab import CASES, Vocab
from .conll import Sentence, add_split_options, read_conll, scored_slice
from .evaluate import evaluate_tagger, format_report


def build_network(cfg: NetworkConfig, labels: Sequence[str], chars: Vocab) -> TaggerNet:
    """A freshly initialised network for entity ``labels`` (BIOES tags, constrained CRF)."""
    tags = bioes_tags(labels)
    if cfg.num_tags != len(tags):
        raise ValueError(
            f"config has {cfg.num_tags} tags but labels {list(labels)} need {len(tags)}"
        )
    allowed, start, end = bioes_transitions(tags)
    return TaggerNet(
        cfg, char_table(chars), torch.tensor(allowed), torch.tensor(start), torch.tensor(end)
    )


def confidence_note(crf: bool) -> str:
    """What ``Span.score`` means for a network with (or without) a CRF output layer."""
    if crf:
        return "mean over the span's tokens of the CRF marginal probability of the predicted tag"
    return "mean over the span's tokens of the softmax probability of the predicted tag"


CALIBRATED = (
    "the chance the span is right: the mean over its tokens of the CRF marginal probability of "
    "the predicted tag, calibrated per label on the dev split (Platt scaling)"
)


def export(
    net: TaggerNet,
    meta: dict,
    words: Vocab,
    bigrams: Vocab | None,
    path: str | os.PathLike,
    lexicon: Sequence[str] | None = None,
    *,
    dev: Sequence[Sentence] | None = None,
    dev_desc: str = "",
    holdout: Sequence[Sentence] = (),
    holdout_desc: str = "",
) -> pathlib.Path:
    """Save ``net`` with ``meta`` as an artifact at ``path`` (``tagstream.model.artifact.save``).

    With ``dev`` (gold sentences), the saved artifact is loaded back, scored on them (as ``python -m
    tagstream.model.training.evaluate``) and those scores stored as ``dev_scores``, with the numeric
    path and CPU they were measured on as ``dev_scored_with``; without, ``meta``'s ``dev_scores``
    are stored as given. With ``dev`` and ``holdout`` (a held-out slice of the training data,
    `tagstream.model.training.conll.split_latest`), the artifact's scores on it are stored as
    ``holdout_scores``. The file appears at ``path`` only when complete.
    """
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    scripted, files = save(net, meta, words, bigrams, tmp, lexicon)
    if dev is not None:
        meta = json.loads(files[META_FILE])
        scorer = load(tmp)
        meta["dev_scores"] = evaluate_tagger(scorer, dev)
        meta["dev_scored_with"] = {
            "path": scorer.precision_choice.path,
            "cpu": scorer.precision_choice.cpu,
        }
        if dev_desc:
            meta["dev_scored_on"] = (
                f"{dev_desc}: this artifact on gold tokens "
                "(as python -m tagstream.model.training.evaluate)"
            )
        if holdout:
            meta["holdout_scores"] = evaluate_tagger(scorer, holdout)
            meta["holdout_scored_on"] = f"{holdout_desc}: this artifact on gold tokens"
        save_again(scripted, files, meta, tmp)
    os.replace(tmp, path)
    return path


_EN_WORDS = (
    "the of and to in a is was for on that with by he it at said as from his be has have an are "
    "but not were which this had been after who they its their will would also or two one new more "
    "first year government president minister police people week monday tuesday wednesday thursday "
    "friday saturday sunday january june league cup world market shares company bank percent "
    "million"
).split()


def export_random(
    path: str | os.PathLike,
    *,
    language: str = "en",
    seed: int = 0,
    max_length: int = 64,
    name: str = "tiny-random",
    version: str = "0.0.0",
    frozen_words: int = 0,
) -> pathlib.Path:
    """Write a tiny, randomly initialised but complete and loadable artifact (for tests).

    ``language`` "en": conll-en tokenizer, casing feature, labels PER/LOC/ORG/MISC;
    "zh": character tokenizer, bigram, lexicon and gazetteer features, labels PER/LOC/ORG.
    ``frozen_words``: (English) made-up words "w0", "w1"... join the vocabulary up to that
    many, and the word table is marked frozen, as ``--freeze-words`` trains it.
    """
    if language not in ("en", "zh"):
        raise ValueError(f"export_random knows languages 'en' and 'zh', not {language!r}")
    torch.manual_seed(seed)
    random.seed(seed)
    if language == "en":
        labels, kind, features = ["PER", "LOC", "ORG", "MISC"], "conll-en", ["case"]
        words = Vocab(_EN_WORDS)
        for i in range(frozen_words - len(words)):
            words.add(f"w{i}")
        chars = Vocab(chr(c) for c in range(33, 127))
        bigrams, lexicon = None, None
        extra_sizes, extra_dims, char_dim = [len(CASES)], [4], 8
    else:
        labels, kind, features = (
            ["PER", "LOC", "ORG"],
            "char",
            ["bigram_left", "bigram_right", "lexicon", "gazetteer"],
        )
        common = (
            "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
            "同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自"
            "二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日"
            "那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变"
            "条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总"
            "次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指"
            "几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器"
            "压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安"
            "场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集"
            "温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连"
            "断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精"
            "值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属"
            "圆包火住调满县局照参红细引听该铁价严龙"
        )
        chars = Vocab(chr(c) for c in range(33, 127))
        for ch in common:
            chars.add(ch)
        words = Vocab(common)
        bigrams = Vocab(a + b for a, b in zip(common, common[1:]))
        lexicon = ["中国\tplace", "北京\tplace", "人民", "银行", "中国人民银行\torganisation"]
        extra_sizes = [len(bigrams), len(bigrams), LEXICON_SIZE, GAZETTEER_SIZE]
        extra_dims, char_dim = [4, 4, 4, 4], 0
    cfg = NetworkConfig(
        num_words=len(words),
        word_dim=16,
        num_chars=len(chars),
        char_dim=char_dim,
        char_filters=8,
        extra_sizes=extra_sizes,
        extra_dims=extra_dims,
        hidden=16,
        heads=2,
        num_tags=len(bioes_tags(labels)),
        tune_words=not frozen_words,
    )
    net = build_network(cfg, labels, chars)
    meta = {
        "name": name,
        "version": version,
        "language": language,
        "tokenizer": tokenizer_spec(kind),
        "max_length": max_length,
        "max_word_chars": cfg.max_word_chars,
        "labels": labels,
        "features": features,
        "network": cfg.to_dict(),
        "confidence": confidence_note(cfg.crf),
        "training": {"data": "none: random weights (export_random)", "seed": seed},
        "dev_scores": {},
    }
    return export(net, meta, words, bigrams, path, lexicon)


def rescript(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    dev: Sequence[Sentence] | None = None,
    dev_desc: str = "",
    holdout: Sequence[Sentence] = (),
    holdout_desc: str = "",
    version: str | None = None,
    calibration: dict | None = None,
) -> pathlib.Path:
    """Re-export an artifact with this version's network code and metadata format (same weights).

    For when ``network.py`` changes in a way that keeps the parameters (e.g. a faster forward), or
    to bring an older artifact's metadata up to date (the tokenizer spec of this version, for one
    whose rules version is still implemented). ``dev``: re-score the new artifact on these gold
    sentences and store the scores; without it the stored dev scores are dropped, as they were
    measured on another network code. ``version``: the artifact's new version (a recipe's
    run released under the version its recipe now names). ``calibration``: the score
    calibration to store (`tagstream.model.training.calibrate`), else the artifact's own is kept.
    ``src`` and ``dst`` may be the same file.
    """
    module, files = read(pathlib.Path(src))
    meta = json.loads(files[META_FILE])
    kind = check_spec(meta["tokenizer"], legacy=meta.get("format_version") == 1)
    cfg = NetworkConfig.from_dict(meta["network"])
    net = (
        TaggerNet(
            cfg,
            module.char_table,
            module.crf.penalty == 0,
            module.crf.start_penalty == 0,
            module.crf.end_penalty == 0,
        )
        if cfg.crf
        else None
    )
    if net is None:
        raise ValueError("rescript supports CRF models only")
    net.load_state_dict(plain_state(module.state_dict()))
    words = Vocab.loads(files[WORDS_FILE])
    bigrams = Vocab.loads(files[BIGRAMS_FILE]) if files[BIGRAMS_FILE] else None
    lexicon = files[LEXICON_FILE].split("\n") if files[LEXICON_FILE] else None
    for key in (
        "format",
        "format_version",
        "tags",
        "dev_scored_on",
        "dev_scored_with",
        "precision",
    ):
        meta.pop(key, None)
    meta["tokenizer"] = tokenizer_spec(kind)
    meta["confidence"] = confidence_note(cfg.crf)
    if version:
        meta["version"] = version
    if calibration is not None:
        meta["calibration"] = calibration
    if "calibration" in meta:
        meta["confidence"] = CALIBRATED
    if dev is None:
        meta["dev_scores"] = {}
    return export(
        net,
        meta,
        words,
        bigrams,
        dst,
        lexicon,
        dev=dev,
        dev_desc=dev_desc,
        holdout=holdout,
        holdout_desc=holdout_desc,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tagstream.model.training.export",
        description="Re-export an artifact with this "
        "version's network code and metadata (same weights) and store its dev scores.",
    )
    ap.add_argument("src", help="artifact to re-export")
    ap.add_argument("dst", help="where to write it (may be src)")
    ap.add_argument("--data", required=True, help="dev CoNLL file to score the new artifact on")
    add_split_options(ap, scoring=True, holdout=False)
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--version", default=None, help="set the artifact's version (same weights)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sents = read_conll(args.data)
    desc = args.data
    if args.dev_fraction:
        sents = scored_slice(sents, args.dev_fraction, args.split_seed)
        desc = f"{args.dev_fraction:g} of {args.data} (split_dev seed {args.split_seed})"
    path = rescript(args.src, args.dst, dev=sents, dev_desc=desc, version=args.version)
    meta = read_meta(path)
    print(f"{meta['name']}@{meta['version']} -> {path}; dev: {desc}, {len(sents)} sentences")
    print(format_report(meta["dev_scores"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
