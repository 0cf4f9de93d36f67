"""Load an artifact and tag texts: the API the worker codes against.

>>> tagger = load()                        # model/artifacts/en-news.pt
>>> tagger.tag(["Barack Obama visited Paris ."])
[[Span(start=0, end=12, label='PER', ...), Span(start=21, end=26, label='LOC', ...)]]

Span offsets are code-point offsets into the original text, end exclusive, and
``span.text == text[span.start:span.end]``. ``span.score`` is the mean, over the span's tokens,
of the CRF posterior marginal probability of the predicted tag (in [0, 1]).

Texts longer than ``max_length`` tokens are cut into chunks at sentence ends (else at whitespace
between tokens, else hard) and their spans merged back; nothing is truncated.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.cpu import Precision, choose_precision
from model.export import BIGRAMS_FILE, FORMAT, FORMAT_VERSION, LEXICON_FILE, META_FILE, WORDS_FILE
from model.features import FEATURES, LEXICON_SIZE, Featurizer
from model.spans import bioes_tags, bioes_transitions, tags_to_spans
from model.tokenize import check_spec, token_separator, tokenize_offsets
from model.vocab import CASES, Vocab

log = logging.getLogger(__name__)

_SENTENCE_ENDS = frozenset(".!?;。！？；…")
_MAX_BATCH_TOKENS = 8192  # padded tokens per network call
_MAX_BATCH_CHUNKS = 256
_MIN_SPLIT = 16  # chunks in a sub-batch before it may be cut to save padding
_MAX_PADDING = 1.5  # padded / real tokens allowed in a sub-batch


class ArtifactError(ValueError):
    """A model file that cannot be used: missing, corrupt, truncated, foreign or incompatible."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"model file {os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Span:
    """An entity: ``text[start:end]`` (code points, end exclusive) with its label and confidence."""

    start: int
    end: int
    label: str
    text: str
    score: float

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "label": self.label, "text": self.text, "score": self.score}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A text tokenised and cut into chunks, ready for the network (made by ``Tagger.prepare``)."""

    text: str
    num_tokens: int  # tokens over all chunks
    starts: tuple[int, ...]  # code-point offset of each token
    ends: tuple[int, ...]  # end (exclusive) of each token
    ids: tuple[list[int], ...]  # per feature column (word, extras...), one id per token
    chunks: tuple[tuple[int, int], ...]  # token ranges [a, b) of at most max_length tokens


def default_model_path() -> pathlib.Path:
    """The shipped English news model inside the installed package."""
    return pathlib.Path(__file__).resolve().parent / "artifacts" / "en-news.pt"


def chunk_bounds(text: str, starts: Sequence[int], ends: Sequence[int], max_length: int) -> list[tuple[int, int]]:
    """Cut ``n`` tokens into ranges of at most ``max_length`` tokens.

    Each cut is after the last sentence-ending token in the second half of the window, else at
    the last whitespace between tokens there, else at the window's end.
    """
    n = len(starts)
    chunks: list[tuple[int, int]] = []
    s = 0
    while n - s > max_length:
        e = s + max_length
        lo = s + max(1, max_length // 2)
        cut = next((j for j in range(e, lo, -1) if ends[j - 1] - starts[j - 1] == 1 and text[starts[j - 1]] in _SENTENCE_ENDS), 0)
        if not cut:
            cut = next((j for j in range(e, lo, -1) if starts[j] > ends[j - 1]), e)
        chunks.append((s, cut))
        s = cut
    if n > s:
        chunks.append((s, n))
    return chunks


def join_tokens(tokens: Sequence[str], sep: str = " ") -> tuple[str, list[tuple[int, int]]]:
    """``(text, offsets)`` of tokens joined by ``sep``."""
    offsets = []
    pos = 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok) + len(sep)
    return sep.join(tokens), offsets


def sub_batches(lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Cut chunk lengths sorted longest first into ranges ``[i, j)`` to run together.

    A range ends when it reaches ``_MAX_BATCH_CHUNKS`` chunks or ``_MAX_BATCH_TOKENS`` padded
    tokens, or when padding would exceed a third of it (and it has at least
    ``_MIN_SPLIT`` chunks): less padding for attention, output layer and CRF, at the cost of
    more LSTM steps.
    """
    out = []
    i, n = 0, len(lengths)
    while i < n:
        longest = lengths[i]
        j, real = i, 0
        while j < n and j - i < _MAX_BATCH_CHUNKS and (j - i + 1) * longest <= max(_MAX_BATCH_TOKENS, longest):
            if j - i >= _MIN_SPLIT and (j - i + 1) * longest > _MAX_PADDING * (real + lengths[j]):
                break
            real += lengths[j]
            j += 1
        out.append((i, j))
        i = j
    return out


