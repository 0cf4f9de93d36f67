"""The artifact contract: train a tiny model -> export -> load -> tag."""

import random
import time

import pytest
import torch

from tagstream.model import Prepared, Span, load
from tagstream.model.chunks import sub_batches
from tagstream.model.token_cache import LONGEST
from tagstream.model.training.conll import read_conll
from tagstream.model.training.evaluate import evaluate_tagger
from tagstream.model.training.train import main as train_main

# names with a combining mark (decomposed é and ü) and in another script, to check offsets there
PEOPLE = ["John Smith", "Mary Jones", "Peter Brown", "Anna Lee", "Rene\u0301 Dubois"]
PLACES = ["London", "Paris", "Berlin", "Tokyo", "Zu\u0308rich", "Москва"]
TEMPLATES = ["{p} lives in {l} .", "{p} visited {l} on Monday .", "In {l} , {p} said nothing ."]


def corpus(n: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- O", ""]
    for _ in range(n):
        text = rng.choice(TEMPLATES).format(p=rng.choice(PEOPLE), l=rng.choice(PLACES))
        for tok in text.split():
            name = next((p for p in PEOPLE if tok in p.split()), None)
            if name:
                tag = "B-PER" if tok == name.split()[0] else "I-PER"
            elif tok in PLACES:
                tag = "B-LOC"
            else:
                tag = "O"
            lines.append(f"{tok} X {tag}")
        lines.append("")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    (d / "train.txt").write_text(corpus(60, 1))
    (d / "dev.txt").write_text(corpus(10, 2))
    out = d / "tiny.pt"
    train_main(
        [
            "--train",
            str(d / "train.txt"),
            "--dev",
            str(d / "dev.txt"),
            "--output",
            str(out),
            "--name",
            "tiny",
            "--version",
            "0.0.1",
            "--epochs",
            "8",
            "--patience",
            "8",
            "--lr",
            "0.02",
            "--word-dim",
            "16",
            "--char-dim",
            "8",
            "--char-filters",
            "8",
            "--extra-dim",
            "4",
            "--hidden",
            "16",
            "--heads",
            "2",
            "--max-length",
            "12",
            "--batch-tokens",
            "128",
            "--threads",
            "1",
        ]
    )
    return d


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load(tiny_dir / "tiny.pt")


HARD_TEXTS = [
    "",
    "   \n\t ",
    "Peter Brown 😀👍🏽 visited Paris 🇫🇷 !",
    "Z\u0351\u0352algo 😀👍🏽 : Rene\u0301 Dubois lives in Zu\u0308rich .",
    "John Smith 在 東京 and Москва , مرحبا Berlin .",
    "\ud800 lone surrogate \x00\x07 control \u200b zero width",
    " ".join(["Mary Jones lives in Berlin ."] * 40),  # 240 tokens > max_length 12
    "x" * 5000,
]


# the entities the tiny model must find in the emoji / combining-mark / mixed-script texts above,
# at the code-point offsets where they are: after emoji (astral code points, two UTF-16 units each)
# and marks, and themselves containing a combining mark (René, Zürich) or in Cyrillic (Москва)
EXPECTED = {
    HARD_TEXTS[2]: [("Peter Brown", "PER"), ("Paris", "LOC")],
    HARD_TEXTS[3]: [("Rene\u0301 Dubois", "PER"), ("Zu\u0308rich", "LOC")],
    HARD_TEXTS[4]: [("John Smith", "PER"), ("Москва", "LOC"), ("Berlin", "LOC")],
}


def test_metadata_round_trips(tiny):
    assert (tiny.name, tiny.version) == ("tiny", "0.0.1")
    assert tiny.labels == ("LOC", "PER") and tiny.max_length == 12
    assert tiny.info["training"]["train_sentences"] >= 60 and "micro" in tiny.info["dev_scores"]
    assert tiny.info["confidence"].startswith("mean over the span's tokens of the CRF marginal")


def test_stored_dev_scores_are_the_artifacts(tiny_dir, tiny):
    """train stores the scores of the exported artifact (as python -m
    tagstream.model.training.evaluate gives them)."""
    assert tiny.info["dev_scores"] == evaluate_tagger(tiny, read_conll(tiny_dir / "dev.txt"))


def test_learns_the_tiny_corpus(tiny):
    spans = tiny.tag(["Mary Jones visited Tokyo on Monday ."])[0]
    assert [(s.text, s.label) for s in spans] == [("Mary Jones", "PER"), ("Tokyo", "LOC")]


@pytest.mark.parametrize("text", HARD_TEXTS, ids=range(len(HARD_TEXTS)))
def test_every_span_is_a_valid_slice(tiny, text):
    (spans,) = tiny.tag([text])
    for s in spans:
        assert isinstance(s, Span) and 0 <= s.start < s.end <= len(text)
        assert s.text == text[s.start : s.end] and 0.0 <= s.score <= 1.0
        assert s.label in tiny.labels
    assert [s.start for s in spans] == sorted(s.start for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:])), "spans do not overlap"
    if not text.strip():
        assert spans == []


