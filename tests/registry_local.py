"""A real Schema Registry for the tests: ``SCHEMA_REGISTRY_URL`` from the environment when set,
else ``scripts/registry-local up`` (Apicurio Registry's Confluent-compatible API, built from
Maven Central on first use), stopped again at the end if started here."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "registry-local"
PREFIX = "SCHEMA_REGISTRY_URL="
UP_TIMEOUT_S = float(os.environ.get("TAGSTREAM_REGISTRY_UP_TIMEOUT", "900"))

_started_here = False


class RegistryLocalError(RuntimeError):
    pass


def ensure_registry() -> str:
    global _started_here
    if os.environ.get("SCHEMA_REGISTRY_URL"):
        return os.environ["SCHEMA_REGISTRY_URL"]
    done = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, timeout=UP_TIMEOUT_S)
    lines = [line for line in done.stdout.splitlines() if line.startswith(PREFIX)]
    if done.returncode != 0 or not lines:
        raise RegistryLocalError(f"{SCRIPT} up failed:\n{done.stdout}\n{done.stderr}")
    _started_here = True
    return lines[-1][len(PREFIX) :]


def stop_registry() -> None:
    if _started_here:
        subprocess.run([str(SCRIPT), "down"], capture_output=True, timeout=120)


def registry_pid() -> int | None:
    """The local registry's process (for a test that pauses it), or None."""
    done = subprocess.run([str(SCRIPT), "pid"], capture_output=True, text=True)
    text = done.stdout.strip()
    return int(text) if done.returncode == 0 and text.isdigit() else None


def pause(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def resume(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)
