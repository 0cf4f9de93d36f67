"""Settings validation: names, nesting, errors that name the variable, secrets kept out."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tagstream.worker.kafka import clients
from tagstream.worker.settings import ConfigError, env_names, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith("TAGSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_valid():
    s = load_settings()
    assert s.delivery == "at_least_once"
    assert s.kafka.input_topic != s.kafka.output_topic
    assert s.batching.max_batch_records == 64


def test_nested_variables(monkeypatch):
    monkeypatch.setenv("TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS", "b1:9092,b2:9092")
    monkeypatch.setenv("TAGSTREAM_BATCHING__MAX_WAIT_MS", "5")
    monkeypatch.setenv("TAGSTREAM_DELIVERY", "exactly_once")
    monkeypatch.setenv("TAGSTREAM_INPUT_FORMAT", "text")
    s = load_settings()
    assert s.kafka.bootstrap_servers == "b1:9092,b2:9092"
    assert s.batching.max_wait_ms == 5
    assert s.delivery == "exactly_once"
    assert s.input_format == "text"


def test_dotenv_file(tmp_path):
    (tmp_path / ".env").write_text("TAGSTREAM_KAFKA__GROUP_ID=from-dotenv\n")
    assert load_settings().kafka.group_id == "from-dotenv"


def test_error_names_the_variable_and_value(monkeypatch):
    monkeypatch.setenv("TAGSTREAM_BATCHING__MAX_BATCH_RECORDS", "zero")
    monkeypatch.setenv("TAGSTREAM_DELIVERY", "twice")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "TAGSTREAM_BATCHING__MAX_BATCH_RECORDS='zero'" in text
    assert "TAGSTREAM_DELIVERY='twice'" in text


def test_misspelt_variable_is_an_error_without_its_value(monkeypatch):
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_PASWORD", "hunter2")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "TAGSTREAM_KAFKA__SASL_PASWORD: not a setting" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_sasl_needs_credentials(monkeypatch):
    monkeypatch.setenv("TAGSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "TAGSTREAM_KAFKA__SASL_USERNAME" in str(info.value)
    assert "TAGSTREAM_KAFKA__SASL_PASSWORD" in str(info.value)


def test_secrets_never_reach_the_dump(monkeypatch):
    monkeypatch.setenv("TAGSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_USERNAME", "alice")
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("TAGSTREAM_KAFKA__ALLOW_PLAINTEXT_CREDENTIALS", "true")
    s = load_settings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.redacted())
    assert clients.security(s.kafka)["sasl_plain_password"] == "hunter2"


def test_missing_tls_file_is_named(monkeypatch):
    monkeypatch.setenv("TAGSTREAM_KAFKA__SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("TAGSTREAM_KAFKA__SSL_CAFILE", "/nonexistent/ca.pem")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "TAGSTREAM_KAFKA__SSL_CAFILE=/nonexistent/ca.pem" in str(info.value)


def test_inconsistent_combinations_are_rejected(monkeypatch):
    monkeypatch.setenv("TAGSTREAM_KAFKA__OUTPUT_TOPIC", "tagstream-input")
    with pytest.raises(ConfigError, match="must differ"):
        load_settings()
    monkeypatch.delenv("TAGSTREAM_KAFKA__OUTPUT_TOPIC")
    monkeypatch.setenv("TAGSTREAM_DRAIN_TIMEOUT_S", "400")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "TAGSTREAM_DRAIN_TIMEOUT_S=400.0, TAGSTREAM_KAFKA__MAX_POLL_INTERVAL_MS=300000:" in str(
        info.value
    )
    monkeypatch.delenv("TAGSTREAM_DRAIN_TIMEOUT_S")
    # Valid but risky: a worker blocked on a slow broker may not poll in time. A warning.
    assert load_settings().kafka.warnings() == []
    monkeypatch.setenv("TAGSTREAM_KAFKA__DELIVERY_TIMEOUT_MS", "290000")
    [warning] = load_settings().kafka.warnings()
    assert warning.startswith("TAGSTREAM_KAFKA__DELIVERY_TIMEOUT_MS=290000,")


def test_unparsable_group_value_names_the_variable_not_the_value(monkeypatch, tmp_path):
    monkeypatch.setenv("TAGSTREAM_KAFKA", "hunter2")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "TAGSTREAM_KAFKA (in the environment): cannot be parsed" in str(info.value)
    assert "hunter2" not in str(info.value)
    monkeypatch.delenv("TAGSTREAM_KAFKA")
    (tmp_path / ".env").write_text("TAGSTREAM_MODEL={bad\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"TAGSTREAM_MODEL \(in the \.env file\)"):
        load_settings()


def test_transactional_id_defaults_per_host():
    import socket

    s = load_settings()
    assert s.kafka.effective_transactional_id() == f"tagstream-{socket.gethostname()}"


def test_env_names_cover_every_field():
    names = env_names()
    assert "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS" in names
    assert "TAGSTREAM_BATCHING__MAX_BATCH_TOKENS" in names
    assert "TAGSTREAM_DRAIN_TIMEOUT_S" in names
    assert all(n == n.upper() and n.startswith("TAGSTREAM_") for n in names)


def run_worker(env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    """`tagstream run` in a child process with only ``env`` (it is expected to exit by itself)."""
    return subprocess.run(
        [sys.executable, "-m", "tagstream.worker.cli", "run"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_exits_2_naming_the_variable(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TAGSTREAM_BATCHING__MAX_WAIT_MS": "soon"}
    proc = run_worker(env, tmp_path)
    assert proc.returncode == 2
    assert "TAGSTREAM_BATCHING__MAX_WAIT_MS='soon'" in proc.stderr


def test_a_model_name_or_a_path_not_both(monkeypatch, tmp_path):
    from tagstream.worker.settings import ConfigError, load_settings

    artifact = tmp_path / "m.pt"
    artifact.write_bytes(b"x")
    assert load_settings(model={"name": "zh-news"}).model.ref == "zh-news"
    assert load_settings(model={"path": str(artifact)}).model.ref == artifact
    assert load_settings().model.ref is None
    with pytest.raises(
        ConfigError, match="TAGSTREAM_MODEL__NAME=zh-news and TAGSTREAM_MODEL__PATH="
    ):
        load_settings(model={"name": "zh-news", "path": str(artifact)})


def test_a_misspelt_variable_is_refused_naming_the_nearest_setting():
    from tagstream.worker.settings import ConfigError, check_environment

    with pytest.raises(ConfigError) as err:
        check_environment(
            {"TAGSTREAM_DELIVERYY": "exactly_once", "TAGSTREAM_KAFKA__BOOTSTRAP_SERVER": "b:9092"}
        )
    assert err.value.problems == [
        "TAGSTREAM_DELIVERYY: not a setting; did you mean TAGSTREAM_DELIVERY? "
        "(docs/configuration.md lists them)",
        "TAGSTREAM_KAFKA__BOOTSTRAP_SERVER: not a setting; did you mean "
        "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS? (docs/configuration.md lists them)",
    ]
    with pytest.raises(ConfigError, match="TAGSTREAM_HTTP_PORT: not a setting; did you mean"):
        check_environment({"TAGSTREAM_HTTP_PORT": "9000"})


def test_settings_kubernetes_service_links_and_the_projects_tools_pass():
    from tagstream.worker.settings import check_environment, env_names

    check_environment(dict.fromkeys(env_names(), "x"))
    check_environment(
        {
            # what Kubernetes sets for a Service named "tagstream" or "tagstream-metrics"
            "TAGSTREAM_SERVICE_HOST": "10.0.0.7",
            "TAGSTREAM_SERVICE_PORT": "8080",
            "TAGSTREAM_SERVICE_PORT_HTTP": "8080",
            "TAGSTREAM_PORT": "tcp://10.0.0.7:8080",
            "TAGSTREAM_PORT_8080_TCP": "tcp://10.0.0.7:8080",
            "TAGSTREAM_PORT_8080_TCP_ADDR": "10.0.0.7",
            "TAGSTREAM_METRICS_SERVICE_HOST": "10.0.0.8",
            "TAGSTREAM_METRICS_PORT": "tcp://10.0.0.8:8080",
            # the project's own tools
            "TAGSTREAM_DATA_DIR": "/data",
            "TAGSTREAM_KAFKA_STATE": "/tmp/k",
            "TAGSTREAM_FAULT_COMMIT_DELAY_S": "0.6",
            "OTHER": "ignored",
        }
    )


def test_run_refuses_a_misspelt_variable_with_status_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TAGSTREAM_DELIVERYY": "exactly_once"}
    proc = run_worker(env, tmp_path)
    assert proc.returncode == 2
    assert "did you mean TAGSTREAM_DELIVERY?" in proc.stderr


def test_score_floors_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("TAGSTREAM_MODEL__MIN_SCORE", "0.6")
    monkeypatch.setenv("TAGSTREAM_MODEL__MIN_SCORE_BY_LABEL", '{"MISC": 0.8, "PER": 0}')
    m = load_settings().model
    assert (m.min_score, m.min_score_by_label) == (0.6, {"MISC": 0.8, "PER": 0.0})


def test_no_score_floor_by_default():
    m = load_settings().model
    assert (m.min_score, m.min_score_by_label) == (0.0, {})


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("TAGSTREAM_MODEL__MIN_SCORE", "1.5", "TAGSTREAM_MODEL__MIN_SCORE='1.5'"),
        ("TAGSTREAM_MODEL__MIN_SCORE_BY_LABEL", '{"MISC": 2}', "MISC: 2.0 is not a score"),
        (
            "TAGSTREAM_MODEL__MIN_SCORE_BY_LABEL",
            "MISC=0.8",
            "TAGSTREAM_MODEL__MIN_SCORE_BY_LABEL='MISC=0.8': not JSON",
        ),
        (
            "TAGSTREAM_MODEL__MIN_SCORE_BY_LABEL",
            '{"MISC": "high"}',
            "TAGSTREAM_MODEL__MIN_SCORE_BY_LABEL: MISC='high': Input should be a valid number",
        ),
    ],
)
def test_a_score_floor_out_of_range_is_refused_by_name(monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert says in str(info.value)


def test_run_refuses_a_floor_for_a_label_the_model_has_not(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "TAGSTREAM_MODEL__MIN_SCORE_BY_LABEL": '{"PERSON": 0.5}',
        "TAGSTREAM_HTTP__PORT": "0",
    }
    proc = run_worker(env, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "has no label PERSON (its labels: LOC, MISC, ORG, PER)" in proc.stderr


# -- the descriptions (docs/configuration.md, `tagstream run --help`, --settings-schema) ----------


def _models(model, seen=None):
    """``model`` and every group model under it, recursively."""
    from pydantic import BaseModel

    seen = [] if seen is None else seen
    seen.append(model)
    for info in model.model_fields.values():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            _models(info.annotation, seen)
    return seen


def test_every_field_of_every_settings_model_has_a_description():
    from tagstream.worker.settings import Settings

    models = _models(Settings)
    assert {m.__name__ for m in models} >= {"Settings", "KafkaSettings", "ModelSettings"}
    undescribed = [
        f"{model.__name__}.{name}"
        for model in models
        for name, info in model.model_fields.items()
        if not (info.description or "").strip()
    ]
    assert not undescribed


def test_descriptions_quote_no_measurement():
    """A speed belongs in the docs that measured it (docs/operations.md#sizing,
    docs/models.md#speed), linked from the description."""
    import re

    from tagstream.worker.settings import Settings

    figure = re.compile(r"\d\s*(?:msg|messages|words|tokens|records|texts)/s|\d\s*(?:×|x faster)")
    quoted = [
        f"{model.__name__}.{name}: {info.description}"
        for model in _models(Settings)
        for name, info in model.model_fields.items()
        if figure.search(info.description or "") or "measured" in (info.description or "")
    ]
    assert not quoted


def test_settings_fields_walks_every_group_in_definition_order():
    from tagstream.worker.settings import Settings, settings_fields
    from tagstream.worker.settings.rules import env_name

    paths = [path for path, _ in settings_fields()]
    assert paths[0] == ("delivery",) and ("kafka", "bootstrap_servers") in paths
    assert paths.index(("drain_timeout_s",)) < paths.index(("kafka", "bootstrap_servers"))
    assert all(len(path) in (1, 2) for path in paths)
    assert {env_name(path) for path in paths} == env_names()
    groups = [name for name, info in Settings.model_fields.items() if (name,) not in paths]
    assert groups == ["kafka", "batching", "model", "output", "schema_registry", "http", "log"]
