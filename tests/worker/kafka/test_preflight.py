"""Start-up check helpers, log redaction and the kafka-python reader fix (no broker: the real
connections are in tests/integration/test_security.py)."""

from __future__ import annotations

import json
import logging
import os
import ssl

import kafka
import kafka.errors as Errors
import pytest

from tagstream.worker import logs
from tagstream.worker.kafka import clients, patches, preflight
from tagstream.worker.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("TAGSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_the_reader_fix_is_installed_for_this_kafka_python():
    """Written against 3.0.12's transport: on another version, check whether kafka-python
    still drops a response that arrives with the end of the stream, then adjust
    patches.FIXED_VERSIONS (and the exact pin in pyproject.toml)."""
    assert kafka.__version__ in patches.FIXED_VERSIONS
    assert clients.install_fixes()
    from kafka.net.transport import KafkaSSLTransport, KafkaTCPTransport

    assert KafkaTCPTransport._read_from_sock is patches.read_from_sock
    assert KafkaSSLTransport._read_from_sock is patches.read_from_sock


def test_every_client_builder_installs_the_fix_first(monkeypatch):
    monkeypatch.setattr(clients, "_installed", None)
    calls = []
    monkeypatch.setattr(patches, "fix_transport", lambda: calls.append(1) or True)
    clients.connection(load_settings().kafka)
    clients.connection(load_settings().kafka)
    assert calls == [1]  # once per process


def test_another_kafka_python_gets_a_warning_not_the_fix(monkeypatch, caplog):
    from kafka.net.transport import KafkaTCPTransport

    monkeypatch.setattr(clients, "_installed", None)
    monkeypatch.setattr(kafka, "__version__", "3.1.0")
    before = KafkaTCPTransport._read_from_sock
    monkeypatch.setattr(KafkaTCPTransport, "_read_from_sock", before)  # restored afterwards
    with caplog.at_level("WARNING", logger="tagstream.worker.kafka.clients"):
        assert clients.install_fixes() is False
    assert "kafka-python 3.1.0 is not the version" in caplog.text
    monkeypatch.setattr(clients, "_installed", None)  # the next test installs it again


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (
            Errors.SaslAuthenticationFailedError("SaslAuthenticationFailedError: bad credentials"),
            "SaslAuthenticationFailedError: bad credentials",
        ),
        (Errors.UnsupportedSaslMechanismError(), "UnsupportedSaslMechanismError"),
        (
            Errors.KafkaConnectionError("socket disconnected"),
            "KafkaConnectionError: socket disconnected",
        ),
        (ValueError("boom"), "ValueError: boom"),
    ],
)
def test_error_text(exc, text):
    assert preflight.error_text(exc) == text


def _classify(exc, **settings):
    """`preflight.classify` with these TAGSTREAM_KAFKA__* settings, after the broker answered."""
    env = {f"TAGSTREAM_KAFKA__{name.upper()}": value for name, value in settings.items()}
    os.environ.update(env)
    try:
        return preflight.classify(exc, load_settings(), "broker:9093", answered=True)
    finally:
        for name in env:
            del os.environ[name]


def _wrapped(tls_error: Exception) -> Exception:
    """As kafka-python raises it: KafkaConnectionError('Handshake failed: ...') from the TLS
    error."""
    try:
        try:
            raise tls_error
        except Exception as e:
            raise Errors.KafkaConnectionError(f"Handshake failed: {e}")
    except Exception as wrapped:
        return wrapped


