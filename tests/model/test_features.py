import sys

import pytest
import torch

from tagstream.model import features
from tagstream.model.features import (
    GAZETTEER_TYPES,
    WORD_GAZETTEER_TYPES,
    Featurizer,
    parse_lexicon,
)
from tagstream.model.token_cache import LONGEST
from tagstream.model.vocab import CASES, UNK, Vocab, case_id


def test_word_ids_fall_back_to_digits_then_unknown():
    f = Featurizer(Vocab(["paris", "0000"]), ["case"], None, max_word_chars=4)
    text = "Paris 1996 Zork"
    feats, chars = f.encode(text, [(0, 5), (6, 10), (11, 15)])
    words = Vocab(["paris", "0000"])
    assert feats[:, 0].tolist() == [words["paris"], words["0000"], UNK]
    assert feats[:, 1].tolist() == [
        CASES.index("title"),
        CASES.index("numeric"),
        CASES.index("title"),
    ]
    assert chars.shape == (3, 4) and chars[0].tolist() == [ord(c) for c in "Pari"], (
        "cut to max_word_chars"
    )


@pytest.mark.parametrize(
    "token, case",
    [
        ("paris", "lower"),
        ("NATO", "upper"),
        ("Paris", "title"),
        ("1996", "numeric"),
        ("A4", "upper"),
        ("3-1", "has_digit"),
        ("iPhone", "mixed"),
        (",", "punct"),
    ],
)
def test_case_classes(token, case):
    assert CASES[case_id(token)] == case


def test_bigrams_and_lexicon():
    bigrams = Vocab(["<s>北", "北京", "京大"])
    f = Featurizer(
        Vocab(["北", "京"]),
        ["bigram_left", "bigram_right", "lexicon"],
        bigrams,
        1,
        frozenset(["北京", "北京大学"]),
    )
    tokens = list("北京大学")
    cols = f.columns(tokens)
    assert cols[1] == [bigrams["<s>北"], bigrams["北京"], bigrams["京大"], UNK]
    assert cols[2] == [bigrams["北京"], bigrams["京大"], UNK, UNK]
    # 北京: begins(1) at 北, ends(4) at 京; 北京大学: begins at 北, inside(2) 京 and 大, ends at 学
    assert cols[3] == [1 + 1, 1 + (4 | 2), 1 + 2, 1 + 4]


def test_gazetteer_marks_typed_entries_by_type_and_position():
    lexicon = ["北京\tplace", "北京大学\torganisation", "大学", "王小明\tperson", "小明\tperson"]
    f = Featurizer(Vocab(), ["lexicon", "gazetteer"], None, 1, lexicon)
    place, org, person = (3 * GAZETTEER_TYPES.index(t) for t in ("place", "organisation", "person"))
    cols = f.columns(list("在北京大学见王小明"))
    assert cols[2] == [
        1,
        1 + (1 << place | 1 << org),  # 北 begins a place and an organisation
        1 + (4 << place | 2 << org),  # 京 ends the place, is inside the organisation
        1 + (2 << org),
        1 + (4 << org),
        1,
        1 + (1 << person),  # 王小明 begins; 小明 (a person too) inside it and beginning itself
        1 + (2 << person | 1 << person),
        1 + (4 << person),
    ]
    # every entry, typed or not, is a word of the lexicon feature (2-4 tokens)
    assert cols[1][1:5] == [1 + 1, 1 + (4 | 2), 1 + (2 | 1), 1 + 4]


def test_untyped_lexicon_lines_make_no_gazetteer():
    words, typed = parse_lexicon(["北京", "中国\tplace", "中国\tperson"])
    assert words == {"北京", "中国"}
    assert typed == {
        "中国": 1 << GAZETTEER_TYPES.index("place") | 1 << GAZETTEER_TYPES.index("person")
    }
    with pytest.raises(ValueError, match="needs a lexicon with typed entries"):
        Featurizer(Vocab(), ["gazetteer"], None, 1, ["北京"])
    with pytest.raises(ValueError, match="unknown type 'city'"):
        parse_lexicon(["北京\tcity"])


