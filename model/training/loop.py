"""The training loop, as a generator of dev evaluations.

`TrainingRun.evaluations` trains epoch after epoch and yields an `Evaluation` at every
evaluation point (each ``eval_every`` batches, the end of each epoch, and where a step or time
budget ends training). It decides nothing about them: the caller (`tagstream.model.training.train`)
keeps the best model, lowers the learning rate (`TrainingRun.scale_lr`) and stops early
(`TrainingRun.stop`) between two evaluations. The network stays in eval mode while the caller
holds an evaluation (so it can export it as it is), and goes back to training when asked for
the next one.
"""

from __future__ import annotations

import json
import logging
import pathlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

from ..artifact import META_FILE, WORDS_FILE, ArtifactError, plain_state, read
from ..network import TaggerNet
from ..spans import tags_to_spans
from ..vocab import UNK, Vocab
from .averaging import WeightAverage
from .data import Example, collate, make_batches
from .evaluate import score
from .teacher import AuxTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """The network's dev scores at one evaluation point."""

    epoch: float  # epochs trained so far (fractional within an epoch)
    step: int  # batches trained so far
    scores: dict  # `tagstream.model.training.evaluate.score` of the dev set
    best_f1: float  # the best micro F1 before this evaluation (-1 before the first)
    holdout: dict | None = None  # the same scores of the held-out slice, if there is one

    @property
    def f1(self) -> float:
        return self.scores["micro"]["f1"]

    @property
    def is_best(self) -> bool:
        """Better than every evaluation before it."""
        return self.f1 > self.best_f1


@dataclass(frozen=True)
class LoopOptions:
    epochs: int
    batch_tokens: int  # tokens per training batch (padded)
    clip: float  # gradient norm clipping of the dense parameters
    word_dropout: float  # chance to replace a word id by unknown
    eval_every: int = 0  # batches between evaluations within an epoch (0: epochs only)
    steps: int = 0  # stop after this many batches (0: no limit)
    max_minutes: float = 0  # stop after this much time since `started` (0: no limit)
    average: float = 0  # evaluate the moving average of the weights with this decay (0: off)
    recall_margin: float = 0  # softmax-margin cost of a missed entity token (`TaggerNet.loss`)
    lowercase: float = 0  # chance to train on a sentence's lower-cased copy (`train_lower`)
    bigram_dropout: float = 0  # chance to replace a character bigram id by unknown
    bigram_columns: tuple[int, ...] = ()  # the columns of the extra features that are bigram ids


def drop_ids(extras: Tensor, columns: Sequence[int], chance: float) -> Tensor:
    """``extras`` (B, T, E) with each id (not padding, not unknown) of the given columns replaced
    by unknown with ``chance``, each independently."""
    out = extras.clone()
    part = out[:, :, list(columns)]
    out[:, :, list(columns)] = part.masked_fill((torch.rand(part.shape) < chance) & (part > 1), UNK)
    return out


class NoProgress:
    """What the loop needs of a progress bar (tqdm's interface), showing nothing."""

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, refresh: bool = False, **values: str) -> None:
        pass

    def close(self) -> None:
        pass


def predict(
    net: TaggerNet, examples: Sequence[Example], tags: Sequence[str], batch_tokens: int = 8192
) -> list[list[tuple[int, int, str]]]:
    """Entity spans (token indices) the network finds in each example (on the float32 path,
    the reference whatever the CPU)."""
    net.eval()
    fast, net.fast_lstm = net.fast_lstm, False
    out: list = [None] * len(examples)
    try:
        with torch.inference_mode():
            for idx in make_batches(examples, batch_tokens, None):
                words, extras, chars, lengths, _ = collate(examples, idx)
                best, _ = net(words, extras, chars, lengths)
                for row, i in enumerate(idx):
                    out[i] = tags_to_spans([tags[t] for t in best[row, : lengths[row]].tolist()])
    finally:
        net.fast_lstm = fast
    return out


