"""Settings validation: the SASL mechanisms beyond PLAIN/SCRAM (OAUTHBEARER, GSSAPI, AWS MSK
IAM)."""

from __future__ import annotations

import pytest

from tagstream.worker.kafka import clients
from tagstream.worker.settings import ConfigError, load_settings
from tests.worker.settings.test_settings import clean_env  # noqa: F401 (the autouse fixture, shared)

# -- SASL mechanisms beyond PLAIN/SCRAM ------------------------------------------------------


def _sasl(monkeypatch, protocol="SASL_SSL", **values):
    monkeypatch.setenv("TAGSTREAM_KAFKA__SECURITY_PROTOCOL", protocol)
    for name, value in values.items():
        monkeypatch.setenv(f"TAGSTREAM_KAFKA__{name.upper()}", value)


def _error(monkeypatch=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings()
    return str(info.value)


def test_a_mechanism_without_a_sasl_protocol_is_rejected(monkeypatch):
    _sasl(monkeypatch, "SSL", sasl_mechanism="SCRAM-SHA-512")
    assert (
        "TAGSTREAM_KAFKA__SECURITY_PROTOCOL=SSL, TAGSTREAM_KAFKA__SASL_MECHANISM=SCRAM-SHA-512: "
        "the protocol does not use SASL"
    ) in _error()


def test_sasl_without_a_mechanism_names_it(monkeypatch):
    _sasl(monkeypatch, "SASL_PLAINTEXT")
    assert (
        "TAGSTREAM_KAFKA__SECURITY_PROTOCOL=SASL_PLAINTEXT needs TAGSTREAM_KAFKA__SASL_MECHANISM"
        in _error()
    )


def test_oauthbearer_needs_exactly_one_token_source(monkeypatch, tmp_path):
    _sasl(monkeypatch, sasl_mechanism="OAUTHBEARER")
    assert (
        "TAGSTREAM_KAFKA__SASL_MECHANISM=OAUTHBEARER needs exactly one of "
        "TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_FILE, TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_PROVIDER"
    ) in _error()
    token = tmp_path / "token"
    token.write_text("abc.def.\n")
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_FILE", str(token))
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_PROVIDER", "os:getcwd")
    assert "needs exactly one of" in _error()
    monkeypatch.delenv("TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_PROVIDER")
    provider = clients.security(load_settings().kafka)["sasl_oauth_token_provider"]
    assert provider.token() == "abc.def."
    token.write_text("renewed\n")  # read again for every new connection
    assert provider.token() == "renewed"
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_FILE", str(tmp_path / "nope"))
    assert f"TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_FILE={tmp_path / 'nope'}: no such file" in _error()


def test_oauthbearer_takes_no_password(monkeypatch):
    _sasl(
        monkeypatch,
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider="os:getcwd",
        sasl_username="alice",
        sasl_password="hunter2",
    )
    message = _error()
    assert (
        "TAGSTREAM_KAFKA__SASL_MECHANISM=OAUTHBEARER: TAGSTREAM_KAFKA__SASL_USERNAME, "
        "TAGSTREAM_KAFKA__SASL_PASSWORD not used by OAUTHBEARER; unset"
    ) in message
    assert "hunter2" not in message


def test_token_settings_only_with_oauthbearer(monkeypatch):
    _sasl(
        monkeypatch,
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="a",
        sasl_password="b",
        sasl_oauth_token_provider="os:getcwd",
    )
    assert "TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_PROVIDER only used by OAUTHBEARER; unset" in _error()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no colon", "expected 'package.module:function'"),
        ("no_such_module_xyz:f", "cannot import no_such_module_xyz"),
        ("os:no_such_function", "has no attribute 'no_such_function'"),
        ("os:sep", "neither a function returning a token nor a token provider"),
    ],
)
def test_a_bad_token_provider_is_named(monkeypatch, spec, message):
    _sasl(monkeypatch, sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=spec)
    text = _error()
    assert "TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_PROVIDER=" in text and message in text


