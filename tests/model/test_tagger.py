"""The artifact contract: train a tiny model -> export -> load -> tag."""
import random

import pytest
import torch

from model import Prepared, Span, load
from model.conll import read_conll
from model.evaluate import evaluate_tagger
from model.train import main as train_main

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
                tag = ("B-PER" if tok == name.split()[0] else "I-PER")
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
    train_main(["--train", str(d / "train.txt"), "--dev", str(d / "dev.txt"), "--output", str(out), "--name", "tiny",
                "--version", "0.0.1", "--epochs", "8", "--patience", "8", "--lr", "0.02", "--word-dim", "16",
                "--char-dim", "8", "--char-filters", "8", "--extra-dim", "4", "--hidden", "16", "--heads", "2",
                "--max-length", "12", "--batch-tokens", "128", "--threads", "1"])
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
    """train stores the scores of the exported artifact (as python -m model.evaluate gives them)."""
    assert tiny.info["dev_scores"] == evaluate_tagger(tiny, read_conll(tiny_dir / "dev.txt"))


def test_learns_the_tiny_corpus(tiny):
    spans = tiny.tag(["Mary Jones visited Tokyo on Monday ."])[0]
    assert [(s.text, s.label) for s in spans] == [("Mary Jones", "PER"), ("Tokyo", "LOC")]


@pytest.mark.parametrize("text", HARD_TEXTS, ids=range(len(HARD_TEXTS)))
def test_every_span_is_a_valid_slice(tiny, text):
    (spans,) = tiny.tag([text])
    for s in spans:
        assert isinstance(s, Span) and 0 <= s.start < s.end <= len(text)
        assert s.text == text[s.start:s.end] and 0.0 <= s.score <= 1.0
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
    assert scores(batched) == pytest.approx(scores(single), abs=1e-4), "(only float noise in the scores)"
    assert tiny.tag_prepared([]) == []


def test_to_dict(tiny):
    (span,) = [s for s in tiny.tag(["Tokyo ."])[0]] or [Span(0, 5, "LOC", "Tokyo", 1.0)]
    assert span.to_dict() == {"start": span.start, "end": span.end, "label": span.label, "text": span.text, "score": span.score}


def test_scripted_artifact_matches_eager_network(tiny):
    """The loaded TorchScript module and an eager copy of its weights agree."""
    from model.export import build_network
    from model.network import NetworkConfig
    from model.vocab import Vocab

    cfg = NetworkConfig.from_dict(tiny.info["network"])
    eager = build_network(cfg, list(tiny.labels), Vocab()).eval()
    eager.load_state_dict({k: v.float() for k, v in tiny.module.state_dict().items()})
    eager.fast_lstm = tiny.module.fast_lstm  # the numeric path load() chose for this CPU
    doc = tiny.prepare("Peter Brown visited London and Anna Lee stayed in Paris .")
    feats, chars = tiny._featurizer.encode(doc.text, list(zip(doc.starts, doc.ends)))
    assert feats.t().tolist() == [list(c) for c in doc.ids]
    args = (feats[None, :, 0], feats[None, :, 1:], chars[None].long(), torch.tensor([doc.num_tokens]))
    with torch.inference_mode():
        a, b = eager(*args), tiny.module(*args)
    assert torch.equal(a[0], b[0]) and torch.allclose(a[1], b[1], atol=1e-5)


def _glued(text: str) -> tuple[list[int], list[int]]:
    """Offsets of the tokens of `text`: runs of letters, and single other non-space characters."""
    import re

    spans = [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)]
    return [a for a, _ in spans], [b for _, b in spans]


@pytest.mark.parametrize(
    ("text", "max_length", "chunks"),
    [
        # a sentence end in the second half of the window: cut after it
        ("a b c . d e f g h", 6, [(0, 4), (4, 9)]),
        # no sentence end: cut at the last whitespace between tokens in the second half
        ("aa bb cc dd,ee,ff", 5, [(0, 3), (3, 8)]),
        # neither: a hard cut at the window's end
        ("a,b,c,d,e,f,g", 4, [(0, 4), (4, 8), (8, 12), (12, 13)]),
        # short enough: one chunk
        ("one two three", 3, [(0, 3)]),
    ],
)
def test_chunk_bounds_prefer_sentence_ends_then_whitespace(text, max_length, chunks):
    from model.tagger import chunk_bounds

    starts, ends = _glued(text)
    assert chunk_bounds(text, starts, ends, max_length) == chunks


def test_chunk_bounds_cover_every_token_once_within_the_limit():
    from model.tagger import chunk_bounds

    rng = random.Random(7)
    for _ in range(200):
        words = [rng.choice(["word", "x", ".", ",", "Paris", "!"]) for _ in range(rng.randint(1, 300))]
        text = "".join(w + rng.choice(["", " ", "  "]) for w in words)
        starts, ends = _glued(text)
        limit = rng.randint(1, 40)
        chunks = chunk_bounds(text, starts, ends, limit)
        assert chunks[0][0] == 0 and chunks[-1][1] == len(starts)
        assert all(a < b <= a + limit for a, b in chunks)
        assert all(prev[1] == nxt[0] for prev, nxt in zip(chunks, chunks[1:]))


def test_character_cache_gives_what_every_token_computed_gives(tiny, monkeypatch):
    """Character features cached per distinct token (and the cache starting afresh when full)
    score exactly as the network computing every token's characters in the batch."""
    import model.tagger as tagger_module

    texts = HARD_TEXTS + ["Anna Lee lives in London .", "Peter Brown visited Paris and London ."] * 3
    docs = [tiny.prepare(t) for t in texts]
    work = sorted(((b - a, d, a) for d, doc in enumerate(docs) for a, b in doc.chunks), reverse=True)
    assert tiny._char_cache is not None, "the artifact has emissions_from and a character CNN"
    with torch.inference_mode():
        cached = tiny._emissions(docs, work)
        tiny._char_cache, kept = None, tiny._char_cache  # the path that sends every token's characters
        tiny._from_ids = False
        try:
            every = tiny._emissions(docs, work)
        finally:
            tiny._char_cache, tiny._from_ids = kept, True
        small = tagger_module._CharCache(tiny.module, tiny._featurizer.max_word_chars, rows=8)
        monkeypatch.setattr(tiny, "_char_cache", small)  # fewer rows than distinct tokens: refills
        refilled = tiny._emissions(docs, work)
    assert torch.allclose(cached, every, atol=1e-5)
    assert torch.allclose(refilled, every, atol=1e-5)
    assert len(small._index) <= 8
    with torch.inference_mode():  # a batch of few distinct tokens fits: cached, and equal again
        one = [tiny.prepare("Anna Lee .")]
        few = sorted(((b - a, d, a) for d, doc in enumerate(one) for a, b in doc.chunks), reverse=True)
        tiny._char_cache = small
        assert torch.allclose(tiny._emissions(one, few), tiny._emissions(one, few), atol=0)
    assert 0 < len(small._index) <= 8
