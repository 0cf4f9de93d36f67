"""The fault suite (`make chaos`): opt-in. Its tests carry the `faults` marker and are
deselected unless the run asks for them (`-m faults`, as `make chaos` does, or
TAGSTREAM_FAULTS=1), so `make test`, `make integration` and a plain `pytest` leave them out:
they kill workers and the broker, and take minutes.

At the end of a run the results of every scenario are printed as a table (docs/operations.md,
"Fault suite")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults import faultkit
from tests.integration.conftest import (  # the workers, and their logs printed on failure
    pytest_runtest_makereport,  # noqa: F401
    start_worker,  # noqa: F401
)
from tests.integration.kit import Cluster

HERE = Path(__file__).parent


def _opted_in(config: pytest.Config) -> bool:
    return (
        "faults" in (config.getoption("markexpr") or "")
        or os.environ.get("TAGSTREAM_FAULTS") == "1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if HERE in Path(item.fspath).parents]
    for item in ours:
        item.add_marker(pytest.mark.faults)
        item.add_marker(pytest.mark.integration)
    if ours and not _opted_in(config):
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if HERE not in Path(item.fspath).parents]


@pytest.fixture(scope="session")
def cluster(bootstrap: str) -> Cluster:
    """Admin client that reconnects within half a second of a restarted broker."""
    c = Cluster(bootstrap, reconnect_backoff_max_ms=500)
    yield c
    c.close()


@pytest.fixture
def broker(bootstrap: str) -> faultkit.Broker:
    """The local broker, resumed or restarted after the test whatever happened."""
    b = faultkit.Broker(bootstrap)
    yield b
    b.heal()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not faultkit.RESULTS:
        return
    tr = terminalreporter
    tr.section("fault suite")
    for r in faultkit.RESULTS:
        tr.write_line(r.line())
    tr.write_line("")
    tr.write_line(
        f"CPU: {faultkit.cpu()}; load average at the end: "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    tr.write_line("")
    tr.write_line(faultkit.table())
