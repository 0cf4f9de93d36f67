"""The worker on real SASL and TLS listeners (`scripts/kafka-local up --security`, a broker of
its own started for this module): SCRAM-SHA-512/256, PLAIN over TLS, OAUTHBEARER, TLS with a
client certificate. A rejected password, user, mechanism or certificate ends the worker with
exit 1 within seconds, the cause being its last log line. No password in any log line, in
/metrics or in an error message.

The workers of a group start together (each startup is mostly importing torch), so the module
takes about one broker start plus two worker starts.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.conftest import Secure
from tests.integration.kit import (
    Cluster,
    Topics,
    WorkerProcess,
    ids_of,
    json_records,
    produce,
    read_all,
)

N = 12  # records per happy-path worker


@pytest.fixture(scope="module")
def secure_cluster(secure: Secure) -> Cluster:
    c = Cluster(secure.plain)
    yield c
    c.close()


def unsigned_jwt(sub: str) -> str:
    """What Kafka's unsecured OAUTHBEARER validator accepts: a JWS with "alg":"none"."""

    def part(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': sub, 'iat': now, 'exp': now + 3600})}."


def scram(
    secure: Secure,
    listener: str,
    mechanism: str,
    user: str = "tagstream",
    password: str | None = None,
) -> dict[str, str]:
    settings = {
        "kafka__security_protocol": listener,
        "kafka__sasl_mechanism": mechanism,
        "kafka__sasl_username": user,
        "kafka__sasl_password": secure.password if password is None else password,
    }
    if listener == "SASL_SSL":
        settings["kafka__ssl_cafile"] = secure["KAFKA_SSL_CAFILE"]
    return settings


def start(
    secure: Secure,
    cluster: Cluster,
    tmp: Path,
    name: str,
    bootstrap: str,
    model: Path,
    **settings: str,
) -> tuple[WorkerProcess, Topics]:
    topics = cluster.create_topics(partitions=1)
    worker = WorkerProcess(bootstrap, topics, model, tmp / f"{name}.log", **settings)
    return worker.start(), topics


def assert_no_secret(secure: Secure, *texts: str) -> None:
    for text in texts:
        assert secure.password not in text, "the SASL password leaked"


# -- happy paths: messages in, labelled outputs out ----------------------------------------------

HAPPY = {
    "scram-sha-512 over SASL_PLAINTEXT": lambda s, tmp: (
        "KAFKA_SASL_PLAINTEXT_BOOTSTRAP_SERVERS",
        scram(s, "SASL_PLAINTEXT", "SCRAM-SHA-512"),
    ),
    # With DEBUG logs too, the password appears nowhere.
    "scram-sha-256 over SASL_SSL, DEBUG logs": lambda s, tmp: (
        "KAFKA_SASL_SSL_BOOTSTRAP_SERVERS",
        {**scram(s, "SASL_SSL", "SCRAM-SHA-256"), "log__level": "DEBUG"},
    ),
    "TLS with a client certificate": lambda s, tmp: (
        "KAFKA_SSL_BOOTSTRAP_SERVERS",
        {
            "kafka__security_protocol": "SSL",
            "kafka__ssl_cafile": s["KAFKA_SSL_CAFILE"],
            "kafka__ssl_certfile": s["KAFKA_SSL_CERTFILE"],
            "kafka__ssl_keyfile": s["KAFKA_SSL_KEYFILE"],
        },
    ),
    "OAUTHBEARER with a token file": lambda s, tmp: (
        "KAFKA_SASL_PLAINTEXT_BOOTSTRAP_SERVERS",
        {
            "kafka__security_protocol": "SASL_PLAINTEXT",
            "kafka__sasl_mechanism": "OAUTHBEARER",
            "kafka__allow_plaintext_credentials": "true",
            "kafka__sasl_oauth_token_file": str(_write(tmp / "token", unsigned_jwt("tagstream"))),
        },
    ),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def happy_workers(secure, secure_cluster, tiny_model, tmp_path_factory):
    """Every happy-path worker, started together, its input already produced."""
    tmp = tmp_path_factory.mktemp("secure-happy")
    started = {}
    for name, make in HAPPY.items():
        listener, settings = make(secure, tmp)
        worker, topics = start(
            secure, secure_cluster, tmp, name.split()[0], secure[listener], tiny_model, **settings
        )
        ids = [f"{name.split()[0]}-{i}" for i in range(N)]
        produce(
            secure.plain, topics.input, json_records(ids, lambda _: "Angela Merkel visited Paris .")
        )
        started[name] = (worker, topics, ids)
    yield started
    for worker, topics, _ in started.values():
        worker.stop_quietly()
        secure_cluster.delete(topics)


@pytest.mark.parametrize("case", list(HAPPY))
def test_messages_in_labelled_outputs_out(case, happy_workers, secure):
    worker, topics, ids = happy_workers[case]
    try:
        worker.wait_ready(timeout_s=120)
        outputs = read_all(secure.plain, topics.output, lambda rs: len(rs) >= N, timeout_s=60)
        assert sorted(ids_of(outputs)) == sorted(ids)
        for rec in outputs:
            doc = json.loads(rec.value)
            assert doc["model"] == "tiny-random@0.0.0" and isinstance(doc["spans"], list)
        metrics = worker.get("/metrics")[1]
        assert "tagstream_records_consumed_total" in metrics
        assert worker.terminate() == 0
    except BaseException:
        print(f"----- worker log ({case}) -----\n{worker.log()}")
        raise
    assert_no_secret(secure, worker.log_path.read_text(errors="replace"), metrics)


# -- rejected: exit 1 at once, the cause as the last line ------------------------------------------

REJECTED = {
    "wrong password": lambda s, tmp: (
        "KAFKA_SASL_PLAINTEXT_BOOTSTRAP_SERVERS",
        scram(s, "SASL_PLAINTEXT", "SCRAM-SHA-512", password=s.password + "-wrong"),
        r"refused SASL SCRAM-SHA-512 as user 'tagstream': SaslAuthenticationFailedError: "
        r"Authentication failed",
    ),
    "unknown user": lambda s, tmp: (
        "KAFKA_SASL_PLAINTEXT_BOOTSTRAP_SERVERS",
        scram(s, "SASL_PLAINTEXT", "SCRAM-SHA-256", user="mallory"),
        r"refused SASL SCRAM-SHA-256 as user 'mallory': SaslAuthenticationFailedError",
    ),
    "mechanism the listener does not offer": lambda s, tmp: (
        "KAFKA_SASL_PLAINTEXT_BOOTSTRAP_SERVERS",
        {**scram(s, "SASL_PLAINTEXT", "PLAIN"), "kafka__allow_plaintext_credentials": "true"},
        r"UnsupportedSaslMechanismError: the listener does not offer "
        r"TAGSTREAM_KAFKA__SASL_MECHANISM=PLAIN",
    ),
    "certificate from another CA": lambda s, tmp: (
        "KAFKA_SSL_BOOTSTRAP_SERVERS",
        {"kafka__security_protocol": "SSL", "kafka__ssl_cafile": str(_other_ca(tmp))},
        r"TLS handshake with Kafka at 127\.0\.0\.1:\d+ failed: the broker's certificate is not "
        r"trusted \(.*\); TAGSTREAM_KAFKA__SSL_CAFILE=.* does not hold the CA that signed it",
    ),
}


def _other_ca(tmp: Path) -> Path:
    """A CA that did not sign the broker's certificate."""
    import subprocess

    key, cert = tmp / "other-ca.key", tmp / "other-ca.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=not the broker's CA",
        ],
        check=True,
        capture_output=True,
    )
    return cert


