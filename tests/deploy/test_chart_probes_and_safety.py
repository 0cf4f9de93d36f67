"""The Helm chart (helm/tagstream): the probes against the worker's real HTTP server, and the
pod's safety (security context, secrets, rollouts, refused values)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import CHART, REPO, Helm
from tests.deploy.test_chart import _pod_spec, ci_values


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
        "TAGSTREAM_OUTPUT__PSEUDONYM_KEY",
        "TAGSTREAM_SCHEMA_REGISTRY__USERNAME",
        "TAGSTREAM_SCHEMA_REGISTRY__PASSWORD",
    } & set(config)
    for var in rendered.container().get("env") or []:
        if any(word in var["name"] for word in ("PASSWORD", "USERNAME", "PSEUDONYM_KEY")):
            assert "secretKeyRef" in var["valueFrom"], var


def test_changed_settings_roll_the_pods(helm: Helm):
    def checksum(sets=None):
        return helm.template(sets=sets).one("Deployment")["spec"]["template"]["metadata"][
            "annotations"
        ]["checksum/config"]

    assert checksum() == checksum()
    assert checksum() != checksum({"worker.batching.maxWaitMs": "10"})


# Where .github/workflows/release.yml pushes the image (ghcr.io/<repository owner>/tagstream,
# tagged with the version, which the workflow checks is the chart's appVersion).
PUBLISHED_IMAGE = "ghcr.io/tagstream/tagstream"


def test_image_tag_defaults_to_app_version(helm: Helm):
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert helm.template().container()["image"] == f"{PUBLISHED_IMAGE}:{app_version}"
    digest = "sha256:" + "a" * 64
    assert (
        helm.template(sets={"image.digest": digest}).container()["image"]
        == f"{PUBLISHED_IMAGE}@{digest}"
    )


def test_default_image_is_the_one_the_release_workflow_publishes():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    image = workflow["env"]["IMAGE"]
    assert image.replace("${{ github.repository_owner }}", "tagstream") == PUBLISHED_IMAGE
    push = [step for step in workflow["jobs"]["image"]["steps"] if step.get("name") == "push"]
    assert len(push) == 1 and 'docker push "${IMAGE}:${VERSION}"' in push[0]["run"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    assert (values["repository"], values["tag"]) == (PUBLISHED_IMAGE, "")


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