def test_token_provider_function_and_object(monkeypatch, tmp_path):
    (tmp_path / "tokens_mod.py").write_text(
        "def fn():\n    return 'from-a-function'\n"
        "def empty():\n    return ''\n"
        "class P:\n"
        "    def token(self):\n        return 'from-an-object'\n"
        "    def extensions(self):\n        return {'traceId': '42'}\n"
        "provider = P()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _sasl(monkeypatch, sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider="tokens_mod:fn")
    assert (
        clients.security(load_settings().kafka)["sasl_oauth_token_provider"].token()
        == "from-a-function"
    )
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_PROVIDER", "tokens_mod:provider")
    provider = clients.security(load_settings().kafka)["sasl_oauth_token_provider"]
    assert (provider.token(), provider.extensions()) == ("from-an-object", {"traceId": "42"})
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_PROVIDER", "tokens_mod:empty")
    provider = clients.security(load_settings().kafka)["sasl_oauth_token_provider"]
    with pytest.raises(TypeError, match="tokens_mod:empty returned str, not a non-empty token"):
        provider.token()


def test_gssapi_needs_its_package_and_passes_the_service_name(monkeypatch):
    import importlib.util

    _sasl(monkeypatch, sasl_mechanism="GSSAPI", sasl_kerberos_service_name="kafka-prod")
    if importlib.util.find_spec("gssapi") is None:
        assert (
            "TAGSTREAM_KAFKA__SASL_MECHANISM=GSSAPI needs the Python package gssapi, which is "
            "not installed: pip install 'tagstream[gssapi]'"
        ) in _error()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "gssapi" else real(name, *a),
    )
    configs = clients.security(load_settings().kafka)
    assert configs["sasl_mechanism"] == "GSSAPI"
    assert configs["sasl_kerberos_service_name"] == "kafka-prod"
    assert "sasl_plain_password" not in configs


def test_aws_msk_iam_needs_tls(monkeypatch):
    _sasl(monkeypatch, "SASL_PLAINTEXT", sasl_mechanism="AWS_MSK_IAM")
    assert (
        "TAGSTREAM_KAFKA__SECURITY_PROTOCOL=SASL_PLAINTEXT, "
        "TAGSTREAM_KAFKA__SASL_MECHANISM=AWS_MSK_IAM: AWS_MSK_IAM needs SASL_SSL"
    ) in _error()


@pytest.mark.parametrize(
    ("mechanism", "values", "secret"),
    [
        ("PLAIN", {"sasl_username": "u", "sasl_password": "p"}, "password"),
        ("OAUTHBEARER", {"sasl_oauth_token_file": __file__}, "bearer token"),
    ],
)
def test_credentials_in_clear_are_refused_unless_allowed(monkeypatch, mechanism, values, secret):
    _sasl(monkeypatch, "SASL_PLAINTEXT", sasl_mechanism=mechanism, **values)
    assert (
        f"TAGSTREAM_KAFKA__SECURITY_PROTOCOL=SASL_PLAINTEXT, "
        f"TAGSTREAM_KAFKA__SASL_MECHANISM={mechanism}: the {secret} would cross the network "
        "unencrypted"
    ) in _error()
    monkeypatch.setenv("TAGSTREAM_KAFKA__ALLOW_PLAINTEXT_CREDENTIALS", "true")
    assert load_settings().kafka.allow_plaintext_credentials
    _sasl(monkeypatch, "SASL_SSL", sasl_mechanism=mechanism, **values)
    monkeypatch.delenv("TAGSTREAM_KAFKA__ALLOW_PLAINTEXT_CREDENTIALS")
    load_settings()  # encrypted: fine


def test_scram_in_clear_is_fine(monkeypatch):
    _sasl(
        monkeypatch,
        "SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="u",
        sasl_password="p",
    )
    load_settings()
