import itertools

import pytest
import torch

from tagstream.model.network import NetworkConfig
from tagstream.model.spans import bioes_tags
from tagstream.model.training.export import build_network
from tagstream.model.vocab import Vocab

LABELS = ["PER", "LOC"]


def make_net(**kw):
    torch.manual_seed(0)
    sizes = dict(
        num_words=30,
        word_dim=8,
        num_chars=20,
        char_dim=6,
        char_filters=5,
        extra_sizes=[9],
        extra_dims=[3],
        hidden=8,
        heads=2,
        num_tags=len(bioes_tags(LABELS)),
    )
    cfg = NetworkConfig(**{**sizes, **kw})
    return build_network(cfg, LABELS, Vocab("abcdefghijklmnopq")).eval()


def inputs(B=4, T=9, W=6):
    g = torch.Generator().manual_seed(1)
    words = torch.randint(0, 30, (B, T), generator=g)
    extras = torch.randint(0, 9, (B, T, 1), generator=g)
    chars = torch.randint(0, 200, (B, T, W), generator=g)
    lengths = torch.tensor([T, 1, 5, 3])[:B]
    return words, extras, chars, lengths


@pytest.mark.parametrize("crf", [True, False])
def test_scripted_and_eager_agree_and_are_deterministic(crf):
    net = make_net(crf=crf)
    scripted = torch.jit.script(net)
    x = inputs()
    with torch.inference_mode():
        tags, conf = net(*x)
        tags_s, conf_s = scripted(*x)
        tags_again, conf_again = scripted(*x)
    assert tags.shape == (4, 9) and conf.shape == (4, 9)
    assert torch.equal(tags, tags_s) and torch.allclose(conf, conf_s, atol=1e-6)
    assert torch.equal(tags_s, tags_again) and torch.equal(conf_s, conf_again)
    assert float(conf.min()) >= 0.0 and float(conf.max()) <= 1.0


@pytest.mark.parametrize("bfloat16", [False, True])
def test_padding_does_not_change_a_sentence(bfloat16):
    """A sentence scores the same alone and padded in a batch, within what the numeric path
    guarantees on every instruction set: float32 kernels may block a batch differently (last
    bits), and emulated bfloat16 (AVX2) rounds differently per batch shape (about 1e-2)."""
    net = make_net()
    net.fast_lstm = bfloat16
    words, extras, chars, lengths = inputs()
    with torch.inference_mode():
        alone = net.emissions(words[2:3, :5], extras[2:3, :5], chars[2:3, :5], lengths[2:3])
        batched = net.emissions(words, extras, chars, lengths)
    atol = 5e-2 if bfloat16 else 1e-4
    assert torch.allclose(alone[0], batched[2, :5], atol=atol), (
        (alone[0] - batched[2, :5]).abs().max()
    )
    assert batched[2, 5:].abs().max() == 0  # padding scores 0


@pytest.mark.parametrize("order", ["sorted", "unsorted"])
@pytest.mark.parametrize("chars", [True, False])
def test_gates_path_gives_what_the_packed_lstm_gives(order, chars):
    """token_gates + emissions_from_gates (input projection per token, both directions in one
    loop, sequences dropping out as they end) score as nn.LSTM on packed sequences, scripted
    too; without a character CNN as well; emissions_from_table reading the gates from a table
    gives the same."""
    net = make_net(**({} if chars else {"char_dim": 0}))
    net.fast_lstm = False
    words, extras, chars_, _ = inputs()
    lengths = torch.tensor([9, 6, 5, 1]) if order == "sorted" else torch.tensor([5, 9, 1, 6])
    real = torch.arange(9).unsqueeze(0) < lengths.unsqueeze(1)
    for module in (net, torch.jit.script(net)):
        with torch.inference_mode():
            feats = module.char_features(chars_[real])
            packed = module.emissions_from(words, extras, feats, lengths)
            gates = module.token_gates(words[real], extras[real], feats)
            fast = module.emissions_from_gates(gates, lengths)
        assert gates.shape == (int(lengths.sum()), 8 * 8)
        assert fast.shape == packed.shape
        assert torch.allclose(fast, packed, atol=1e-4), (fast - packed).abs().max()
        assert fast[~real].abs().max() == 0  # padding scores 0
        # the same gates as rows of a table of distinct tokens, in another order, some unused
        order_ = torch.randperm(gates.size(0) + 3, generator=torch.Generator().manual_seed(0))
        table = torch.randn(gates.size(0) + 3, gates.size(1))
        table[order_[: gates.size(0)]] = gates
        with torch.inference_mode():
            read = module.emissions_from_table(table, order_[: gates.size(0)], lengths)
        assert torch.equal(read, fast)


def test_viterbi_and_marginals_match_brute_force():
    net = make_net()
    crf = net.crf
    torch.manual_seed(3)
    with torch.no_grad():
        crf.transitions.normal_()
    C = crf.transitions.size(0)
    em = torch.randn(1, 3, C)
    mask = torch.ones(1, 3, dtype=torch.bool)
    trans, start, end = crf._scores()
    scores = {}
    for seq in itertools.product(range(C), repeat=3):
        s = (
            start[seq[0]]
            + end[seq[-1]]
            + sum(em[0, i, seq[i]] for i in range(3))
            + trans[seq[0], seq[1]]
            + trans[seq[1], seq[2]]
        )
        scores[seq] = float(s)
    best = max(scores, key=scores.get)
    assert crf.viterbi(em, mask)[0].tolist() == list(best)
    z = torch.logsumexp(torch.tensor(list(scores.values())), 0)
    marg = torch.zeros(3, C)
    for seq, s in scores.items():
        for i, t in enumerate(seq):
            marg[i, t] += torch.exp(torch.tensor(s) - z)
    assert torch.allclose(crf.marginals(em, mask)[0], marg, atol=1e-4)
    nll = crf.nll(em, torch.tensor([best]), mask)
    assert float(nll) == pytest.approx(float(z) - scores[best], abs=1e-3)


def test_training_loss_decreases():
    net = make_net()
    net.train()
    x = inputs()
    gold = torch.zeros(4, 9, dtype=torch.long)
    gold[:, 0] = 4  # S-PER at the first token of every sentence
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        loss = net.loss(*x, gold)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < first / 4


def test_char_cnn_table_lookups_give_the_convolution():
    """At inference the character CNN sums per-character, per-offset table rows; in training it
    is one matrix product over unfolded windows. Both are the same convolution, padding and
    tokens without characters included."""
    from tagstream.model.layers import CharCNN

    torch.manual_seed(0)
    cnn = CharCNN(num_chars=40, dim=6, filters=5, kernel=3)
    chars = torch.randint(1, 40, (7, 9))
    chars[1, 4:] = 0  # a shorter token
    chars[2] = 0  # no characters
    reference = torch.nn.functional.conv1d(
        cnn.embed(chars).transpose(1, 2), cnn.conv.weight, cnn.conv.bias, padding=1
    ).transpose(1, 2)  # (N, W, F)
    reference = reference.masked_fill((chars == 0).unsqueeze(2), -10000.0).max(dim=1).values
    reference[2] = 0.0
    with torch.no_grad():
        trained = cnn.train()(chars)
        looked_up = cnn.eval()(chars)
        scripted = torch.jit.script(cnn).eval()(chars)
    for out in (trained, looked_up, scripted):
        assert torch.allclose(out, reference, atol=1e-5), (out - reference).abs().max()
