"""Train a tagger on CoNLL-style files and save the best artifact (early stopping on dev span F1).

    python -m tagstream.model.train --train ../shared/data/conll2003/train.txt --dev ../shared/data/conll2003/valid.txt \\
        --language en --name en-news --version 1.1.0 --output model/artifacts/en-news.pt
    python -m tagstream.model.train --recipe model/recipes/en-news.toml   # the shipped model's options, as a file

Files: one token a line, tag in the last column (IOB1, IOB2 or BIOES; detected), ``-DOCSTART-``
lines ignored, tab or space separated. Without ``--dev``, a seeded ``--dev-fraction`` of the
training sentences is set aside (see ``tagstream.model.conll.split_dev``). Sentences longer than
``--max-length`` are cut into pieces of that length. Progress (loss and tokens/s) goes to stderr:
a tqdm bar if tqdm (the ``train`` extra) is installed, else a plain line every 30 seconds.

Each time dev F1 improves the network is exported, and the exported artifact itself is scored on
the dev sentences (gold tokens, as ``python -m tagstream.model.evaluate``): those are the stored scores.
"""
from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from tagstream.model.conll import Sentence, read_conll, split_dev
from tagstream.model.evaluate import format_report, score
from tagstream.model.export import build_network, confidence_note, export, read_meta
from tagstream.model.features import LEXICON_SIZE, Featurizer
from tagstream.model.network import NetworkConfig, TaggerNet
from tagstream.model.recipe import read_recipe
from tagstream.model.spans import bioes_tags, detect_scheme, spans_to_tags, tags_to_spans
from tagstream.model.tokenize import join_tokens
from tagstream.model.tokenize import spec as tokenizer_spec
from tagstream.model.vocab import CASES, UNK, Vocab, digit_key, word_key

log = logging.getLogger(__name__)
Example = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # features (N, F), chars (N, W), tag ids (N,)

LANGUAGES = {
    # language: (tokenizer kind, token separator, features)
    "en": ("conll-en", " ", ["case"]),
    "zh": ("char", "", ["bigram_left", "bigram_right", "lexicon"]),
}


def pieces(sents: Sequence[Sentence], max_length: int) -> list[Sentence]:
    """Sentences cut into pieces of at most ``max_length`` tokens (entities cut at a cut point
    are re-read by conlleval's rules, so a piece never starts with a dangling I- tag's problem)."""
    out: list[Sentence] = []
    for tokens, tags in sents:
        for i in range(0, len(tokens), max_length):
            out.append((tokens[i:i + max_length], tags[i:i + max_length]))
    return out


def build_vocabs(sents: Sequence[Sentence], language: str, pretrained: dict | None, pretrained_top: int,
                 min_bigram_freq: int) -> tuple[Vocab, Vocab, Vocab | None]:
    """Word, character and (for zh) bigram vocabularies from the training sentences (+ pretrained words)."""
    words, chars = Vocab(), Vocab()
    counts = Counter(word_key(t) for tokens, _ in sents for t in tokens)
    for w, _ in counts.most_common():
        words.add(w)
    for tokens, _ in sents:  # fallback keys of numbers: "1996" -> "0000"
        for t in tokens:
            if any(c.isdigit() for c in t):
                words.add(digit_key(t))
    if pretrained is not None:
        for w in pretrained["words"][:pretrained_top]:
            words.add(w)
    for ch, _ in Counter(c for tokens, _ in sents for t in tokens for c in t).most_common():
        if ord(ch) < 65536:
            chars.add(ch)
    bigrams = None
    if language == "zh":
        bigram_counts: Counter = Counter()
        for tokens, _ in sents:
            padded = ["<s>"] + tokens + ["</s>"]
            bigram_counts.update(a + b for a, b in zip(padded, padded[1:]))
        bigrams = Vocab(b for b, n in bigram_counts.most_common() if n >= min_bigram_freq)
    return words, chars, bigrams


