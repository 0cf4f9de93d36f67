"""Training details: the confidence note, the progress line without tqdm, a missing train extra."""

import io
import re
import sys
from pathlib import Path

import pytest

import tagstream.model.training.progress
import tagstream.model.training.train
from tagstream.model import load
from tagstream.model.artifact import read_meta
from tagstream.model.training.conll import read_conll
from tagstream.model.training.progress import PlainProgress
from tagstream.model.training.train import main as train_main

SENTENCES = [
    "John Smith lives in Paris .",
    "Mary Jones visited London .",
    "In Berlin , Anna Lee said nothing .",
]
TAGS = ["B-PER I-PER O O B-LOC O", "B-PER I-PER O B-LOC O", "O B-LOC O B-PER I-PER O O O"]


@pytest.fixture
def files(tmp_path):
    lines = []
    for text, tags in zip(SENTENCES * 5, TAGS * 5):
        lines += [f"{tok} {tag}" for tok, tag in zip(text.split(), tags.split())] + [""]
    (tmp_path / "train.txt").write_text("\n".join(lines))
    (tmp_path / "dev.txt").write_text("\n".join(lines[:20]))
    return tmp_path


def args(d, *extra):
    return [
        "--train",
        str(d / "train.txt"),
        "--dev",
        str(d / "dev.txt"),
        "--output",
        str(d / "m.pt"),
        "--epochs",
        "1",
        "--word-dim",
        "8",
        "--char-dim",
        "4",
        "--char-filters",
        "4",
        "--extra-dim",
        "2",
        "--hidden",
        "8",
        "--heads",
        "2",
        "--batch-tokens",
        "32",
        "--threads",
        "1",
        *extra,
    ]


def test_confidence_note_follows_the_output_layer(files):
    assert train_main(args(files, "--softmax")) == 0
    tagger = load(files / "m.pt")
    assert tagger.info["network"]["crf"] is False
    assert (
        tagger.info["confidence"]
        == "mean over the span's tokens of the softmax probability of the predicted tag"
    )
    assert all(0 <= s.score <= 1 for s in tagger.tag(["John Smith lives in Paris ."])[0])


