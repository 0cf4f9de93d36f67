"""The per-token cache: each distinct key computed once, bounded, following the stream."""

import pytest
import torch

from tagstream.model.token_cache import TokenCache


def counting():
    calls = []

    def compute(keys, first):
        calls.append((list(keys), list(first)))
        return torch.tensor([[float(len(str(k))), float(i)] for k, i in zip(keys, first)])

    return compute, calls


def test_each_distinct_key_is_computed_once_with_its_first_position():
    compute, calls = counting()
    cache = TokenCache(rows=16)
    out = cache.lookup(["aa", "b", "aa", "ccc"], compute)
    assert out[:, 0].tolist() == [2.0, 1.0, 2.0, 3.0]
    assert calls == [(["aa", "b", "ccc"], [0, 1, 3])]
    again = cache.lookup(["ccc", "aa", "dddd"], compute)
    assert again[:, 0].tolist() == [3.0, 2.0, 4.0]
    assert calls[1] == (["dddd"], [2]) and cache.computed == 4 and len(cache) == 4


def test_when_full_the_keys_in_use_and_the_more_used_stay():
    compute, calls = counting()
    cache = TokenCache(rows=6)
    for _ in range(5):
        cache.lookup(["hot", "warm"], compute)
    cache.lookup(["x", "y", "w", "v"], compute)  # full now
    cache.lookup(["hot"], compute)
    out = cache.lookup(["z", "y", "u"], compute)  # y is in use; hot is the most used of the rest
    assert calls[-1] == (["z", "u"], [0, 2])
    assert out[:, 0].tolist() == [1.0, 1.0, 1.0]
    assert len(cache) == 6  # y, hot and the two most used of the rest kept; z and u added
    cache.lookup(["hot"], compute)
    assert calls[-1] == (["z", "u"], [0, 2])  # hot stayed


def test_more_distinct_keys_than_rows_are_computed_and_not_kept():
    compute, calls = counting()
    cache = TokenCache(rows=2)
    out = cache.lookup(["a", "bb", "ccc", "a"], compute)
    assert out[:, 0].tolist() == [1.0, 2.0, 3.0, 1.0] and len(cache) == 0


@pytest.mark.parametrize("seed", range(5))
def test_random_streams_always_give_computed_rows_and_stay_bounded(seed):
    import random

    rng = random.Random(seed)
    compute, _ = counting()
    cache = TokenCache(rows=6)
    for _ in range(200):
        keys = [rng.choice("abcdefghij") * rng.randint(1, 3) for _ in range(rng.randint(1, 8))]
        out = cache.lookup(keys, compute)
        assert out[:, 0].tolist() == [float(len(k)) for k in keys]
        assert len(cache) <= 6


def test_a_cache_needs_rows():
    with pytest.raises(ValueError, match="at least 2 rows"):
        TokenCache(rows=1)
