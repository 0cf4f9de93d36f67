"""The Helm chart (helm/tagstream): what it must agree on with the worker (environment, settings,
drain timeout, scaling on the worker's own group). Lint, render and schemas are in
tests/deploy/test_chart.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.deploy.conftest import CHART, Helm
from tests.deploy.contract import worker_env_names
from tests.deploy.test_chart import _env, _pod_spec, ci_values

# -- the worker's contract ---------------------------------------------------------------------


@ci_values
def test_env_names_are_worker_settings(helm: Helm, values: Path):
    names = {n for n in _env(helm.template(values)) if n.startswith("TAGSTREAM_")}
    unknown = sorted(names - worker_env_names())
    assert not unknown, f"the chart sets variables the worker does not read: {unknown}"
    assert "TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS" in names


@ci_values
def test_rendered_settings_are_accepted_by_the_worker(
    helm: Helm, values: Path, tmp_path, monkeypatch
):
    """The exact environment the pod gets loads in `tagstream.worker.settings.load_settings`
    (mounted files and Secret values stand in as local files and dummies; the packages of the
    image's extras, gssapi and botocore, count as installed)."""
    import importlib.util

    from tagstream.worker.settings import load_settings
    from tagstream.worker.settings.kafka import SASL_PACKAGES

    extras = {package for package, _ in SASL_PACKAGES.values()}
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name in extras else real_find_spec(name, *a),
    )
    rendered = helm.template(values)
    env = _env(rendered)
    mounts = {m["mountPath"]: m for m in rendered.container().get("volumeMounts", [])}
    for name in [n for n in os.environ if n.startswith("TAGSTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if isinstance(value, dict) and "fieldRef" in value:  # the downward API: the pod name
            value = "tagstream-7d9f8b6c5-x2kqp"
        elif isinstance(value, dict):  # valueFrom: a Secret key
            value = "secret-from-" + value["secretKeyRef"]["key"]
        elif any(value.startswith(path + "/") for path in mounts):
            local = tmp_path / value.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text("placeholder\n")
            value = str(local)
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    settings = load_settings()
    assert settings.http.port == rendered.container()["ports"][0]["containerPort"]
    assert (
        settings.kafka.security_protocol
        == rendered.configmap()["TAGSTREAM_KAFKA__SECURITY_PROTOCOL"]
    )


def test_chart_defaults_are_the_worker_defaults(helm: Helm, tmp_path, monkeypatch):
    """Where the chart restates a setting it uses the worker's default, except where it
    deliberately differs for Kubernetes (listed here with the reason)."""
    from tagstream.worker.settings import Settings, load_settings

    deliberate = {
        ("kafka", "bootstrap_servers"),  # localhost means nothing in a pod
        ("log", "format"),  # json for log collectors
    }
    for name in [n for n in os.environ if n.startswith("TAGSTREAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    defaults = Settings().model_dump(mode="json")
    for name, value in helm.template().configmap().items():
        monkeypatch.setenv(name, value)
    charted = load_settings().model_dump(mode="json")
    differ = {
        (group, key)
        for group, fields in charted.items()
        if isinstance(fields, dict)
        for key, value in fields.items()
        if defaults[group][key] != value
    } | {
        (key,)
        for key, value in charted.items()
        if not isinstance(value, dict) and defaults[key] != value
    }
    assert differ == deliberate


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_http_bind_address_is_a_value(helm: Helm, host: str, tmp_path, monkeypatch):
    """IPv4 by default; "::" for IPv6/dual-stack clusters. The worker's settings accept both."""
    from tagstream.worker.settings import load_settings

    config = helm.template(sets=None if host == "0.0.0.0" else {"httpHost": host}).configmap()
    assert config["TAGSTREAM_HTTP__HOST"] == host
    for name in [n for n in os.environ if n.startswith("TAGSTREAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    assert load_settings().http.host == host


# After the drain (bounded by TAGSTREAM_DRAIN_TIMEOUT_S) the worker closes its Kafka clients:
# the producer's close alone may take up to 5 s. The grace period must cover both.
PRODUCER_CLOSE_S = 5


@ci_values
def test_grace_period_exceeds_the_drain_timeout(helm: Helm, values: Path):
    rendered = helm.template(values)
    drain = float(rendered.configmap()["TAGSTREAM_DRAIN_TIMEOUT_S"])
    grace = _pod_spec(rendered)["terminationGracePeriodSeconds"]
    assert grace > drain + PRODUCER_CLOSE_S, (grace, drain)


@pytest.mark.parametrize(
    "drain, margin", [(7.5, None), (30, None), (120, None), (30, 10), (0.5, 10)]
)
def test_grace_period_follows_the_drain_timeout(helm: Helm, drain: float, margin):
    sets = {"worker.drainTimeoutSeconds": drain}
    if margin is not None:
        sets["worker.terminationGraceMarginSeconds"] = margin  # the smallest the schema allows
    rendered = helm.template(sets=sets)
    assert float(rendered.configmap()["TAGSTREAM_DRAIN_TIMEOUT_S"]) == drain
    grace = _pod_spec(rendered)["terminationGracePeriodSeconds"]
    assert isinstance(grace, int) and grace > drain + PRODUCER_CLOSE_S, (grace, drain)


def test_drain_timeout_beyond_max_poll_interval_is_refused(helm: Helm):
    err = helm.template_error(sets={"worker.drainTimeoutSeconds": "400"})
    assert "maxPollIntervalMs" in err


# -- scaling -----------------------------------------------------------------------------------


@ci_values
def test_hpa_and_keda_are_never_both_rendered(helm: Helm, values: Path):
    kinds = helm.template(values).kinds()
    assert not ("HorizontalPodAutoscaler" in kinds and "ScaledObject" in kinds)


def test_hpa_and_keda_together_fail(helm: Helm):
    err = helm.template_error(sets={"autoscaling.enabled": "true", "keda.enabled": "true"})
    assert "choose one" in err


@pytest.mark.parametrize("toggle", ["autoscaling", "keda"])
def test_autoscaled_deployment_leaves_replicas_to_the_autoscaler(helm: Helm, toggle: str):
    rendered = helm.template(CHART / "ci" / f"{toggle}-values.yaml")
    assert "replicas" not in rendered.one("Deployment")["spec"]


def test_keda_scales_on_the_workers_own_group_and_topic(helm: Helm):
    rendered = helm.template(CHART / "ci" / "keda-sasl-tls-values.yaml")
    config = rendered.configmap()
    trigger = rendered.one("ScaledObject")["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == config["TAGSTREAM_KAFKA__GROUP_ID"]
    assert meta["topic"] == config["TAGSTREAM_KAFKA__INPUT_TOPIC"]
    assert meta["bootstrapServers"] == config["TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS"]
    assert meta["allowIdleConsumers"] == "false"
    assert meta["sasl"] == "scram_sha256" and meta["tls"] == "enable"
    auth = rendered.one("TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    params = {p["parameter"]: (p["name"], p["key"]) for p in auth["spec"]["secretTargetRef"]}
    env = {
        v["name"]: v["valueFrom"]["secretKeyRef"]
        for v in rendered.container()["env"]
        if "secretKeyRef" in v["valueFrom"]
    }
    assert params["username"] == tuple(env["TAGSTREAM_KAFKA__SASL_USERNAME"].values())
    assert params["password"] == tuple(env["TAGSTREAM_KAFKA__SASL_PASSWORD"].values())
    assert params["ca"] == ("tagstream-kafka-ca", "ca.crt")


def test_keda_with_mutual_tls_uses_the_workers_certificate_and_key_password(helm: Helm):
    rendered = helm.template(CHART / "ci" / "keda-mtls-values.yaml")
    config = rendered.configmap()
    env = {
        v["name"]: v["valueFrom"]["secretKeyRef"]
        for v in rendered.container()["env"]
        if "secretKeyRef" in v["valueFrom"]
    }
    assert env["TAGSTREAM_KAFKA__SSL_PASSWORD"] == {
        "name": "tagstream-kafka-tls",
        "key": "tls.key.password",
    }
    assert config["TAGSTREAM_KAFKA__SECURITY_PROTOCOL"] == "SSL"
    auth = rendered.one("TriggerAuthentication")
    trigger = rendered.one("ScaledObject")["spec"]["triggers"][0]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert trigger["metadata"]["tls"] == "enable" and "sasl" not in trigger["metadata"]
    params = {p["parameter"]: (p["name"], p["key"]) for p in auth["spec"]["secretTargetRef"]}
    assert params == {
        "ca": ("tagstream-kafka-tls", "ca.crt"),
        "cert": ("tagstream-kafka-tls", "tls.crt"),
        "key": ("tagstream-kafka-tls", "tls.key"),
        "keyPassword": ("tagstream-kafka-tls", "tls.key.password"),
    }
    # the worker reads the same files KEDA is given
    assert config["TAGSTREAM_KAFKA__SSL_CERTFILE"].endswith("/tls.crt")
    assert config["TAGSTREAM_KAFKA__SSL_KEYFILE"].endswith("/tls.key")


def test_keda_without_secret_keys_renders_no_trigger_authentication(helm: Helm):
    """TLS with the system CAs (caKey empty), no client certificate, no SASL: KEDA needs no
    Secret, so no TriggerAuthentication (not one with an empty secretTargetRef)."""
    rendered = helm.template(
        CHART / "ci" / "keda-values.yaml",
        sets={
            "kafka.tls.enabled": "true",
            "kafka.tls.existingSecret": "kafka-tls",
            "kafka.tls.caKey": "",
        },
    )
    assert "TriggerAuthentication" not in rendered.kinds()
    trigger = rendered.one("ScaledObject")["spec"]["triggers"][0]
    assert "authenticationRef" not in trigger and trigger["metadata"]["tls"] == "enable"
    assert "secretTargetRef" not in rendered.text


def test_more_replicas_than_partitions_is_refused(helm: Helm):
    err = helm.template_error(sets={"inputPartitions": "2", "replicaCount": "3"})
    assert "idle" in err
    err = helm.template_error(
        sets={"inputPartitions": "4", "keda.enabled": "true", "keda.maxReplicaCount": "6"}
    )
    assert "idle" in err
