"""The Helm chart (helm/tagstream): lint, render, Kubernetes schemas, and what the chart must
agree on with the worker (endpoints, port, settings, drain timeout)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import CHART, CI_VALUES, KUBE_VERSIONS, Helm, Rendered, ci_id

ci_values = pytest.mark.parametrize("values", CI_VALUES, ids=ci_id)


def _env(rendered: Rendered) -> dict[str, str | dict]:
    """Every environment variable the worker container gets: ConfigMap first, then env."""
    out: dict[str, str | dict] = dict(rendered.configmap())
    for var in rendered.container().get("env") or []:
        out[var["name"]] = var.get("value", var.get("valueFrom"))
    return out


def _pod_spec(rendered: Rendered) -> dict:
    return rendered.one("Deployment")["spec"]["template"]["spec"]


# -- lint, render, schemas ---------------------------------------------------------------------


def test_the_ci_values_files_exist():
    assert len(CI_VALUES) >= 10, CI_VALUES


def test_lint_defaults(helm: Helm):
    helm.run("lint", "--strict", str(CHART))


@ci_values
def test_lint(helm: Helm, values: Path):
    for version in KUBE_VERSIONS:
        helm.run(
            "lint",
            "--strict",
            str(CHART),
            "--values",
            str(values),
            "--kube-version",
            f"{version}.0",
        )


@ci_values
def test_manifests_match_the_kubernetes_schemas(
    helm: Helm, validator, values: Path, tmp_path: Path
):
    """Strict built-in schemas for Kubernetes 1.29 and 1.37; the CRDs' own schemas for
    ServiceMonitor, PrometheusRule, ScaledObject and TriggerAuthentication."""
    python, crd_dir = validator
    for version in KUBE_VERSIONS:
        manifest = tmp_path / f"{version}.yaml"
        manifest.write_text(helm.template(values, kube_version=version).text)
        proc = subprocess.run(
            [
                python,
                str(Path(__file__).with_name("k8s_validate.py")),
                "--kube-version",
                version,
                "--crd-dir",
                crd_dir,
                str(manifest),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode in (0, 1), proc.stderr
        report = json.loads(proc.stdout)
        assert report["documents"], "nothing rendered"
        problems = [
            f"{d['kind']}/{d['name']}: {e}" for d in report["documents"] for e in d["errors"]
        ]
        assert not problems, "\n".join(problems)
        assert proc.returncode == 0


def test_validator_catches_bad_manifests(helm: Helm, validator, tmp_path: Path):
    """The schema check can fail: a typo'd field, a wrong type, a bad custom resource."""
    python, crd_dir = validator
    text = helm.template(CHART / "ci" / "keda-values.yaml").text
    text = text.replace("containerPort: 8080", 'containerPort: "8080"\n              hostPortt: 1')
    text = re.sub(r'lagThreshold: "(\d+)"', r"lagThreshold: \1", text)
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(text)
    proc = subprocess.run(
        [
            python,
            str(Path(__file__).with_name("k8s_validate.py")),
            "--kube-version",
            "1.37",
            "--crd-dir",
            crd_dir,
            str(manifest),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    errors = " ".join(e for d in json.loads(proc.stdout)["documents"] for e in d["errors"])
    assert "hostPortt" in errors and "'8080' is not of type 'integer'" in errors
    assert "lagThreshold" in errors


def test_kubernetes_older_than_supported_is_refused(helm: Helm):
    proc = helm.run("template", "x", str(CHART), "--kube-version", "1.28.0", check=False)
    assert proc.returncode != 0 and "kubeVersion" in proc.stderr


def toggles_on(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "enabled" and value is True:
                yield ".".join(path)
            else:
                yield from toggles_on(value, (*path, key))


def test_every_toggle_has_a_ci_values_file():
    """One ci/*-values.yaml per `enabled` toggle that is off by default (STYLE.md, Helm)."""
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    def toggles(node, path=()):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "enabled" and value is False:
                    yield ".".join(path)
                else:
                    yield from toggles(value, (*path, key))

    enabled_by_ci = set()
    for values in CI_VALUES:
        doc = yaml.safe_load(values.read_text()) or {}
        enabled_by_ci.update(toggles_on(doc))
    missing = sorted(set(toggles(defaults)) - enabled_by_ci)
    assert not missing, f"no ci/*-values.yaml turns on: {missing}"


@ci_values
def test_each_ci_values_file_changes_the_output(helm: Helm, values: Path):
    if values.name == "default-values.yaml":
        return
    assert helm.template(values).text != helm.template(CHART / "ci" / "default-values.yaml").text


def uncommented_values(lines: list[str]) -> list[str]:
    """Keys of a values.yaml without a comment line right above them. Only the fields inside a
    list's items are exempt (the list's own comment covers them, e.g. HPA policies); free-form
    maps (podAnnotations, nodeSelector, affinity, ...) are empty by default, so they have no
    leaves, and every leaf under resources, securityContext, strategy, behavior... is checked."""
    stack: list[tuple[int, str]] = []
    item_indents: list[int] = []  # indentation of the "- " of the list items we are inside
    missing = []
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        while item_indents and indent <= item_indents[-1]:
            item_indents.pop()
        if stripped.startswith("- "):
            item_indents.append(indent)
            continue
        match = re.match(r"([A-Za-z][\w.-]*):", stripped)
        if not match:
            continue
        key = match.group(1)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        stack.append((indent, key))
        if item_indents:
            continue
        above = lines[number - 1].strip() if number else ""
        if not above.startswith("#"):
            missing.append(".".join(path))
    return missing


def test_every_value_is_commented():
    lines = (CHART / "values.yaml").read_text().splitlines()
    missing = uncommented_values(lines)
    assert not missing, f"values without a comment: {missing}"


def test_uncommented_values_are_found_in_kubernetes_objects_too():
    """The check bites inside resources, securityContext, behavior...: drop a comment, and it
    names the leaf."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    for path in (
        "resources.limits.memory",
        "securityContext.capabilities.drop",
        "strategy.rollingUpdate.maxSurge",
        "keda.behavior.scaleDown.policies",
        "podSecurityContext.seccompProfile.type",
    ):
        parts = path.split(".")
        mutated = list(lines)
        stack: list[tuple[int, str]] = []
        for number, line in enumerate(mutated):
            match = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
            if not match:
                continue
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match.group(2)))
            if [k for _, k in stack] == parts:
                assert mutated[number - 1].lstrip().startswith("#"), path
                del mutated[number - 1]
                break
        else:
            raise AssertionError(f"{path} not found in values.yaml")
        assert uncommented_values(mutated) == [path]


@ci_values
def test_notes_render(helm: Helm, values: Path, tmp_path: Path):
    """NOTES.txt is rendered by `helm install`, not `helm template`: render it through a copy."""
    chart = tmp_path / "tagstream"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes-under-test.txt")
    (chart / "templates" / "notes-under-test.yaml").write_text(
        'notes: |\n{{ tpl (.Files.Get "notes-under-test.txt") . | indent 2 }}\n'
    )
    out = helm.run(
        "template",
        "tagstream",
        str(chart),
        "--values",
        str(values),
        "--show-only",
        "templates/notes-under-test.yaml",
    ).stdout
    notes = yaml.safe_load(out)["notes"]
    assert "port-forward svc/tagstream 8080" in notes
    assert "NotReady" in notes
