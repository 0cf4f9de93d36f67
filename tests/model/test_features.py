import pytest
import torch

from tagstream.model.features import Featurizer
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


def test_empty_and_bad_configuration():
    f = Featurizer(Vocab(), ["case"], None, 5)
    feats, chars = f.encode("", [])
    assert feats.shape == (0, 2) and chars.shape[0] == 0
    with pytest.raises(ValueError):
        Featurizer(Vocab(), ["bigram_left"], None, 5)
    with pytest.raises(ValueError):
        Featurizer(Vocab(), ["shoe_size"], None, 5)
    assert torch.is_tensor(feats)
