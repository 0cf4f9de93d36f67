"""The container image: the build context (.dockerignore), checked without a Docker engine. The
Dockerfile and the install steps are in tests/deploy/test_image.py."""

from __future__ import annotations

import os
import re
import subprocess

from tests.deploy.conftest import REPO

# -- the build context ---------------------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus **) as a regex over relative paths."""
    pattern = pattern.strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _rules() -> list[tuple[bool, re.Pattern[str], str]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            raw = line[1:] if negate else line
            rules.append((negate, _pattern(raw), raw.strip("/")))
    return rules


def _excluded(rel: str, rules) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex, _ in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


def build_context() -> list[str]:
    """Relative paths of the files `docker build .` would send (per .dockerignore)."""
    rules = _rules()
    reincluded = [raw for negate, _, raw in rules if negate]
    files = []
    for root, dirs, names in os.walk(REPO):
        rel_root = os.path.relpath(root, REPO)
        rel_root = "" if rel_root == "." else rel_root + "/"
        # prune excluded directories nothing re-includes (.git, .venv)
        dirs[:] = [
            d
            for d in dirs
            if not (
                _excluded(rel_root + d, rules)
                and not any(
                    raw.startswith(rel_root + d + "/") or raw == rel_root + d for raw in reincluded
                )
            )
        ]
        files += [rel_root + n for n in names if not _excluded(rel_root + n, rules)]
    return sorted(files)


def test_build_context_holds_what_the_install_needs_and_nothing_else():
    context = build_context()
    tracked = subprocess.run(
        ["git", "ls-files", "tagstream", "worker", "model", "models"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for path in ["pyproject.toml", "README.md", "scripts/image-install", *tracked]:
        assert path in context, f"{path} is not in the build context"
    artifacts = [
        p.relative_to(REPO).as_posix()
        for p in [*(REPO / "model" / "artifacts").glob("*.pt"), *REPO.glob("models/*/*/*.pt")]
    ]
    assert len(artifacts) == 3
    assert set(artifacts) <= set(context)
    for path in context:
        assert not path.startswith((".git/", ".venv/", "tests/", "helm/")), path
        assert "__pycache__" not in path and not path.endswith((".pyc", ".env")), path