def test_without_tqdm_a_plain_progress_line_goes_to_stderr(files, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError
    assert isinstance(tagstream.model.training.train.progress(100, "epoch 1"), PlainProgress)
    monkeypatch.setattr(
        tagstream.model.training.progress,
        "PlainProgress",
        lambda total, desc: PlainProgress(total, desc, interval=0),
    )
    assert train_main(args(files)) == 0
    err = capsys.readouterr().err
    assert re.search(
        r"^epoch 1: \d+% \([\d,]+/[\d,]+ tokens\), loss [\d.]+, [\d,]+ tokens/s$", err, re.M
    )


def test_plain_progress_line():
    out = io.StringIO()
    bar = PlainProgress(2_000_000, "epoch 3", interval=0, file=out)
    bar.update(845_312)
    bar.set_postfix(loss="0.019", tok_s="7203", refresh=False)
    bar.update(0)
    assert re.fullmatch(
        r"epoch 3: 42% \(845,312/2,000,000 tokens\), loss 0\.019, [\d,]+ tokens/s",
        out.getvalue().splitlines()[-1],
    )


def test_chinese_without_wordfreq_names_the_extra(files, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wordfreq", None)
    assert train_main(args(files, "--language", "zh")) == 2
    err = capsys.readouterr().err
    assert "wordfreq" in err and "pip install -e '.[train]'" in err and "train extra" in err
    assert not (files / "m.pt").exists()


RECIPES = sorted((Path(__file__).resolve().parents[3] / "model" / "recipes").glob("*.toml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_each_recipe_names_its_model_and_reads_as_training_options(recipe):
    from tagstream.model.training.train import parse_args

    args = parse_args(["--recipe", str(recipe)])
    assert args.name == recipe.stem and args.output.endswith(f"{recipe.stem}.pt")
    assert all(Path(p).is_absolute() for p in args.train)
    override = parse_args(["--recipe", str(recipe), "--seed", "7", "--output", "/tmp/x.pt"])
    assert override.seed == 7 and override.output == "/tmp/x.pt"


def test_a_recipe_with_an_unknown_option_is_refused(tmp_path, capsys):
    from tagstream.model.training.train import parse_args

    bad = tmp_path / "bad.toml"
    bad.write_text('train = ["a.txt"]\noutput = "x.pt"\nhiden = 64\n')
    with pytest.raises(SystemExit) as e:
        parse_args(["--recipe", str(bad)])
    assert e.value.code == 2 and "unknown options ['hiden']" in capsys.readouterr().err


def test_keep_last_trains_every_epoch_and_keeps_the_last_weights(files, capsys, monkeypatch):
    from tagstream.model.training.loop import TrainingRun

    scaled = []
    monkeypatch.setattr(TrainingRun, "scale_lr", lambda self, factor: scaled.append(factor))
    given = args(files, "--epochs", "3", "--patience", "1", "--lr", "1e-12", "--keep-last")
    assert train_main([*given, "--lr-decay", "0.9"]) == 0  # patience 1 would stop at once
    assert scaled == [0.9, 0.9, 0.9]  # after every evaluation, improved or not
    meta = read_meta(files / "m.pt")
    assert meta["training"]["best_epoch"] == 3.0
    assert meta["training"]["keep_last"] is True


def test_dev_train_all_trains_on_the_whole_dev_file_and_needs_keep_last(files, capsys):
    with pytest.raises(SystemExit):
        train_main(args(files, "--dev-train", "all"))
    assert "--keep-last" in capsys.readouterr().err
    assert train_main(args(files, "--dev-train", "all", "--keep-last")) == 0
    training = read_meta(files / "m.pt")["training"]
    dev = read_conll(files / "dev.txt")
    assert training["train_sentences"] == 15 + len(dev)  # train.txt and all of dev.txt
    assert "in-sample" in training["dev"]


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--bigram-dropout", "0.2"], "--language en does not use"),
        (["--bigram-dropout", "1.5"], "from 0 to 1"),
    ],
)
def test_a_bigram_dropout_that_cannot_apply_is_refused(files, capsys, extra, says):
    with pytest.raises(SystemExit):
        train_main(args(files, *extra))
    assert says in capsys.readouterr().err


def test_a_missing_training_file_is_a_clear_error(files, capsys):
    assert train_main(args(files, "--transfer", str(files / "nowhere.txt"))) == 2
    assert "--transfer: no such file" in capsys.readouterr().err
    assert not (files / "m.pt").exists()


def test_mention_swap_leaves_the_chinese_bigram_table_as_the_text_makes_it(
    tmp_path, monkeypatch, capsys
):
    """The swapped copies repeat their sentences' contexts; counted, every bigram seen once would
    reach --min-bigram-freq 2 and the artifact's bigram tables would grow."""
    import zipfile

    monkeypatch.setattr(
        tagstream.model.training.train, "load_lexicon", lambda language, top: ["北京", "上海"]
    )
    sents = [("张三昨天去北京", "PPOOOLL"), ("李四今天在上海", "PPOOOLL"), ("王五回家", "PPOO")]
    lines = []
    for text, kinds in sents * 2:  # each bigram twice: kept by --min-bigram-freq 2
        for i, (ch, kind) in enumerate(zip(text, kinds)):
            label = {"P": "PER", "L": "LOC"}.get(kind)
            prev = kinds[i - 1] if i else "O"
            tag = "O" if label is None else ("I-" if prev == kind else "B-") + label
            lines.append(f"{ch}\t{tag}")
        lines.append("")
    (tmp_path / "train.txt").write_text("\n".join(lines), encoding="utf-8")
    (tmp_path / "dev.txt").write_text("\n".join(lines[:8]), encoding="utf-8")

    def bigrams(*extra):
        assert train_main(args(tmp_path, "--language", "zh", "--char-dim", "0", *extra)) == 0
        with zipfile.ZipFile(tmp_path / "m.pt") as z:
            name = next(n for n in z.namelist() if n.endswith("extra/bigrams.txt"))
            return set(z.read(name).decode("utf-8").split())

    plain = bigrams()
    assert "昨天" in plain
    assert bigrams("--mention-swap", "2") == plain


def _net_like(path, chars, labels=("LOC", "PER"), **changes):
    """A fresh network of the artifact's shape (or with ``changes``) for ``chars``."""
    import dataclasses

    from tagstream.model.network_config import NetworkConfig
    from tagstream.model.spans import bioes_tags
    from tagstream.model.training.export import build_network

    meta = read_meta(path)
    cfg = NetworkConfig.from_dict(meta["network"])
    cfg = dataclasses.replace(
        cfg, num_chars=len(chars), num_tags=len(bioes_tags(labels)), **changes
    )
    return build_network(cfg, list(labels), chars), meta


def test_init_from_takes_the_source_weights_and_its_characters_by_character(files):
    import torch

    from tagstream.model.artifact import WORDS_FILE, plain_state, read
    from tagstream.model.spans import bioes_tags
    from tagstream.model.training.loop import init_from
    from tagstream.model.vocab import Vocab

    assert train_main(args(files)) == 0
    src = files / "m.pt"
    module, extra = read(src)
    theirs = plain_state(module.state_dict())
    words = Vocab.loads(extra[WORDS_FILE])
    chars = Vocab(["§", "n", "J", "o"])  # another order, and a character the source never saw
    torch.manual_seed(5)
    net, meta = _net_like(src, chars)
    fresh = net.chars.embed.weight.detach().clone()
    name, taken = init_from(
        net, words, chars, meta["features"], bioes_tags(["LOC", "PER"]), str(src)
    )
    assert name == "custom 0.1.0"
    ours = net.state_dict()
    assert {"lstm.weight_ih_l0", "attn.in_proj_weight", "out.weight", "crf.transitions"} <= set(
        taken
    )
    for k in ("lstm.weight_hh_l0_reverse", "norm.weight", "out.bias", "crf.transitions"):
        assert torch.equal(ours[k], theirs[k]), k
    code = module.char_table
    for c in "nJo":
        assert torch.equal(
            ours["chars.embed.weight"][chars[c]], theirs["chars.embed.weight"][code[ord(c)]]
        )
    assert torch.equal(ours["chars.embed.weight"][chars["§"]], fresh[chars["§"]])
    assert torch.equal(ours["word_table"], theirs["word_table"])  # fine-tuned words: by word
    assert torch.equal(ours["char_table"], net.char_table)  # the new vocabulary's code points

    # other labels: the output layer and the CRF start fresh, the rest is taken
    other = ["person", "location", "product"]
    net, _ = _net_like(src, chars, labels=other)
    _, taken = init_from(net, words, chars, meta["features"], bioes_tags(other), str(src))
    assert "lstm.weight_ih_l0" in taken and not any(k.startswith(("out.", "crf.")) for k in taken)


def test_init_from_refuses_another_shape_or_other_features(files):
    from tagstream.model.artifact import WORDS_FILE, read
    from tagstream.model.spans import bioes_tags
    from tagstream.model.training.loop import init_from
    from tagstream.model.vocab import Vocab

    assert train_main(args(files)) == 0
    src = files / "m.pt"
    words = Vocab.loads(read(src)[1][WORDS_FILE])
    chars = Vocab("abc")
    net, meta = _net_like(src, chars, hidden=12)
    with pytest.raises(
        ValueError, match=r"another shape: lstm\.weight_ih_l0 \(32, 14\) \(here \(48, 14\)\)"
    ):
        init_from(net, words, chars, meta["features"], bioes_tags(["LOC", "PER"]), str(src))
    net, meta = _net_like(src, chars)
    with pytest.raises(ValueError, match=r"its features \['case'\] are not this model's \[\]"):
        init_from(net, words, chars, [], bioes_tags(["LOC", "PER"]), str(src))


def test_training_with_init_from_names_its_source(files, capsys):
    assert train_main(args(files, "--name", "news", "--version", "2.0.0")) == 0
    (files / "m.pt").rename(files / "news.pt")
    assert train_main(args(files, "--init-from", str(files / "news.pt"))) == 0
    assert read_meta(files / "m.pt")["training"]["init_from"] == "news 2.0.0"
    assert train_main(args(files, "--init-from", str(files / "none.pt"))) == 2
    assert f"--init-from: no such file: {files / 'none.pt'}" in capsys.readouterr().err
    assert train_main(args(files, "--init-from", str(files / "news.pt"), "--hidden", "12")) == 2
    assert "a network of another shape: lstm.weight_ih_l0" in capsys.readouterr().err
    (files / "bad.pt").write_bytes(b"not a model")
    assert train_main(args(files, "--init-from", str(files / "bad.pt"))) == 2
    assert "--init-from: model file" in capsys.readouterr().err


def test_a_recipe_expands_home_in_init_from(tmp_path, monkeypatch):
    from tagstream.model.training.train import parse_args

    monkeypatch.setenv("HOME", str(tmp_path))
    recipe = tmp_path / "r.toml"
    recipe.write_text('train = ["a.txt"]\noutput = "x.pt"\ninit-from = "~/news.pt"\n')
    assert parse_args(["--recipe", str(recipe)]).init_from == str(tmp_path / "news.pt")


def test_init_from_a_model_without_a_character_cnn(tmp_path):
    """Chinese networks read characters as tokens (no character CNN): the rest is taken."""
    import torch

    from tagstream.model.artifact import WORDS_FILE, plain_state, read
    from tagstream.model.training.export import export_random
    from tagstream.model.training.loop import init_from
    from tagstream.model.vocab import Vocab

    src = export_random(tmp_path / "zh.pt", language="zh")
    module, extra = read(src)
    meta = read_meta(src)
    net, _ = _net_like(src, Vocab(), labels=meta["labels"])
    _, taken = init_from(
        net, Vocab.loads(extra[WORDS_FILE]), Vocab(), meta["features"], meta["tags"], str(src)
    )
    assert "chars.embed.weight" not in net.state_dict() and "lstm.weight_ih_l0" in taken
    assert torch.equal(
        net.state_dict()["out.weight"], plain_state(module.state_dict())["out.weight"]
    )