def init_word_table(net: TaggerNet, words: Vocab, pretrained: dict | None) -> int:
    """Copy pretrained vectors into the word table; returns how many rows were set."""
    if pretrained is None:
        return 0
    vecs = pretrained["vectors"].float()
    index = {w: i for i, w in enumerate(pretrained["words"])}
    rows = [(i, index[w]) for i, w in enumerate(words.itos) if w in index]
    with torch.no_grad():
        scale = vecs.std().item()
        net.word_table.normal_(0.0, scale)
        net.word_table[0].zero_()
        dst = torch.tensor([r[0] for r in rows])
        src = torch.tensor([r[1] for r in rows])
        net.word_table[dst] = vecs[src]
    return len(rows)


# never taken from the source: the code-point map is the new vocabulary's, the CRF's allowed moves
# follow from the tags, and an int8 table's scales are set on export
_OWN = frozenset(
    {"char_table", "word_scale", "crf.penalty", "crf.start_penalty", "crf.end_penalty"}
)
_OUTPUT = ("out.", "crf.")
_BY_ROW = ("chars.embed.weight", "word_table")  # taken by character / by word


class InitFromError(ValueError):
    """``--init-from`` names a model that cannot start this network (unreadable, or another
    shape or features)."""


def init_from(
    net: TaggerNet,
    words: Vocab,
    chars: Vocab,
    features: Sequence[str],
    tags: Sequence[str],
    path: str,
) -> tuple[str, list[str]]:
    """Start ``net`` from the weights of the tagstream artifact at ``path`` (transfer from a
    model of another corpus); returns the source's name and version and the names of the
    tensors taken.

    The two networks must have the same shape (hidden size, layers, heads, character CNN, word
    dimension) and the same features: `InitFromError` naming each difference otherwise. Character
    rows are taken by character and, when ``net`` fine-tunes its words, word rows by word (the
    rows of padding and "unknown" as they are); characters and words the source does not know
    keep their fresh (or pretrained) rows, and a frozen word table keeps its pretrained vectors.
    The output layer and the CRF are taken only when the two models have the same ``tags``;
    otherwise they start fresh."""
    try:
        source, files = read(pathlib.Path(path))
    except ArtifactError as e:
        raise InitFromError(f"--init-from: {e}") from None
    meta = json.loads(files[META_FILE])
    if list(meta["features"]) != list(features):
        raise InitFromError(
            f"--init-from {path}: its features {meta['features']} are not this model's "
            f"{list(features)}"
        )
    theirs = plain_state(source.state_dict())
    ours = net.state_dict()
    wrong = [
        f"{k} {tuple(theirs[k].shape) if k in theirs else 'missing'} (here {tuple(v.shape)})"
        for k, v in ours.items()
        if k not in _OWN
        and not k.startswith(_OUTPUT)
        and k not in _BY_ROW
        and (k not in theirs or theirs[k].shape != v.shape)
    ]
    wrong += [
        f"{k} rows of {theirs[k].size(1) if k in theirs else 'missing'} (here {ours[k].size(1)})"
        for k in _BY_ROW
        if k in ours and (k not in theirs or theirs[k].size(1) != ours[k].size(1))
    ]
    if wrong:
        raise InitFromError(f"--init-from {path}: a network of another shape: " + "; ".join(wrong))
    same_tags = list(meta.get("tags", ())) == list(tags)
    source_words = Vocab.loads(files[WORDS_FILE])
    code = source.char_table
    rows = {
        "chars.embed.weight": [
            (i, int(code[ord(c)]))
            for c, i in chars.stoi.items()
            if len(c) == 1 and ord(c) < code.numel()
        ],
        "word_table": [(i, source_words[w]) for w, i in words.stoi.items()]
        if net.word_table.requires_grad
        else [],
    }
    taken = []
    with torch.no_grad():
        for k, v in ours.items():
            output = k.startswith(_OUTPUT)
            if k in _OWN or output and not (same_tags and k in theirs):  # a softmax source
                continue
            if k in _BY_ROW:
                if not rows[k]:
                    continue
                pairs = [(0, 0), (UNK, UNK)] + [(i, j) for i, j in rows[k] if j > UNK]
                v[torch.tensor([i for i, _ in pairs])] = theirs[k][
                    torch.tensor([j for _, j in pairs])
                ]
                log.info("--init-from: %d of %d rows of %s", len(pairs), v.size(0), k)
            else:
                v.copy_(theirs[k])
            taken.append(k)
    return f"{meta['name']} {meta['version']}", taken


