"""Models by name: shipped ones, those of installed model packages (entry points), and files."""

from __future__ import annotations

import pathlib
import shutil
import sys

import pytest

from tagstream.model import UnknownModel, load
from tagstream.model.registry import cards, installed, resolve

ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "model" / "artifacts"


def test_shipped_models_by_name_and_the_default():
    assert resolve(None) == ARTIFACTS / "en-news.pt"
    assert (
        resolve("zh-news")
        == ARTIFACTS.parents[1] / "models" / "zh-news" / "tagstream_model_zh_news" / "zh-news.pt"
    )
    assert {"en-news", "en-social", "zh-news"} <= set(installed())


def test_a_path_is_taken_as_it_is(tmp_path):
    assert resolve(tmp_path / "x.pt") == tmp_path / "x.pt"  # the loader says it is missing
    assert resolve("some/dir/model") == pathlib.Path("some/dir/model")


def test_an_unknown_name_says_what_is_installed():
    with pytest.raises(UnknownModel, match="no model named 'fr-news'; installed: en-news"):
        resolve("fr-news")


def test_a_model_package_is_found_through_its_entry_point(tmp_path, monkeypatch):
    """A distribution that declares ``[project.entry-points."tagstream.models"]`` (as a model
    package built from its own pyproject.toml would) is addressable by name."""
    site = tmp_path / "site"
    pkg = site / "tagstream_model_demo"
    pkg.mkdir(parents=True)
    shutil.copy(ARTIFACTS / "en-news.pt", pkg / "demo.pt")
    (pkg / "__init__.py").write_text(
        "import pathlib\n\ndef path():\n    return pathlib.Path(__file__).with_name('demo.pt')\n"
    )
    info = site / "tagstream_model_demo-1.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tagstream-model-demo\nVersion: 1.0.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[tagstream.models]\ndemo-news = tagstream_model_demo:path\n"
    )
    monkeypatch.syspath_prepend(str(site))
    assert resolve("demo-news") == pkg / "demo.pt"
    assert "demo-news" in {c.name for c in cards()}
    assert load("demo-news", threads=1).name == "en-news"  # the artifact's own name
    monkeypatch.delitem(sys.modules, "tagstream_model_demo", raising=False)
