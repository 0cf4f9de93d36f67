"""The layers, read from the imports: ``tagstream.model`` (the folder ``model/``) never imports
``tagstream.worker`` (``worker/``) or Kafka, and in the worker only the pipeline reaches into the
model package. And nothing imports the old top-level names ``model`` or ``worker``: the folders
install as ``tagstream.model`` and ``tagstream.worker`` (pyproject.toml's package-dir)."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# repository folder -> the package it installs as
INSTALLED_AS = {"model": "tagstream.model", "worker": "tagstream.worker", "tagstream": "tagstream"}
# every Python file of the project: the packages, the tests, the scripts, the model packages
PROJECT = sorted(
    {
        p
        for pattern in (
            "model/**/*.py",
            "worker/**/*.py",
            "tagstream/**/*.py",
            "tests/**/*.py",
            "scripts/*.py",
            "models/*/*/*.py",
        )
        for p in ROOT.glob(pattern)
    }
)
OLD_NAMES = {"model", "worker"}


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def package_of(path: Path) -> str | None:
    """The installed package a file of model/, worker/ or tagstream/ belongs to
    (``worker/cli.py`` -> ``tagstream.worker``), for resolving its relative imports."""
    parts = path.relative_to(ROOT).parts
    if parts[0] not in INSTALLED_AS:
        return None
    return ".".join([INSTALLED_AS[parts[0]], *parts[1:-1]])


def imports(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports (also inside functions), absolute and dotted; for
    ``from a import b`` both ``a`` and ``a.b`` (b may be a submodule). Relative imports are
    resolved in ``package`` (default: the one ``path`` installs in)."""
    out: set[str] = set()
    package = package or package_of(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert package, f"{rel(path)}: a relative import outside the packages"
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            out.add(module)
            out |= {f"{module}.{alias.name}" for alias in node.names if alias.name != "*"}
    return out


def within(names: set[str], package: str) -> set[str]:
    return {n for n in names if n == package or n.startswith(package + ".")}


def test_the_project_files_are_found():
    found = {rel(p).split("/")[0] for p in PROJECT}
    assert {"model", "worker", "tagstream", "tests", "scripts", "models"} <= found


@pytest.mark.parametrize("path", sorted(ROOT.glob("model/**/*.py")), ids=rel)
def test_the_model_never_imports_the_worker_or_kafka(path):
    names = imports(path)
    assert not within(names, "tagstream.worker") | within(names, "kafka"), rel(path)


def test_only_the_pipeline_joins_the_worker_to_the_model():
    joining = sorted(
        rel(p) for p in ROOT.glob("worker/**/*.py") if within(imports(p), "tagstream.model")
    )
    assert joining == ["worker/pipeline.py"]


@pytest.mark.parametrize("path", PROJECT, ids=rel)
def test_nothing_imports_the_old_top_level_names(path):
    """``model`` and ``worker`` are not installed: ``import model`` would work only from the
    repository's root (by accident) or pick up a user's own model.py."""
    old = {n for n in imports(path) if n.split(".")[0] in OLD_NAMES}
    assert not old, f"{rel(path)} imports {sorted(old)}: use tagstream.model / tagstream.worker"


OLD_IN_TEXT = re.compile(
    r"^\s*(?:from|import) (?:model|worker)\b|-m (?:model|worker)\.|"
    r"""["'](?:model|worker)\.cli["']"""
)
# Lines that must keep an old name: a recipe that runs an earlier commit's own code.
KEEP = {
    "docs/models.md": [
        "python -m model.train --train /work/shared/data/msra/train.bio",
        "python -m model.bench --model model/artifacts/en-news.pt",  # at 7fd77e6
    ]
}


def test_no_text_names_the_old_modules():
    """The same in what is not a Python file (Python in shell scripts and the documentation,
    ``python -m model.train`` commands), except the changelog's history and this file."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if (
            name in ("CHANGELOG.md", "tests/test_layers.py")
            or path.suffix in {".pt", ".json"}
            or not path.is_file()
        ):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for line in text.splitlines():
            if OLD_IN_TEXT.search(line) and not any(keep in line for keep in KEEP.get(name, ())):
                offenders.append(f"{name}: {line.strip()}")
    assert not offenders, offenders


def test_the_import_reader_resolves_relative_imports_and_sees_the_old_names(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from ..worker import cli\nfrom . import spans\nimport model.tagger\n"
        "def f():\n    from worker import logs\n"
    )
    names = imports(probe, package="tagstream.model")
    assert within(names, "tagstream.worker") == {"tagstream.worker", "tagstream.worker.cli"}
    assert "tagstream.model.spans" in names
    assert {n.split(".")[0] for n in names} & OLD_NAMES == OLD_NAMES
    assert OLD_IN_TEXT.search("python -m model.train --train x") and OLD_IN_TEXT.search(
        "  import worker\n"
    )
    assert not OLD_IN_TEXT.search("python -m tagstream.model.train; from tagstream import model")
