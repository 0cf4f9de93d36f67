"""The code wheel: small (the default model only; the others are model packages), with the
package data the commands need, everything under the one top-level package ``tagstream`` (the
repository's model/ and worker/ install as tagstream.model and tagstream.worker), and working
from a fresh virtualenv away from the repository, where ``import model`` finds nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.venvs import lend

REPO = Path(__file__).resolve().parents[1]
# What the code wheel is built from (pyproject.toml's packages and what its metadata reads).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "tagstream", "model", "worker")
FOLDERS = {"model": "tagstream/model", "worker": "tagstream/worker", "tagstream": "tagstream"}


def _wheel(src: Path, out: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(src),
        ],
        check=True,
        cwd=out.parent,
        timeout=600,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def code_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The code wheel, built from a copy of its sources: a build in the working tree would also
    pack whatever an earlier build left in build/lib/ (such as the old top-level model/)."""
    tmp = tmp_path_factory.mktemp("code-wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(REPO / name, src / name)
    (tmp / "dist").mkdir()
    return _wheel(src, tmp / "dist")


@pytest.mark.slow
def test_the_code_wheel_is_small_and_holds_only_the_default_model(code_wheel, tmp_path):
    size_mb = code_wheel.stat().st_size / 2**20
    assert size_mb < 40, f"{code_wheel.name} is {size_mb:.1f} MiB: PyPI refuses files over 100 MB"
    names = zipfile.ZipFile(code_wheel).namelist()
    assert [n for n in names if n.endswith(".pt")] == ["tagstream/model/artifacts/en-news.pt"]
    assert "tagstream/worker/cli/demo_sentences.txt" in names
    for model_dir in sorted(REPO.glob("models/*")):  # each other model builds on its own
        (tmp_path / model_dir.name).mkdir()
        model_wheel = _wheel(model_dir, tmp_path / model_dir.name)
        inside = zipfile.ZipFile(model_wheel).namelist()
        assert f"tagstream_model_{model_dir.name.replace('-', '_')}/{model_dir.name}.pt" in inside
        assert any(n.endswith("entry_points.txt") for n in inside)


@pytest.mark.slow
def test_the_code_wheel_installs_one_top_level_package(code_wheel):
    wheel = zipfile.ZipFile(code_wheel)
    names = wheel.namelist()
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
    assert {n.split("/")[0] for n in names} == {"tagstream", dist_info}
    assert wheel.read(f"{dist_info}/top_level.txt").decode().split() == ["tagstream"]
    assert (
        "tagstream = tagstream.worker.cli:console"
        in wheel.read(f"{dist_info}/entry_points.txt").decode()
    )
    # every module of the three folders, at its installed place
    modules = {
        f"{FOLDERS[p.relative_to(REPO).parts[0]]}/{Path(*p.relative_to(REPO).parts[1:]).as_posix()}"
        for folder in FOLDERS
        for p in (REPO / folder).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules and not modules - set(names), sorted(modules - set(names))


USER_SCRIPT = """\
import json

import tagstream

nlp = tagstream.load("en-news", threads=1)
texts: list[str | dict[str, str]] = [
    "Angela Merkel met Emmanuel Macron in Paris.",
    {"id": "b", "text": "nothing here"},
]
for doc in nlp.pipe(texts, batch_size=1):
    spans: list[dict[str, object]] = doc["spans"]
    print(json.dumps(doc), flush=True)
"""
# strict, but not into the dependencies' own sources (torch alone takes minutes)
MYPY_CONFIG = """\
[mypy]
strict = True
[mypy-torch.*,kafka.*,prometheus_client.*,pydantic.*,pydantic_settings.*]
follow_imports = skip
ignore_missing_imports = True
"""


@pytest.mark.slow
def test_the_wheel_works_in_a_fresh_virtualenv_away_from_the_repository(code_wheel, tmp_path):
    """Installed with pip into a new virtualenv in a temporary directory (its dependencies lent
    from the project's virtualenv, see tests/venvs.py), run from there: the commands work, and
    neither ``model`` nor ``worker`` can be imported."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    wheel = zipfile.ZipFile(code_wheel)
    meta = Parser().parsestr(
        wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    )
    lend(venv, tmp_path / "lent", meta.get_all("Requires-Dist") or [])
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAGSTREAM_", "VIRTUAL_ENV", "PYTHON", "PIP_"))
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    python, tagstream = str(venv / "bin" / "python"), str(venv / "bin" / "tagstream")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, cwd=tmp_path, env=env, input=stdin, capture_output=True, text=True, timeout=300
        )

    installed = run(python, "-m", "pip", "install", "--no-index", "--no-deps", str(code_wheel))
    assert installed.returncode == 0, installed.stdout + installed.stderr

    for name in ("model", "worker"):
        proc = run(python, "-c", f"import {name}")
        assert proc.returncode == 1 and f"No module named '{name}'" in proc.stderr, (
            name,
            proc.stderr,
        )
    where = run(
        python,
        "-c",
        "import tagstream.model, tagstream.worker.cli; print(tagstream.model.__file__)",
    )
    assert where.returncode == 0 and where.stdout.startswith(str(venv)), where.stdout + where.stderr

    tagged = run(
        tagstream,
        "tag",
        "--model",
        "en-news",
        stdin=json.dumps({"id": "1", "text": "Angela Merkel met Emmanuel Macron in Paris."}) + "\n",
    )
    assert tagged.returncode == 0, tagged.stderr
    (line,) = tagged.stdout.splitlines()
    output = json.loads(line)
    assert output["id"] == "1" and output["model"].startswith("en-news@"), output
    assert {(s["text"], s["label"]) for s in output["spans"]} >= {
        ("Angela Merkel", "PER"),
        ("Paris", "LOC"),
    }

    listing = run(tagstream, "models")
    assert listing.returncode == 0 and "\nen-news " in "\n" + listing.stdout, (
        listing.stdout + listing.stderr
    )

    # the Python API, as a user imports it, and type-checked against the wheel's py.typed
    (tmp_path / "user.py").write_text(USER_SCRIPT)
    used = run(python, "user.py")
    assert used.returncode == 0, used.stderr[-2000:]
    first, second = (json.loads(line) for line in used.stdout.splitlines())
    assert first["model"].startswith("en-news@") and first["source"] == {"index": 0}
    assert {(s["text"], s["label"]) for s in first["spans"]} >= {("Angela Merkel", "PER")}
    assert second["id"] == "b" and second["spans"] == []
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    mypy = [sys.executable, "-m", "mypy", "--config-file", str(config), "--python-executable"]
    checked = run(*mypy, python, "user.py")
    assert checked.returncode == 0, checked.stdout[-3000:]
    (tmp_path / "wrong.py").write_text(USER_SCRIPT.replace("batch_size=1", 'batch_size="1"'))
    wrong = run(*mypy, python, "wrong.py")
    assert wrong.returncode == 1 and 'No overload variant of "pipe"' in wrong.stdout, wrong.stdout


def test_model_packages_require_a_tagstream_range_this_version_is_in():
    import tomllib

    from packaging.requirements import Requirement

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for pyproject in sorted(REPO.glob("models/*/pyproject.toml")):
        deps = [
            Requirement(d) for d in tomllib.loads(pyproject.read_text())["project"]["dependencies"]
        ]
        (tagstream,) = [d for d in deps if d.name == "tagstream"]
        assert tagstream.specifier and version in tagstream.specifier, (pyproject, tagstream)
