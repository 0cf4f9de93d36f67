"""The examples in the docstrings (``>>>``) of ``model/`` and ``worker/`` run, and say what they
show: every module with one is found here, imported under its installed name
(``tagstream.model.spans``) and run with doctest."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    f"tagstream.{path.parent.name}.{path.stem}"
    for folder in ("model", "worker")
    for path in (ROOT / folder).glob("*.py")
    if ">>>" in path.read_text(encoding="utf-8")
)


def test_the_modules_with_examples_are_found():
    assert "tagstream.model.spans" in MODULES and "tagstream.worker.messages" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name}: no example ran"
    assert result.failed == 0, (
        f"{name}: {result.failed} of {result.attempted} examples failed (above)"
    )
