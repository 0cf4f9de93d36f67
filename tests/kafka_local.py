"""Bootstrap-server helper for tests that need a real Kafka broker.

`ensure_broker()` returns the bootstrap servers to use:

* ``KAFKA_BOOTSTRAP_SERVERS`` from the environment when it is set (an external
  broker: nothing is started or stopped);
* otherwise the address of the local Kafka 4.x broker run by
  ``scripts/kafka-local up`` (which downloads the jars on first use and reuses an
  already running broker).

`stop_broker()` runs ``scripts/kafka-local down`` only if `ensure_broker()` started
the broker itself, so a broker that a developer or CI had already started is left
running.

`ensure_secure_broker()` / `stop_secure_broker()` do the same for a second broker with the
SASL and TLS listeners (``scripts/kafka-local up --security``) in its own state dir,
``$TAGSTREAM_KAFKA_SECURITY_STATE`` (default ``$TMPDIR/tagstream-kafka-security``): the
security tests use it whatever ``KAFKA_BOOTSTRAP_SERVERS`` says.

Deliberately free of pytest: the conftest decides on fixtures and skips.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
from pathlib import Path

__all__ = [
    "ensure_broker",
    "stop_broker",
    "broker_pid",
    "ensure_secure_broker",
    "stop_secure_broker",
    "KafkaLocalError",
    "SCRIPT",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "kafka-local"
_PREFIX = "KAFKA_BOOTSTRAP_SERVERS="

# First `up` downloads ~45 MB of jars with Maven; later ones take ~10 s.
UP_TIMEOUT_S = float(os.environ.get("TAGSTREAM_KAFKA_UP_TIMEOUT", "900"))
DOWN_TIMEOUT_S = 60.0

_lock = threading.Lock()
_bootstrap: str | None = None
_started_here = False


class KafkaLocalError(RuntimeError):
    """scripts/kafka-local failed; the message carries its output."""


def _run(
    command: str, timeout: float, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["bash", str(SCRIPT), command, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaLocalError(
            f"scripts/kafka-local {command} did not finish within {timeout:.0f}s\n"
            f"{_text(exc.stderr)}"
        ) from exc


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _parse_bootstrap(stdout: str) -> str | None:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if lines and lines[-1].startswith(_PREFIX):
        value = lines[-1][len(_PREFIX) :]
        return value or None
    return None


def ensure_broker() -> str:
    """Return bootstrap servers ("host:port[,host:port]"), starting a local broker if needed."""
    global _bootstrap, _started_here
    env_value = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if env_value:
        return env_value
    with _lock:
        if _bootstrap is not None:
            return _bootstrap
        # Was a broker already running (started by someone else)? Then never stop it.
        already_running = _run("status", DOWN_TIMEOUT_S).returncode == 0
        proc = _run("up", UP_TIMEOUT_S)
        bootstrap = _parse_bootstrap(proc.stdout)
        if proc.returncode != 0 or bootstrap is None:
            raise KafkaLocalError(
                f"scripts/kafka-local up failed (exit {proc.returncode})\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        _bootstrap = bootstrap
        _started_here = not already_running
        return bootstrap


def stop_broker() -> None:
    """Stop the local broker if (and only if) ensure_broker() started it."""
    global _bootstrap, _started_here
    with _lock:
        if not _started_here:
            _bootstrap = None
            return
        proc = _run("down", DOWN_TIMEOUT_S)
        _bootstrap = None
        _started_here = False
        if proc.returncode != 0:
            raise KafkaLocalError(
                f"scripts/kafka-local down failed (exit {proc.returncode})\n{proc.stderr}"
            )


def broker_pid(bootstrap: str) -> int | None:
    """The pid of the broker at `bootstrap` if it is the one `scripts/kafka-local` runs (so a
    fault test may pause it), else None."""
    proc = _run("status", DOWN_TIMEOUT_S)
    match = re.search(r"running \(pid (\d+)", proc.stdout)
    if proc.returncode != 0 or match is None or _parse_bootstrap(proc.stdout) != bootstrap:
        return None
    return int(match.group(1))


# -- the broker with SASL and TLS listeners -----------------------------------------------------

SECURITY_STATE = os.environ.get("TAGSTREAM_KAFKA_SECURITY_STATE") or str(
    Path(tempfile.gettempdir()) / "tagstream-kafka-security"
)
_secure: dict[str, str] | None = None
_secure_started_here = False


def _secure_env() -> dict[str, str]:
    return {
        **os.environ,
        "TAGSTREAM_KAFKA_STATE": SECURITY_STATE,
        # a second JVM beside the main broker on a small machine
        "TAGSTREAM_KAFKA_HEAP_OPTS": os.environ.get(
            "TAGSTREAM_KAFKA_SECURITY_HEAP_OPTS", "-Xms128m -Xmx512m"
        ),
    }


def ensure_secure_broker() -> dict[str, str]:
    """The ``KAFKA_*`` lines of ``scripts/kafka-local up --security`` (bootstrap servers of each
    listener, the CA and client certificate files, the user and its password file)."""
    global _secure, _secure_started_here
    with _lock:
        if _secure is not None:
            return _secure
        env = _secure_env()
        already_running = _run("status", DOWN_TIMEOUT_S, env=env).returncode == 0
        proc = _run("up", UP_TIMEOUT_S, "--security", env=env)
        lines = dict(
            line.split("=", 1)
            for line in proc.stdout.splitlines()
            if re.match(r"KAFKA_[A-Z_]+=", line)
        )
        if proc.returncode != 0 or "KAFKA_SSL_CAFILE" not in lines:
            raise KafkaLocalError(
                f"scripts/kafka-local up --security failed (exit {proc.returncode})\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        _secure, _secure_started_here = lines, not already_running
        return lines


def stop_secure_broker() -> None:
    """Stop the secured broker if (and only if) ensure_secure_broker() started it."""
    global _secure, _secure_started_here
    with _lock:
        started, _secure, _secure_started_here = _secure_started_here, None, False
        if not started:
            return
        proc = _run("down", DOWN_TIMEOUT_S, env=_secure_env())
        if proc.returncode != 0:
            raise KafkaLocalError(
                f"scripts/kafka-local down failed (exit {proc.returncode})\n{proc.stderr}"
            )
