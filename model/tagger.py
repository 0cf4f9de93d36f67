"""Load an artifact and tag texts: the API the worker codes against.

>>> tagger = load()                        # model/artifacts/en-news.pt
>>> tagger.tag(["Barack Obama visited Paris ."])
[[Span(start=0, end=12, label='PER', ...), Span(start=21, end=26, label='LOC', ...)]]

Span offsets are code-point offsets into the original text, end exclusive, and
``span.text == text[span.start:span.end]``. ``span.score`` is the chance the span is right: the
mean, over the span's tokens, of the CRF posterior marginal probability of the predicted tag,
calibrated on the dev split where the artifact carries a calibration
(``tagstream.model.calibration``), in [0, 1].

Paragraphs (text between blank lines) are read apart, and those longer than ``max_length``
tokens are cut into chunks at sentence ends (else at whitespace between tokens, else hard); the
spans are merged back; nothing is truncated.
"""

from __future__ import annotations

import logging
import os
import pathlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial

import torch

from .artifact import ArtifactError, read
from .artifact_checks import check
from .calibration import Calibration
from .chunks import by_length, char_grid, chunk_bounds, gather, sub_batches, token_code_points
from .features import Featurizer
from .precision import Precision, choose_precision
from .registry import resolve
from .spans import tags_to_spans
from .texts import Prepared, Span
from .token_cache import TokenCache
from .tokenize import join_tokens, token_separator, tokenize_offsets
from .vocab import Vocab

log = logging.getLogger(__name__)

# Each cache is bounded in bytes (``tagstream.model.token_cache``): its table of values, and its
# keys at most KEY_BYTES_PER_ROW a row on average; tokens longer than LONGEST are never kept.
_CHAR_CACHE_ROWS = 65_536  # distinct tokens whose character features are kept (13 MiB at F 50)
# the BiLSTM input gates of distinct tokens: 21,845 at H = 96 (en-news). 5,000 news sentences
# hold some 12,000 distinct tokens; at 32 MiB (10,922) a stream of news kept evicting and
# recomputing them (tokens/s of a warm tagger about 10% lower)
_GATE_CACHE_BYTES = 64 * 2**20
# sub-batches in the network at once when torch may use more than one thread (`tag_prepared`)
_NETWORK_THREADS = 2


def default_model_path() -> pathlib.Path:
    """The shipped English news model inside the installed package."""
    return resolve(None)


