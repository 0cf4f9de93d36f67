"""The Helm chart (helm/tagstream): Kafka SASL for every mechanism the worker supports (PLAIN,
SCRAM-*, OAUTHBEARER, GSSAPI, AWS_MSK_IAM): the worker's settings, Secrets and mounted files, the
KEDA kafka trigger and TriggerAuthentication for the same mechanism, and the values refused at
template time. Lint and the Kubernetes and KEDA schemas of the ci/*-values.yaml files are in
tests/deploy/test_chart.py; the rendered settings loading in the worker, in
tests/deploy/test_chart_worker_contract.py."""

from __future__ import annotations

import json
import typing

import pytest

from tests.deploy.conftest import CHART, Helm, Rendered
from tests.deploy.test_chart import _env, _pod_spec

OAUTH_TOKEN_FILE = "/etc/tagstream/kafka-oauth/token"
KERBEROS_DIR = "/etc/tagstream/kerberos"

# The smallest values that render each mechanism (TLS where the worker requires or the chart
# defaults to refusing credentials in clear).
TLS = {"kafka.tls.enabled": "true", "kafka.tls.existingSecret": "kafka-ca"}
MECHANISMS = {
    "PLAIN": {**TLS, "kafka.sasl.existingSecret": "kafka-user"},
    "SCRAM-SHA-256": {"kafka.sasl.existingSecret": "kafka-user"},
    "SCRAM-SHA-512": {"kafka.sasl.existingSecret": "kafka-user"},
    "OAUTHBEARER": {
        **TLS,
        "kafka.sasl.oauthbearer.tokenSecret": "kafka-token",
        "keda.auth.oauthbearer.existingSecret": "keda-oauth",
        "keda.auth.oauthbearer.tokenEndpointUri": "https://idp.example.com/token",
    },
    "GSSAPI": {
        "kafka.sasl.gssapi.keytabSecret": "keytab",
        "kafka.sasl.gssapi.krb5ConfigMap": "krb5",
        "kafka.sasl.gssapi.principal": "tagstream@EXAMPLE.COM",
    },
    "AWS_MSK_IAM": {**TLS, "kafka.sasl.awsMskIam.awsRegion": "eu-west-1"},
}
# The kafka trigger's sasl per worker mechanism: KEDA's values are plaintext, scram_sha256,
# scram_sha512, oauthbearer and gssapi; AWS MSK IAM is oauthbearer with saslTokenProvider
# aws_msk_iam (https://keda.sh/docs/2.21/scalers/apache-kafka/).
KEDA_SASL = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
    "OAUTHBEARER": "oauthbearer",
    "GSSAPI": "gssapi",
    "AWS_MSK_IAM": "oauthbearer",
}


def _sasl(mechanism: str, keda: bool = False, **more: object) -> dict[str, object]:
    sets = {"kafka.sasl.enabled": "true", "kafka.sasl.mechanism": mechanism}
    sets.update(MECHANISMS[mechanism])
    if not keda:
        sets = {k: v for k, v in sets.items() if not k.startswith("keda.")}
    else:
        sets["keda.enabled"] = "true"
    sets.update(more)
    return sets


def _volumes(rendered: Rendered) -> dict[str, dict]:
    return {v["name"]: v for v in _pod_spec(rendered)["volumes"]}


def _mounts(rendered: Rendered) -> dict[str, dict]:
    return {m["name"]: m for m in rendered.container()["volumeMounts"]}