@pytest.mark.parametrize("text", list(EXPECTED), ids=["emoji", "combining marks", "mixed scripts"])
def test_entities_are_found_at_their_offsets_in_hard_texts(tiny, text):
    """Fails if tokenisation or offsets break around emoji, combining marks or other scripts."""
    (spans,) = tiny.tag([text])
    expected = []
    for entity, label in EXPECTED[text]:
        start = text.index(entity)  # code points (str indices)
        expected.append((start, start + len(entity), label, entity))
    assert [(s.start, s.end, s.label, s.text) for s in spans] == expected


def test_long_text_is_chunked_not_truncated(tiny):
    text = " ".join(["Mary Jones lives in Berlin ."] * 40)
    prepared = tiny.prepare(text)
    assert prepared.num_tokens == 240
    assert all(b - a <= tiny.max_length for a, b in prepared.chunks)
    assert prepared.chunks[0][0] == 0 and prepared.chunks[-1][1] == 240
    spans = tiny.tag([text])[0]
    berlins = [s for s in spans if s.text == "Berlin" and s.label == "LOC"]
    assert len(berlins) == 40, "an entity in every chunk, the last included"


def test_paragraphs_are_read_apart(tiny):
    """A blank line ends a chunk: each paragraph gets the spans it gets alone, at its offset;
    a single line break does not cut (hard-wrapped text runs on over it)."""
    paragraphs = ["Mary Jones visited Tokyo on Monday", "Anna Lee lives in London ."]
    text = "\n \n".join(paragraphs)
    assert tiny.prepare(text).chunks == ((0, 6), (6, 12))
    assert tiny.prepare(text.replace("\n \n", "\n")).chunks == ((0, 12),)
    alone = [
        (s.start + text.index(p), s.end + text.index(p), s.label, s.text)
        for p, spans in zip(paragraphs, tiny.tag(paragraphs))
        for s in spans
    ]
    assert [(s.start, s.end, s.label, s.text) for s in tiny.tag([text])[0]] == alone
    assert len(alone) == 4


def test_prepare_then_tag_prepared_equals_tag_and_keeps_order(tiny):
    texts = HARD_TEXTS + ["Anna Lee lives in London ."]
    docs = [tiny.prepare(t) for t in texts]
    assert all(isinstance(d, Prepared) for d in docs)
    assert [d.num_tokens for d in docs][:2] == [0, 0]
    assert tiny.tag_prepared(docs) == tiny.tag(texts)
    single = [tiny.tag([t])[0] for t in texts]
    batched = tiny.tag(texts)
    strip = lambda docs: [[(s.start, s.end, s.label, s.text) for s in spans] for spans in docs]  # noqa: E731
    assert strip(batched) == strip(single), "batching does not change the spans"
    scores = lambda docs: [s.score for spans in docs for s in spans]  # noqa: E731
    assert scores(batched) == pytest.approx(scores(single), abs=1e-4), (
        "(only float noise in the scores)"
    )
    assert tiny.tag_prepared([]) == []


def test_to_dict(tiny):
    (span,) = [s for s in tiny.tag(["Tokyo ."])[0]] or [Span(0, 5, "LOC", "Tokyo", 1.0)]
    assert span.to_dict() == {
        "start": span.start,
        "end": span.end,
        "label": span.label,
        "text": span.text,
        "score": span.score,
    }