class Tagger:
    """A loaded artifact. ``tag``/``tag_prepared`` may be called from one thread at a time each."""

    def __init__(
        self,
        module: torch.jit.ScriptModule,
        meta: dict,
        words: Vocab,
        bigrams: Vocab | None,
        lexicon: frozenset[str] | None = None,
        precision: Precision | None = None,
    ) -> None:
        self.module = module
        self.info: dict = meta
        self.name: str = meta["name"]
        self.version: str = meta["version"]
        self.labels: tuple[str, ...] = tuple(meta["labels"])
        self.max_length: int = int(meta["max_length"])
        self.tokenizer: str = meta["tokenizer"]["kind"]
        self.tags: list[str] = list(meta["tags"])
        # the numeric path, chosen when loading (`tagstream.model.precision`), and why
        self.precision_choice: Precision = precision or choose_precision("float32")
        self.precision: str = self.precision_choice.path
        # raw span scores -> the chance a span is right (`tagstream.model.calibration`)
        self.calibration = Calibration.from_meta(meta.get("calibration"), self.labels)
        self._featurizer = Featurizer(
            words, meta["features"], bigrams, int(meta["max_word_chars"]), lexicon
        )
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # made by the first parallel call
        # networks exported before ``emissions_from`` existed compute every token's characters
        self._from_ids = hasattr(module, "emissions_from")
        self._has_chars = self._from_ids and module.chars is not None
        self._char_cache = TokenCache(_CHAR_CACHE_ROWS) if self._has_chars else None
        # float32 one-layer networks from ``token_gates`` on: the BiLSTM's input projection once
        # per distinct token (the bfloat16 path keeps oneDNN's own LSTM)
        net = meta["network"]
        self._gate_cache = (
            TokenCache(max(1024, _GATE_CACHE_BYTES // (32 * net["hidden"])))
            if hasattr(module, "token_gates")
            and self.precision != "bfloat16"
            and net["lstm_layers"] == 1
            else None
        )
        self._from_table = hasattr(module, "emissions_from_table")  # else: from the gates
        self._local_features = set(meta["features"]) <= {
            "case"
        }  # extra ids follow from the token alone

    def __repr__(self) -> str:
        return (
            f"Tagger({self.name}@{self.version}, labels={self.labels}, "
            f"max_length={self.max_length})"
        )

    def prepare(self, text: str) -> Prepared:
        """Tokenise ``text`` and cut it into chunks; cheap, pure CPU, never raises for a str."""
        if not isinstance(text, str):
            raise TypeError(f"prepare expects str, got {type(text).__name__}")
        return self._prepared(text, tokenize_offsets(text, self.tokenizer))

    def _prepared(self, text: str, offsets: list[tuple[int, int]]) -> Prepared:
        starts = tuple(a for a, _ in offsets)
        ends = tuple(b for _, b in offsets)
        ids = tuple(self._featurizer.columns([text[a:b] for a, b in offsets])) if offsets else ()
        return Prepared(
            text,
            len(offsets),
            starts,
            ends,
            ids,
            tuple(chunk_bounds(text, starts, ends, self.max_length)),
        )

    def prepare_tokens(self, tokens: Sequence[str]) -> Prepared:
        """A Prepared for text that is already tokenised (evaluation on gold tokens).

        The text is the tokens joined by one space ("conll-en") or nothing ("char").
        """
        return self._prepared(*join_tokens(tokens, token_separator(self.tokenizer)))

    def tag(self, texts: Sequence[str]) -> list[list[Span]]:
        """Entity spans of each text, in input order."""
        return self.tag_prepared([self.prepare(t) for t in texts])

    def tag_prepared(self, docs: Sequence[Prepared]) -> list[list[Span]]:
        """Entity spans of each prepared text, in input order (chunks batched longest first).

        Per sub-batch of chunks of similar lengths: the network's inputs (in this thread: the
        token caches), emissions and CRF decode (the network), spans. With torch allowed more
        than one thread, the network runs on two sub-batches at once (``_NETWORK_THREADS``): its
        small per-step operations use one core each however many threads torch has, so a text
        or batch of several sub-batches (a long text of many short tokens) takes less time on
        two cores.
        """
        out: list[list[Span]] = [[] for _ in docs]
        work = sorted(
            ((b - a, d, a) for d, doc in enumerate(docs) for a, b in doc.chunks), reverse=True
        )
        ranges = sub_batches([n for n, _, _ in work])
        with self._lock, torch.inference_mode():
            if len(ranges) < 2 or torch.get_num_threads() < 2:
                for i, j in ranges:
                    tags, conf = self._network(self._inputs(docs, work[i:j]), work[i:j])
                    self._spans(docs, work[i:j], tags, conf, out)
            else:
                self._tag_in_parallel(docs, work, ranges, out)
        for spans in out:
            spans.sort(key=lambda s: s.start)
        return out

    def _tag_in_parallel(
        self,
        docs: Sequence[Prepared],
        work: list[tuple[int, int, int]],
        ranges: list[tuple[int, int]],
        out: list[list[Span]],
    ) -> None:
        """``tag_prepared``'s loop with up to ``_NETWORK_THREADS`` sub-batches in the network at
        once; inputs and spans stay in this thread, which alone touches the token caches."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_NETWORK_THREADS, thread_name_prefix="tagstream-net")
        running: deque[tuple[Future, int, int]] = deque()

        def finish_oldest() -> None:
            future, i, j = running.popleft()
            tags, conf = future.result()
            self._spans(docs, work[i:j], tags, conf, out)

        def settle() -> None:  # the gate cache is about to write rows running sub-batches read
            while running:
                finish_oldest()

        try:
            for i, j in ranges:
                call = self._inputs(docs, work[i:j], settle)
                if len(running) == _NETWORK_THREADS:
                    finish_oldest()
                running.append((self._pool.submit(self._network, call, work[i:j]), i, j))
            settle()
        finally:  # an error: no sub-batch may still read the caches when the lock is released
            wait([f for f, _, _ in running])

    def _network(
        self, call: Callable[[], torch.Tensor], batch: list[tuple[int, int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tags and confidences (B, T) each of a sub-batch whose emissions ``call`` computes."""
        with torch.inference_mode():  # per thread
            return self.module.decode(call(), torch.tensor([n for n, _, _ in batch]))

    def _emissions(
        self, docs: Sequence[Prepared], batch: list[tuple[int, int, int]]
    ) -> torch.Tensor:
        """Emission scores (B, T, C) of chunks ``(length, doc, first token)`` sorted longest
        first."""
        return self._inputs(docs, batch)()

    def _inputs(
        self,
        docs: Sequence[Prepared],
        batch: list[tuple[int, int, int]],
        settle: Callable[[], None] | None = None,
    ) -> Callable[[], torch.Tensor]:
        """The network's call for the emission scores (B, T, C) of chunks ``(length, doc, first
        token)`` sorted longest first, its inputs ready: what only reads them is left to the call.

        The tensors are built for the whole sub-batch at once (``tagstream.model.chunks``): ids from
        the docs' id lists, the characters gathered from the code points of the docs' texts; what
        the token caches hold is looked up here (``settle``: see ``TokenCache.locate``).
        """
        c = gather(docs, batch)
        lengths, cols = c.lengths, c.cols
        module = self.module
        if self._gate_cache is not None:  # each distinct token's input projection once
            tokens = [c.text[a:b] for a, b in zip(c.starts, c.ends)]
            keys = tokens if self._local_features else list(zip(tokens, *cols[1:]))
            compute = lambda new, first: self._gates(tokens, cols, first)  # noqa: E731
            if self._from_table:  # the cache's table read in place by the network
                table, rows = self._gate_cache.locate(keys, compute, settle)
                return partial(module.emissions_from_table, table, rows, lengths)  # (B, T, C)
            gates = self._gate_cache.lookup(keys, compute)  # an artifact of an older tagstream
            return partial(module.emissions_from_gates, gates, lengths)  # (B, T, C)
        ids = c.id_grid()  # (B, T, 1 + E)
        if self._char_cache is not None:  # each distinct token's character features once
            cut = self._featurizer.max_word_chars
            keys = [c.text[a:b][:cut] for a, b in zip(c.starts, c.ends)]
            feats = self._char_cache.lookup(
                keys, lambda new, first: self._char_features(new)
            )  # (N, F)
            return partial(module.emissions_from, ids[:, :, 0], ids[:, :, 1:], feats, lengths)
        if self._from_ids:  # no character CNN (e.g. Chinese: the token is the character)
            none = torch.zeros(len(c.starts), 0)
            return partial(module.emissions_from, ids[:, :, 0], ids[:, :, 1:], none, lengths)
        chars = char_grid(c, self._featurizer.max_word_chars)  # (B, T, W)
        return partial(module.emissions, ids[:, :, 0], ids[:, :, 1:], chars, lengths)

    def _char_features(self, tokens: Sequence[str]) -> torch.Tensor:
        """(M, F) character-CNN features of ``tokens`` (their first ``max_word_chars``
        characters), in length-sorted pieces (``tagstream.model.chunks.by_length``)."""
        cut = self._featurizer.max_word_chars
        return by_length(
            tokens, lambda piece: self.module.char_features(token_code_points(piece, cut))
        )  # (M, F)

    def _gates(self, tokens: list[str], cols: list[list[int]], rows: list[int]) -> torch.Tensor:
        """(M, 8H) BiLSTM input gates of the tokens at positions ``rows`` of a batch."""
        ids = torch.tensor([[col[r] for r in rows] for col in cols]).t()  # (M, 1 + E)
        chars = (
            self._char_features([tokens[r] for r in rows])
            if self._has_chars
            else torch.zeros(len(rows), 0)
        )
        return self.module.token_gates(ids[:, 0], ids[:, 1:], chars)

    def _spans(
        self,
        docs: Sequence[Prepared],
        work: list[tuple[int, int, int]],
        tags: torch.Tensor,
        conf: torch.Tensor,
        out: list[list[Span]],
    ) -> None:
        # Only tagged tokens are read: conlleval's rules end every chunk before "O" and start none
        # there, so each run of tagged tokens decodes alone as it would within its whole row.
        tagged = tags != 0
        hits = tagged.nonzero()  # (K, 2): row, position, in row-major order as tags[tagged]
        rows, positions = hits[:, 0].tolist(), hits[:, 1].tolist()
        names = [self.tags[t] for t in tags[tagged].tolist()]
        scores = conf[tagged].tolist()
        k, K = 0, len(rows)
        while k < K:
            row, first = rows[k], k
            while k + 1 < K and rows[k + 1] == row and positions[k + 1] == positions[k] + 1:
                k += 1
            k += 1  # the run is hits[first:k]
            n, d, a = work[row]
            stop = min(k, first + n - positions[first])  # past the chunk: its last tag repeated
            if stop <= first:
                continue
            doc, at = docs[d], a + positions[first]
            for s, e, label in tags_to_spans(names[first:stop]):
                start, end = doc.starts[at + s], doc.ends[at + e - 1]
                raw = min(1.0, max(0.0, sum(scores[first + s : first + e]) / (e - s)))
                score = self.calibration.apply(label, raw)
                out[d].append(Span(start, end, label, doc.text[start:end], score))

    def smoke_test(self, path: pathlib.Path) -> None:
        """Tag one short text and check the network's scores are finite; ArtifactError if anything
        fails."""
        text = _SMOKE_TEXTS.get(self.tokenizer, "Smoke test .")
        try:
            doc = self.prepare(text)
            a, b = doc.chunks[0]
            with torch.inference_mode():
                em = self._emissions([doc], [(b - a, 0, a)])
            if not bool(torch.isfinite(em).all()):
                raise ValueError("the network gives non-finite scores")
            (spans,) = self.tag([text])
            if any(s.label not in self.labels or s.text != text[s.start : s.end] for s in spans):
                raise ValueError(f"bad spans {spans}")
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ArtifactError(
                path, f"fails a test tagging of {text!r}: {type(e).__name__}: {first}"
            ) from e


_SMOKE_TEXTS = {
    "conll-en": "Smoke test: John Smith met officials of Acme Corp. in Paris on 3 May 2021 .",
    "char": "测试：张三在北京会见了联合国官员。",
}


def set_precision(module: torch.jit.ScriptModule, precision: Precision) -> None:
    """Run the network's BiLSTM on ``precision.path`` (see ``tagstream.model.precision``)."""
    if hasattr(module, "fast_lstm"):
        module.fast_lstm = precision.path == "bfloat16"
    elif precision.path == "bfloat16":
        raise ValueError("this network has no bfloat16 path")


def load(
    path: str | os.PathLike | None = None, *, threads: int | None = None, precision: str = "auto"
) -> Tagger:
    """Load a model: an installed model's name (None: en-news; see ``tagstream.model.registry``)
    or an artifact file; ArtifactError if it cannot be used, UnknownModel (a ValueError) for a
    name that is not installed.

    Checks: the zip members' CRCs, TorchScript, the metadata against the network and the
    vocabularies, the tokenizer's rules version; then one text is tagged as a smoke test.
    ``precision``: "auto" (float32 on every CPU, `tagstream.model.precision`), "bfloat16" or
    "float32"; the choice and its reason are ``tagger.precision_choice``.
    """
    chosen = choose_precision(precision)  # ValueError for an unknown name, before any work
    if threads is not None:
        torch.set_num_threads(threads)
    path = resolve(path)  # a name (None: en-news) or a file
    module, files = read(path)
    meta, vocabs = check(path, module, files)
    module.eval()
    try:
        set_precision(module, chosen)
    except ValueError as e:
        raise ArtifactError(path, str(e)) from None
    log.info("inference in %s: %s; CPU %s", chosen.path, chosen.reason, chosen.cpu)
    try:
        tagger = Tagger(module, meta, vocabs["words"], vocabs["bigrams"], vocabs["lexicon"], chosen)
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(path, f"inconsistent metadata: {e}") from e
    tagger.smoke_test(path)
    return tagger