def encode(sents: Sequence[Sentence], featurizer: Featurizer, tag_index: dict[str, int], sep: str) -> list[Example]:
    """Tensors of each sentence; gold tags are converted to BIOES."""
    out = []
    for tokens, tags in sents:
        text, offsets = join_tokens(tokens, sep)
        feats, chars = featurizer.encode(text, offsets)
        bioes = spans_to_tags(tags_to_spans(tags), len(tokens), "BIOES")
        out.append((feats, chars, torch.tensor([tag_index[t] for t in bioes])))
    return out


def make_batches(examples: Sequence[Example], batch_tokens: int, rng: random.Random | None) -> list[list[int]]:
    """Index batches of similar length, about ``batch_tokens`` tokens each (shuffled if ``rng``)."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i][2]), rng.random() if rng else i))
    batches, cur, cur_max = [], [], 0
    for i in order:
        n = len(examples[i][2])
        if cur and max(cur_max, n) * (len(cur) + 1) > batch_tokens:
            batches.append(cur)
            cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, n)
    if cur:
        batches.append(cur)
    if rng:
        rng.shuffle(batches)
    return batches


def widen_chars(chars: torch.Tensor, width: int) -> torch.Tensor:
    """Pad (N, w) character rows with zeros to (N, width)."""
    return chars if chars.size(1) == width else torch.nn.functional.pad(chars, (0, width - chars.size(1)))


def collate(examples: Sequence[Example], idx: Sequence[int]) -> tuple[torch.Tensor, ...]:
    feats = pad_sequence([examples[i][0] for i in idx], batch_first=True)  # (B, T, F)
    width = max(examples[i][1].size(1) for i in idx)
    chars = pad_sequence([widen_chars(examples[i][1], width) for i in idx], batch_first=True).long()  # (B, T, W)
    tags = pad_sequence([examples[i][2] for i in idx], batch_first=True)  # (B, T)
    lengths = torch.tensor([len(examples[i][2]) for i in idx])  # (B,)
    return feats[:, :, 0], feats[:, :, 1:], chars, lengths, tags


def predict(net: TaggerNet, examples: Sequence[Example], tags: Sequence[str], batch_tokens: int = 8192) -> list[list[tuple[int, int, str]]]:
    """Entity spans (token indices) the network finds in each example."""
    net.eval()
    out: list = [None] * len(examples)
    with torch.inference_mode():
        for idx in make_batches(examples, batch_tokens, None):
            words, extras, chars, lengths, _ = collate(examples, idx)
            best, _ = net(words, extras, chars, lengths)
            for row, i in enumerate(idx):
                out[i] = tags_to_spans([tags[t] for t in best[row, : lengths[row]].tolist()])
    return out


def load_pretrained(path: str | None) -> dict | None:
    """``{"words": [...], "vectors": (N, D) tensor, "source": {...}}`` from ``tagstream.model.pretrained``."""
    if not path:
        return None
    data = torch.load(path, map_location="cpu", weights_only=False)
    return data


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


class MissingExtra(ImportError):
    """A training-only dependency is not installed."""


def load_lexicon(language: str, top: int) -> list[str]:
    """Words of 2-4 characters among wordfreq's ``top`` most frequent (training-time only)."""
    try:
        from wordfreq import top_n_list
    except ImportError as e:
        raise MissingExtra(f"--language {language} builds its lexicon feature from the wordfreq package, which is "
                           "not installed: install the train extra (pip install -e '.[train]') or "
                           "pip install 'wordfreq>=3.1'") from e
    return sorted({w for w in top_n_list(language, top) if 2 <= len(w) <= 4 and "\n" not in w and not w.isspace()})


