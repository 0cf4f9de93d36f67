"""The Grafana dashboard (helm/tagstream/files/dashboard.json): valid, complete, and querying only
metrics the worker exports. (tests/deploy/test_live.py checks the names on a live /metrics.)"""

from __future__ import annotations

import json

import pytest

from tests.deploy.conftest import CHART, Helm
from tests.deploy.contract import (
    PROMETHEUS_SYNTHETIC,
    grafana_variable_metric_names,
    promql_metric_names,
    worker_exported_names,
)

DASHBOARD = CHART / "files" / "dashboard.json"


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # inside collapsed rows
    return out


def dashboard_metric_names(dashboard: dict) -> set[str]:
    names: set[str] = set()
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            names |= promql_metric_names(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            names |= grafana_variable_metric_names(
                query["query"] if isinstance(query, dict) else query
            )
    return names


def test_is_valid_json_with_a_stable_identity():
    dashboard = load()
    assert dashboard["uid"] == "tagstream-worker" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_panel_queries_through_the_datasource_variable():
    variables = {v["name"] for v in load()["templating"]["list"]}
    assert {"datasource", "namespace", "job"} <= variables
    for panel in panels(load()):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert (
                'namespace=~"$namespace"' in target["expr"] and 'job=~"$job"' in target["expr"]
            ), (panel["title"], target["expr"])


@pytest.mark.parametrize(
    "title, needles",
    [
        ("Throughput", ["tagstream_records_consumed_total", "tagstream_records_produced_total"]),
        (
            "End-to-end latency",
            [
                "histogram_quantile(0.5,",
                "histogram_quantile(0.99,",
                "tagstream_end_to_end_latency_seconds_bucket",
            ],
        ),
        ("Batch size", ["tagstream_batch_records_bucket"]),
        ("Consumer lag", ["tagstream_consumer_lag"]),
        ("Dead letters", ["tagstream_records_dead_lettered_total", "by (reason)"]),
    ],
)
def test_has_the_panels_operators_need(title: str, needles: list[str]):
    matching = [p for p in panels(load()) if p["title"] == title and p["type"] == "timeseries"]
    assert matching, f"no time series panel {title!r}"
    exprs = " ".join(t["expr"] for t in matching[0]["targets"])
    for needle in needles:
        assert needle in exprs, (title, needle)


def test_queries_only_metrics_the_worker_exports():
    names = dashboard_metric_names(load())
    exported = worker_exported_names() | PROMETHEUS_SYNTHETIC
    assert names, "no metric found in the dashboard"
    assert names <= exported, f"not exported by the worker: {sorted(names - exported)}"


def test_chart_ships_the_file_unchanged(helm: Helm):
    rendered = helm.template(CHART / "ci" / "dashboard-values.yaml")
    maps = [
        d
        for d in rendered.docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")
    ]
    assert len(maps) == 1
    config_map = maps[0]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "Streaming"
    assert json.loads(config_map["data"]["tagstream.json"]) == load()
    assert config_map["data"]["tagstream.json"] == DASHBOARD.read_text().rstrip("\n")


def test_shows_the_assigned_partitions_the_no_partitions_alert_is_about():
    """TagstreamNoPartitionsAssigned points operators at this panel (docs/operations.md, Alerts)."""
    matching = [p for p in panels(load()) if p["title"] == "Assigned partitions"]
    assert matching, "no panel 'Assigned partitions'"
    exprs = " ".join(t["expr"] for t in matching[0]["targets"])
    assert "tagstream_assigned_partitions" in exprs
