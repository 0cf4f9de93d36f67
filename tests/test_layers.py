"""The layers, read from the imports: ``model/`` never imports ``worker/`` or Kafka, and in
``worker/`` only the pipeline reaches into the model package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (also inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("path", sorted(ROOT.glob("model/**/*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_model_never_imports_the_worker_or_kafka(path):
    assert not imports(path) & {"worker", "kafka"}, path


def test_only_the_pipeline_joins_the_worker_to_the_model():
    joining = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("worker/**/*.py") if "model" in imports(p))
    assert joining == ["worker/pipeline.py"]