class Tagger:
    """A loaded artifact. ``tag``/``tag_prepared`` may be called from one thread at a time each."""

    def __init__(self, module: torch.jit.ScriptModule, meta: dict, words: Vocab, bigrams: Vocab | None,
                 lexicon: frozenset[str] | None = None) -> None:
        self.module = module
        self.info: dict = meta
        self.name: str = meta["name"]
        self.version: str = meta["version"]
        self.labels: tuple[str, ...] = tuple(meta["labels"])
        self.max_length: int = int(meta["max_length"])
        self.tokenizer: str = meta["tokenizer"]["kind"]
        self.tags: list[str] = list(meta["tags"])
        self.precision: str = (meta.get("precision") or {}).get("path", "")  # set by load()
        self._featurizer = Featurizer(words, meta["features"], bigrams, int(meta["max_word_chars"]), lexicon)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Tagger({self.name}@{self.version}, labels={self.labels}, max_length={self.max_length})"

    def prepare(self, text: str) -> Prepared:
        """Tokenise ``text`` and cut it into chunks; cheap, pure CPU, never raises for a str."""
        if not isinstance(text, str):
            raise TypeError(f"prepare expects str, got {type(text).__name__}")
        return self._prepared(text, tokenize_offsets(text, self.tokenizer))

    def _prepared(self, text: str, offsets: list[tuple[int, int]]) -> Prepared:
        starts = tuple(a for a, _ in offsets)
        ends = tuple(b for _, b in offsets)
        ids = tuple(self._featurizer.columns([text[a:b] for a, b in offsets])) if offsets else ()
        return Prepared(text, len(offsets), starts, ends, ids, tuple(chunk_bounds(text, starts, ends, self.max_length)))

    def prepare_tokens(self, tokens: Sequence[str]) -> Prepared:
        """A Prepared for text that is already tokenised (evaluation on gold tokens).

        The text is the tokens joined by one space ("conll-en") or nothing ("char").
        """
        return self._prepared(*join_tokens(tokens, token_separator(self.tokenizer)))

    def tag(self, texts: Sequence[str]) -> list[list[Span]]:
        """Entity spans of each text, in input order."""
        return self.tag_prepared([self.prepare(t) for t in texts])

    def tag_prepared(self, docs: Sequence[Prepared]) -> list[list[Span]]:
        """Entity spans of each prepared text, in input order (chunks batched longest first)."""
        out: list[list[Span]] = [[] for _ in docs]
        work = sorted(((b - a, d, a) for d, doc in enumerate(docs) for a, b in doc.chunks), reverse=True)
        with self._lock, torch.inference_mode():
            # 1. emissions per length-homogeneous sub-batch; 2. one CRF decode over all chunks
            ems = [self._emissions(docs, work[i:j]) for i, j in sub_batches([n for n, _, _ in work])]
            if ems:
                longest = ems[0].size(1)
                em = torch.cat([F.pad(e, (0, 0, 0, longest - e.size(1))) for e in ems])  # (B, T, C)
                tags, conf = self.module.decode(em, torch.tensor([n for n, _, _ in work]))  # (B, T) each
                self._spans(docs, work, tags, conf, out)
        for spans in out:
            spans.sort(key=lambda s: s.start)
        return out

    def _emissions(self, docs: Sequence[Prepared], batch: list[tuple[int, int, int]]) -> torch.Tensor:
        """Emission scores (B, T, C) of chunks ``(length, doc, first token)`` sorted longest first.

        The tensors are built for the whole sub-batch at once: ids from the docs' id lists, the
        characters gathered from the code points of the docs' texts.
        """
        B, T = len(batch), batch[0][0]
        lengths = torch.tensor([n for n, _, _ in batch])  # (B,)
        ncols = len(docs[batch[0][1]].ids)
        cols: list[list[int]] = [[] for _ in range(ncols)]
        starts: list[int] = []
        ends: list[int] = []
        base: dict[int, int] = {}
        texts: list[str] = []
        total = 0
        for n, d, a in batch:
            doc = docs[d]
            if d not in base:  # each doc's text once in the code point buffer
                base[d] = total
                total += len(doc.text)
                texts.append(doc.text)
            for k in range(ncols):
                cols[k] += doc.ids[k][a:a + n]
            offset = base[d]
            starts += [offset + x for x in doc.starts[a:a + n]]
            ends += [offset + x for x in doc.ends[a:a + n]]
        real = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        ids = torch.zeros(B, T, ncols, dtype=torch.long)
        ids[real] = torch.tensor(cols).t()  # (B, T, F)
        cps = torch.frombuffer(bytearray("".join(texts).encode("utf-32-le", "surrogatepass")), dtype=torch.int32)
        first = torch.tensor(starts)  # (N,)
        size = (torch.tensor(ends) - first).clamp(max=self._featurizer.max_word_chars)  # (N,)
        W = int(size.max())
        at = first.unsqueeze(1) + torch.arange(W).unsqueeze(0)  # (N, W)
        flat = torch.where(at < (first + size).unsqueeze(1), cps[at.clamp(max=cps.numel() - 1)], 0)  # (N, W)
        chars = torch.zeros(B, T, W, dtype=torch.long)
        chars[real] = flat.long()  # (B, T, W)
        return self.module.emissions(ids[:, :, 0], ids[:, :, 1:], chars, lengths)  # (B, T, C)

    def _spans(self, docs: Sequence[Prepared], work: list[tuple[int, int, int]], tags: torch.Tensor,
               conf: torch.Tensor, out: list[list[Span]]) -> None:
        has_entity = (tags != 0).any(dim=1).tolist()
        tag_rows = tags.tolist()
        for row, (n, d, a) in enumerate(work):
            if not has_entity[row]:
                continue
            doc = docs[d]
            names = [self.tags[t] for t in tag_rows[row][:n]]
            found = tags_to_spans(names)
            if not found:
                continue
            scores = conf[row, :n].tolist()
            for s, e, label in found:
                start, end = doc.starts[a + s], doc.ends[a + e - 1]
                score = min(1.0, max(0.0, sum(scores[s:e]) / (e - s)))
                out[d].append(Span(start, end, label, doc.text[start:end], score))

