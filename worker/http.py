"""One HTTP port: ``/metrics`` (Prometheus), ``/healthz`` (liveness), ``/readyz`` (readiness).

* ``/healthz`` is 503 ("starting") until the main loop first turns (loading the model and
  joining Kafka come before: a startup probe covers them), then 200 while the loop keeps
  turning (several times a second, also while a batch is being tagged), and 503 again once it
  has been stuck longer than ``max_loop_stall_s``, or once a batch has gone on being tagged
  that long past its budget (``model.batch_timeout_s``: a hung model). A failing liveness probe
  means: restart me.
* ``/readyz`` is 200 when the model is loaded and the worker owns at least one input partition;
  503 otherwise (starting, rebalancing, draining, or idle because the group has more workers
  than the topic has partitions).

What a client can cost the worker is bounded, so that no number of idle, slow or abandoned
connections can grow its threads or memory or keep the probes from being answered:

* Threads: a fixed set from `HttpServer.start` to `HttpServer.stop`, one accepting thread and
  a pool of ``threads`` (4) handler threads. Never a thread per connection.
* The accepting thread reads the request heads of every open connection at once (a selector,
  non-blocking sockets). A connection costs a file descriptor and a buffer of at most
  ``HEAD_LIMIT`` bytes until its head is complete; only then is it handed, through a queue of
  ``4 x threads`` places, to a handler thread, which writes the answer. A complete request that
  finds the queue full is closed at once, unanswered.
* Time: a connection has ``timeout_s`` (5 s) from its accept to send its whole request head. A
  client that sends nothing, or trickles its request, is closed then; the deadline does not
  move when bytes arrive. Writing the answer is bounded by ``timeout_s`` per write, so a client
  that does not read holds a handler for seconds, not forever.
* Connections: at most ``max_pending`` (64) wait for their request head. A new connection
  beyond that closes the oldest waiting one that has had ``GRACE_S`` to send its request (a
  burst of newer ones may go past the cap, up to four times it): a flood of idle connections
  cannot lock out a probe or a scrape, which send their request as soon as they connect. The
  listening socket's accept backlog is ``LISTEN_BACKLOG``.
* One request per connection (HTTP/1.0): the answer ends by closing the connection, whatever
  the client asked. Probes and scrapes come every few seconds; a new connection each time
  costs less than idle keep-alive connections, and no connection outlives its request.

Connections closed for the cap, a full queue or an overlong head are logged as one warning a
minute at most; connections closed for the timeout alone, at debug level.

The bind address is the setting ``http.host``: all interfaces (``0.0.0.0``) by default, as a
Kubernetes pod needs (the kubelet's probes and Prometheus connect to the pod's IP);
``127.0.0.1`` keeps the endpoints to the machine itself when the worker runs outside a cluster.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import queue
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

THREADS = 4  # handler threads
TIMEOUT_S = 5.0  # to send a request head, and for each write of an answer
MAX_PENDING = 64  # connections waiting for their request head
LISTEN_BACKLOG = 128  # connections the kernel holds until the accepting thread takes them
HEAD_LIMIT = 16 * 1024  # bytes of a request line and headers; a longer head is closed
GRACE_S = 0.5  # a connection this young is not closed to make room (`_Server._make_room`)
_TICK_S = 0.5  # the accepting thread looks at the time at least this often
_REPORT_EVERY_S = 60.0


class Health:
    """What the probes report; written by the pipeline, read by the HTTP thread."""

    def __init__(self, max_loop_stall_s: float, clock: Callable[[], float] = time.monotonic):
        self.max_loop_stall_s = max_loop_stall_s
        self._clock = clock
        self._last_beat: float | None = None  # None until the main loop's first turn
        self.model_loaded = False
        self.assigned_partitions = 0
        self.draining = False
        # Set while a batch that ran past its tagging budget is still being tagged: when its
        # budget ended (on `clock`).
        self.late_since: float | None = None

    def beat(self) -> None:
        """Called by the main loop on every turn."""
        self._last_beat = self._clock()

    def live(self) -> tuple[bool, str]:
        if self._last_beat is None:
            return False, "starting: the main loop has not started yet"
        stalled = self._clock() - self._last_beat
        if stalled > self.max_loop_stall_s:
            return False, f"main loop stalled for {stalled:.1f}s"
        late_since = self.late_since
        if late_since is not None and self._clock() - late_since > self.max_loop_stall_s:
            late = self._clock() - late_since
            return False, f"the model has been tagging a batch {late:.1f}s past its budget"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self.model_loaded:
            return False, "model not loaded"
        if self.draining:
            return False, "draining"
        if self.assigned_partitions == 0:
            return False, "no partitions assigned"
        return True, "ok"


class _Pending:
    """A connection whose request head is still arriving."""

    __slots__ = ("sock", "address", "head", "accepted", "deadline")

    def __init__(self, sock: socket.socket, address: object, accepted: float, deadline: float):
        self.sock = sock
        self.address = address
        self.head = bytearray()
        self.accepted = accepted
        self.deadline = deadline

    def complete(self) -> bool:
        return b"\r\n\r\n" in self.head or b"\n\n" in self.head


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    sock.close()


class _Server:
    """The accepting thread, the handler pool and the limits of the module docstring."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        threads: int,
        timeout_s: float,
        max_pending: int,
    ):
        if threads < 1 or timeout_s <= 0 or max_pending < 1:
            raise ValueError(f"{threads=}, {timeout_s=}, {max_pending=}: each must be positive")
        self.handler = handler
        self.timeout_s = timeout_s
        self._max_pending = max_pending
        self._listener = self._bind(address)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._pending: dict[socket.socket, _Pending] = {}  # oldest first
        self._requests: queue.Queue[tuple[socket.socket, object, bytes] | None] = queue.Queue(
            maxsize=4 * threads
        )
        self._closing = False
        self._closed = False
        self._shed = {"evicted": 0, "timed_out": 0, "no_handler": 0, "head_too_long": 0}
        self._next_report = 0.0
        self._loop_thread = threading.Thread(target=self._loop, name="tagstream-http", daemon=True)
        self._handler_threads = [
            threading.Thread(target=self._work, name=f"tagstream-http-{n}", daemon=True)
            for n in range(1, threads + 1)
        ]

    @staticmethod
    def _bind(address: tuple[str, int]) -> socket.socket:
        """An IPv6 address ("::" for all) serves IPv4 clients too where the OS allows it."""
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                with contextlib.suppress(AttributeError, OSError):
                    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            listener.bind(address)
            listener.listen(LISTEN_BACKLOG)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        return listener

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def start(self) -> None:
        for thread in (*self._handler_threads, self._loop_thread):
            thread.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = self._closing = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._loop_thread.is_alive():
            self._loop_thread.join(timeout=5)
        for sock in list(self._pending):
            self._drop(sock)
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        with contextlib.suppress(queue.Empty):
            while True:  # complete requests no handler has taken yet
                item = self._requests.get_nowait()
                if item is not None:
                    _close(item[0])
        running = [t for t in self._handler_threads if t.is_alive()]
        for _ in running:
            self._requests.put(None)
        for thread in running:
            thread.join(timeout=2 * self.timeout_s)

    def handle_error(self, request: object, client_address: object) -> None:
        """A probe or scraper that gave up and closed its connection (a timeout on a busy
        node) is not an error of ours: no traceback. Anything else is logged once, as one."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return
        log.exception("serving an HTTP request failed", extra={"client": str(client_address)})

    # -- the accepting thread ------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._closing:
            timeout = _TICK_S
            if self._pending:
                oldest = next(iter(self._pending.values()))
                timeout = min(timeout, max(0.0, oldest.deadline - time.monotonic()))
            for key, _ in self._selector.select(timeout):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(64)
                else:
                    self._read(key.data)
            self._expire(time.monotonic())
            self._report()

    def _accept(self) -> None:
        for _ in range(LISTEN_BACKLOG):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: the listener stays readable
                log.warning("cannot accept an HTTP connection: %s", exc)
                time.sleep(_TICK_S / 5)
                return
            now = time.monotonic()
            self._make_room(now)
            sock.setblocking(False)
            pending = _Pending(sock, address, now, now + self.timeout_s)
            self._pending[sock] = pending
            self._selector.register(sock, selectors.EVENT_READ, pending)

    def _make_room(self, now: float) -> None:
        """Keep fewer than ``max_pending`` connections waiting: close the oldest that has had
        `GRACE_S` to send its request (a probe or a scrape sends it as it connects, and is read
        by then). A burst of newer ones may go past the cap, up to four times it; beyond that
        the oldest of all goes. So a probe that connects in the middle of a flood is not closed
        before its request could arrive."""
        while len(self._pending) >= self._max_pending:
            sock, pending = next(iter(self._pending.items()))  # in the order of their accept
            young = now - pending.accepted < GRACE_S
            if young and len(self._pending) < 4 * self._max_pending:
                return
            self._drop(sock)
            self._shed["evicted"] += 1

    def _read(self, pending: _Pending) -> None:
        try:
            data = pending.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed (or reset) before sending its whole request
            self._drop(pending.sock)
            return
        pending.head += data
        if pending.complete():
            self._selector.unregister(pending.sock)
            del self._pending[pending.sock]
            try:
                self._requests.put_nowait((pending.sock, pending.address, bytes(pending.head)))
            except queue.Full:
                _close(pending.sock)
                self._shed["no_handler"] += 1
        elif len(pending.head) > HEAD_LIMIT:
            self._drop(pending.sock)
            self._shed["head_too_long"] += 1

    def _expire(self, now: float) -> None:
        while self._pending:  # deadlines grow in the order of the dict: stop at the first
            sock, pending = next(iter(self._pending.items()))
            if pending.deadline > now:
                return
            self._drop(sock)
            self._shed["timed_out"] += 1

    def _drop(self, sock: socket.socket) -> None:
        self._selector.unregister(sock)
        del self._pending[sock]
        _close(sock)

    def _report(self) -> None:
        """Connections closed for the limits (not for a timeout alone): one warning a minute."""
        now = time.monotonic()
        if now < self._next_report:
            return
        shed = {k: v for k, v in self._shed.items() if v}
        if shed.keys() - {"timed_out"}:
            log.warning(
                "HTTP connections closed at the server's limits since the last report: %s",
                ", ".join(f"{n} {reason}" for reason, n in shed.items()),
                extra={"http_shed": shed},
            )
        elif shed:
            log.debug("HTTP connections closed without a complete request: %s", shed)
        self._shed = dict.fromkeys(self._shed, 0)
        self._next_report = now + _REPORT_EVERY_S

    # -- the handler threads -------------------------------------------------------------------

    def _work(self) -> None:
        while (item := self._requests.get()) is not None:
            sock, address, head = item
            try:
                sock.settimeout(self.timeout_s)
                self.handler((sock, head), address, self)  # type: ignore[arg-type]
            except Exception:
                self.handle_error(sock, address)
            finally:
                _close(sock)


class _Writer:
    """The handler's ``wfile``: each write is sent whole, within the socket's timeout."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


class _OneRequestHandler(BaseHTTPRequestHandler):
    """Answers a request whose head the accepting thread has read (``request`` is the socket
    and the head); the socket is closed by the server afterwards."""

    def version_string(self) -> str:
        return "tagstream"  # the Server header: no Python version

    def setup(self) -> None:
        self.connection, head = self.request  # type: ignore[misc]
        self.rfile = io.BytesIO(head)
        self.wfile = _Writer(self.connection)  # type: ignore[assignment]

    def finish(self) -> None:
        pass


class HttpServer:
    """Serves the three endpoints from a fixed set of daemon threads (see the module)."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        health: Health,
        *,
        threads: int = THREADS,
        timeout_s: float = TIMEOUT_S,
        max_pending: int = MAX_PENDING,
    ):
        self._server = _Server(
            (host, port),
            _make_handler(registry, health),
            threads=threads,
            timeout_s=timeout_s,
            max_pending=max_pending,
        )

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> HttpServer:
        self._server.start()
        log.info("serving /metrics /healthz /readyz", extra={"port": self.port})
        return self

    def stop(self) -> None:
        self._server.close()


def _make_handler(registry: CollectorRegistry, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(_OneRequestHandler):
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
