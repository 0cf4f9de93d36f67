from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import kafka_local
from tests.integration.kit import Cluster, Topics, WorkerProcess


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cluster(bootstrap: str) -> Cluster:
    c = Cluster(bootstrap)
    yield c
    c.close()


@pytest.fixture
def topics(cluster: Cluster) -> Topics:
    t = cluster.create_topics(partitions=3)
    yield t
    cluster.delete(t)


@pytest.fixture
def start_worker(bootstrap: str, tiny_model: Path, tmp_path: Path, request):
    """Start `tagstream run` processes; each is killed at the end of the test if still running.

    On failure, the workers' logs are printed.
    """
    started: list[WorkerProcess] = []

    def start(topics: Topics, **settings: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        w = WorkerProcess(bootstrap, topics, settings.pop("model", tiny_model), log, **settings)
        started.append(w.start())
        return w

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for i, w in enumerate(started):
        w.stop_quietly()
        if failed:
            print(f"----- worker {i} log -----\n{w.log()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


# -- the secured broker (tests/integration/test_security*.py) ---------------------------------


@dataclass
class Secure:
    lines: dict[str, str]
    plain: str  # the PLAINTEXT listener: topics, producing, reading back
    password: str

    def __getitem__(self, name: str) -> str:
        return self.lines[name]


@pytest.fixture(scope="module")
def secure() -> Secure:
    try:
        lines = kafka_local.ensure_secure_broker()
    except kafka_local.KafkaLocalError as exc:
        pytest.fail(f"no broker with security listeners:\n{exc}")
    try:
        yield Secure(
            lines,
            lines["KAFKA_BOOTSTRAP_SERVERS"],
            Path(lines["KAFKA_SASL_PASSWORD_FILE"]).read_text().strip(),
        )
    finally:
        kafka_local.stop_secure_broker()
