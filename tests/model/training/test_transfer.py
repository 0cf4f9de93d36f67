"""Training on another corpus as well, its labels renamed (`Transfer`)."""

import pytest

from tagstream.model.training.data import Transfer, parse_label_map, read_corpus

NEWS = """-DOCSTART- -X- O O

John NNP B-NP I-PER
lives VBZ B-VP O
in IN B-PP O
Paris NNP B-NP I-LOC
. . O O

Acme NNP B-NP I-ORG
hired VBD B-VP O
Mary NNP B-NP I-PER
. . O O

Rain NN B-NP O
. . O O
"""

SOCIAL = """@bob O
in O
London B-location
with O
Ann B-person

great O
day O
"""


@pytest.fixture
def files(tmp_path):
    news, social = tmp_path / "news.txt", tmp_path / "social.conll"
    news.write_text(NEWS)
    social.write_text(SOCIAL)
    return str(news), str(social)


def test_renamed_sentences_join_training_in_the_models_scheme(files):
    news, social = files
    transfer = Transfer((news,), {"PER": "person", "LOC": "location"})
    corpus = read_corpus([social], social, 0.0, 1, 128, transfer=transfer)
    assert corpus.labels == ["location", "person"]
    extra = corpus.train[2:]
    # the sentence naming an ORG is left out whole; the others keep their tokens
    assert [tokens for tokens, _ in extra] == [["John", "lives", "in", "Paris", "."], ["Rain", "."]]
    assert extra[0][1] == ["B-person", "O", "O", "B-location", "O"]  # IOB1 read, IOB2 written


def test_limit_samples_with_the_seed(files):
    news, _ = files
    one = Transfer((news,), {"PER": "person", "LOC": "location"}, limit=1, seed=3)
    assert one.sentences("IOB2", ["location", "person"]) == one.sentences(
        "IOB2", ["location", "person"]
    )
    assert len(one.sentences("IOB2", ["location", "person"])) == 1


def test_a_label_the_model_lacks_is_refused(files):
    news, _ = files
    with pytest.raises(ValueError, match="corporation"):
        Transfer((news,), {"ORG": "corporation"}).sentences("IOB2", ["person"])


def test_label_map_text():
    assert parse_label_map("PER=person,LOC=location,") == {"PER": "person", "LOC": "location"}
    with pytest.raises(ValueError, match="LABEL=NEW_LABEL"):
        parse_label_map("PER")


def test_mention_swap_keeps_labels_and_draws_names_from_training(files):
    from tagstream.model.spans import tags_to_spans
    from tagstream.model.training.data import mention_swapped

    _, social = files
    sents = read_corpus([social], social, 0.0, 1, 128).train
    swapped = mention_swapped(sents, 3, seed=1)
    assert len(swapped) == 3  # the sentence without entities is not copied
    known = {"London": "location", "Ann": "person"}
    for tokens, tags in swapped:
        assert tokens[:2] == ["@bob", "in"] and tokens[3] == "with"
        for a, b, typ in tags_to_spans(tags):
            assert known[" ".join(tokens[a:b])] == typ
    assert mention_swapped(sents, 3, seed=1) == swapped


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "BIOES"])
def test_run_together_keeps_every_token_once_and_every_entity_whole(scheme):
    """Consecutive sentences joined into one training sequence: nothing lost or repeated, no
    sequence over the limit, and two entities that meet at a join stay two (in IOB1 a sentence
    starting I-PER after one ending I-PER would otherwise read as one name)."""
    import random

    from tagstream.model.spans import spans_to_tags, tags_to_spans
    from tagstream.model.training.data import run_together

    rng = random.Random(3)
    sents, names = [], []
    for i in range(300):
        n = rng.randint(1, 9)
        tokens = [f"w{i}.{j}" for j in range(n)]
        opens = rng.choice(["PER", "LOC", None])  # a name opens the sentence
        spans = [(0, 1, opens)] if opens else []
        if n > 2:
            spans.append((n - 2, n, "LOC"))  # and one ends it
        names += [tuple(tokens[a:b]) + (t,) for a, b, t in spans]
        sents.append((tokens, spans_to_tags(spans, n, scheme)))
    joined = run_together(sents, 0.7, 20, seed=1)
    assert [t for tokens, _ in joined for t in tokens] == [t for tokens, _ in sents for t in tokens]
    assert max(len(tokens) for tokens, _ in joined) <= 20
    assert sum(len(tokens) > 9 for tokens, _ in joined) > 50  # many joins happened
    found = [
        tuple(tokens[a:b]) + (t,) for tokens, tags in joined for a, b, t in tags_to_spans(tags)
    ]
    assert found == names
    assert run_together(sents, 0.7, 20, seed=1) == joined  # seeded
    assert run_together(sents, 0.0, 20, seed=1) == sents
