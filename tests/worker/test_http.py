"""The probe and metrics endpoints, served for real on a loopback port."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from tagstream.worker.http import HEAD_LIMIT, MAX_PENDING, THREADS, Health, HttpServer
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


# -- what a client can cost: threads, connections, time ---------------------------------------

FLOOD = 200  # idle connections, each opened and never written to


def timed_get(port: int, path: str) -> tuple[int, float]:
    start = time.monotonic()
    status = get(port, path)[0]
    return status, time.monotonic() - start


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (an EOF or a reset is waiting)."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(4096) == b""
    except OSError:
        return True


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_flood_of_idle_connections_holds_no_threads_and_locks_out_no_probe():
    """200 connections that never send a byte: the server's threads stay the fixed few, it
    keeps at most MAX_PENDING of them (closing the oldest), and the probes and /metrics are
    answered at once all the while."""
    registry = CollectorRegistry()
    Metrics(registry, process_metrics=False)
    health = Health(max_loop_stall_s=60)
    health.beat()
    baseline = threading.active_count()
    server = HttpServer("127.0.0.1", 0, registry, health).start()
    clients: list[socket.socket] = []
    try:
        started = threading.active_count()
        assert started - baseline <= 1 + THREADS
        deadline = time.monotonic() + 60  # loopback connects take milliseconds
        for _ in range(FLOOD):
            clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            assert time.monotonic() < deadline, f"{len(clients)} connections in 60 s"
        assert threading.active_count() <= started, "a thread per connection"
        for path, expected in (("/healthz", 200), ("/metrics", 200), ("/readyz", 503)):
            status, seconds = timed_get(server.port, path)
            assert status == expected and seconds < 2.0, (path, status, seconds)
        assert threading.active_count() <= started

        # Connections stay bounded: all but MAX_PENDING were closed by the server (the
        # default timeout, 5 s, may close the rest too on a slow machine).
        def still_open() -> int:
            return sum(not closed_by_server(c) for c in clients)

        assert wait_until(lambda: still_open() <= MAX_PENDING, 10), still_open()
    finally:
        for client in clients:
            client.close()
        server.stop()
    assert wait_until(lambda: threading.active_count() <= baseline, 10), "threads left behind"


def test_a_silent_or_slow_client_is_dropped_after_the_timeout():
    """One client sends nothing, one trickles half a request line a byte at a time: both are
    closed once the timeout has passed since they connected, and others are served meanwhile."""
    health = Health(max_loop_stall_s=60)
    health.beat()
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(), health, timeout_s=1.0).start()
    try:
        start = time.monotonic()
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        slow.sendall(b"GET /hea")
        trickle = iter(b"lthz HTTP/1.1\r\nHost: x\r\nUser-Agent: slow" * 10)
        closed: dict[str, float] = {}
        while len(closed) < 2 and time.monotonic() - start < 6:
            for name, sock in (("silent", silent), ("slow", slow)):
                if name not in closed and closed_by_server(sock):
                    closed[name] = time.monotonic() - start
            if "slow" not in closed:
                try:
                    slow.sendall(bytes([next(trickle)]))
                except OSError:  # closed by the server between two bytes
                    closed["slow"] = time.monotonic() - start
            time.sleep(0.1)
        assert timed_get(server.port, "/healthz")[0] == 200
        assert set(closed) == {"silent", "slow"}, f"still open after 6 s: {closed}"
        assert all(0.9 <= seconds < 4.0 for seconds in closed.values()), closed
        silent.close()
        slow.close()
    finally:
        server.stop()


def test_one_request_per_connection():
    """HTTP/1.0: the answer ends with the connection closed, even when keep-alive is asked."""
    health = Health(max_loop_stall_s=60)
    health.beat()
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(), health).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            answer = b""
            while chunk := client.recv(4096):  # ends at the server's close, not at 5 s
                answer += chunk
        assert answer.startswith(b"HTTP/1.0 200 ") and answer.endswith(b'"reason": "ok"}\n')
        assert b"\r\nServer: tagstream\r\n" in answer
    finally:
        server.stop()


def test_a_request_head_too_long_is_closed():
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(), Health(max_loop_stall_s=60))
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
            with contextlib.suppress(OSError):  # reset by the server while sending
                client.sendall(b"GET /healthz HTTP/1.1\r\nX-Padding: " + b"x" * HEAD_LIMIT)
            assert wait_until(lambda: closed_by_server(client), 3)
    finally:
        server.stop()