class TrainingRun:
    """One training of ``net`` on ``train_ex``, scored on ``dev_ex`` (gold spans ``dev_gold``)
    and, if given, on a held-out slice ``holdout`` (its examples and gold spans).

    With ``options.average``, what is evaluated (and held between evaluations) is the moving average
    of the weights (`tagstream.model.training.averaging`); training goes on from the raw ones. The
    embedding tables get sparse gradients and SparseAdam (a dense Adam step over a 40k-row table per
    batch would dominate the training time); everything else Adam with clipping.
    """

    def __init__(
        self,
        net: TaggerNet,
        train_ex: Sequence[Example],
        dev_ex: Sequence[Example],
        dev_gold: list,
        tags: Sequence[str],
        options: LoopOptions,
        lr: float,
        rng: random.Random,
        started: float,
        progress: Callable[[int, str], object] = lambda total, desc: NoProgress(),
        holdout: tuple[Sequence[Example], list] | None = None,
        train_lower: Sequence[Example] = (),
        teacher: tuple[AuxTask, Sequence[torch.Tensor]] | None = None,
    ):
        """``teacher``: an auxiliary output layer and its targets, one per training sentence
        (`tagstream.model.training.teacher`); its loss is added to the tagger's."""
        self.holdout = holdout
        self.teacher = teacher
        if options.lowercase and len(train_lower) != len(train_ex):
            raise ValueError("--lowercase needs a lower-cased copy of every training sentence")
        self.train_both = list(train_ex) + list(train_lower)  # sentence i's copy is at n + i
        self.o_tag = list(tags).index("O")
        self.net, self.train_ex, self.dev_ex, self.dev_gold, self.tags = (
            net,
            train_ex,
            dev_ex,
            dev_gold,
            tags,
        )
        self.options, self.rng, self.started, self.progress = options, rng, started, progress
        net.sparse = True
        sparse_ids = {id(p) for p in net.sparse_parameters()}
        self.dense_params = [
            p for p in net.parameters() if p.requires_grad and id(p) not in sparse_ids
        ] + (list(teacher[0].parameters()) if teacher else [])
        sparse_params = [p for p in net.sparse_parameters() if p.requires_grad]
        self.optimizers: list[torch.optim.Optimizer] = [torch.optim.Adam(self.dense_params, lr=lr)]
        if sparse_params:
            self.optimizers.append(torch.optim.SparseAdam(sparse_params, lr=lr))
        self.train_tokens = sum(len(ex[2]) for ex in train_ex)
        self.step = 0
        self.best_f1 = -1.0
        self.stopped = False
        self.average = WeightAverage(net, options.average) if options.average else None

    def scale_lr(self, factor: float) -> None:
        """Multiply the learning rate of every optimizer by ``factor`` (from the next batch on)."""
        for opt in self.optimizers:
            for g in opt.param_groups:
                g["lr"] *= factor

    def stop(self) -> None:
        """End training at once: the loop finishes the epoch's bookkeeping (its loss line) and
        yields no further evaluation."""
        self.stopped = True

    def evaluate(self, epoch: float) -> Evaluation:
        """Scores of the network as it is now (with `average`: swap the average in first)."""
        result = score(self.dev_gold, predict(self.net, self.dev_ex, self.tags))
        held = None
        if self.holdout is not None:
            held = score(self.holdout[1], predict(self.net, self.holdout[0], self.tags))
        evaluation = Evaluation(epoch, self.step, result, self.best_f1, held)
        self.best_f1 = max(self.best_f1, evaluation.f1)
        return evaluation

    def _held(self, epoch: float) -> Iterator[Evaluation]:
        """Yield the evaluation at ``epoch`` with the evaluated weights in the network, then go
        back to the trained ones in training mode."""
        if self.average is not None:
            self.average.swap()
        yield self.evaluate(epoch)
        if self.average is not None:
            self.average.swap()
        self.net.train()

    def _out_of_budget(self) -> bool:
        o = self.options
        out_of_time = o.max_minutes and time.perf_counter() - self.started > 60 * o.max_minutes
        return bool(o.steps and self.step >= o.steps or out_of_time)

    def _train_batch(self, idx: list[int]) -> tuple[int, float]:
        """One optimisation step; returns the batch's tokens and its summed loss."""
        if self.options.lowercase:
            n = len(self.train_ex)
            idx = [i + n if self.rng.random() < self.options.lowercase else i for i in idx]
        w, extras, chars, lengths, gold = collate(self.train_both, idx)
        if self.options.word_dropout > 0:
            w = w.masked_fill((torch.rand(w.shape) < self.options.word_dropout) & (w > 1), UNK)
        if self.options.bigram_dropout > 0 and self.options.bigram_columns:
            extras = drop_ids(extras, self.options.bigram_columns, self.options.bigram_dropout)
        with self.teacher[0].watching() if self.teacher else nullcontext():
            loss = self.net.loss(
                w, extras, chars, lengths, gold, self.options.recall_margin, self.o_tag
            )
        if self.teacher:  # lower-cased copies (at n + i) have sentence i's targets
            aux, targets = self.teacher
            loss = loss + aux.loss([targets[i % len(self.train_ex)] for i in idx])
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        (loss / len(idx)).backward()
        torch.nn.utils.clip_grad_norm_(self.dense_params, self.options.clip)
        for opt in self.optimizers:
            opt.step()
        if self.average is not None:
            self.average.update()
        self.step += 1
        return int(lengths.sum()), loss.item()

    def evaluations(self) -> Iterator[Evaluation]:
        """Train, yielding the dev scores at each evaluation point, until the epochs are done,
        the step or time budget is spent (a last evaluation where it ended), or `stop`."""
        o = self.options
        for epoch in range(1, o.epochs + 1):
            self.net.train()
            batches = make_batches(self.train_ex, o.batch_tokens, self.rng)
            bar = self.progress(self.train_tokens, f"epoch {epoch}")
            t0, seen, loss_sum = time.perf_counter(), 0, 0.0
            out_of_budget = False
            for b, idx in enumerate(batches, 1):
                n_tok, loss = self._train_batch(idx)
                seen += n_tok
                loss_sum += loss
                bar.update(n_tok)
                bar.set_postfix(
                    loss=f"{loss_sum / seen:.3f}",
                    tok_s=f"{seen / (time.perf_counter() - t0):.0f}",
                    refresh=False,
                )
                if self._out_of_budget():
                    out_of_budget = True
                    break
                if o.eval_every and self.step % o.eval_every == 0 and b < len(batches):
                    yield from self._held(epoch - 1 + b / len(batches))
                    if self.stopped:
                        break
            bar.close()
            log.info(
                "epoch %d: loss %.4f, %.0f tokens/s",
                epoch,
                loss_sum / max(seen, 1),
                seen / (time.perf_counter() - t0),
            )
            if self.stopped:
                return
            yield from self._held(
                float(epoch) if not out_of_budget else epoch - 1 + b / len(batches)
            )
            if out_of_budget or self.stopped:
                return
