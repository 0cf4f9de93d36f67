"""Live checks on the real broker: a `tagstream run` configured by the chart's own ConfigMap,
(a) its /metrics carries every metric the dashboard and the alerts query, and (b) a real
Prometheus scrapes it while traffic flows, and its HTTP API returns sane throughput and p99
end-to-end latency, with the chart's alert rules loaded and evaluating cleanly.

Everything is bounded in time and stopped in `finally`; only loopback addresses are used.
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import CHART, NAMESPACE, Helm
from tests.deploy.contract import PROMETHEUS_SYNTHETIC, promql_metric_names, sample_names
from tests.deploy.prometheus import JOB, Prometheus
from tests.deploy.test_alerts import ALERTS
from tests.deploy.test_dashboard import dashboard_metric_names
from tests.deploy.test_dashboard import load as load_dashboard
from tests.integration.kit import Cluster, WorkerProcess, produce

pytestmark = pytest.mark.integration

SENTENCES = [
    "Barack Obama visited Paris on Monday with Angela Merkel .",
    "Shares of Siemens rose in Frankfurt after the European Commission ruling .",
    "The United Nations met in Geneva to discuss the crisis in Sudan .",
    "Serena Williams beat Maria Sharapova at Wimbledon .",
]


def _messages(start: int, count: int):
    for i in range(start, start + count):
        value = json.dumps({"id": f"doc-{i}", "text": SENTENCES[i % len(SENTENCES)]}).encode()
        yield f"key-{i % 11}".encode(), value, []


@pytest.fixture(scope="module")
def chart_env(helm: Helm) -> dict[str, str]:
    """The worker settings the chart renders by default (its ConfigMap)."""
    return helm.template().configmap()


@pytest.fixture(scope="module")
def live_worker(bootstrap: str, tiny_model: Path, chart_env, tmp_path_factory):
    """One worker, configured like the chart's pod, on fresh topics with 2 partitions."""
    cluster = Cluster(bootstrap)
    topics = cluster.create_topics(partitions=2)
    log = tmp_path_factory.mktemp("live") / "worker.log"
    worker = WorkerProcess(bootstrap, topics, tiny_model, log)
    pod_env = dict(chart_env)
    pod_env.update(
        {
            k: v
            for k, v in worker.env.items()
            if k
            in (
                "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS",
                "TAGSTREAM_KAFKA__INPUT_TOPIC",
                "TAGSTREAM_KAFKA__OUTPUT_TOPIC",
                "TAGSTREAM_KAFKA__DEAD_LETTER_TOPIC",
                "TAGSTREAM_KAFKA__GROUP_ID",
                "TAGSTREAM_MODEL__PATH",
                "TAGSTREAM_HTTP__PORT",
            )
        }
    )
    pod_env["TAGSTREAM_HTTP__HOST"] = "127.0.0.1"  # loopback only, not the pod's 0.0.0.0
    worker.env = {k: v for k, v in worker.env.items() if not k.startswith("TAGSTREAM_")}
    worker.env.update(pod_env)
    try:
        worker.start().wait_ready(timeout_s=120)
        yield worker, topics, cluster
    except BaseException:
        print(f"----- worker log -----\n{worker.log()}")
        raise
    finally:
        try:
            if worker.proc and worker.proc.poll() is None:
                worker.terminate(timeout_s=60)
        except Exception:
            worker.stop_quietly()
        cluster.delete(topics)
        cluster.close()


def _alert_rules(helm: Helm) -> dict:
    return helm.template(CHART / "ci" / "prometheusrule-values.yaml").one("PrometheusRule")["spec"]


def test_live_metrics_cover_the_dashboard_and_the_alerts(live_worker, helm: Helm):
    worker, topics, cluster = live_worker
    good = produce(
        worker.env["TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS"], topics.input, _messages(0, 200)
    )
    bad = produce(
        worker.env["TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS"],
        topics.input,
        [(b"k", b"not json", [])] * 5,
    )
    cluster.wait_all_committed(topics.group, topics.input, timeout_s=90)

    status, body = worker.get("/metrics")
    assert status == 200
    live = sample_names(body)
    queried = dashboard_metric_names(load_dashboard())
    for group in _alert_rules(helm)["groups"]:
        for rule in group["rules"]:
            queried |= promql_metric_names(rule["expr"])
    missing = sorted(queried - PROMETHEUS_SYNTHETIC - live)
    assert not missing, f"queried but not on the live /metrics: {missing}"

    # ...and the series that matter carry data, not just their # TYPE line.
    samples = worker.metrics()

    def total(name: str) -> float:
        return sum(v for (n, _), v in samples.items() if n == name)

    assert total("tagstream_records_produced_total") == good
    assert total("tagstream_records_dead_lettered_total") == bad
    assert total("tagstream_end_to_end_latency_seconds_count") == good
    deadline = time.monotonic() + 10  # the lag gauge is refreshed once a second
    while (
        not any(n == "tagstream_consumer_lag" for n, _ in samples) and time.monotonic() < deadline
    ):
        time.sleep(0.5)
        samples = worker.metrics()
    assert any(n == "tagstream_consumer_lag" for n, _ in samples), "no consumer lag series"
    assert total("tagstream_assigned_partitions") == 2
    print(f"worker RSS after 205 records: {total('process_resident_memory_bytes') / 2**20:.0f} MiB")