def test_an_untrusted_certificate_is_definitive(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_message = "unable to get local issuer certificate"
    with pytest.raises(preflight.ConnectionProblem) as info:
        _classify(_wrapped(err), security_protocol="SSL", ssl_cafile=str(ca))
    assert info.value.exit_status == 1
    assert str(info.value) == (
        "TLS handshake with Kafka at broker:9093 failed: the broker's certificate is not trusted "
        f"(unable to get local issuer certificate); TAGSTREAM_KAFKA__SSL_CAFILE={ca} does not "
        "hold the CA that signed it"
    )
    err.verify_message = "Hostname mismatch, certificate is not valid for 'broker'."
    with pytest.raises(preflight.ConnectionProblem, match="not for this host name"):
        _classify(_wrapped(err), security_protocol="SSL")


def test_transient_failures_are_retried_with_a_hint():
    assert _classify(ConnectionRefusedError(111, "refused")) is None
    assert _classify(Errors.KafkaTimeoutError("Timed out")) is None
    hint = preflight.classify(
        Errors.KafkaConnectionError("socket disconnected"),
        load_settings(),
        "broker:9093",
        answered=False,
    )
    assert "TAGSTREAM_KAFKA__SECURITY_PROTOCOL=PLAINTEXT match that listener" in hint
    eof = _wrapped(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    assert "closed the connection before answering" in _classify(eof, security_protocol="SSL")


def test_settings_refused_by_kafka_python_exit_2():
    with pytest.raises(preflight.ConnectionProblem) as info:
        _classify(Errors.KafkaConfigurationError("AWS_MSK_IAM requires SASL_SSL"))
    assert info.value.exit_status == 2


def test_a_failing_token_provider_is_definitive(tmp_path):
    token = tmp_path / "t"
    token.write_text("x")
    with pytest.raises(
        preflight.ConnectionProblem,
        match=r"SASL OAUTHBEARER to Kafka at "
        r"broker:9093 failed: FileNotFoundError",
    ):
        _classify(
            FileNotFoundError(2, "No such file"),
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_file=str(token),
        )


def test_an_unreachable_cluster_ends_within_the_request_timeout(monkeypatch):
    import time

    monkeypatch.setenv("TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("TAGSTREAM_KAFKA__REQUEST_TIMEOUT_MS", "1500")
    monkeypatch.setenv("TAGSTREAM_KAFKA__DELIVERY_TIMEOUT_MS", "10000")
    started = time.monotonic()
    with pytest.raises(preflight.ConnectionProblem) as info:
        preflight.preflight(load_settings())
    assert 1.4 < time.monotonic() - started < 5
    assert str(info.value).startswith(
        "cannot connect to Kafka at 127.0.0.1:1 within TAGSTREAM_KAFKA__REQUEST_TIMEOUT_MS=1500: "
    )


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_passwords_are_blanked_out_of_every_log_line(fmt, capsys):
    secret = 'pa"ss\\wörd-42'
    logs.configure("DEBUG", fmt)
    logs.redact([secret, "abc"])  # too short to blank out safely: left alone
    try:
        log = logging.getLogger("kafka.net.connection")
        log.warning("request %s", {"auth_bytes": b"\x00alice\x00" + secret.encode()})
        log.warning("plain %s and repr %r", secret, secret, extra={"field": secret})
    finally:
        logs.redact([])
    err = capsys.readouterr().err
    for form in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], "w\\xc3\\xb6rd-42"):
        assert form not in err, form
    assert err.count(logs.REDACTED) == 4


def test_the_cleartext_warning_once(capsys):
    logs.configure("INFO", "text")
    log = logging.getLogger("kafka.net.sasl.scram")
    for _ in range(3):
        log.warning("Exchanging credentials in the clear during Sasl Authentication")
    assert capsys.readouterr().err.count("in the clear") == 1


def test_unloadable_tls_files_are_a_settings_error(monkeypatch, tmp_path):
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    key.write_text("nor a key\n")
    monkeypatch.setenv("TAGSTREAM_KAFKA__SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("TAGSTREAM_KAFKA__SSL_CERTFILE", str(cert))
    monkeypatch.setenv("TAGSTREAM_KAFKA__SSL_KEYFILE", str(key))
    monkeypatch.setenv("TAGSTREAM_KAFKA__SSL_PASSWORD", "hunter2-secret")
    with pytest.raises(preflight.ConnectionProblem) as info:
        preflight.preflight(load_settings())
    assert info.value.exit_status == 2
    assert str(info.value).startswith(
        f"cannot load the TLS files (TAGSTREAM_KAFKA__SSL_CERTFILE={cert}, "
        f"TAGSTREAM_KAFKA__SSL_KEYFILE={key}, TAGSTREAM_KAFKA__SSL_PASSWORD): SSLError"
    )
    assert "hunter2" not in str(info.value)


def test_a_tls_alert_from_the_broker_is_definitive():
    alert = ssl.SSLError(
        1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required"
    )
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    with pytest.raises(
        preflight.ConnectionProblem,
        match=r"\(TLSV13_ALERT_CERTIFICATE_REQUIRED\); "
        r"the broker refused the handshake: does it require a client certificate",
    ):
        _classify(Errors.KafkaConnectionError(alert), security_protocol="SSL")
