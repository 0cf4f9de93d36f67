"""The start-up check alone on the real SASL and TLS listeners (in this process: no worker to
start): PLAIN over TLS, an OAUTHBEARER token from a function, a plaintext client on the TLS
listener, no password in error messages, AWS MSK IAM. The secured broker is the `secure` fixture
(tests/integration/conftest.py); the worker end to end is in tests/integration/test_security.py.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.test_security import scram

# -- the start-up check alone (in this process: no worker to start) --------------------------------


def _settings(monkeypatch, bootstrap: str, **values: str):
    from tagstream.worker.settings import load_settings

    for name, value in values.items():
        monkeypatch.setenv(f"TAGSTREAM_{name.upper()}", value)
    monkeypatch.setenv("TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("TAGSTREAM_KAFKA__REQUEST_TIMEOUT_MS", "10000")
    return load_settings()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith("TAGSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_plain_over_tls_is_accepted(secure, clean_env, monkeypatch):
    from tagstream.worker.kafka.preflight import preflight

    preflight(
        _settings(
            monkeypatch,
            secure["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"],
            **scram(secure, "SASL_SSL", "PLAIN"),
        )
    )


def test_oauthbearer_token_from_a_function(secure, clean_env, monkeypatch, tmp_path):
    """TAGSTREAM_KAFKA__SASL_OAUTH_TOKEN_PROVIDER=module:function; a token the broker's
    validator refuses is a clear refusal, not a retry until the timeout."""
    from tagstream.worker.kafka.preflight import ConnectionProblem, preflight

    (tmp_path / "my_tokens.py").write_text(
        "from tests.integration.test_security import unsigned_jwt\n"
        "calls = []\n"
        "def good():\n    calls.append(1)\n    return unsigned_jwt('tagstream')\n"
        "def bad():\n    return 'not-a-jwt'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    oauth = {
        "kafka__security_protocol": "SASL_PLAINTEXT",
        "kafka__sasl_mechanism": "OAUTHBEARER",
        "kafka__allow_plaintext_credentials": "true",
    }
    bootstrap = secure["KAFKA_SASL_PLAINTEXT_BOOTSTRAP_SERVERS"]
    preflight(
        _settings(
            monkeypatch, bootstrap, **oauth, kafka__sasl_oauth_token_provider="my_tokens:good"
        )
    )
    import my_tokens

    assert my_tokens.calls
    started = time.monotonic()
    with pytest.raises(ConnectionProblem) as info:
        preflight(
            _settings(
                monkeypatch, bootstrap, **oauth, kafka__sasl_oauth_token_provider="my_tokens:bad"
            )
        )
    assert time.monotonic() - started < 5
    assert info.value.exit_status == 1
    assert "refused SASL OAUTHBEARER: SaslAuthenticationFailedError" in str(info.value)


def test_plaintext_client_on_the_tls_listener_is_told_so(secure, clean_env, monkeypatch):
    from tagstream.worker.kafka.preflight import ConnectionProblem, preflight

    with pytest.raises(
        ConnectionProblem,
        match=r"answered in another protocol .*"
        r"TAGSTREAM_KAFKA__SECURITY_PROTOCOL=PLAINTEXT match that listener",
    ):
        preflight(_settings(monkeypatch, secure["KAFKA_SSL_BOOTSTRAP_SERVERS"]))


def test_no_password_in_error_messages(secure, clean_env, monkeypatch):
    from tagstream.worker.kafka.preflight import ConnectionProblem, preflight

    wrong = secure.password + "-wrong"
    with pytest.raises(ConnectionProblem) as info:
        preflight(
            _settings(
                monkeypatch,
                secure["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"],
                **scram(secure, "SASL_SSL", "PLAIN", password=wrong),
            )
        )
    assert "SaslAuthenticationFailedError" in str(info.value)
    assert wrong not in str(info.value) and secure.password not in str(info.value)


def test_aws_msk_iam_reaches_the_sasl_handshake(secure, clean_env, monkeypatch):
    """The local broker has no AWS_MSK_IAM, so it says so: the mechanism got that far."""
    pytest.importorskip("botocore")
    from tagstream.worker.kafka.preflight import ConnectionProblem, preflight

    with pytest.raises(
        ConnectionProblem,
        match="the listener does not offer TAGSTREAM_KAFKA__SASL_MECHANISM=AWS_MSK_IAM",
    ):
        preflight(
            _settings(
                monkeypatch,
                secure["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"],
                kafka__security_protocol="SASL_SSL",
                kafka__sasl_mechanism="AWS_MSK_IAM",
                kafka__ssl_cafile=secure["KAFKA_SSL_CAFILE"],
            )
        )
