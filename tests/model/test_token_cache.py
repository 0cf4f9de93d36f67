"""The per-token cache: each distinct key computed once, bounded, following the stream."""

import sys

import pytest
import torch

from tagstream.model.token_cache import ENTRY_BYTES, LONGEST, TokenCache, key_size


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


def test_a_key_costs_its_size_and_a_long_token_is_never_kept():
    assert key_size("x" * LONGEST) == sys.getsizeof("x" * LONGEST) + ENTRY_BYTES
    assert key_size("x" * (LONGEST + 1)) == 0
    assert key_size(("x" * (LONGEST + 1), 3)) == 0  # a tuple key's token is its first item
    word = ("Paris", 40_000, 3)
    assert key_size(word) == sum(map(sys.getsizeof, (word, *word))) + ENTRY_BYTES


def test_long_tokens_are_computed_on_every_call_beside_the_new_and_never_kept():
    compute, calls = counting()
    cache = TokenCache(rows=16)
    long, other = "y" * 1000, "z" * (LONGEST + 1)
    out = cache.lookup(["a", long, "a", long, other], compute)
    assert out.tolist() == [[1.0, 0.0], [1000.0, 1.0], [1.0, 0.0], [1000.0, 1.0], [65.0, 4.0]]
    assert calls == [(["a", long, other], [0, 1, 4])]  # one call: the new and the long ones
    assert len(cache) == 1 and cache.computed == 3
    table, rows = cache.locate([long, "a", "b"], compute)
    assert calls[-1] == ([long, "b"][::-1], [2, 0])  # kept keys first, then the long ones
    assert table.index_select(0, rows)[:, 0].tolist() == [1000.0, 1.0, 1.0]
    assert len(cache) == 2 and cache.key_bytes == key_size("a") + key_size("b")
    cache.lookup(["a", "b"], compute)
    assert cache.computed == 5  # a and b held; the long token computed twice


def test_the_key_budget_evicts_the_least_used_and_keeps_the_keys_in_use():
    compute, calls = counting()
    wide = lambda i: chr(0x1F600 + i) * LONGEST  # noqa: E731  # 4-byte code points: big keys
    cache = TokenCache(rows=1000, max_key_bytes=4 * key_size(wide(0)))
    for _ in range(3):
        cache.lookup(["hot", wide(0)], compute)
    for i in range(1, 40):
        out = cache.lookup([wide(i), "hot"], compute)
        assert out[:, 0].tolist() == [float(LONGEST), 3.0]
        assert cache.key_bytes <= cache.max_key_bytes and len(cache) <= 5
    n = cache.computed
    cache.lookup(["hot", wide(39)], compute)
    assert cache.computed == n  # the most used and the latest stayed


def test_a_call_whose_keys_exceed_the_key_budget_keeps_no_new_one():
    compute, _ = counting()
    cache = TokenCache(rows=100, max_key_bytes=3 * key_size("k00"))
    cache.lookup(["k00"], compute)
    keys = [f"k{i:02d}" for i in range(10)]
    assert cache.lookup(keys, compute)[:, 0].tolist() == [3.0] * 10
    assert len(cache) == 1 and cache.key_bytes == key_size("k00")


@pytest.mark.parametrize("seed", range(5))
def test_random_streams_with_long_and_wide_keys_give_computed_rows_within_budget(seed):
    import random

    rng = random.Random(seed)
    compute, _ = counting()
    cache = TokenCache(rows=12, max_key_bytes=1500)
    pool = [c * n for c in "ab\u00e9\u4e2d\U0001f600" for n in (1, 3, LONGEST - 1, LONGEST + 2)]
    for _ in range(300):
        keys = [rng.choice(pool) for _ in range(rng.randint(1, 10))]
        out = cache.lookup(keys, compute)
        assert out[:, 0].tolist() == [float(len(k)) for k in keys]
        assert len(cache) <= 12 and cache.key_bytes <= 1500
        assert cache.nbytes <= cache.max_bytes(2 * 4)


def test_a_stream_of_distinct_long_tokens_stays_within_the_byte_budget():
    """2,000 distinct tokens of 20,000 characters among words: none kept, the words stay, and
    the memory the cache holds does not grow with the stream."""
    import tracemalloc

    def compute(keys, first):  # keeps nothing
        return torch.tensor([[float(len(k)), float(i)] for k, i in zip(keys, first)])

    cache = TokenCache(rows=4096)
    words = [f"w{i}" for i in range(100)]

    def batch(b):
        longs = [f"{b * 50 + i:05d}" + "x" * 19_995 for i in range(50)]
        return words[b % 2 :: 2] + longs

    cache.lookup(batch(0), compute)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for b in range(1, 40):
            keys = batch(b)
            assert cache.lookup(keys, compute)[:, 0].tolist() == [float(len(k)) for k in keys]
            del keys
            assert cache.key_bytes <= cache.max_key_bytes and len(cache) == len(words)
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert cache.key_bytes < len(words) * 128
    assert cache.nbytes <= cache.max_bytes(2 * 4)
    assert grown < 100_000  # 40 MB of tokens went through


def test_rows_an_earlier_call_returned_are_not_written_before_settle():
    """A caller reading returned rows on another thread (``locate(..., settle)``): appending new
    keys past them needs no settling; evicting, or reusing an earlier call's scratch rows,
    settles first."""
    compute, _ = counting()
    cache = TokenCache(rows=6)
    settled = []

    def settle():
        settled.append(len(cache))

    table, rows = cache.locate(["a", "bb"], compute, settle)
    cache.locate(["bb", "ccc"], compute, settle)  # appended after the rows returned
    assert settled == [] and table[rows][:, 0].tolist() == [1.0, 2.0]
    cache.locate(["d", "e", "f", "g"], compute, settle)  # more rows than free: evicts
    assert settled == [3]
    cache.locate(["d"], compute, settle)  # held: nothing written
    assert settled == [3]
    cache.locate(["x" * (LONGEST + 1), "d"], compute, settle)  # a scratch row after the held
    before = len(settled)
    cache.locate(["y" * (LONGEST + 1)], compute, settle)  # would overwrite that scratch row
    assert len(settled) == before + 1