def test_word_gazetteer_marks_whole_words_in_any_case():
    lexicon = ["new york\tplace", "york\tplace", "york\tsurname", "anna\tfirst_name"]
    f = Featurizer(Vocab(), ["case", "gazetteer_words"], None, 1, lexicon)
    place, first, surname = (3 * WORD_GAZETTEER_TYPES.index(t) for t in WORD_GAZETTEER_TYPES)
    cols = f.columns("ANNA flew to New York , not to new yorkshire".split())
    assert cols[2] == [
        1 + (5 << first),  # a one-word entry begins and ends at its word, whatever its case
        1,
        1,
        1 + (1 << place),  # "New" begins "new york"
        1 + (4 << place | 5 << place | 5 << surname),  # York ends it, and is an entry itself
        1,
        1,
        1,
        1,  # "new" begins no entry that is there: "yorkshire" is not "york"
        1,
    ]


def test_word_gazetteer_reads_its_own_types_and_not_with_the_character_one():
    words, typed = parse_lexicon(["paris\tplace", "lee\tsurname"], WORD_GAZETTEER_TYPES)
    assert typed == {"paris": 1 << 0, "lee": 1 << 2}
    with pytest.raises(ValueError, match="unknown type 'surname'"):
        parse_lexicon(["lee\tsurname"])  # the character gazetteer's types
    with pytest.raises(ValueError, match="not both"):
        Featurizer(Vocab(), ["gazetteer", "gazetteer_words"], None, 1, ["paris\tplace"])
    with pytest.raises(ValueError, match="gazetteer_words feature needs a lexicon with typed"):
        Featurizer(Vocab(), ["gazetteer_words"], None, 1, ["paris"])


def test_empty_and_bad_configuration():
    f = Featurizer(Vocab(), ["case"], None, 5)
    feats, chars = f.encode("", [])
    assert feats.shape == (0, 2) and chars.shape[0] == 0
    with pytest.raises(ValueError):
        Featurizer(Vocab(), ["bigram_left"], None, 5)
    with pytest.raises(ValueError):
        Featurizer(Vocab(), ["shoe_size"], None, 5)
    assert torch.is_tensor(feats)


def _uncached(words: Vocab, tokens: list[str]) -> list[list[int]]:
    """The ids of each token from a featurizer of its own (nothing cached before)."""
    return [Featurizer(words, ["case"], None, 4).columns([t]) for t in tokens]


def test_the_word_id_cache_keeps_no_long_token_and_gives_what_computing_gives():
    long_word = "w" * (LONGEST + 10)
    words = Vocab(["paris", "0" * 100, long_word])
    f = Featurizer(words, ["case"], None, max_word_chars=4)
    tokens = ["Paris", "1" * 100, long_word.upper(), "Paris" + "x" * 200, "x" * LONGEST] * 2
    cols = f.columns(tokens)
    assert cols[0][:5] == [words["paris"], words["0" * 100], words[long_word], UNK, UNK]
    assert [[c[i] for c in cols] for i in range(len(tokens))] == [
        [c[0] for c in one] for one in _uncached(words, tokens)
    ]
    assert f.cache_bytes == sum(
        sys.getsizeof(t) + features.WORD_ENTRY_BYTES for t in ("Paris", "x" * LONGEST)
    )


def test_a_stream_of_distinct_tokens_keeps_the_word_id_cache_within_its_budget(monkeypatch):
    """2,000 distinct tokens of 20,000 characters keep nothing; distinct words fill the cache up
    to its byte budget, then it starts again."""
    import tracemalloc

    words = Vocab(["paris"])
    f = Featurizer(words, ["case"], None, max_word_chars=4)
    f.columns(["Paris"])
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for b in range(40):
            cols = f.columns([f"{b * 50 + i:05d}" + "x" * 19_995 for i in range(50)])
            assert cols == [[UNK] * 50, [CASES.index("lower")] * 50]
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 100_000 and f.cache_bytes == sys.getsizeof("Paris") + features.WORD_ENTRY_BYTES
    monkeypatch.setattr(features, "CACHE_BYTES", 20_000)
    for b in range(20):
        tokens = [f"t{b}-{i}" for i in range(50)] + ["Paris"]
        assert f.columns(tokens)[0] == [UNK] * 50 + [words["paris"]]
        assert 0 < f.cache_bytes <= 20_000