def test_scripted_artifact_matches_eager_network(tiny):
    """The loaded TorchScript module and an eager copy of its weights agree."""
    from tagstream.model.network import NetworkConfig
    from tagstream.model.training.export import build_network
    from tagstream.model.vocab import Vocab

    cfg = NetworkConfig.from_dict(tiny.info["network"])
    eager = build_network(cfg, list(tiny.labels), Vocab()).eval()
    eager.load_state_dict({k: v.float() for k, v in tiny.module.state_dict().items()})
    eager.fast_lstm = tiny.module.fast_lstm  # the numeric path load() chose for this CPU
    doc = tiny.prepare("Peter Brown visited London and Anna Lee stayed in Paris .")
    feats, chars = tiny._featurizer.encode(doc.text, list(zip(doc.starts, doc.ends)))
    assert feats.t().tolist() == [list(c) for c in doc.ids]
    args = (
        feats[None, :, 0],
        feats[None, :, 1:],
        chars[None].long(),
        torch.tensor([doc.num_tokens]),
    )
    with torch.inference_mode():
        a, b = eager(*args), tiny.module(*args)
    assert torch.equal(a[0], b[0]) and torch.allclose(a[1], b[1], atol=1e-5)


def _work(tagger, texts):
    docs = [tagger.prepare(t) for t in texts]
    return docs, sorted(
        ((b - a, d, a) for d, doc in enumerate(docs) for a, b in doc.chunks), reverse=True
    )


def _longest(docs, chunk):
    n, d, a = chunk
    return max(e - s for s, e in zip(docs[d].starts[a : a + n], docs[d].ends[a : a + n]))


def test_token_caches_give_what_every_token_computed_gives(tiny_dir, monkeypatch):
    """Input gates cached per distinct token (float32; read in place or copied out), character
    features cached per distinct token (the bfloat16 path's network input), and both caches
    when too small to hold a batch or refilling, score as the network computing every token of
    the batch. On the float32 path whatever this CPU's default (the gate cache is float32's)."""
    from tagstream.model.token_cache import TokenCache

    tiny = load(tiny_dir / "tiny.pt", precision="float32")
    texts = (
        HARD_TEXTS + ["Anna Lee lives in London .", "Peter Brown visited Paris and London ."] * 3
    )
    docs, work = _work(tiny, texts)
    assert tiny._gate_cache is not None and tiny._char_cache is not None
    gate_cache = tiny._gate_cache
    with torch.inference_mode():
        gates = tiny._emissions(docs, work)
        assert tiny._from_table  # the cache's table read in place; an older network copies it
        monkeypatch.setattr(tiny, "_from_table", False)
        copied = tiny._emissions(docs, work)
        # a token longer than LONGEST ("x" * 5000) is computed on every call, never kept: its
        # chunk's scores agree to rounding (another batch of new tokens), every other exactly
        held = [r for r, chunk in enumerate(work) if _longest(docs, chunk) <= LONGEST]
        assert len(held) < len(work) and torch.equal(copied[held], gates[held])
        assert torch.allclose(copied, gates, atol=1e-5)
        monkeypatch.setattr(tiny, "_from_table", True)
        monkeypatch.setattr(tiny, "_gate_cache", None)
        chars = tiny._emissions(docs, work)
        monkeypatch.setattr(tiny, "_char_cache", None)
        monkeypatch.setattr(
            tiny, "_from_ids", False
        )  # the path that sends every token's characters
        every = tiny._emissions(docs, work)
        monkeypatch.setattr(tiny, "_from_ids", True)
        for name in ("_gate_cache", "_char_cache"):
            small = TokenCache(rows=8)  # fewer rows than distinct tokens: computed, none kept
            monkeypatch.setattr(tiny, "_gate_cache", small if name == "_gate_cache" else None)
            monkeypatch.setattr(tiny, "_char_cache", small if name == "_char_cache" else None)
            assert torch.allclose(tiny._emissions(docs, work), every, atol=1e-4)
            one, few = _work(tiny, ["Anna Lee .", "Lee Anna ."])  # fits: kept, and equal again
            first = tiny._emissions(one, few)
            computed = small.computed
            assert torch.equal(tiny._emissions(one, few), first) and small.computed == computed
            assert 0 < len(small) <= 8
    assert torch.allclose(gates, every, atol=1e-4)
    assert torch.allclose(chars, every, atol=1e-4)
    assert gate_cache.computed < sum(n for n, _, _ in work)  # repeated tokens computed once