@pytest.mark.slow
def test_real_prometheus_scrape(live_worker, prometheus_bin: str, helm: Helm, tmp_path: Path):
    worker, topics, cluster = live_worker
    bootstrap = worker.env["TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS"]
    sel = f'job="{JOB}",namespace="{NAMESPACE}"'
    prom = Prometheus(prometheus_bin, tmp_path, worker.port, _alert_rules(helm))
    try:
        prom.start()
        prom.wait_for(f"sum(up{{{sel}}})", lambda v: v == 1, timeout_s=30)
        produced_before = prom.wait_for(
            f"sum(tagstream_records_produced_total{{{sel}}}) or vector(0)", lambda v: v >= 0, 10
        )

        # Traffic: 3000 records in 12 paced bursts over ~6 s, from a thread with a deadline.
        bursts, per_burst = 12, 250
        sent = {"n": 0}

        def push():
            for b in range(bursts):
                sent["n"] += produce(
                    bootstrap, topics.input, _messages(10_000 + b * per_burst, per_burst)
                )
                time.sleep(0.5)

        started = time.time()
        pusher = threading.Thread(target=push, daemon=True)
        pusher.start()
        pusher.join(timeout=120)
        assert not pusher.is_alive(), "producing 3000 records took over 2 minutes"
        cluster.wait_all_committed(topics.group, topics.input, timeout_s=120)
        finished = time.time()
        total = bursts * per_burst
        assert sent["n"] == total

        # Prometheus has scraped the final counter value...
        final = prom.wait_for(
            f"sum(tagstream_records_produced_total{{{sel}}})",
            lambda v: v >= produced_before + total,
            timeout_s=30,
        )
        assert final == produced_before + total
        time.sleep(2)  # two more scrapes after the last record
        at = time.time()
        window = f"{max(10, math.ceil(at - started) + 5)}s"

        # ...the throughput rate is sane...
        rate = prom.scalar(f"sum(rate(tagstream_records_produced_total{{{sel}}}[{window}]))", at)
        observed = total / (finished - started)
        assert rate is not None and rate > 0, rate
        assert observed / 10 < rate < observed * 10, (rate, observed)

        # ...and so is the p99 end-to-end latency (input timestamp -> output acknowledged).
        p99 = prom.scalar(
            "histogram_quantile(0.99, sum by (le) (rate("
            f"tagstream_end_to_end_latency_seconds_bucket{{{sel}}}[{window}])))",
            at,
        )
        p50 = prom.scalar(
            "histogram_quantile(0.5, sum by (le) (rate("
            f"tagstream_end_to_end_latency_seconds_bucket{{{sel}}}[{window}])))",
            at,
        )
        assert p99 is not None and math.isfinite(p99), p99
        assert 0 < p50 <= p99 <= finished - started + 5, (p50, p99, finished - started)
        print(
            f"scraped: {rate:.0f} records/s (observed {observed:.0f}/s), "
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
        )

        # The chart's alert rules run on these series without errors, and none fires.
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        assert {r["name"] for r in rules} == ALERTS
        for rule in rules:
            assert rule["health"] == "ok", rule
            assert rule["state"] != "firing", rule
        # The dashboard's queries run against the real data too.
        for panel in load_dashboard()["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", window)
                expr = expr.replace('namespace=~"$namespace"', f'namespace=~"{NAMESPACE}"')
                expr = expr.replace('job=~"$job"', f'job=~"{JOB}"')
                result = prom.api("query", query=expr, time=f"{at:.3f}")["result"]
                if "commit_failures" not in expr:  # nothing failed, nothing to show
                    assert result, (panel["title"], expr)
    finally:
        prom.stop()
