"""One HTTP port: ``/metrics`` (Prometheus), ``/healthz`` (liveness), ``/readyz`` (readiness).

* ``/healthz`` is 503 ("starting") until the main loop first turns (loading the model and
  joining Kafka come before: a startup probe covers them), then 200 while the loop keeps
  turning (several times a second, also while a batch is being tagged), and 503 again once it
  has been stuck longer than ``max_loop_stall_s``. A failing liveness probe means: restart me.
* ``/readyz`` is 200 when the model is loaded and the worker owns at least one input partition;
  503 otherwise (starting, rebalancing, draining, or idle because the group has more workers
  than the topic has partitions).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)


class Health:
    """What the probes report; written by the pipeline, read by the HTTP thread."""

    def __init__(self, max_loop_stall_s: float, clock: Callable[[], float] = time.monotonic):
        self.max_loop_stall_s = max_loop_stall_s
        self._clock = clock
        self._last_beat: float | None = None  # None until the main loop's first turn
        self.model_loaded = False
        self.assigned_partitions = 0
        self.draining = False

    def beat(self) -> None:
        """Called by the main loop on every turn."""
        self._last_beat = self._clock()

    def live(self) -> tuple[bool, str]:
        if self._last_beat is None:
            return False, "starting: the main loop has not started yet"
        stalled = self._clock() - self._last_beat
        if stalled > self.max_loop_stall_s:
            return False, f"main loop stalled for {stalled:.1f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self.model_loaded:
            return False, "model not loaded"
        if self.draining:
            return False, "draining"
        if self.assigned_partitions == 0:
            return False, "no partitions assigned"
        return True, "ok"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A probe or scraper that gave up and closed its connection (a timeout on a busy
        node) is not an error of ours: no traceback. Anything else is logged once, as one."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return
        log.exception("serving an HTTP request failed", extra={"client": str(client_address)})


class _DualStackServer(_Server):
    """An IPv6 address ("::" for all): IPv4 clients are served too where the OS allows it."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        with contextlib.suppress(AttributeError, OSError):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class HttpServer:
    """Serves the three endpoints from a daemon thread."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Health):
        handler = _make_handler(registry, health)
        server_class = _DualStackServer if ":" in host else _Server
        self._server = server_class((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tagstream-http", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> HttpServer:
        self._thread.start()
        log.info("serving /metrics /healthz /readyz", extra={"port": self.port})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _make_handler(registry: CollectorRegistry, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(registry), content_type)
            elif path == "/healthz":
                self._probe(*health.live())
            elif path == "/readyz":
                self._probe(*health.ready())
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def _probe(self, ok: bool, reason: str) -> None:
            body = json.dumps({"status": "ok" if ok else "unavailable", "reason": reason})
            self._send(200 if ok else 503, body.encode() + b"\n", "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("http: " + format, *args)

    return Handler
