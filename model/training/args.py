"""The command line of ``python -m tagstream.model.training.train``: its options and their defaults
(those of ``NetworkConfig`` for the network's sizes), and ``--recipe``, a file whose values become
the defaults (``tagstream.model.training.recipe``)."""

from __future__ import annotations

import argparse
import os
import pathlib

from ..network_config import NetworkConfig
from .conll import add_split_options
from .data import LANGUAGES
from .recipe import read_recipe

# the first line of tagstream.model.training.train's docstring
DESCRIPTION = (
    "Train a tagger on CoNLL-style files and save the best artifact "
    "(early stopping on dev span F1)."
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m tagstream.model.training.train",
        description=DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = NetworkConfig()
    ap.add_argument(
        "--recipe",
        help="a recipe file (model/recipes/*.toml): its values are the defaults of "
        "these options, and options given here override them",
    )
    ap.add_argument(
        "--train", nargs="+", help="training CoNLL file(s) (required, here or in the recipe)"
    )
    ap.add_argument("--dev", help="dev CoNLL file (else a slice of --train is set aside)")
    ap.add_argument(
        "--dev-train",
        choices=("first", "last", "all"),
        default=None,
        help="that half of the --dev file (in file order) is trained on as well; the other half "
        "is dev. For a dev file from other sources than the training file, as WNUT-2017's is. "
        "'all' trains on the whole file: its scores are then in-sample, so it needs --keep-last",
    )
    ap.add_argument(
        "--keep-last",
        action="store_true",
        help="train all --epochs and keep the last weights: no early stopping, and the "
        "learning rate is multiplied by --lr-decay after every evaluation instead of after "
        "those that do not improve dev (dev is only reported)",
    )
    ap.add_argument(
        "--transfer",
        nargs="+",
        help="CoNLL file(s) of another corpus to train on as well (never dev or held out), "
        "their labels renamed by --transfer-labels; a sentence with an entity of a label not "
        "renamed is left out",
    )
    ap.add_argument(
        "--transfer-labels",
        default="",
        help="how --transfer's labels become the model's, e.g. PER=person,LOC=location "
        "(in a recipe also a table)",
    )
    ap.add_argument(
        "--init-from",
        help="start from the weights of this tagstream model (transfer from another corpus, "
        "e.g. a news model for social media): a network of the same shape and features; its "
        "output layer and CRF only if the labels are the same",
    )
    ap.add_argument(
        "--mention-swap",
        type=int,
        default=0,
        help="add this many copies of the training sentences with entities, each mention "
        "replaced by a random training mention of its label (0: none)",
    )
    ap.add_argument(
        "--run-together",
        type=float,
        default=0.0,
        help="chance that a training sentence runs on from the one before it in the file into "
        "one training sequence (within --max-length), so that the network learns to read texts "
        "of several sentences as users send them (0: each sentence alone)",
    )
    ap.add_argument(
        "--transfer-limit",
        type=int,
        default=0,
        help="train on at most this many --transfer sentences, a sample chosen with --seed "
        "(0: all)",
    )
    add_split_options(ap, scoring=False)
    ap.add_argument(
        "--average",
        type=float,
        default=0.0,
        help="evaluate and export the moving average of the weights with this decay per step, "
        "e.g. 0.999 (0: the weights as trained)",
    )
    ap.add_argument("--language", choices=sorted(LANGUAGES), default="en")
    ap.add_argument("--output", help="artifact path (.pt) (required, here or in the recipe)")
    ap.add_argument("--name", default="custom")
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument(
        "--patience", type=int, default=5, help="epochs without a better dev F1 before stopping"
    )
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=0,
        help="stop after this much training time (0: no limit)",
    )
    ap.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="evaluate every N batches as well as each epoch (0: epochs only)",
    )
    ap.add_argument(
        "--batch-tokens", type=int, default=512, help="tokens per training batch (padded)"
    )
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--lr-decay",
        type=float,
        default=0.5,
        help="lr factor after an evaluation without improvement",
    )
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument(
        "--recall-margin",
        type=float,
        default=0.0,
        help="softmax-margin loss: extra score of the outside tag at gold entity tokens, "
        "which the network must overcome (raises recall; 0: plain CRF likelihood)",
    )
    ap.add_argument(
        "--lowercase",
        type=float,
        default=0.0,
        help="chance to train on a sentence lower-cased (names without capitals, as social "
        "media writes them; the word ids are case-blind already, the characters and casing "
        "features are not)",
    )
    ap.add_argument(
        "--word-dropout",
        type=float,
        default=0.05,
        help="chance to replace a word id by unknown in training",
    )
    ap.add_argument(
        "--bigram-dropout",
        type=float,
        default=0.0,
        help="chance to replace a character bigram id by unknown in training (character-level "
        "languages): the network learns to read names whose bigrams it has not seen from the "
        "characters, the lexicon and the context",
    )
    ap.add_argument("--max-length", type=int, default=128, help="maximum tokens per sequence")
    ap.add_argument(
        "--pretrained",
        help="word vectors file made by python -m tagstream.model.training.pretrained",
    )
    ap.add_argument(
        "--pretrained-top",
        type=int,
        default=50000,
        help="add this many of the pretrained words to the vocabulary",
    )
    ap.add_argument("--min-bigram-freq", type=int, default=2)
    ap.add_argument(
        "--lexicon-top",
        type=int,
        default=100000,
        help="zh: lexicon of the N most frequent wordfreq words",
    )
    ap.add_argument(
        "--gazetteer",
        action="store_true",
        help="name lists as a feature. zh: jieba's dictionary (MIT) joins the lexicon, its "
        "person, place and organisation names typed (gazetteer); en: GeoNames places, census "
        "first names and surnames (gazetteer_words)",
    )
    ap.add_argument(
        "--teacher",
        choices=("lac",),
        default=None,
        help="zh: learn Baidu LAC's word and name tags of the training characters as a second "
        "target (model.teacher; training only, the artifact is unchanged)",
    )
    ap.add_argument(
        "--teacher-model",
        help="en: a token classifier that `python -m tagstream.model.training.finetune --output "
        "DIR` fine-tuned on the same split; its tag probabilities of every training word are a "
        "second target (training only, the artifact is unchanged)",
    )
    ap.add_argument(
        "--teacher-weight", type=float, default=0.3, help="weight of the teacher's loss"
    )
    ap.add_argument(
        "--word-dim",
        type=int,
        default=d.word_dim,
        help="(ignored with --pretrained: its size is used)",
    )
    ap.add_argument("--freeze-words", action="store_true", help="do not fine-tune the word table")
    ap.add_argument("--char-dim", type=int, default=d.char_dim)
    ap.add_argument("--char-filters", type=int, default=d.char_filters)
    ap.add_argument(
        "--extra-dim", type=int, default=16, help="size of the casing / bigram embeddings"
    )
    ap.add_argument("--hidden", type=int, default=d.hidden)
    ap.add_argument("--layers", type=int, default=d.lstm_layers)
    ap.add_argument("--heads", type=int, default=d.heads)
    ap.add_argument("--dropout", type=float, default=d.dropout)
    ap.add_argument(
        "--softmax", action="store_true", help="softmax output layer instead of the CRF"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument(
        "--steps",
        type=int,
        default=0,
        help="stop after this many batches (0: no limit); unlike "
        "--max-minutes, independent of the machine's speed",
    )
    given = ap.parse_known_args(argv)[0]  # every option's dest, with its default if not given
    if given.recipe:
        try:
            ap.set_defaults(**read_recipe(given.recipe, set(vars(given))))
        except (OSError, ValueError) as e:
            ap.error(str(e))
    args = ap.parse_args(argv)
    for name in ("train", "output"):
        if not getattr(args, name):
            ap.error(f"--{name} is required (on the command line or in the recipe)")
    if args.dev_train and not args.dev:
        ap.error("--dev-train trains on half of the --dev file: give one")
    if args.dev_train == "all" and not args.keep_last:
        ap.error("--dev-train all leaves no dev to choose an epoch on: give --keep-last")
    if args.teacher and args.language != "zh":
        ap.error(f"--teacher lac tags Chinese only, not --language {args.language}")
    if args.teacher_model:
        if args.teacher:
            ap.error("--teacher-model and --teacher: one teacher at a time")
        if args.language != "en":
            ap.error(f"--teacher-model reads English, not --language {args.language}")
        args.teacher_model = os.path.expanduser(args.teacher_model)
    if not 0 <= args.lowercase <= 1:
        ap.error(f"--lowercase is a chance, from 0 to 1, not {args.lowercase}")
    if not 0 <= args.bigram_dropout <= 1:
        ap.error(f"--bigram-dropout is a chance, from 0 to 1, not {args.bigram_dropout}")
    if args.bigram_dropout and args.language != "zh":
        ap.error(
            f"--bigram-dropout drops character bigrams, which --language {args.language} "
            "does not use (--language zh does)"
        )
    return args


def missing_inputs(args: argparse.Namespace) -> list[str]:
    """The inputs of ``args`` (train, dev, transfer, init-from files, the teacher-model
    directory) that do not exist, one message each. Only training reads them: the commands that
    read a recipe to score its models (evaluate, calibrate, finetune) need none of them."""
    missing = []
    for name in ("train", "dev", "transfer", "init_from"):
        given = getattr(args, name, None) or []
        for path in [given] if isinstance(given, str) else given:
            if not pathlib.Path(path).is_file():
                missing.append(f"--{name.replace('_', '-')}: no such file: {path}")
    teacher = getattr(args, "teacher_model", None)
    if teacher and not os.path.isdir(teacher):
        missing.append(
            f"--teacher-model: no such directory: {teacher} (fine-tune it with python -m "
            "tagstream.model.training.finetune --recipe RECIPE --dev-train "
            f"{args.dev_train or 'first|last|all'} --output DIR)"
        )
    return missing