@pytest.fixture(scope="module")
def rejected_workers(secure, secure_cluster, tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secure-rejected")
    started = {}
    for i, (name, make) in enumerate(REJECTED.items()):
        listener, settings, expected = make(secure, tmp)
        worker, topics = start(
            secure, secure_cluster, tmp, f"rejected-{i}", secure[listener], tiny_model, **settings
        )
        started[name] = (worker, topics, expected)
    yield started
    for worker, topics, _ in started.values():
        worker.stop_quietly()
        secure_cluster.delete(topics)


@pytest.mark.parametrize("case", list(REJECTED))
def test_rejected_client_exits_1_at_once_naming_the_cause(case, rejected_workers, secure):
    import re

    worker, _, expected = rejected_workers[case]
    status = worker.proc.wait(timeout=120)
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    assert status == 1, worker.log()
    last = lines[-1]
    assert last["level"] == "error" and re.search(expected, last["msg"]), last
    assert "Traceback" not in worker.log() and "Unable to bootstrap" not in last["msg"]
    # Fast: from "model loaded" to the verdict, far less than the request timeout (30 s), which
    # is how long the worker used to retry before saying only "Unable to bootstrap".
    loaded = next(line for line in lines if line["msg"] == "model loaded")
    assert _ts(last) - _ts(loaded) < 10, (loaded["ts"], last["ts"])
    assert_no_secret(secure, worker.log_path.read_text(errors="replace"))


def _ts(line: dict) -> float:
    return datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
