"""The probe and metrics endpoints, served for real on a loopback port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from tagstream.worker.http import Health, HttpServer
from tagstream.worker.metrics import Metrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def get(port: int, path: str, accept: str | None = None) -> tuple[int, str, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def served():
    clock = FakeClock()
    registry = CollectorRegistry()
    metrics = Metrics(registry, process_metrics=False)
    health = Health(max_loop_stall_s=60, clock=clock)
    server = HttpServer("127.0.0.1", 0, registry, health).start()
    yield server.port, health, metrics, clock
    server.stop()


def test_metrics_endpoint(served):
    port, _, metrics, _ = served
    metrics.records_consumed.labels("in").inc(5)
    status, ctype, body = get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    assert 'tagstream_records_consumed_total{topic="in"} 5.0' in body
    status, ctype, body = get(port, "/metrics", accept="application/openmetrics-text")
    assert ctype.startswith("application/openmetrics-text") and body.rstrip().endswith("# EOF")


def test_liveness_follows_the_loop(served):
    port, health, _, clock = served
    status, _, body = get(port, "/healthz")
    assert status == 503 and json.loads(body)["reason"].startswith("starting")
    health.beat()  # the main loop's first turn
    assert get(port, "/healthz")[0] == 200
    clock.now += 61  # the loop has not beaten for 61 s
    status, _, body = get(port, "/healthz")
    assert status == 503 and "stalled" in json.loads(body)["reason"]
    health.beat()
    assert get(port, "/healthz")[0] == 200


def test_readiness_needs_model_and_partitions(served):
    port, health, _, _ = served
    status, _, body = get(port, "/readyz")
    assert status == 503 and json.loads(body)["reason"] == "model not loaded"
    health.model_loaded = True
    status, _, body = get(port, "/readyz")
    assert status == 503 and json.loads(body)["reason"] == "no partitions assigned"
    health.assigned_partitions = 2
    assert get(port, "/readyz")[0] == 200
    health.draining = True
    assert get(port, "/readyz")[0] == 503


def test_unknown_path(served):
    port, _, _, _ = served
    assert get(port, "/nope")[0] == 404


def test_serves_on_an_ipv6_address():
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    server = HttpServer("::1", 0, CollectorRegistry(), Health(max_loop_stall_s=60)).start()
    try:
        with urllib.request.urlopen(f"http://[::1]:{server.port}/healthz", timeout=5) as resp:
            raise AssertionError(f"expected 503 before the first loop turn, got {resp.status}")
    except urllib.error.HTTPError as exc:
        assert exc.code == 503 and "starting" in exc.read().decode()
    finally:
        server.stop()


def test_a_client_that_went_away_leaves_no_traceback(caplog):
    from tagstream.worker.http import _Server

    server = _Server.__new__(_Server)  # handle_error only
    with caplog.at_level("ERROR"):
        for exc in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset")):
            try:
                raise exc
            except OSError:
                server.handle_error(None, ("127.0.0.1", 1))
        assert caplog.records == []
        try:
            raise ValueError("a bug")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 1))
    assert [r.getMessage() for r in caplog.records] == ["serving an HTTP request failed"]
