"""Logging set-up (once, at the entry point): plain text or one JSON object per line.

Modules log with ``logging.getLogger(__name__)`` and pass structured fields as ``extra={...}``;
the JSON format puts them at the top level of the object.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

REDACTED = "**********"
_secrets: list[str] = []  # values never to be written out (see `redact`)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return _scrub(json.dumps(doc, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
        }
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return _scrub(line)


def redact(values: Iterable[str]) -> None:
    """Never write these values (passwords) in a log line, however they got there: a client
    library's debug dump of its requests, an exception's message. Replaced by REDACTED."""
    forms = set()
    for value in values:
        if len(value) >= 4:  # shorter ones would blank out ordinary words
            # as is, in a repr() of the string or of its bytes, and each of those in JSON
            plain = {value, repr(value)[1:-1], repr(value.encode())[2:-1]}
            forms.update(plain, (json.dumps(f, ensure_ascii=False)[1:-1] for f in plain))
    _secrets[:] = sorted(forms, key=len, reverse=True)


def _scrub(line: str) -> str:
    for secret in _secrets:
        if secret in line:
            line = line.replace(secret, REDACTED)
    return line


class _Once(logging.Filter):
    """Lets each distinct message of a logger through once (kafka-python repeats some warnings
    on every new connection)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self._seen:
            return False
        self._seen.add(message)
        return True


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO (every connection, every metadata refresh).
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    # "Exchanging credentials in the clear" (SASL_PLAINTEXT) comes with every connection.
    scram = logging.getLogger("kafka.net.sasl.scram")
    if not any(isinstance(f, _Once) for f in scram.filters):
        scram.addFilter(_Once())
    # A thread that dies on an exception (the inference thread, the lag monitor, kafka-python's
    # IO thread) and an exception nothing caught: logged through this format and its scrubbing
    # of secrets, not printed raw to stderr.
    threading.excepthook = _log_thread_exception
    sys.excepthook = _log_uncaught


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("tagstream").error(
        "thread %s died", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
    )


def _log_uncaught(exc_type, exc_value, traceback) -> None:  # noqa: ANN001 (sys.excepthook)
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc_value, traceback)
        return
    logging.getLogger("tagstream").critical(
        "uncaught exception", exc_info=(exc_type, exc_value, traceback)
    )


class RateLimitedLog:
    """At most one warning per reason and interval, with the count of those not shown."""

    def __init__(self, logger: logging.Logger, interval_s: float):
        self._log = logger
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, **fields: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self._interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        self._log.warning(msg, extra={**fields, "suppressed_since_last": suppressed})
