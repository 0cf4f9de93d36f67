"""The Helm chart's optional NetworkPolicy (networkPolicy.*): off by default; when on, ingress
to the worker's HTTP port only, from the configured peers, and egress to the Kafka brokers, DNS
and the extra rules only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import CHART, KUBE_VERSIONS, Helm, Rendered

NETWORK_POLICY_VALUES = CHART / "ci" / "networkpolicy-values.yaml"
ON = {"networkPolicy.enabled": "true"}
DNS_PORTS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]


def _policy(rendered: Rendered) -> dict:
    return rendered.one("NetworkPolicy")["spec"]


def _validate(validator, text: str, tmp_path: Path) -> None:
    python, crd_dir = validator
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(text)
    for version in KUBE_VERSIONS:
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
        report = json.loads(proc.stdout)
        policies = [d for d in report["documents"] if d["kind"] == "NetworkPolicy"]
        assert len(policies) == 1 and not policies[0]["errors"], policies
        assert proc.returncode == 0, report


def test_off_by_default(helm: Helm):
    assert helm.template().maybe("NetworkPolicy") is None
    assert helm.template(CHART / "ci" / "default-values.yaml").maybe("NetworkPolicy") is None


def test_configured_peers_and_ports(helm: Helm, validator, tmp_path: Path):
    values = yaml.safe_load(NETWORK_POLICY_VALUES.read_text())["networkPolicy"]
    rendered = helm.template(NETWORK_POLICY_VALUES)
    policy = _policy(rendered)
    deployment = rendered.one("Deployment")["spec"]
    assert policy["podSelector"] == deployment["selector"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    [http] = rendered.container()["ports"]
    assert policy["ingress"] == [
        {
            "ports": [{"port": http["containerPort"], "protocol": "TCP"}],
            "from": values["ingress"]["from"],
        }
    ]
    kafka, dns, *extra = policy["egress"]
    assert kafka == {
        "ports": values["egress"]["kafka"]["ports"],
        "to": values["egress"]["kafka"]["to"],
    }
    assert dns == {"ports": DNS_PORTS, "to": values["egress"]["dns"]["to"]}
    assert extra == values["egress"]["extra"]
    _validate(validator, rendered.text, tmp_path)


def test_defaults_when_on(helm: Helm, validator, tmp_path: Path):
    """Prometheus pods of any namespace may scrape; the brokers' ports are those of the
    bootstrap servers; the brokers and DNS are any address on their ports."""
    rendered = helm.template(sets=ON)
    policy = _policy(rendered)
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert rule["from"] == [
        {
            "namespaceSelector": {},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    assert policy["egress"] == [
        {"ports": [{"port": 9092, "protocol": "TCP"}]},
        {"ports": DNS_PORTS},
    ]
    _validate(validator, rendered.text, tmp_path)


def test_follows_the_http_port_and_the_bootstrap_servers(helm: Helm):
    rendered = helm.template(
        sets={**ON, "httpPort": "9100", "kafka.bootstrapServers": "a:9093,b:9093,c.kafka:19092"}
    )
    policy = _policy(rendered)
    assert rendered.container()["ports"][0]["containerPort"] == 9100
    assert policy["ingress"][0]["ports"] == [{"port": 9100, "protocol": "TCP"}]
    assert policy["egress"][0]["ports"] == [
        {"port": 9093, "protocol": "TCP"},
        {"port": 19092, "protocol": "TCP"},
    ]


def test_empty_peers_mean_any_address_on_the_same_ports(helm: Helm):
    policy = _policy(helm.template(sets={**ON, "networkPolicy.ingress.from": []}))
    assert policy["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]


@pytest.mark.parametrize(
    "sets, message",
    [
        ({"networkPolicy.ingress.from": [{"podSelecter": {}}]}, "podSelecter"),
        ({"networkPolicy.ingress.from": [{}]}, "from"),
        ({"networkPolicy.egress.kafka.ports": [{"port": 9092, "protocol": "tcp"}]}, "protocol"),
        ({"networkPolicy.egress.kafka.to": [{"ipBlock": {"except": []}}]}, "cidr"),
        ({"networkPolicy.egress.dnss": {}}, "dnss"),
    ],
)
def test_invalid_values_are_refused(helm: Helm, sets, message):
    assert message in helm.template_error(sets={**ON, **sets})
