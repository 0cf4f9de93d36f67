"""Train a tagger on CoNLL-style files and save the best artifact (early stopping on dev span F1).

    python -m tagstream.model.training.train --train ../shared/data/conll2003/train.txt \\
        --dev ../shared/data/conll2003/valid.txt \\
        --language en --name en-news --version 1.1.0 --output model/artifacts/en-news.pt
    # the shipped model's options, as a file:
    python -m tagstream.model.training.train --recipe model/recipes/en-news.toml

Files: one token a line, tag in the last column (IOB1, IOB2 or BIOES; detected), ``-DOCSTART-``
lines ignored, tab or space separated. Without ``--dev``, a seeded ``--dev-fraction`` of the
training sentences is set aside (see ``tagstream.model.training.conll.split_dev``). Sentences longer
than ``--max-length`` are cut into pieces of that length. Progress (loss and tokens/s) goes to
stderr: a tqdm bar if tqdm (the ``train`` extra) is installed, else a plain line every 30 seconds.

Each time dev F1 improves the network is exported, and the exported artifact itself is scored on the
dev sentences (gold tokens, as ``python -m tagstream.model.training.evaluate``): those are the
stored scores.

This module is that policy (what is kept, when the learning rate drops, when to stop); its command
line options are `tagstream.model.training.args`, the progress display
`tagstream.model.training.progress`, reading and encoding the data is
`tagstream.model.training.data`, and the loop that trains and yields each evaluation is
`tagstream.model.training.loop`.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time

import torch

from ..features import Featurizer, table_rows
from ..network import NetworkConfig
from ..spans import tags_to_spans
from ..tokenize import join_tokens
from ..tokenize import spec as tokenizer_spec
from .args import missing_inputs, parse_args
from .data import (
    GAZETTEER_FEATURE,
    LANGUAGES,
    MissingExtra,
    build_vocabs,
    corpus_of,
    encode,
    lexicon_source,
    load_gazetteer,
    load_lexicon,
    load_pretrained,
    lower_cased,
    mention_swapped,
    pieces,
    run_together,
)
from .evaluate import format_report
from .export import build_network, confidence_note, export, read_meta
from .finetune import TeacherModelError, check_split, soft_tags
from .loop import InitFromError, LoopOptions, TrainingRun, init_from, init_word_table
from .progress import progress
from .teacher import LAC_TAGS, AuxTask, lac_tags

log = logging.getLogger(__name__)


def train(args: argparse.Namespace, command: str = "") -> dict:
    """Train, export the best model to ``args.output``; returns the best dev scores.

    The policy is here: each evaluation that beats the ones before it is exported (and the
    exported artifact's own dev scores are the ones stored); one that does not lowers the
    learning rate by ``--lr-decay``; ``--patience`` of those in a row stop training."""
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    kind, sep, features = LANGUAGES[args.language]
    lexicon = (
        load_lexicon(args.language, args.lexicon_top) if "lexicon" in features else None
    )  # fails early
    gazetteer = load_gazetteer(args.language) if args.gazetteer else []
    if gazetteer:
        features = [*features, GAZETTEER_FEATURE[args.language]]
        lexicon = sorted(set(lexicon or ()) | set(gazetteer))

    # 1. data
    corpus = corpus_of(args)
    labels, tags = corpus.labels, corpus.tags
    written = corpus.train  # the sentences as written, before the augmented copies join
    if args.run_together:
        corpus.train = run_together(written, args.run_together, args.max_length, args.seed)
        log.info("%d sentences run together into %d sequences", len(written), len(corpus.train))
    if args.mention_swap:
        swapped = mention_swapped(written, args.mention_swap, args.seed)
        log.info("%d sentences with swapped mentions join training", len(swapped))
        corpus.train = corpus.train + pieces(swapped, args.max_length)

    # 2. vocabularies and network
    pretrained = load_pretrained(args.pretrained)
    words, chars, bigrams = build_vocabs(
        corpus.train,
        args.language,
        pretrained,
        args.pretrained_top,
        args.min_bigram_freq,
        bigram_sents=written,
    )
    word_dim = pretrained["vectors"].size(1) if pretrained is not None else args.word_dim
    extra_sizes = [table_rows(f, len(bigrams) if bigrams else 0) for f in features]
    cfg = NetworkConfig(
        num_words=len(words),
        word_dim=word_dim,
        tune_words=not args.freeze_words,
        num_chars=len(chars),
        char_dim=args.char_dim,
        char_filters=args.char_filters,
        extra_sizes=extra_sizes,
        extra_dims=[args.extra_dim] * len(extra_sizes),
        hidden=args.hidden,
        lstm_layers=args.layers,
        heads=args.heads,
        dropout=args.dropout,
        crf=not args.softmax,
        num_tags=len(tags),
    )
    net = build_network(cfg, labels, chars)
    covered = init_word_table(net, words, pretrained)
    net.word_table.requires_grad_(cfg.tune_words)
    source_desc = ""
    if args.init_from:
        source_desc, taken = init_from(net, words, chars, features, tags, args.init_from)
        log.info("--init-from %s (%s): %d tensors taken", args.init_from, source_desc, len(taken))
    featurizer = Featurizer(
        words, features, bigrams, cfg.max_word_chars, frozenset(lexicon) if lexicon else None
    )
    train_ex = encode(corpus.train, featurizer, corpus.tag_index, sep)
    dev_ex = encode(pieces(corpus.dev, args.max_length), featurizer, corpus.tag_index, sep)
    dev_gold = [tags_to_spans([tags[t] for t in ex[2].tolist()]) for ex in dev_ex]
    holdout = None
    if corpus.holdout:
        held_ex = encode(pieces(corpus.holdout, args.max_length), featurizer, corpus.tag_index, sep)
        holdout = (held_ex, [tags_to_spans([tags[t] for t in ex[2].tolist()]) for ex in held_ex])
    log.info(
        "vocab: %d words (%d pretrained), %d chars, %s bigrams; %d parameters",
        len(words),
        covered,
        len(chars),
        len(bigrams) if bigrams else 0,
        sum(p.numel() for p in net.parameters()),
    )

    meta = {
        "name": args.name,
        "version": args.version,
        "language": args.language,
        "tokenizer": tokenizer_spec(kind),
        "max_length": args.max_length,
        "max_word_chars": cfg.max_word_chars,
        "labels": labels,
        "features": features,
        "network": cfg.to_dict(),
        "confidence": confidence_note(cfg.crf),
        "pretrained": (pretrained or {}).get("source"),
        "lexicon": lexicon_source(args, lexicon) if lexicon else None,
    }
    teacher, taught = None, None
    if args.teacher:  # LAC's tag of each training token's first character
        texts = [join_tokens(tokens, sep) for tokens, _ in corpus.train]
        char_tags = lac_tags([text for text, _ in texts])
        targets = [tags[[a for a, _ in offsets]] for tags, (_, offsets) in zip(char_tags, texts)]
        teacher = (AuxTask(net, LAC_TAGS, args.teacher_weight), targets)
    elif args.teacher_model:  # the fine-tuned classifier's tag probabilities of each word
        taught = check_split(args.teacher_model, args.dev_train, args.dev)
        if taught is None:
            log.warning(
                "--teacher-model %s records no data it was fine-tuned on: if it saw the "
                "sentences this run is scored on, the scores are in-sample",
                args.teacher_model,
            )
        teacher_tags, probabilities = soft_tags(args.teacher_model, corpus.train)
        log.info("--teacher-model %s: %d tags", args.teacher_model, len(teacher_tags))
        teacher = (AuxTask(net, len(teacher_tags), args.teacher_weight), probabilities)
    options = LoopOptions(
        epochs=args.epochs,
        batch_tokens=args.batch_tokens,
        clip=args.clip,
        word_dropout=args.word_dropout,
        eval_every=args.eval_every,
        steps=args.steps,
        max_minutes=args.max_minutes,
        average=args.average,
        recall_margin=args.recall_margin,
        lowercase=args.lowercase,
        bigram_dropout=args.bigram_dropout,
        bigram_columns=tuple(i for i, f in enumerate(features) if f.startswith("bigram_")),
    )
    run = TrainingRun(
        net,
        train_ex,
        dev_ex,
        dev_gold,
        tags,
        options,
        args.lr,
        rng,
        t_start,
        progress,
        holdout,
        encode(lower_cased(corpus.train), featurizer, corpus.tag_index, sep)
        if args.lowercase
        else (),
        teacher,
    )

    # 3. epochs, and what each evaluation decides
    best: dict = {"f1": -1.0}
    bad_evals = 0
    for ev in run.evaluations():
        micro = ev.scores["micro"]
        log.info(
            "epoch %.2f  dev P %.2f R %.2f F1 %.2f  (best %.2f)",
            ev.epoch,
            micro["precision"],
            micro["recall"],
            ev.f1,
            ev.best_f1,
        )
        if ev.holdout is not None:
            log.info("           held-out F1 %.2f", ev.holdout["micro"]["f1"])
        if ev.is_best or args.keep_last:  # early stopping follows the network's scores
            best.update(f1=ev.f1, epoch=ev.epoch)
            bad_evals = 0
            meta["training"] = {
                "train": list(args.train),
                "dev": corpus.dev_desc,
                "train_sentences": len(corpus.train),
                "train_tokens": run.train_tokens,
                "scheme": corpus.scheme,
                "seed": args.seed,
                "holdout": corpus.holdout_desc or None,
                "average": args.average or None,
                "recall_margin": args.recall_margin or None,
                "lowercase": args.lowercase or None,
                "mention_swap": args.mention_swap or None,
                "run_together": args.run_together or None,
                "init_from": source_desc or None,
                "keep_last": args.keep_last or None,
                "teacher": f"{args.teacher or args.teacher_model} x {args.teacher_weight}"
                if args.teacher or args.teacher_model
                else None,
                "teacher_data": {k: taught.get(k) for k in ("train", "dev", "dev_train", "seed")}
                if taught
                else None,
                "best_epoch": round(ev.epoch, 2),
                "command": command,
                "train_seconds": round(time.perf_counter() - t_start),
                "torch": torch.__version__,
            }
            export(
                net,
                meta,
                words,
                bigrams,
                args.output,
                lexicon,
                dev=corpus.dev,
                dev_desc=corpus.dev_desc,
                holdout=corpus.holdout,
                holdout_desc=corpus.holdout_desc,
            )
            best["result"] = read_meta(args.output)["dev_scores"]
            if best["result"]["micro"] != micro:
                log.info(
                    "  the exported artifact: dev P %.2f R %.2f F1 %.2f (stored)",
                    best["result"]["micro"]["precision"],
                    best["result"]["micro"]["recall"],
                    best["result"]["micro"]["f1"],
                )
        else:
            bad_evals += 1
            run.scale_lr(args.lr_decay)
        if args.keep_last:  # a fixed schedule: dev does not decide anything
            run.scale_lr(args.lr_decay)
            continue
        if bad_evals >= args.patience:
            run.stop()
    log.info(
        "%s dev F1 %.2f at epoch %s; saved %s (%.0f s); its scores as stored:",
        "last" if args.keep_last else "best",
        best["f1"],
        best.get("epoch"),
        args.output,
        time.perf_counter() - t_start,
    )
    print(format_report(best["result"]))
    held = read_meta(args.output).get("holdout_scores")
    if held:
        print(f"held-out slice ({corpus.holdout_desc}):")
        print(format_report(held))
    return best["result"]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    missing = missing_inputs(args)
    if missing:
        for message in missing:
            print(f"error: {message}", file=sys.stderr)
        print(
            "(a recipe's paths are under the data directory; given ones as they are)",
            file=sys.stderr,
        )
        return 2
    try:
        train(args, command="python -m tagstream.model.training.train " + " ".join(argv))
    except (MissingExtra, InitFromError, TeacherModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
