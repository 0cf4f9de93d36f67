import pytest
import torch

from tagstream.model.features import GAZETTEER_TYPES, Featurizer, parse_lexicon
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


def test_empty_and_bad_configuration():
    f = Featurizer(Vocab(), ["case"], None, 5)
    feats, chars = f.encode("", [])
    assert feats.shape == (0, 2) and chars.shape[0] == 0
    with pytest.raises(ValueError):
        Featurizer(Vocab(), ["bigram_left"], None, 5)
    with pytest.raises(ValueError):
        Featurizer(Vocab(), ["shoe_size"], None, 5)
    assert torch.is_tensor(feats)