LONG_TEXTS = [
    "Anna Lee met " + "Q" * 5000 + " in Paris .",
    "Anna Lee met " + "Q" * 5000 + " in London .",  # the same long token again
    "Peter Brown visited London" + "x" * 300 + " and Berlin .",  # a word's long extension
    "John Smith " + "z" * LONGEST + " " + "z" * (LONGEST + 1) + " in Tokyo .",
    "Mary Jones " + "\U0001f600" * 2000 + " Москва" + "я" * 100 + " .",
] + [f"Anna Lee in Paris {i:04d}" + "y" * 2000 + " ." for i in range(20)]


def test_long_tokens_are_tagged_the_same_with_and_without_the_caches(tiny_dir, monkeypatch):
    """Tokens longer than LONGEST are computed on every call and never kept: the scores and
    spans are those of the network computing every token, on either cache's path."""
    tiny = load(tiny_dir / "tiny.pt", precision="float32")
    docs, work = _work(tiny, LONG_TEXTS)
    gate_cache, char_cache = tiny._gate_cache, tiny._char_cache
    strip = lambda docs: [[(s.start, s.end, s.label) for s in spans] for spans in docs]  # noqa: E731
    results = []
    for gates, chars, from_ids in [(True, True, True), (False, True, True), (False, False, False)]:
        monkeypatch.setattr(tiny, "_gate_cache", gate_cache if gates else None)
        monkeypatch.setattr(tiny, "_char_cache", char_cache if chars else None)
        monkeypatch.setattr(tiny, "_from_ids", from_ids)
        with torch.inference_mode():
            twice = [tiny._emissions(docs, work) for _ in range(2)]  # the second from the cache
        assert torch.allclose(twice[0], twice[1], atol=1e-5)
        results.append((twice[1], tiny.tag(LONG_TEXTS)))
    every, spans = results[-1]
    for em, tagged in results[:-1]:
        assert torch.allclose(em, every, atol=1e-4) and strip(tagged) == strip(spans)
    assert 0 < len(gate_cache) and 0 < len(char_cache)
    assert max(len(k) for k in gate_cache._keys) <= LONGEST  # the words only
    assert max(len(k) for k in tiny._featurizer._cache) <= LONGEST


def _parallel_texts(kind: str) -> list[str]:
    """Texts of several sub-batches that make the gate cache write rows while earlier sub-batches
    may be reading its table: "scratch", tokens longer than LONGEST (rows computed for one call
    only, reused by the next); "evict", sub-batches of 30-word vocabularies that a 160-row cache
    holds a few of at a time."""
    rng = random.Random(5)
    names = [*PEOPLE, *PLACES]
    texts = []
    for k in range(700):
        if kind == "scratch":
            words = [f"w{i}" for i in range(300)] + names
            body = rng.choices(words, k=rng.randint(3, 40))
            body[rng.randrange(len(body))] = "".join(rng.choices("AbcDeFghIjk", k=LONGEST + 5))
        else:
            group = k % 10  # a group's texts are of one length: sorted into a sub-batch
            words = [f"g{group}w{i}" for i in range(25)] + names
            body = rng.choices(words, k=1 + group)  # with " .", at most max_length 12
        texts.append(" ".join(body) + " .")
    return texts


