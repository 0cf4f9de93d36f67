"""The Helm chart (helm/tagstream): lint, render, Kubernetes schemas, and what the chart must
agree on with the worker (endpoints, port, settings, drain timeout)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import CHART, CI_VALUES, KUBE_VERSIONS, REPO, Helm, Rendered, ci_id
from tests.deploy.contract import worker_env_names

ci_values = pytest.mark.parametrize("values", CI_VALUES, ids=ci_id)


def _env(rendered: Rendered) -> dict[str, str | dict]:
    """Every environment variable the worker container gets: ConfigMap first, then env."""
    out: dict[str, str | dict] = dict(rendered.configmap())
    for var in rendered.container().get("env") or []:
        out[var["name"]] = var.get("value", var.get("valueFrom"))
    return out


def _pod_spec(rendered: Rendered) -> dict:
    return rendered.one("Deployment")["spec"]["template"]["spec"]


# -- lint, render, schemas ---------------------------------------------------------------------


def test_the_ci_values_files_exist():
    assert len(CI_VALUES) >= 10, CI_VALUES


def test_lint_defaults(helm: Helm):
    helm.run("lint", "--strict", str(CHART))


@ci_values
def test_lint(helm: Helm, values: Path):
    for version in KUBE_VERSIONS:
        helm.run(
            "lint",
            "--strict",
            str(CHART),
            "--values",
            str(values),
            "--kube-version",
            f"{version}.0",
        )


@ci_values
def test_manifests_match_the_kubernetes_schemas(
    helm: Helm, validator, values: Path, tmp_path: Path
):
    """Strict built-in schemas for Kubernetes 1.29 and 1.37; the CRDs' own schemas for
    ServiceMonitor, PrometheusRule, ScaledObject and TriggerAuthentication."""
    python, crd_dir = validator
    for version in KUBE_VERSIONS:
        manifest = tmp_path / f"{version}.yaml"
        manifest.write_text(helm.template(values, kube_version=version).text)
        proc = subprocess.run(
            [
                python,
                str(Path(__file__).with_name("k8s_validate.py")),
                "--kube-version",
                version,
                "--crd-dir",
                crd_dir,
                str(manifest),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode in (0, 1), proc.stderr
        report = json.loads(proc.stdout)
        assert report["documents"], "nothing rendered"
        problems = [
            f"{d['kind']}/{d['name']}: {e}" for d in report["documents"] for e in d["errors"]
        ]
        assert not problems, "\n".join(problems)
        assert proc.returncode == 0


def test_validator_catches_bad_manifests(helm: Helm, validator, tmp_path: Path):
    """The schema check can fail: a typo'd field, a wrong type, a bad custom resource."""
    python, crd_dir = validator
    text = helm.template(CHART / "ci" / "keda-values.yaml").text
    text = text.replace("containerPort: 8080", 'containerPort: "8080"\n              hostPortt: 1')
    text = re.sub(r'lagThreshold: "(\d+)"', r"lagThreshold: \1", text)
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(text)
    proc = subprocess.run(
        [
            python,
            str(Path(__file__).with_name("k8s_validate.py")),
            "--kube-version",
            "1.37",
            "--crd-dir",
            crd_dir,
            str(manifest),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    errors = " ".join(e for d in json.loads(proc.stdout)["documents"] for e in d["errors"])
    assert "hostPortt" in errors and "'8080' is not of type 'integer'" in errors
    assert "lagThreshold" in errors


def test_kubernetes_older_than_supported_is_refused(helm: Helm):
    proc = helm.run("template", "x", str(CHART), "--kube-version", "1.28.0", check=False)
    assert proc.returncode != 0 and "kubeVersion" in proc.stderr


def toggles_on(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "enabled" and value is True:
                yield ".".join(path)
            else:
                yield from toggles_on(value, (*path, key))


def test_every_toggle_has_a_ci_values_file():
    """One ci/*-values.yaml per `enabled` toggle that is off by default (STYLE.md, Helm)."""
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    def toggles(node, path=()):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "enabled" and value is False:
                    yield ".".join(path)
                else:
                    yield from toggles(value, (*path, key))

    enabled_by_ci = set()
    for values in CI_VALUES:
        doc = yaml.safe_load(values.read_text()) or {}
        enabled_by_ci.update(toggles_on(doc))
    missing = sorted(set(toggles(defaults)) - enabled_by_ci)
    assert not missing, f"no ci/*-values.yaml turns on: {missing}"


@ci_values
def test_each_ci_values_file_changes_the_output(helm: Helm, values: Path):
    if values.name == "default-values.yaml":
        return
    assert helm.template(values).text != helm.template(CHART / "ci" / "default-values.yaml").text


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
    """The exact environment the pod gets loads in `tagstream.worker.config.load_settings` (mounted
    files and Secret values stand in as local files and dummies)."""
    from tagstream.worker.config import load_settings

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
    from tagstream.worker.config import Settings, load_settings

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
    from tagstream.worker.config import load_settings

    config = helm.template(sets=None if host == "0.0.0.0" else {"httpHost": host}).configmap()
    assert config["TAGSTREAM_HTTP__HOST"] == host
    for name in [n for n in os.environ if n.startswith("TAGSTREAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    assert load_settings().http.host == host


@ci_values
def test_probes_use_the_worker_port(helm: Helm, values: Path):
    rendered = helm.template(values)
    container = rendered.container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(rendered.configmap()["TAGSTREAM_HTTP__PORT"])}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http", probe
    service = rendered.one("Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def _serve_worker_http():
    """The worker's real HTTP server (tagstream.worker.http) on a free loopback port."""
    from prometheus_client import CollectorRegistry

    from tagstream.worker.http import Health, HttpServer

    health = Health(max_loop_stall_s=60)
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(), health).start()
    return health, server


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_probe_paths_are_served_by_the_worker_with_the_right_meaning(helm: Helm):
    container = helm.template().container()
    paths = {
        p: container[p]["httpGet"]["path"]
        for p in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    health, server = _serve_worker_http()
    try:
        for path in set(paths.values()):
            assert _status(server.port, path) != 404, f"the worker does not serve {path}"
        # Before the main loop first turns (model loading, joining Kafka) the startup probe
        # waits; liveness is not consulted until the startup probe has passed.
        assert _status(server.port, paths["startupProbe"]) == 503
        # A replica with its model loaded but no partitions (idle, or mid-rebalance) is alive:
        # startup and liveness must pass, or Kubernetes would restart healthy idle replicas.
        health.model_loaded = True
        health.assigned_partitions = 0
        health.beat()  # the main loop turns
        assert _status(server.port, paths["startupProbe"]) == 200
        assert _status(server.port, paths["livenessProbe"]) == 200
        assert _status(server.port, paths["readinessProbe"]) == 503
        health.assigned_partitions = 2
        assert _status(server.port, paths["readinessProbe"]) == 200
        health.draining = True  # SIGTERM: leave the Ready set at once
        assert _status(server.port, paths["readinessProbe"]) == 503
    finally:
        server.stop()


def test_startup_probe_allows_minutes_for_model_loading(helm: Helm):
    probe = helm.template().container()["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 120


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


# -- safety ------------------------------------------------------------------------------------


@ci_values
def test_pod_runs_non_root_read_only_without_capabilities(helm: Helm, values: Path):
    rendered = helm.template(values)
    pod = _pod_spec(rendered)
    container = rendered.container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]


def test_pod_user_is_the_image_user(helm: Helm):
    """The image's USER and the chart's runAsUser/runAsGroup are the same ids."""
    user = re.search(r"^USER\s+(\d+):(\d+)\s*$", (REPO / "Dockerfile").read_text(), re.M)
    assert user, "the Dockerfile must set a numeric USER uid:gid"
    pod = _pod_spec(helm.template())["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(user.group(1)), int(user.group(2)))


@ci_values
def test_secrets_are_only_referenced(helm: Helm, values: Path):
    rendered = helm.template(values)
    assert "Secret" not in rendered.kinds()
    config = rendered.configmap()
    assert not {
        "TAGSTREAM_KAFKA__SASL_PASSWORD",
        "TAGSTREAM_KAFKA__SASL_USERNAME",
        "TAGSTREAM_KAFKA__SSL_PASSWORD",
    } & set(config)
    for var in rendered.container().get("env") or []:
        if "PASSWORD" in var["name"] or "USERNAME" in var["name"]:
            assert "secretKeyRef" in var["valueFrom"], var


def test_changed_settings_roll_the_pods(helm: Helm):
    def checksum(sets=None):
        return helm.template(sets=sets).one("Deployment")["spec"]["template"]["metadata"][
            "annotations"
        ]["checksum/config"]

    assert checksum() == checksum()
    assert checksum() != checksum({"worker.batching.maxWaitMs": "10"})


def test_image_tag_defaults_to_app_version(helm: Helm):
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert helm.template().container()["image"] == f"tagstream:{app_version}"
    digest = "sha256:" + "a" * 64
    assert (
        helm.template(sets={"image.digest": digest}).container()["image"] == f"tagstream@{digest}"
    )


def test_metrics_service_publishes_not_ready_pods(helm: Helm):
    """Idle or rebalancing replicas are NotReady; Prometheus must keep scraping them."""
    assert helm.template().one("Service")["spec"]["publishNotReadyAddresses"] is True


def test_rollout_replaces_one_pod_at_a_time(helm: Helm):
    strategy = helm.template().one("Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_disruption_budget_never_blocks_drains_on_idle_pods(helm: Helm):
    pdb = helm.template(CHART / "ci" / "pdb-values.yaml").one("PodDisruptionBudget")["spec"]
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb


@pytest.mark.parametrize(
    "sets, message",
    [
        ({"kafka.bootstrapServer": "x:1"}, "bootstrapServer"),  # typo: unknown value
        ({"worker.delivery": "maybe"}, "delivery"),
        ({"probes.liveness.path": "/readyz"}, "liveness"),  # liveness must not need partitions
        ({"probes.startup.path": "/readyz"}, "startup"),  # nor startup: idle replicas would die
        (
            {"worker.terminationGraceMarginSeconds": "5"},
            "terminationGraceMarginSeconds",
        ),  # closing needs more
        ({"kafka.inputTopic": "bad topic"}, "inputTopic"),
        ({"kafka.sasl.enabled": "true"}, "existingSecret"),
        (
            {
                "kafka.tls.enabled": "true",
                "kafka.tls.certKey": "tls.crt",
                "kafka.tls.existingSecret": "s",
            },
            "keyKey",
        ),
    ],
)
def test_invalid_values_are_refused(helm: Helm, sets, message):
    assert message in helm.template_error(sets=sets)


def uncommented_values(lines: list[str]) -> list[str]:
    """Keys of a values.yaml without a comment line right above them. Only the fields inside a
    list's items are exempt (the list's own comment covers them, e.g. HPA policies); free-form
    maps (podAnnotations, nodeSelector, affinity, ...) are empty by default, so they have no
    leaves, and every leaf under resources, securityContext, strategy, behavior... is checked."""
    stack: list[tuple[int, str]] = []
    item_indents: list[int] = []  # indentation of the "- " of the list items we are inside
    missing = []
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        while item_indents and indent <= item_indents[-1]:
            item_indents.pop()
        if stripped.startswith("- "):
            item_indents.append(indent)
            continue
        match = re.match(r"([A-Za-z][\w.-]*):", stripped)
        if not match:
            continue
        key = match.group(1)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        stack.append((indent, key))
        if item_indents:
            continue
        above = lines[number - 1].strip() if number else ""
        if not above.startswith("#"):
            missing.append(".".join(path))
    return missing


def test_every_value_is_commented():
    lines = (CHART / "values.yaml").read_text().splitlines()
    missing = uncommented_values(lines)
    assert not missing, f"values without a comment: {missing}"


def test_uncommented_values_are_found_in_kubernetes_objects_too():
    """The check bites inside resources, securityContext, behavior...: drop a comment, and it
    names the leaf."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    for path in (
        "resources.limits.memory",
        "securityContext.capabilities.drop",
        "strategy.rollingUpdate.maxSurge",
        "keda.behavior.scaleDown.policies",
        "podSecurityContext.seccompProfile.type",
    ):
        parts = path.split(".")
        mutated = list(lines)
        stack: list[tuple[int, str]] = []
        for number, line in enumerate(mutated):
            match = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
            if not match:
                continue
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match.group(2)))
            if [k for _, k in stack] == parts:
                assert mutated[number - 1].lstrip().startswith("#"), path
                del mutated[number - 1]
                break
        else:
            raise AssertionError(f"{path} not found in values.yaml")
        assert uncommented_values(mutated) == [path]


@ci_values
def test_notes_render(helm: Helm, values: Path, tmp_path: Path):
    """NOTES.txt is rendered by `helm install`, not `helm template`: render it through a copy."""
    chart = tmp_path / "tagstream"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes-under-test.txt")
    (chart / "templates" / "notes-under-test.yaml").write_text(
        'notes: |\n{{ tpl (.Files.Get "notes-under-test.txt") . | indent 2 }}\n'
    )
    out = helm.run(
        "template",
        "tagstream",
        str(chart),
        "--values",
        str(values),
        "--show-only",
        "templates/notes-under-test.yaml",
    ).stdout
    notes = yaml.safe_load(out)["notes"]
    assert "port-forward svc/tagstream 8080" in notes
    assert "NotReady" in notes


def test_static_membership_uses_the_pod_name(helm: Helm):
    """By default each replica's group instance id is its pod name (static membership); the
    switch turns it off."""
    rendered = helm.template(CHART / "ci" / "default-values.yaml")
    env = {v["name"]: v.get("valueFrom") for v in rendered.container().get("env") or []}
    assert env["TAGSTREAM_KAFKA__GROUP_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    rendered = helm.template(
        CHART / "ci" / "default-values.yaml", {"kafka.staticMembership": "false"}
    )
    names = {v["name"] for v in rendered.container().get("env") or []}
    assert "TAGSTREAM_KAFKA__GROUP_INSTANCE_ID" not in names
