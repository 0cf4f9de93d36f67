"""A real Prometheus on a free loopback port for the live checks (tests/deploy/test_live.py)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from tests.deploy.conftest import NAMESPACE
from tests.integration.kit import free_port

JOB = "tagstream"  # the chart's fullname for release "tagstream": what its alerts select


class Prometheus:
    """A real Prometheus on a free loopback port, scraping one target every second."""

    def __init__(self, binary: str, workdir: Path, target_port: int, rules: dict):
        self.port = free_port()
        self.workdir = workdir
        (workdir / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
        (workdir / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "evaluation_interval": "1s",
                    },
                    "rule_files": ["rules.yaml"],
                    "scrape_configs": [
                        {
                            "job_name": JOB,
                            "static_configs": [
                                {
                                    "targets": [f"127.0.0.1:{target_port}"],
                                    "labels": {"namespace": NAMESPACE},
                                }
                            ],
                        }
                    ],
                }
            )
        )
        self.log_path = workdir / "prometheus.log"
        self.binary = binary
        self.proc: subprocess.Popen | None = None

    def start(self) -> Prometheus:
        log = open(self.log_path, "wb")  # noqa: SIM115 (owned by the child)
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited:\n{self.log()}"
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/-/ready", timeout=2
                ) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after 60 s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def scalar(self, query: str, at: float) -> float | None:
        """The single value of an instant query at time `at` (None when empty)."""
        result = self.api("query", query=query, time=f"{at:.3f}")["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, query: str, predicate, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = self.scalar(query, time.time())
            if value is not None and predicate(value):
                return value
            time.sleep(0.5)
        raise AssertionError(f"{query} = {value} after {timeout_s} s\n{self.log()}")
