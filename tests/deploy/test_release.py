"""The release workflow (.github/workflows/release.yml), linted with actionlint: what it runs on
a version tag is checked here before a tag ever runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.deploy.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"


def lint(actionlint: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [actionlint, "-no-color", str(path)], capture_output=True, text=True, timeout=120
    )


def test_the_release_workflow_passes_actionlint(actionlint):
    result = lint(actionlint, WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_problems(actionlint, tmp_path):
    broken = tmp_path / ".github" / "workflows" / "release.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("needs: [pypi]", "needs: [no-such-job]", 1))
    result = lint(actionlint, broken)
    assert result.returncode == 1 and "no-such-job" in result.stdout, result.stdout


def test_a_tag_builds_tests_and_publishes_every_part():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML reads the key `on` as True
    assert triggers["push"]["tags"] == ["v*.*.*"]
    jobs = workflow["jobs"]
    assert {"test", "python", "image", "chart", "pypi", "github"} <= set(jobs)
    assert set(jobs["pypi"]["needs"]) == {"test", "python", "image", "chart"}
    steps = " ".join(str(step) for job in jobs.values() for step in job["steps"])
    for expected in ("bash .ci/run", "scripts/dist", "docker build", "helm package"):
        assert expected in steps, expected
    assert "TORCH_VARIANT=cpu" in steps  # the image carries torch's CPU build


def test_scripts_dist_builds_and_checks_what_the_release_publishes(tmp_path):
    """The release workflow's python job, run here: the code wheel, the sdist and one wheel per
    model package, each passing `twine check --strict`; a release tag that is not pyproject's
    version stops it before anything is built."""
    script = REPO / "scripts" / "dist"
    wrong = subprocess.run(
        [str(script), str(tmp_path / "wrong")],
        env={**os.environ, "TAGSTREAM_DIST_VERSION": "99.0.0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert wrong.returncode == 1 and "pyproject.toml says" in wrong.stderr, wrong.stderr
    assert not (tmp_path / "wrong").exists()
    out = tmp_path / "dist"
    done = subprocess.run([str(script), str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    built = sorted(p.name for p in out.iterdir())
    models = sorted(p.name for p in (REPO / "models").iterdir() if p.is_dir())
    assert len([n for n in built if n.startswith("tagstream-") and n.endswith(".whl")]) == 1
    assert len([n for n in built if n.endswith(".tar.gz")]) == 1
    for model in models:
        assert any(n.startswith(f"tagstream_model_{model.replace('-', '_')}-") for n in built)
    assert "PASSED" in done.stdout and "FAILED" not in done.stdout
