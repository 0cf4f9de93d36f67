"""The layers, read from the imports (also those inside functions and under TYPE_CHECKING):

* ``model/`` never imports ``worker/`` or Kafka, and inference never imports ``model/training/``;
* in the worker, only ``worker/models.py`` imports the model package; only ``worker/kafka/`` and
  ``worker/cli/`` import kafka-python; the loop at the top of ``worker/`` never imports the
  adapters (``worker/kafka/``) or the commands (``worker/cli/``), nor the adapters the commands;
* inside ``worker/`` and ``model/`` every import of the project is relative, so that a reader
  resolves it by path (the packages install under other names, pyproject.toml's package-dir),
  and no two modules import each other, however indirectly;
* nothing imports the old top-level names ``model`` or ``worker``."""

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
    (``worker/cli/__init__.py`` -> ``tagstream.worker``), for resolving its relative imports."""
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


PACKAGES = sorted(p for top in ("model", "worker") for p in ROOT.glob(f"{top}/**/*.py"))
CORE = sorted(ROOT.glob("worker/*.py"))  # the loop: broker-free, model-free
# what each folder holds (a module moved away must be moved here too, on purpose)
LAYOUT = {
    "worker": {
        "pipeline", "batcher", "tagging", "delivery", "rewinds", "messages", "records", "ports",
        "deadline", "metrics", "http", "logs", "models", "labeller", "pointers", "outputs",
        "formats", "registry", "routing", "replay",
    },
    "worker/kafka": {
        "clients", "consumer", "producer", "lag", "partitions", "preflight", "oauth",
        "patches", "unreadable", "replayer",
    },
    "worker/settings": {"kafka", "rules"},
    "worker/cli": {"run", "tag", "models", "demo", "demo_measure", "exits", "replay"},
    "model/training": {
        "train", "args", "recipe", "data", "loop", "progress", "averaging", "teacher",
        "pretrained", "export", "evaluate", "conll", "bench",
    },
}  # fmt: skip


def module_name(path: Path) -> str:
    name = package_of(path)
    return name if path.name == "__init__.py" else f"{name}.{path.stem}"


@pytest.mark.parametrize("folder", sorted(LAYOUT))
def test_the_folders_hold_their_modules(folder):
    found = {p.stem for p in (ROOT / folder).glob("*.py")} - {"__init__"}
    assert LAYOUT[folder] <= found, sorted(LAYOUT[folder] - found)


@pytest.mark.parametrize(
    "path", sorted(p for p in ROOT.glob("model/*.py")) + [ROOT / "model/__init__.py"], ids=rel
)
def test_inference_never_imports_training(path):
    assert not within(imports(path), "tagstream.model.training"), rel(path)


def test_only_one_module_joins_the_worker_to_the_model():
    joining = sorted(
        rel(p) for p in ROOT.glob("worker/**/*.py") if within(imports(p), "tagstream.model")
    )
    assert joining == ["worker/models.py"]


@pytest.mark.parametrize("path", sorted(ROOT.glob("worker/**/*.py")), ids=rel)
def test_only_the_adapters_and_the_commands_import_kafka_python(path):
    if rel(path).startswith(("worker/kafka/", "worker/cli/")):
        return
    assert not within(imports(path), "kafka"), rel(path)


@pytest.mark.parametrize("path", CORE + sorted(ROOT.glob("worker/settings/*.py")), ids=rel)
def test_the_loop_and_the_settings_never_import_the_adapters_or_the_commands(path):
    names = imports(path)
    assert not within(names, "tagstream.worker.kafka") | within(names, "tagstream.worker.cli")


@pytest.mark.parametrize("path", sorted(ROOT.glob("worker/kafka/*.py")), ids=rel)
def test_the_adapters_never_import_the_commands(path):
    assert not within(imports(path), "tagstream.worker.cli"), rel(path)


@pytest.mark.parametrize("path", PACKAGES, ids=rel)
def test_imports_inside_the_packages_are_relative(path):
    """``from tagstream.worker.records import Batch`` resolves only through the installed
    package; ``from .records import Batch`` resolves by path, for every reader."""
    absolute = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        absolute += [n for n in names if n.startswith(("tagstream.worker", "tagstream.model"))]
    assert not absolute, f"{rel(path)}: {absolute}"


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports. ``from . import spans`` imports the module
    ``spans``, not its package's ``__init__``."""
    modules = {module_name(p): p for p in PACKAGES}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = source_module(node, path)
                subs = {f"{module}.{a.name}" for a in node.names} & modules.keys()
                edges |= subs or ({module} & modules.keys())
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names} & modules.keys()
        graph[name] = edges - {name}
    return graph


def source_module(node: ast.ImportFrom, path: Path) -> str:
    """The absolute name of the module a ``from ... import`` statement reads from."""
    if not node.level:
        return node.module or ""
    base = package_of(path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert import_graph()["tagstream.worker.pipeline"] >= {"tagstream.worker.delivery"}


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
KEEP: dict[str, list[str]] = {}


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
    assert not OLD_IN_TEXT.search(
        "python -m tagstream.model.training.train; from tagstream import model"
    )