class PlainProgress:
    """What train needs of a tqdm bar, as a plain line on ``file`` (stderr) every ``interval`` seconds:
    ``epoch 3: 41% (845,312/2,061,001 tokens), loss 0.019, 7,203 tokens/s``."""

    def __init__(self, total: int, desc: str, interval: float = 30.0, file=None) -> None:
        self.total, self.desc, self.interval = total, desc, interval
        self.file = file if file is not None else sys.stderr
        self.n = 0
        self.loss = ""
        self._start = self._last = time.perf_counter()

    def update(self, n: int) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self.write(now)

    def set_postfix(self, refresh: bool = False, **values: str) -> None:
        self.loss = str(values.get("loss", ""))

    def write(self, now: float) -> None:
        pct = 100.0 * self.n / self.total if self.total else 0.0
        rate = self.n / max(now - self._start, 1e-9)
        loss = f", loss {self.loss}" if self.loss else ""
        print(f"{self.desc}: {pct:.0f}% ({self.n:,}/{self.total:,} tokens){loss}, {rate:,.0f} tokens/s",
              file=self.file, flush=True)

    def close(self) -> None:
        pass


def progress(total: int, desc: str):
    """A tqdm bar on stderr, or without tqdm (the train extra) a PlainProgress line every 30 s."""
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainProgress(total, desc)
    return tqdm(total=total, desc=desc, unit="tok", unit_scale=True, file=sys.stderr, mininterval=2.0, leave=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tagstream.model.train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = NetworkConfig()
    ap.add_argument("--recipe", help="a recipe file (model/recipes/*.toml): its values are the defaults of "
                    "these options, and options given here override them")
    ap.add_argument("--train", nargs="+", help="training CoNLL file(s) (required, here or in the recipe)")
    ap.add_argument("--dev", help="dev CoNLL file (else a slice of --train is set aside)")
    ap.add_argument("--dev-fraction", type=float, default=0.05, help="slice of train used as dev when --dev is not given")
    ap.add_argument("--split-seed", type=int, default=13, help="seed of that slice")
    ap.add_argument("--language", choices=sorted(LANGUAGES), default="en")
    ap.add_argument("--output", help="artifact path (.pt) (required, here or in the recipe)")
    ap.add_argument("--name", default="custom")
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--patience", type=int, default=5, help="epochs without a better dev F1 before stopping")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop after this much training time (0: no limit)")
    ap.add_argument("--eval-every", type=int, default=0, help="evaluate every N batches as well as each epoch (0: epochs only)")
    ap.add_argument("--batch-tokens", type=int, default=512, help="tokens per training batch (padded)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay", type=float, default=0.5, help="lr factor after an evaluation without improvement")
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--word-dropout", type=float, default=0.05, help="chance to replace a word id by unknown in training")
    ap.add_argument("--max-length", type=int, default=128, help="maximum tokens per sequence")
    ap.add_argument("--pretrained", help="word vectors file made by python -m tagstream.model.pretrained")
    ap.add_argument("--pretrained-top", type=int, default=50000, help="add this many of the pretrained words to the vocabulary")
    ap.add_argument("--min-bigram-freq", type=int, default=2)
    ap.add_argument("--lexicon-top", type=int, default=100000, help="zh: lexicon of the N most frequent wordfreq words")
    ap.add_argument("--word-dim", type=int, default=d.word_dim, help="(ignored with --pretrained: its size is used)")
    ap.add_argument("--freeze-words", action="store_true", help="do not fine-tune the word table")
    ap.add_argument("--char-dim", type=int, default=d.char_dim)
    ap.add_argument("--char-filters", type=int, default=d.char_filters)
    ap.add_argument("--extra-dim", type=int, default=16, help="size of the casing / bigram embeddings")
    ap.add_argument("--hidden", type=int, default=d.hidden)
    ap.add_argument("--layers", type=int, default=d.lstm_layers)
    ap.add_argument("--heads", type=int, default=d.heads)
    ap.add_argument("--dropout", type=float, default=d.dropout)
    ap.add_argument("--softmax", action="store_true", help="softmax output layer instead of the CRF")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--steps", type=int, default=0, help="stop after this many batches (0: no limit); unlike "
                    "--max-minutes, independent of the machine's speed")
    recipe = ap.parse_known_args(argv)[0].recipe
    if recipe:
        try:
            ap.set_defaults(**read_recipe(recipe, {a.dest for a in ap._actions}))
        except (OSError, ValueError) as e:
            ap.error(str(e))
    args = ap.parse_args(argv)
    for name in ("train", "output"):
        if not getattr(args, name):
            ap.error(f"--{name} is required (on the command line or in the recipe)")
    return args