def _trigger(rendered: Rendered) -> dict:
    triggers = rendered.one("ScaledObject")["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["kafka"]
    return triggers[0]


def _keda_params(rendered: Rendered) -> dict[str, tuple[str, ...]]:
    """Each TriggerAuthentication parameter with its source: ("secret", name, key),
    ("configMap", name, key) or ("env", variable of the worker container)."""
    auth = rendered.one("TriggerAuthentication")
    assert _trigger(rendered)["authenticationRef"]["name"] == auth["metadata"]["name"]
    spec = auth["spec"]
    params: dict[str, tuple[str, ...]] = {}
    for kind, field in (("secret", "secretTargetRef"), ("configMap", "configMapTargetRef")):
        for ref in spec.get(field, []):
            assert ref["parameter"] not in params, ref
            params[ref["parameter"]] = (kind, ref["name"], ref["key"])
    for ref in spec.get("env", []):
        assert ref["containerName"] == rendered.container()["name"]
        assert ref["parameter"] not in params, ref
        params[ref["parameter"]] = ("env", ref["name"])
    return params


def _keda_value(rendered: Rendered, source: tuple[str, ...]) -> object:
    """What KEDA reads for a parameter: the worker's environment for an env source (a literal,
    or the settings ConfigMap's value), else the Secret or ConfigMap reference."""
    if source[0] == "env":
        return _env(rendered)[source[1]]
    if source[0] == "configMap" and source[1] == rendered.one("Deployment")["metadata"]["name"]:
        return rendered.configmap()[source[2]]  # the chart's own settings ConfigMap
    return source


def _secret_env(rendered: Rendered) -> dict[str, tuple[str, str]]:
    return {
        v["name"]: (v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"])
        for v in rendered.container().get("env") or []
        if "secretKeyRef" in (v.get("valueFrom") or {})
    }


# -- every mechanism ---------------------------------------------------------------------------


def test_the_schema_offers_every_mechanism_the_worker_supports():
    from tagstream.worker.settings.kafka import KafkaSettings

    annotation = KafkaSettings.model_fields["sasl_mechanism"].annotation
    worker = {
        value
        for arg in typing.get_args(annotation)
        if typing.get_origin(arg) is typing.Literal
        for value in typing.get_args(arg)
    }
    schema = json.loads((CHART / "values.schema.json").read_text())
    sasl = schema["properties"]["kafka"]["properties"]["sasl"]["properties"]
    assert set(sasl["mechanism"]["enum"]) == worker == set(MECHANISMS) == set(KEDA_SASL)


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_every_mechanism_reaches_the_worker_and_keda(helm: Helm, mechanism: str):
    rendered = helm.template(sets=_sasl(mechanism, keda=True))
    config = rendered.configmap()
    assert config["TAGSTREAM_KAFKA__SASL_MECHANISM"] == mechanism
    protocol = "SASL_SSL" if "kafka.tls.enabled" in MECHANISMS[mechanism] else "SASL_PLAINTEXT"
    assert config["TAGSTREAM_KAFKA__SECURITY_PROTOCOL"] == protocol
    meta = _trigger(rendered)["metadata"]
    assert meta["sasl"] == KEDA_SASL[mechanism]
    assert (meta.get("tls") == "enable") == (protocol == "SASL_SSL")
    # only the chosen mechanism's credentials reach the pod
    secret_env = _secret_env(rendered)
    has_password = mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
    assert ("TAGSTREAM_KAFKA__SASL_PASSWORD" in secret_env) == has_password
    assert ("TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_FILE" in config) == (mechanism == "OAUTHBEARER")
    assert ("TAGSTREAM_KAFKA__SASL_KERBEROS_SERVICE_NAME" in config) == (mechanism == "GSSAPI")
    assert ("AWS_REGION" in _env(rendered)) == (mechanism == "AWS_MSK_IAM")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_password_mechanisms_give_keda_the_workers_user(helm: Helm, mechanism: str):
    rendered = helm.template(sets=_sasl(mechanism, keda=True))
    env = _secret_env(rendered)
    assert env["TAGSTREAM_KAFKA__SASL_USERNAME"] == ("kafka-user", "username")
    assert env["TAGSTREAM_KAFKA__SASL_PASSWORD"] == ("kafka-user", "password")
    params = _keda_params(rendered)
    assert params["username"] == ("secret", *env["TAGSTREAM_KAFKA__SASL_USERNAME"])
    assert params["password"] == ("secret", *env["TAGSTREAM_KAFKA__SASL_PASSWORD"])
    assert set(params) <= {"username", "password", "ca"}


# -- OAUTHBEARER -------------------------------------------------------------------------------


def test_oauthbearer_token_from_a_secret_is_mounted_at_the_token_file(helm: Helm):
    rendered = helm.template(CHART / "ci" / "sasl-oauthbearer-values.yaml")
    config = rendered.configmap()
    assert config["TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_FILE"] == OAUTH_TOKEN_FILE
    assert "TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_PROVIDER" not in config
    assert config["TAGSTREAM_KAFKA__ALLOW_PLAINTEXT_CREDENTIALS"] == "false"
    mount = _mounts(rendered)["kafka-oauth"]
    # a directory mount (no subPath), so the kubelet's updates of the Secret reach the file
    assert mount == {
        "name": "kafka-oauth",
        "mountPath": OAUTH_TOKEN_FILE.rsplit("/", 1)[0],
        "readOnly": True,
    }
    assert _volumes(rendered)["kafka-oauth"]["secret"] == {
        "secretName": "tagstream-kafka-token",
        "defaultMode": 0o440,
        "items": [{"key": "access-token", "path": "token"}],
    }
    assert not _secret_env(rendered)  # no user name or password
    assert "ScaledObject" not in rendered.kinds()


def test_oauthbearer_projected_service_account_token(helm: Helm):
    rendered = helm.template(CHART / "ci" / "keda-oauthbearer-values.yaml")
    assert rendered.configmap()["TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_FILE"] == OAUTH_TOKEN_FILE
    assert _mounts(rendered)["kafka-oauth"]["mountPath"] == OAUTH_TOKEN_FILE.rsplit("/", 1)[0]
    assert _volumes(rendered)["kafka-oauth"]["projected"]["sources"] == [
        {"serviceAccountToken": {"audience": "kafka", "expirationSeconds": 1800, "path": "token"}}
    ]
    # the projected token is this volume only: no API token is mounted
    assert _pod_spec(rendered)["automountServiceAccountToken"] is False


def test_oauthbearer_token_provider_mounts_nothing(helm: Helm):
    rendered = helm.template(
        sets=_sasl(
            "OAUTHBEARER",
            **{
                "kafka.sasl.oauthbearer.tokenSecret": "",
                "kafka.sasl.oauthbearer.tokenProvider": "company_tokens.kafka:fetch",
            },
        )
    )
    config = rendered.configmap()
    assert config["TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_PROVIDER"] == "company_tokens.kafka:fetch"
    assert "TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_FILE" not in config
    assert "kafka-oauth" not in _volumes(rendered) and "kafka-oauth" not in _mounts(rendered)


def test_oauthbearer_in_clear_only_when_allowed(helm: Helm):
    sets = _sasl("OAUTHBEARER", **{"kafka.tls.enabled": "false"})
    assert "allowPlaintextCredentials" in helm.template_error(sets=sets)
    sets["kafka.sasl.allowPlaintextCredentials"] = "true"
    config = helm.template(sets=sets).configmap()
    assert config["TAGSTREAM_KAFKA__SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert config["TAGSTREAM_KAFKA__ALLOW_PLAINTEXT_CREDENTIALS"] == "true"


def test_keda_oauthbearer_requests_its_own_token(helm: Helm):
    """KEDA's bearer token provider is the client-credentials grant: username (client id),
    password (client secret), oauthTokenEndpointUri, scopes, oauthExtensions."""
    rendered = helm.template(CHART / "ci" / "keda-oauthbearer-values.yaml")
    meta = _trigger(rendered)["metadata"]
    assert (meta["sasl"], meta["tls"]) == ("oauthbearer", "enable")
    assert "saslTokenProvider" not in meta  # KEDA's default: bearer
    params = _keda_params(rendered)
    assert params["username"] == ("secret", "tagstream-keda-oauth", "client-id")
    assert params["password"] == ("secret", "tagstream-keda-oauth", "client-secret")
    assert params["ca"] == ("secret", "tagstream-kafka-ca", "ca.crt")
    values = {
        name: _keda_value(rendered, params[name])
        for name in ("oauthTokenEndpointUri", "scopes", "oauthExtensions")
    }
    assert values == {
        "oauthTokenEndpointUri": "https://idp.example.com/oauth2/token",
        "scopes": "kafka",
        "oauthExtensions": "logicalCluster=lkc-abc123",
    }


def test_keda_oauthbearer_lists_scopes_and_extensions(helm: Helm):
    rendered = helm.template(
        sets=_sasl(
            "OAUTHBEARER",
            keda=True,
            **{
                "keda.auth.oauthbearer.scopes": ["kafka", "lag.read"],
                "keda.auth.oauthbearer.extensions": {"logicalCluster": "lkc-1", "pool": "p-2"},
            },
        )
    )
    params = _keda_params(rendered)
    assert _keda_value(rendered, params["scopes"]) == "kafka,lag.read"
    assert _keda_value(rendered, params["oauthExtensions"]) == "logicalCluster=lkc-1,pool=p-2"
    # none given: no parameter (KEDA's defaults)
    params = _keda_params(helm.template(sets=_sasl("OAUTHBEARER", keda=True)))
    assert "scopes" not in params and "oauthExtensions" not in params


# -- GSSAPI ------------------------------------------------------------------------------------


def test_gssapi_mounts_the_keytab_and_krb5_conf(helm: Helm):
    rendered = helm.template(CHART / "ci" / "keda-gssapi-values.yaml")
    config = rendered.configmap()
    assert config["TAGSTREAM_KAFKA__SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert config["TAGSTREAM_KAFKA__SASL_KERBEROS_SERVICE_NAME"] == "kafka"
    assert config["TAGSTREAM_KAFKA__SASL_KERBEROS_DOMAIN_NAME"] == "kafka.example.com"
    env = _env(rendered)
    assert env["KRB5_CONFIG"] == f"{KERBEROS_DIR}/krb5.conf"
    assert env["KRB5_CLIENT_KTNAME"] == f"{KERBEROS_DIR}/krb5.keytab"
    assert _mounts(rendered)["kafka-kerberos"] == {
        "name": "kafka-kerberos",
        "mountPath": KERBEROS_DIR,
        "readOnly": True,
    }
    assert _volumes(rendered)["kafka-kerberos"]["projected"] == {
        "defaultMode": 0o440,
        "sources": [
            {
                "secret": {
                    "name": "tagstream-keytab",
                    "items": [{"key": "krb5.keytab", "path": "krb5.keytab"}],
                }
            },
            {
                "configMap": {
                    "name": "krb5-conf",
                    "items": [{"key": "krb5.conf", "path": "krb5.conf"}],
                }
            },
        ],
    }
    assert not _secret_env(rendered)


def test_gssapi_krb5_conf_from_a_secret(helm: Helm):
    rendered = helm.template(
        sets=_sasl(
            "GSSAPI",
            **{
                "kafka.sasl.gssapi.krb5ConfigMap": "",
                "kafka.sasl.gssapi.krb5ConfigSecret": "kerberos",
                "kafka.sasl.gssapi.krb5ConfigKey": "krb5-prod.conf",
                "kafka.sasl.gssapi.keytabKey": "tagstream.keytab",
            },
        )
    )
    sources = _volumes(rendered)["kafka-kerberos"]["projected"]["sources"]
    assert sources == [
        {
            "secret": {
                "name": "keytab",
                "items": [{"key": "tagstream.keytab", "path": "krb5.keytab"}],
            }
        },
        {"secret": {"name": "kerberos", "items": [{"key": "krb5-prod.conf", "path": "krb5.conf"}]}},
    ]
    config = rendered.configmap()
    assert "TAGSTREAM_KAFKA__SASL_KERBEROS_DOMAIN_NAME" not in config  # the broker's host name
    # without KEDA, nothing of KEDA's is in the pod
    assert not [name for name in _env(rendered) if name.startswith("KEDA_")]


def test_keda_gssapi_uses_the_workers_keytab_and_krb5_conf(helm: Helm):
    """KEDA's gssapi: username and realm of the principal, keytab and kerberosConfig (the same
    Secret and ConfigMap keys the worker mounts), kerberosServiceName (the worker's setting)."""
    rendered = helm.template(CHART / "ci" / "keda-gssapi-values.yaml")
    meta = _trigger(rendered)["metadata"]
    assert meta["sasl"] == "gssapi" and "tls" not in meta
    params = _keda_params(rendered)
    assert set(params) == {"username", "realm", "keytab", "kerberosConfig", "kerberosServiceName"}
    sources = _volumes(rendered)["kafka-kerberos"]["projected"]["sources"]
    keytab = sources[0]["secret"]
    assert params["keytab"] == ("secret", keytab["name"], keytab["items"][0]["key"])
    krb5 = sources[1]["configMap"]
    assert params["kerberosConfig"] == ("configMap", krb5["name"], krb5["items"][0]["key"])
    assert _keda_value(rendered, params["kerberosServiceName"]) == "kafka"
    assert _keda_value(rendered, params["username"]) == "tagstream"
    assert _keda_value(rendered, params["realm"]) == "EXAMPLE.COM"


def test_keda_gssapi_krb5_conf_from_a_secret(helm: Helm):
    rendered = helm.template(
        sets=_sasl(
            "GSSAPI",
            keda=True,
            **{"kafka.sasl.gssapi.krb5ConfigMap": "", "kafka.sasl.gssapi.krb5ConfigSecret": "k"},
        )
    )
    assert _keda_params(rendered)["kerberosConfig"] == ("secret", "k", "krb5.conf")


# -- AWS_MSK_IAM -------------------------------------------------------------------------------


def test_aws_msk_iam_signs_with_the_pods_identity(helm: Helm):
    rendered = helm.template(CHART / "ci" / "keda-aws-msk-iam-values.yaml")
    assert rendered.configmap()["TAGSTREAM_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert _env(rendered)["AWS_REGION"] == "eu-west-1"
    assert not _secret_env(rendered)  # no credentials in the chart
    assert set(_volumes(rendered)) == {"tmp"}  # TLS with the system CAs, nothing mounted
    account = rendered.one("ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws")
    assert _pod_spec(rendered)["serviceAccountName"] == account["metadata"]["name"]


def test_keda_aws_msk_iam_uses_the_workload_identity(helm: Helm):
    rendered = helm.template(CHART / "ci" / "keda-aws-msk-iam-values.yaml")
    meta = _trigger(rendered)["metadata"]
    assert meta["sasl"] == "oauthbearer" and meta["saslTokenProvider"] == "aws_msk_iam"
    assert meta["awsRegion"] == _env(rendered)["AWS_REGION"] and meta["tls"] == "enable"
    spec = rendered.one("TriggerAuthentication")["spec"]
    assert spec == {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}


@pytest.mark.parametrize(
    "role, identity",
    [
        ("", {"provider": "aws"}),
        (
            "arn:aws:iam::123456789012:role/keda-msk",
            {"provider": "aws", "roleArn": "arn:aws:iam::123456789012:role/keda-msk"},
        ),
    ],
)
def test_keda_aws_msk_iam_with_the_operators_identity(helm: Helm, role: str, identity: dict):
    rendered = helm.template(
        sets=_sasl("AWS_MSK_IAM", keda=True, **{"keda.auth.awsMskIam.roleArn": role})
    )
    spec = rendered.one("TriggerAuthentication")["spec"]
    assert spec["podIdentity"] == identity
    assert [ref["parameter"] for ref in spec["secretTargetRef"]] == ["ca"]


# -- refused values ----------------------------------------------------------------------------

ROLE = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/tagstream"}


@pytest.mark.parametrize(
    "sets, message",
    [
        (
            _sasl("SCRAM-SHA-512", **{"kafka.sasl.existingSecret": ""}),
            "SCRAM-SHA-512 needs kafka.sasl.existingSecret",
        ),
        (
            _sasl("PLAIN", **{"kafka.tls.enabled": "false"}),
            "PLAIN without kafka.tls.enabled sends the password unencrypted",
        ),
        (
            _sasl("OAUTHBEARER", **{"kafka.sasl.oauthbearer.tokenSecret": ""}),
            "OAUTHBEARER needs exactly one token source",
        ),
        (
            _sasl("OAUTHBEARER", **{"kafka.sasl.oauthbearer.serviceAccountToken.audience": "k"}),
            "set: kafka.sasl.oauthbearer.tokenSecret, "
            "kafka.sasl.oauthbearer.serviceAccountToken.audience",
        ),
        (
            _sasl("OAUTHBEARER", **{"kafka.sasl.existingSecret": "kafka-user"}),
            "kafka.sasl.existingSecret (a user name and password) is for PLAIN and SCRAM-*",
        ),
        (
            _sasl("SCRAM-SHA-256", **{"kafka.sasl.oauthbearer.tokenProvider": "a.b:c"}),
            "kafka.sasl.oauthbearer.tokenProvider: only used by OAUTHBEARER",
        ),
        (
            _sasl("OAUTHBEARER", keda=True, **{"keda.auth.oauthbearer.existingSecret": ""}),
            "needs keda.auth.oauthbearer.existingSecret",
        ),
        (
            _sasl("OAUTHBEARER", keda=True, **{"keda.auth.oauthbearer.tokenEndpointUri": ""}),
            "needs keda.auth.oauthbearer.tokenEndpointUri",
        ),
        (
            _sasl("GSSAPI", **{"kafka.sasl.gssapi.keytabSecret": ""}),
            "GSSAPI needs kafka.sasl.gssapi.keytabSecret",
        ),
        (
            _sasl("GSSAPI", **{"kafka.sasl.gssapi.krb5ConfigMap": ""}),
            "set kafka.sasl.gssapi.krb5ConfigMap (a ConfigMap) or "
            "kafka.sasl.gssapi.krb5ConfigSecret",
        ),
        (
            _sasl("GSSAPI", **{"kafka.sasl.gssapi.krb5ConfigSecret": "krb5"}),
            "krb5ConfigMap and kafka.sasl.gssapi.krb5ConfigSecret: set one of them",
        ),
        (
            _sasl("GSSAPI", keda=True, **{"kafka.sasl.gssapi.principal": ""}),
            "GSSAPI needs kafka.sasl.gssapi.principal",
        ),
        (
            _sasl("SCRAM-SHA-512", **{"kafka.sasl.gssapi.keytabSecret": "keytab"}),
            "kafka.sasl.gssapi.keytabSecret: only used by GSSAPI",
        ),
        (
            _sasl("AWS_MSK_IAM", **{"kafka.tls.enabled": "false"}),
            "AWS_MSK_IAM needs kafka.tls.enabled",
        ),
        (
            _sasl("AWS_MSK_IAM", **{"kafka.sasl.awsMskIam.awsRegion": ""}),
            "AWS_MSK_IAM needs kafka.sasl.awsMskIam.awsRegion",
        ),
        (
            _sasl("SCRAM-SHA-512", **{"kafka.sasl.awsMskIam.awsRegion": "eu-west-1"}),
            "kafka.sasl.awsMskIam.awsRegion: only used by AWS_MSK_IAM",
        ),
        (
            _sasl("AWS_MSK_IAM", keda=True, **{"keda.auth.awsMskIam.identityOwner": "workload"}),
            "needs serviceAccount.annotations eks.amazonaws.com/role-arn",
        ),
        (
            _sasl(
                "AWS_MSK_IAM",
                keda=True,
                **{
                    "serviceAccount.annotations": ROLE,
                    "keda.auth.awsMskIam.identityOwner": "workload",
                    "keda.auth.awsMskIam.roleArn": "arn:aws:iam::123456789012:role/keda",
                },
            ),
            "keda.auth.awsMskIam.roleArn is for identityOwner keda",
        ),
        # the schema
        (_sasl("SCRAM-SHA-512", **{"kafka.sasl.mechanism": "KERBEROS"}), "mechanism"),
        (_sasl("GSSAPI", **{"kafka.sasl.gssapi.principal": "tagstream"}), "principal"),
        (
            _sasl(
                "OAUTHBEARER",
                **{
                    "kafka.sasl.oauthbearer.tokenSecret": "",
                    "kafka.sasl.oauthbearer.tokenProvider": "x",
                },
            ),
            "tokenProvider",
        ),
        (
            _sasl(
                "OAUTHBEARER",
                **{"kafka.sasl.oauthbearer.serviceAccountToken.expirationSeconds": "60"},
            ),
            "expirationSeconds",
        ),
        (_sasl("AWS_MSK_IAM", **{"kafka.sasl.awsMskIam.awsRegion": "Ireland"}), "awsRegion"),
    ],
)
def test_incomplete_sasl_values_are_refused(helm: Helm, sets: dict, message: str):
    assert message in helm.template_error(sets=sets)


def test_sasl_values_of_a_disabled_sasl_are_not_checked(helm: Helm):
    """Only kafka.sasl.enabled brings the mechanism's values into play (the chart's defaults
    keep SCRAM-SHA-512 with no Secret)."""
    rendered = helm.template(sets={"kafka.sasl.mechanism": "GSSAPI"})
    assert rendered.configmap()["TAGSTREAM_KAFKA__SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert "TAGSTREAM_KAFKA__SASL_MECHANISM" not in rendered.configmap()