def _read(path: pathlib.Path) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    if not path.is_file():
        raise ArtifactError(path, "does not exist" if not path.exists() else "is not a file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":
        raise ArtifactError(path, "is not a TorchScript archive (no zip header): a foreign or corrupt file")
    # torch.jit.load does not verify the members' CRCs: a flipped byte in a weight would load
    try:
        with zipfile.ZipFile(path) as z:
            damaged = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ArtifactError(path, f"is not a readable zip archive (truncated or corrupt?): {e}") from e
    if damaged is not None:
        raise ArtifactError(path, f"is corrupt: zip member {damaged!r} fails its CRC check")
    files = {META_FILE: "", WORDS_FILE: "", BIGRAMS_FILE: "", LEXICON_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    except Exception as e:  # torch raises RuntimeError / ValueError with long C++ traces
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ArtifactError(path, f"cannot be read as TorchScript (truncated or corrupt?): {first}") from e
    return module, {k: (v.decode("utf-8") if isinstance(v, bytes) else v) for k, v in files.items()}


def _is_int(x: object, least: int = 1) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= least


def _check(path: pathlib.Path, module: torch.jit.ScriptModule, files: dict[str, str]) -> tuple[dict, dict]:
    """The metadata and vocabularies (``words``, ``bigrams``, ``lexicon``), checked against each
    other and against the network's tables; ArtifactError naming the first inconsistency."""
    if not files[META_FILE]:
        raise ArtifactError(path, f"has no {META_FILE}: a TorchScript file, but not a tagstream model")
    try:
        meta = json.loads(files[META_FILE])
    except json.JSONDecodeError as e:
        raise ArtifactError(path, f"{META_FILE} is not valid JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(path, f"{META_FILE} does not declare format {FORMAT!r}: not a tagstream model")
    version = meta.get("format_version")
    if not _is_int(version):
        raise ArtifactError(path, f"bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ArtifactError(path, f"format version {version} is newer than this tagstream reads ({FORMAT_VERSION}); upgrade tagstream")
    required = ("name", "version", "language", "tokenizer", "max_length", "max_word_chars", "labels", "tags", "features")
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
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) and x and x.strip() == x for x in labels)
            and len(set(labels)) == len(labels)):
        raise bad(f"labels must be a non-empty list of distinct names, got {labels!r}")
    if meta["tags"] != bioes_tags(labels):
        raise bad(f"the tags are not the BIOES tags of labels {labels!r}: labels renamed, reordered or dropped "
                  f"without re-training? (tags: {meta['tags']!r})")
    if not (isinstance(features, list) and all(isinstance(f, str) for f in features)):
        raise bad(f"features must be a list of names, got {features!r}")
    if set(features) - set(FEATURES) or len(set(features)) != len(features):
        raise bad(f"unknown or repeated features {features!r} (known: {list(FEATURES)})")

    missing_methods = [m for m in ("emissions", "decode") if not hasattr(module, m)]
    if missing_methods:
        raise ArtifactError(path, f"the network lacks {missing_methods}: written by an older tagstream; re-export it "
                                  "with model.export.rescript")
    try:
        return _check_network(module, meta, files, bad)
    except AttributeError as e:  # a TorchScript module with emissions/decode, but not this network
        raise ArtifactError(path, f"the network is not a tagstream TaggerNet: {e}") from e


def _check_network(module: torch.jit.ScriptModule, meta: dict, files: dict[str, str], bad) -> tuple[dict, dict]:
    features = meta["features"]
    words = Vocab.loads(files[WORDS_FILE])
    rows = module.word_table.size(0)
    lines = len(files[WORDS_FILE].split("\n")) if files[WORDS_FILE] else 0
    if lines + 2 != rows or len(words) != rows:
        raise bad(f"{WORDS_FILE} has {lines} lines ({len(words) - 2} distinct) for a word table of {rows} rows "
                  "(2 + one a word)")
    vocabs: dict = {"words": words, "bigrams": None, "lexicon": None}
    tables = [emb.weight.size(0) for _, emb in module.extras.named_children()]
    if len(tables) != len(features):
        raise bad(f"{len(features)} features {features!r} for a network with {len(tables)} feature tables")
    if "bigram_left" in features or "bigram_right" in features:
        if not files[BIGRAMS_FILE]:
            raise bad(f"bigram features without a {BIGRAMS_FILE}")
        vocabs["bigrams"] = Vocab.loads(files[BIGRAMS_FILE])
    if "lexicon" in features:
        if not files[LEXICON_FILE]:
            raise bad(f"the lexicon feature without a {LEXICON_FILE}")
        vocabs["lexicon"] = frozenset(files[LEXICON_FILE].split("\n"))
    for feature, n in zip(features, tables):
        want = {"case": len(CASES), "lexicon": LEXICON_SIZE}.get(feature) or len(vocabs["bigrams"])
        if n != want:
            raise bad(f"feature {feature!r} needs a table of {want} rows, the network's has {n}")
    if module.chars is not None and int(module.char_table.max()) >= module.chars.embed.weight.size(0):
        raise bad("the character table maps to ids beyond the character embedding")
    if module.out.out_features != len(meta["tags"]):
        raise bad(f"the network has {module.out.out_features} outputs for {len(meta['tags'])} tags")
    if module.crf is not None:
        allowed, start, end = (torch.tensor(x) for x in bioes_transitions(meta["tags"]))
        if not (torch.equal(module.crf.penalty == 0, allowed) and torch.equal(module.crf.start_penalty == 0, start)
                and torch.equal(module.crf.end_penalty == 0, end)):
            raise bad("the CRF's allowed tag transitions are not those of the tags")
    network = meta.get("network")
    if isinstance(network, dict):
        declared = {"num_words": rows, "extra_sizes": tables, "num_tags": len(meta["tags"])}
        wrong = {k: (network.get(k), v) for k, v in declared.items() if k in network and network[k] != v}
        if wrong:
            raise bad(f"network sizes (declared, actual) disagree with the network: {wrong}")
    return meta, vocabs


_SMOKE_TEXTS = {"conll-en": "Smoke test: John Smith met officials of Acme Corp. in Paris on 3 May 2021 .",
                "char": "测试：张三在北京会见了联合国官员。"}


def _smoke(path: pathlib.Path, tagger: "Tagger") -> None:
    """Tag one short text and check the network's scores are finite; ArtifactError if anything fails."""
    text = _SMOKE_TEXTS.get(tagger.tokenizer, "Smoke test .")
    try:
        doc = tagger.prepare(text)
        a, b = doc.chunks[0]
        with torch.inference_mode():
            em = tagger._emissions([doc], [(b - a, 0, a)])
        if not bool(torch.isfinite(em).all()):
            raise ValueError("the network gives non-finite scores")
        (spans,) = tagger.tag([text])
        if any(s.label not in tagger.labels or s.text != text[s.start:s.end] for s in spans):
            raise ValueError(f"bad spans {spans}")
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ArtifactError(path, f"fails a test tagging of {text!r}: {type(e).__name__}: {first}") from e


def set_precision(module: torch.jit.ScriptModule, precision: Precision) -> None:
    """Run the network's BiLSTM on ``precision.path`` (see ``model.cpu``)."""
    if hasattr(module, "fast_lstm"):
        module.fast_lstm = precision.path == "bfloat16"
    elif precision.path == "bfloat16":
        raise ValueError("this network has no bfloat16 path")


def load(path: str | os.PathLike | None = None, *, threads: int | None = None,
         precision: str = "auto") -> Tagger:
    """Load an artifact (default: ``default_model_path()``); ArtifactError if it cannot be used.

    Checks: the zip members' CRCs, TorchScript, the metadata against the network and the
    vocabularies, the tokenizer's rules version; then one text is tagged as a smoke test.
    ``precision``: "auto" (bfloat16 only where the CPU computes it natively, else float32),
    "bfloat16" or "float32"; the choice and its reason are in ``tagger.info["precision"]``.
    """
    chosen = choose_precision(precision)  # ValueError for an unknown name, before any work
    if threads is not None:
        torch.set_num_threads(threads)
    path = pathlib.Path(path) if path is not None else default_model_path()
    module, files = _read(path)
    meta, vocabs = _check(path, module, files)
    module.eval()
    try:
        set_precision(module, chosen)
    except ValueError as e:
        raise ArtifactError(path, str(e)) from None
    meta["precision"] = {"path": chosen.path, "reason": chosen.reason, "cpu": chosen.cpu}
    log.info("inference in %s: %s; CPU %s", chosen.path, chosen.reason, chosen.cpu)
    try:
        tagger = Tagger(module, meta, vocabs["words"], vocabs["bigrams"], vocabs["lexicon"])
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(path, f"inconsistent metadata: {e}") from e
    _smoke(path, tagger)
    return tagger
