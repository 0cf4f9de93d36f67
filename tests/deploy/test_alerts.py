"""The chart's alert rules: promtool check and unit tests on exactly what the chart renders, and
every metric they query is one the worker exports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import CHART, CI_VALUES, Helm, ci_id
from tests.deploy.contract import PROMETHEUS_SYNTHETIC, promql_metric_names, worker_exported_names

UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")
ALERTS = {
    "TagstreamConsumerLagGrowing",
    "TagstreamDeadLetterRateHigh",
    "TagstreamEndToEndLatencyHigh",
    "TagstreamNoWorkerUp",
    "TagstreamNoPartitionsAssigned",
    "TagstreamUnreadableInput",
}


def rendered_rules(helm: Helm, values: Path | None = None, sets: dict | None = None) -> dict:
    """The `groups:` of the PrometheusRule the chart renders (a Prometheus rule file)."""
    rule = helm.template(values or CHART / "ci" / "prometheusrule-values.yaml", sets).one(
        "PrometheusRule"
    )
    return rule["spec"]


def write_rules(directory: Path, groups: dict) -> Path:
    path = directory / "rendered-alerts.yaml"
    path.write_text(yaml.safe_dump(groups, sort_keys=False))
    return path


def promtool_test(promtool: str, directory: Path, groups: dict) -> subprocess.CompletedProcess[str]:
    write_rules(directory, groups)
    shutil.copy(UNIT_TESTS, directory / UNIT_TESTS.name)
    return subprocess.run(
        [promtool, "test", "rules", UNIT_TESTS.name],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_six_alerts_are_rendered(helm: Helm):
    names = {r["alert"] for g in rendered_rules(helm)["groups"] for r in g["rules"]}
    assert names == ALERTS


@pytest.mark.parametrize("values", [v for v in CI_VALUES], ids=ci_id)
def test_promtool_check_rules(helm: Helm, promtool: str, values: Path, tmp_path: Path):
    """Every ci values file, with the rules switched on, renders rules promtool accepts."""
    groups = rendered_rules(helm, values, {"prometheusRule.enabled": "true"})
    proc = subprocess.run(
        [promtool, "check", "rules", str(write_rules(tmp_path, groups))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_check_rules_with_every_option(helm: Helm, promtool: str, tmp_path: Path):
    groups = rendered_rules(
        helm,
        sets={
            "prometheusRule.runbookBaseUrl": "https://runbooks.example/tagstream",
            "prometheusRule.alertLabels.team": "nlp",
            "prometheusRule.seriesSelector": 'service="ner",cluster="eu-1"',
            "prometheusRule.latency.thresholdSeconds": 2.5,
            "prometheusRule.deadLetters.ratio": 0.05,
        },
    )
    rules = [r for g in groups["groups"] for r in g["rules"]]
    assert all(r["labels"]["team"] == "nlp" for r in rules)
    assert all(
        r["annotations"]["runbook_url"].startswith("https://runbooks.example/tagstream#")
        for r in rules
    )
    assert all('service="ner",cluster="eu-1"' in r["expr"] for r in rules)
    proc = subprocess.run(
        [promtool, "check", "rules", str(write_rules(tmp_path, groups))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests(helm: Helm, promtool: str, tmp_path: Path):
    proc = promtool_test(promtool, tmp_path, rendered_rules(helm))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unit_tests_fire_and_do_not_fire_every_alert():
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    fires, quiet = set(), set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fires == ALERTS, f"no firing case for {ALERTS - fires}"
    assert quiet == ALERTS, f"no quiet case for {ALERTS - quiet}"


def test_unit_tests_catch_wrong_thresholds(helm: Helm, promtool: str, tmp_path: Path):
    """With each threshold made too sensitive, the quiet cases fail: the tests bite."""
    too_sensitive = {
        "prometheusRule.lagGrowing.minLag": "100",
        "prometheusRule.deadLetters.ratio": 0.001,
        "prometheusRule.latency.thresholdSeconds": 0.5,
        "prometheusRule.noPartitionsAssigned.for": "5m",  # shorter than a rebalance may take
    }
    proc = promtool_test(promtool, tmp_path, rendered_rules(helm, sets=too_sensitive))
    assert proc.returncode != 0
    for alert in (
        "TagstreamConsumerLagGrowing",
        "TagstreamDeadLetterRateHigh",
        "TagstreamEndToEndLatencyHigh",
        "TagstreamNoPartitionsAssigned",
    ):
        assert alert in proc.stdout + proc.stderr, alert


def test_no_worker_up_alert_is_dropped_when_keda_may_scale_to_zero(helm: Helm):
    groups = rendered_rules(helm, sets={"keda.enabled": "true", "keda.minReplicaCount": "0"})
    names = {r["alert"] for g in groups["groups"] for r in g["rules"]}
    assert names == ALERTS - {"TagstreamNoWorkerUp"}


def test_alerts_query_only_metrics_the_worker_exports(helm: Helm):
    exported = worker_exported_names() | PROMETHEUS_SYNTHETIC
    for group in rendered_rules(helm)["groups"]:
        for rule in group["rules"]:
            names = promql_metric_names(rule["expr"])
            assert names, rule["alert"]
            assert names <= exported, f"{rule['alert']} queries {sorted(names - exported)}"


def test_alert_series_selector_matches_the_servicemonitor_job(helm: Helm):
    """Prometheus-operator sets job to the Service name: the alerts must select that job."""
    rendered = helm.template(
        CHART / "ci" / "servicemonitor-values.yaml", {"prometheusRule.enabled": "true"}
    )
    service = rendered.one("Service")["metadata"]["name"]
    monitor = rendered.one("ServiceMonitor")["spec"]
    assert "jobLabel" not in monitor
    for group in rendered.one("PrometheusRule")["spec"]["groups"]:
        for rule in group["rules"]:
            assert f'job="{service}"' in rule["expr"] and 'namespace="default"' in rule["expr"]
