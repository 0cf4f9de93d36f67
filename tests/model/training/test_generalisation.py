"""The training options for text the model has not seen: the held-out slice of the latest
training sentences, the moving average of the weights, the recall margin, and lower-cased
copies."""

import torch

from tagstream.model import load
from tagstream.model.training.averaging import WeightAverage
from tagstream.model.training.conll import split_latest
from tagstream.model.training.train import main as train_main
from tests.model.test_network import inputs, make_net
from tests.model.training.test_train import args, files  # noqa: F401 (a fixture)


def test_the_held_out_slice_is_the_latest_sentences_and_is_scored_not_trained_on(files):  # noqa: F811
    assert train_main(args(files, "--holdout-fraction", "0.2", "--average", "0.9")) == 0
    info = load(files / "m.pt").info
    assert info["training"]["train_sentences"] == 12  # 15 sentences, the last 3 held out
    assert info["training"]["holdout"].startswith("the last 0.2 of ")
    assert info["training"]["average"] == 0.9
    held = info["holdout_scores"]["micro"]
    # the last three sentences are the three templates once: 2 + 2 + 2 gold entities
    assert held["gold"] == 6 and 0 <= held["f1"] <= 100


def test_split_latest_keeps_file_order_and_refuses_a_bad_fraction():
    sents = [([str(i)], ["O"]) for i in range(10)]
    earlier, latest = split_latest(sents, 0.3)
    assert [s[0][0] for s in latest] == ["7", "8", "9"] and earlier == sents[:7]
    for bad in (0, 1, -0.1):
        try:
            split_latest(sents, bad)
        except ValueError as e:
            assert "fraction" in str(e)
        else:
            raise AssertionError(f"fraction {bad} was accepted")


def test_the_average_follows_the_weights_and_swapping_twice_restores_them():
    net = make_net().train()
    avg = WeightAverage(net, 0.5)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    gold = torch.zeros(4, 9, dtype=torch.long)
    for _ in range(5):
        opt.zero_grad()
        net.loss(*inputs(), gold).backward()
        opt.step()
        avg.update()
    trained = [p.detach().clone() for p in net.parameters()]
    avg.swap()
    moved = [not torch.equal(p, t) for p, t in zip(net.parameters(), trained)]
    assert any(moved), "the average is the last weights: it did not average"
    avg.swap()
    assert all(torch.equal(p, t) for p, t in zip(net.parameters(), trained))


def test_the_recall_margin_costs_entities_only():
    net = make_net()  # eval mode: no dropout, so the two losses see the same emissions
    net.fast_lstm = False
    x = inputs()
    o_tag = 0  # bioes_tags puts "O" first
    no_entity = torch.zeros(4, 9, dtype=torch.long)
    entity = no_entity.clone()
    entity[:, 0] = 4
    for gold, costs in ((no_entity, False), (entity, True)):
        plain = float(net.loss(*x, gold))
        margin = float(net.loss(*x, gold, recall_margin=2.0, o_tag=o_tag))
        assert (margin > plain + 1e-3) is costs, (plain, margin)


def test_lowercase_trains_on_the_lower_cased_copies_at_its_rate(files, monkeypatch):  # noqa: F811
    """--lowercase P: each training sentence is swapped for its lower-cased copy with chance P
    (the copies' characters are lower case; the gold tags are the sentence's own)."""
    import tagstream.model.training.loop as loop

    seen: list[torch.Tensor] = []
    collate = loop.collate

    def spy(examples, idx):
        batch = collate(examples, idx)
        if torch.is_grad_enabled():  # a training batch, not an evaluation's
            seen.append(batch[2])  # (B, T, W) code points
        return batch

    monkeypatch.setattr(loop, "collate", spy)
    for rate in ("0", "1"):
        seen.clear()
        assert train_main(args(files, "--lowercase", rate, "--epochs", "1")) == 0
        capitals = {c for c in torch.cat([c.flatten() for c in seen]).tolist() if chr(c).isupper()}
        info = load(files / "m.pt").info
        assert info["training"]["lowercase"] == (None if rate == "0" else 1.0)
        assert bool(capitals) == (rate == "0")  # (B, T, W) code points: capitals, or none


def test_options_that_cannot_work_are_usage_errors(files, capsys):  # noqa: F811
    import pytest

    for extra, message in (
        (["--gazetteer"], "--gazetteer has name lists for --language zh only"),
        (["--lowercase", "1.5"], "--lowercase is a chance, from 0 to 1"),
    ):
        with pytest.raises(SystemExit) as stop:
            train_main(args(files, *extra))
        assert stop.value.code == 2 and message in capsys.readouterr().err
