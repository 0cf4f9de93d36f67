"""Every shipped artifact loads, carries its card's name, and tags a sample it gets right."""
import pathlib

import pytest

from model import default_model_path, load

ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "model" / "artifacts"

# name -> (file, sample text, expected (text, label) spans)
SHIPPED = {
    "en-news": ("en-news.pt", "Barack Obama visited Paris with officials from the United Nations .",
                [("Barack Obama", "PER"), ("Paris", "LOC"), ("United Nations", "ORG")]),
    "en-social": ("en-social.pt", "Watching the Lakers game with Kevin in LA",
                  [("Lakers", "group"), ("Kevin", "person"), ("LA", "location")]),
    "zh-news": ("zh-news.pt", "江泽民主席在北京会见了美国总统克林顿。",
                [("江泽民", "PER"), ("北京", "LOC"), ("美国", "LOC"), ("克林顿", "PER")]),
}


def test_every_file_is_declared():
    files = sorted(p.name for p in ARTIFACTS.glob("*.pt"))
    assert files == sorted(f for f, _, _ in SHIPPED.values() if (ARTIFACTS / f).exists())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model(name):
    file, text, expected = SHIPPED[name]
    path = ARTIFACTS / file
    if not path.exists():
        pytest.fail(f"{path} is missing")
    tagger = load(path)
    assert tagger.name == name
    assert tagger.info["dev_scores"]["micro"]["f1"] > 0
    assert path.stat().st_size < 40 * 2**20, "small enough for git"
    (spans,) = tagger.tag([text])
    assert all(s.text == text[s.start:s.end] for s in spans)
    if expected is not None:
        assert [(s.text, s.label) for s in spans] == expected
    else:
        assert spans, "finds something"


def test_default_model_is_en_news():
    assert default_model_path() == ARTIFACTS / "en-news.pt"