def train(args: argparse.Namespace, command: str = "") -> dict:
    """Train, export the best model to ``args.output``; returns the best dev scores."""
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    kind, sep, features = LANGUAGES[args.language]
    lexicon = load_lexicon(args.language, args.lexicon_top) if "lexicon" in features else None  # fails early

    # 1. data
    train_sents = [s for f in args.train for s in read_conll(f)]
    if args.dev:
        dev_sents, dev_desc = read_conll(args.dev), args.dev
    else:
        train_sents, dev_sents = split_dev(train_sents, args.dev_fraction, args.split_seed)
        dev_desc = f"{args.dev_fraction:g} of {' '.join(args.train)} (split_dev seed {args.split_seed})"
    scheme = detect_scheme([t for _, t in train_sents])
    labels = sorted({typ for _, tags in train_sents for _, _, typ in tags_to_spans(tags)})
    tags = bioes_tags(labels)
    tag_index = {t: i for i, t in enumerate(tags)}
    train_sents = pieces(train_sents, args.max_length)
    log.info("%d train / %d dev sentences, scheme %s, labels %s", len(train_sents), len(dev_sents), scheme, labels)

    # 2. vocabularies and network
    pretrained = load_pretrained(args.pretrained)
    words, chars, bigrams = build_vocabs(train_sents, args.language, pretrained, args.pretrained_top, args.min_bigram_freq)
    word_dim = pretrained["vectors"].size(1) if pretrained is not None else args.word_dim
    extra_sizes = [len(CASES)] if "case" in features else [len(bigrams), len(bigrams), LEXICON_SIZE]  # type: ignore[arg-type]
    cfg = NetworkConfig(num_words=len(words), word_dim=word_dim, tune_words=not args.freeze_words,
                        num_chars=len(chars), char_dim=args.char_dim, char_filters=args.char_filters,
                        extra_sizes=extra_sizes, extra_dims=[args.extra_dim] * len(extra_sizes), hidden=args.hidden,
                        lstm_layers=args.layers, heads=args.heads, dropout=args.dropout, crf=not args.softmax,
                        num_tags=len(tags))
    net = build_network(cfg, labels, chars)
    covered = init_word_table(net, words, pretrained)
    net.word_table.requires_grad_(cfg.tune_words)
    featurizer = Featurizer(words, features, bigrams, cfg.max_word_chars, frozenset(lexicon) if lexicon else None)
    train_ex = encode(train_sents, featurizer, tag_index, sep)
    dev_ex = encode(pieces(dev_sents, args.max_length), featurizer, tag_index, sep)
    dev_gold = [tags_to_spans([tags[t] for t in ex[2].tolist()]) for ex in dev_ex]
    log.info("vocab: %d words (%d pretrained), %d chars, %s bigrams; %d parameters", len(words), covered, len(chars),
             len(bigrams) if bigrams else 0, sum(p.numel() for p in net.parameters()))

    meta = {
        "name": args.name, "version": args.version, "language": args.language, "tokenizer": tokenizer_spec(kind),
        "max_length": args.max_length, "max_word_chars": cfg.max_word_chars, "labels": labels, "features": features,
        "network": cfg.to_dict(), "confidence": confidence_note(cfg.crf),
        "pretrained": (pretrained or {}).get("source"),
        "lexicon": (f"wordfreq top {args.lexicon_top} ({args.language}) words of 2-4 characters, CC-BY-SA 4.0: "
                    f"{len(lexicon)} words") if lexicon else None,
    }
    # the embedding tables get sparse gradients and SparseAdam (a dense Adam step over a 40k-row
    # table per batch would dominate the training time); everything else Adam with clipping
    net.sparse = True
    sparse_ids = {id(p) for p in net.sparse_parameters()}
    params = [p for p in net.parameters() if p.requires_grad and id(p) not in sparse_ids]
    sparse_params = [p for p in net.sparse_parameters() if p.requires_grad]
    optimizers = [torch.optim.Adam(params, lr=args.lr)]
    if sparse_params:
        optimizers.append(torch.optim.SparseAdam(sparse_params, lr=args.lr))
    best = {"f1": -1.0}
    bad_evals = 0
    step = 0
    stop = False
    train_tokens = sum(len(ex[2]) for ex in train_ex)

    def evaluate_now(epoch: float) -> None:
        nonlocal bad_evals
        result = score(dev_gold, predict(net, dev_ex, tags))
        f1 = result["micro"]["f1"]
        log.info("epoch %.2f  dev P %.2f R %.2f F1 %.2f  (best %.2f)", epoch, result["micro"]["precision"],
                 result["micro"]["recall"], f1, best["f1"])
        if f1 > best["f1"]:  # early stopping follows the network's scores; the artifact's are stored
            best.update(f1=f1, epoch=epoch)
            bad_evals = 0
            meta["training"] = {
                "train": list(args.train), "dev": dev_desc, "train_sentences": len(train_sents), "train_tokens": train_tokens,
                "scheme": scheme, "seed": args.seed, "best_epoch": round(epoch, 2), "command": command,
                "train_seconds": round(time.perf_counter() - t_start), "torch": torch.__version__,
            }
            export(net, meta, words, bigrams, args.output, lexicon, dev=dev_sents, dev_desc=dev_desc)
            best["result"] = read_meta(args.output)["dev_scores"]
            if best["result"]["micro"] != result["micro"]:
                log.info("  the exported artifact: dev P %.2f R %.2f F1 %.2f (stored)", best["result"]["micro"]["precision"],
                         best["result"]["micro"]["recall"], best["result"]["micro"]["f1"])
        else:
            bad_evals += 1
            for opt in optimizers:
                for g in opt.param_groups:
                    g["lr"] *= args.lr_decay
        net.train()

    # 3. epochs
    for epoch in range(1, args.epochs + 1):
        net.train()
        batches = make_batches(train_ex, args.batch_tokens, rng)
        bar = progress(train_tokens, f"epoch {epoch}")
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        for b, idx in enumerate(batches, 1):
            w, extras, chars_, lengths, gold = collate(train_ex, idx)
            if args.word_dropout > 0:
                w = w.masked_fill((torch.rand(w.shape) < args.word_dropout) & (w > 1), UNK)
            loss = net.loss(w, extras, chars_, lengths, gold)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            (loss / len(idx)).backward()
            torch.nn.utils.clip_grad_norm_(params, args.clip)
            for opt in optimizers:
                opt.step()
            step += 1
            n_tok = int(lengths.sum())
            seen += n_tok
            loss_sum += loss.item()
            bar.update(n_tok)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", tok_s=f"{seen / (time.perf_counter() - t0):.0f}", refresh=False)
            out_of_time = args.max_minutes and time.perf_counter() - t_start > 60 * args.max_minutes
            if args.steps and step >= args.steps or out_of_time:
                stop = True
                break
            if args.eval_every and step % args.eval_every == 0 and b < len(batches):
                evaluate_now(epoch - 1 + b / len(batches))
                if bad_evals >= args.patience:
                    stop = True
                    break
        bar.close()
        log.info("epoch %d: loss %.4f, %.0f tokens/s", epoch, loss_sum / max(seen, 1), seen / (time.perf_counter() - t0))
        if not (stop and bad_evals >= args.patience):
            evaluate_now(float(epoch) if not stop else epoch - 1 + b / len(batches))
        if stop or bad_evals >= args.patience:
            break
    log.info("best dev F1 %.2f at epoch %s; saved %s (%.0f s); its scores as stored:", best["f1"], best.get("epoch"),
             args.output, time.perf_counter() - t_start)
    print(format_report(best["result"]))
    return best["result"]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        train(args, command="python -m tagstream.model.train " + " ".join(argv))
    except MissingExtra as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