@pytest.mark.parametrize("kind", ["scratch", "evict"])
def test_sub_batches_in_the_network_at_once_tag_as_one_at_a_time(tiny_dir, monkeypatch, kind):
    """With torch allowed two threads, two sub-batches run in the network at once while the
    next one's inputs are looked up: the spans and scores are those of one sub-batch at a time,
    also when looking up the next one evicts or reuses rows a running one reads (each running
    sub-batch slowed down so that the next one is looked up before it reads the table)."""
    from tagstream.model.token_cache import TokenCache

    texts = _parallel_texts(kind)
    threads = torch.get_num_threads()
    runs, emissions = {}, {}
    try:
        for n in (1, 2):
            tiny = load(tiny_dir / "tiny.pt", precision="float32")
            if kind == "evict":
                monkeypatch.setattr(tiny, "_gate_cache", TokenCache(rows=160))
            scores = emissions[n] = {}

            def slow(call, batch, tiny=tiny, scores=scores):
                time.sleep(0.02)  # the next sub-batch's lookup comes first, unless it settles
                with torch.inference_mode():
                    em = call()
                scores[tuple(batch)] = em
                return tiny.module.decode(em, torch.tensor([k for k, _, _ in batch]))

            monkeypatch.setattr(tiny, "_network", slow)
            torch.set_num_threads(n)
            runs[n] = [tiny.tag(texts) for _ in range(3)]
            assert (tiny._pool is not None) == (n == 2)  # the parallel path ran
    finally:
        torch.set_num_threads(threads)
    assert emissions[1].keys() == emissions[2].keys()
    for batch, em in emissions[1].items():
        assert torch.allclose(em, emissions[2][batch], atol=1e-4)
    docs, work = _work(tiny, texts)
    assert len(sub_batches([k for k, _, _ in work])) >= 3
    strip = lambda docs: [[(s.start, s.end, s.label) for s in spans] for spans in docs]  # noqa: E731
    for tagged in runs[2]:
        assert strip(tagged) == strip(runs[1][0])
        for one, two in zip(runs[1][0], tagged):
            assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(one, two))
    assert any(runs[1][0])


@pytest.mark.parametrize("path", ["gates", "chars"])
def test_a_stream_of_distinct_long_tokens_keeps_the_caches_within_their_budgets(tiny_dir, path):
    """Texts of distinct 20,000-character tokens: the caches keep the words only, within their
    byte budgets, and the memory they hold does not grow with the stream."""
    import tracemalloc

    from tagstream.model.features import CACHE_BYTES

    tiny = load(tiny_dir / "tiny.pt", precision="float32")
    if path == "chars":
        tiny._gate_cache = None
    cache = tiny._gate_cache or tiny._char_cache

    def texts(b, n=50):
        return [f"Anna Lee met {b * n + i:05d}{'x' * 19_995} in Paris ." for i in range(n)]

    tiny.tag(texts(0))
    held = len(cache)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for b in range(1, 5):
            spans = tiny.tag(texts(b))
            assert all(s.text in {"Anna Lee", "Paris"} for doc in spans for s in doc)
            del spans
            assert cache.key_bytes <= cache.max_key_bytes
            assert tiny._featurizer.cache_bytes <= CACHE_BYTES
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    if path == "gates":
        assert len(cache) == held  # no long token kept
    else:  # the character features of each one's first max_word_chars characters
        assert len(cache) == held + 200
    assert max(len(k) for k in tiny._featurizer._cache) <= LONGEST
    assert grown < 1_000_000  # 4 MB of tokens went through


def test_an_entity_that_ends_a_shorter_text_of_a_batch_ends_with_it(tiny):
    """Decoding repeats a chunk's last tag over its padding: the spans of a short text ending in
    an entity, tagged beside longer ones, stop at its last token, as when it is tagged alone."""
    texts = [
        "Peter Brown visited London and Anna Lee stayed in Paris with Peter Brown in Berlin .",
        "Anna Lee lives in London",
        "Paris",
    ]
    batched = tiny.tag(texts)
    strip = lambda docs: [[(s.start, s.end, s.label) for s in spans] for spans in docs]  # noqa: E731
    assert strip(batched) == strip([tiny.tag([t])[0] for t in texts])
    assert [(s.text, s.label) for s in batched[1]][-1] == ("London", "LOC")
    assert [(s.text, s.label) for s in batched[2]] == [("Paris", "LOC")]
    assert all(s.end <= len(t) for t, spans in zip(texts, batched) for s in spans)
