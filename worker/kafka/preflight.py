"""The start-up check of the connection to Kafka: it tells a wrong password, an unoffered SASL
mechanism or an untrusted certificate at once.

kafka-python retries a failed bootstrap until its timeout and then says only "Unable to
bootstrap", whatever the cause. `preflight` makes one connection to each bootstrap server in
turn, with the very settings and code the worker's clients use (kafka-python's connection
manager: TLS, SASL handshake and exchange), and classifies the first failure:

* the broker refused the credentials, the mechanism, or the client's authorisation; the TLS
  handshake failed on the certificate; a SASL mechanism or token provider failed: a
  `ConnectionProblem` (exit 1) whose message is the cause;
* kafka-python refuses the settings: a `ConnectionProblem` with exit status 2;
* nothing answered, a timeout, a dropped connection (a broker starting, a network blip): it
  tries again (all servers, with a short back-off) until the request timeout is over, then a
  `ConnectionProblem` "cannot connect" with the last error, and a hint when the broker dropped
  the connection as a listener of another protocol does.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Any

import kafka.errors as Errors
from kafka.net.transport import KafkaSSLTransport

from ..settings import Settings
from . import clients
from .patches import build_ssl_context

log = logging.getLogger(__name__)

EXIT_FAILED, EXIT_USAGE = 1, 2


# -- the start-up check --------------------------------------------------------------------


class ConnectionProblem(Exception):
    """A definitive reason the worker cannot use the cluster; `exit_status` 1 or 2."""

    def __init__(self, message: str, exit_status: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_status = exit_status


def preflight(settings: Settings) -> None:
    """Connect to the bootstrap servers in turn, again and again, until one accepts this
    client (return) or the request timeout is over. Raise `ConnectionProblem` at the first
    definitive failure, or at the end of the time with the last error seen."""
    k = settings.kafka
    _check_tls_files(clients.security(k))
    try:
        net, manager = clients.connection_manager(k)
    except (Errors.KafkaConfigurationError, ValueError, TypeError, OSError) as exc:
        raise ConnectionProblem(
            f"the Kafka client refuses these settings: {error_text(exc)}", EXIT_USAGE
        ) from None
    deadline = time.monotonic() + k.request_timeout_ms / 1000
    last: BaseException | None = None
    hint = None
    try:
        while True:
            waits = []
            for broker in manager.cluster.bootstrap_brokers():
                left_ms = (deadline - time.monotonic()) * 1000
                if left_ms <= 0:
                    break
                delay = manager.connection_delay(broker.node_id)
                if delay > 0:  # backing off after a failure
                    waits.append(delay)
                    continue
                address = f"{broker.host}:{broker.port}"
                conn = None
                try:
                    conn = manager.get_connection(
                        broker.node_id, timeout_ms=left_ms, refresh_metadata_on_err=False
                    )
                    net.run(manager.wait_for, conn.init_future, left_ms)
                    return
                except Exception as exc:  # noqa: BLE001 (classified below)
                    answered = conn is not None and conn.broker_version_data is not None
                    hint = classify(exc, settings, address, answered) or hint
                    last = exc
                    if conn is not None:
                        conn.close()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, *waits) if waits else min(left, 0.1))
    finally:
        manager.close()
        net.close()
    raise ConnectionProblem(
        f"cannot connect to Kafka at {k.bootstrap_servers} within "
        f"TAGSTREAM_KAFKA__REQUEST_TIMEOUT_MS={k.request_timeout_ms}: "
        f"{error_text(last) if last else 'no answer'}" + (f"; {hint}" if hint else "")
    )


def _check_tls_files(configs: dict[str, Any]) -> None:
    """Load the CA, certificate and key as kafka-python will (it would only fail later, at
    each connection attempt, and retry): a file that is not what it should be is exit 2."""
    if configs["security_protocol"] not in ("SSL", "SASL_SSL"):
        return
    ssl_configs = {
        **KafkaSSLTransport.DEFAULT_CONFIG,
        **{key: value for key, value in configs.items() if key.startswith("ssl_")},
    }
    try:
        build_ssl_context(ssl_configs)
    except (ssl.SSLError, OSError, ValueError) as exc:
        files = [
            f"TAGSTREAM_KAFKA__{key.upper()}={ssl_configs[key]}"
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
            if ssl_configs[key]
        ]
        raise ConnectionProblem(
            f"cannot load the TLS files ({', '.join(files) or 'the system CAs'}"
            f"{', TAGSTREAM_KAFKA__SSL_PASSWORD' if ssl_configs['ssl_password'] else ''}): "
            f"{error_text(exc)}",
            EXIT_USAGE,
        ) from None


_AUTH_ERRORS = (
    Errors.SaslAuthenticationFailedError,
    Errors.UnsupportedSaslMechanismError,
    Errors.IllegalSaslStateError,
    Errors.AuthorizationError,
)
_TRANSIENT = (
    Errors.KafkaConnectionError,
    Errors.KafkaTimeoutError,
    Errors.RequestTimedOutError,
    ConnectionError,
    TimeoutError,
)


def classify(exc: BaseException, settings: Settings, address: str, answered: bool) -> str | None:
    """Raise `ConnectionProblem` for a definitive failure; else (worth trying again) return a
    hint for the final message, or None."""
    k = settings.kafka
    protocol = f"TAGSTREAM_KAFKA__SECURITY_PROTOCOL={k.security_protocol}"
    sasl = ""
    if k.security_protocol.startswith("SASL"):
        sasl = f"SASL {k.sasl_mechanism}" + (
            f" as user {k.sasl_username!r}" if k.sasl_username else ""
        )
    if isinstance(exc, Errors.KafkaConfigurationError):
        raise ConnectionProblem(
            f"the Kafka client refuses these settings: {error_text(exc)}", EXIT_USAGE
        ) from None
    if isinstance(exc, Errors.UnsupportedSaslMechanismError):
        raise ConnectionProblem(
            f"Kafka at {address} refused {sasl}: {error_text(exc)}: the listener does not offer "
            f"TAGSTREAM_KAFKA__SASL_MECHANISM={k.sasl_mechanism}"
        ) from None
    if isinstance(exc, _AUTH_ERRORS):
        raise ConnectionProblem(
            f"Kafka at {address} refused {sasl or 'this client'}: {error_text(exc)}"
        ) from None
    if isinstance(exc, Errors.KafkaProtocolError) and not answered:
        raise ConnectionProblem(
            f"Kafka at {address} answered in another protocol ({error_text(exc)}): does {protocol} "
            "match that listener? (a TLS listener answers a PLAINTEXT client so)"
        ) from None
    tls = _ssl_error(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        ca = (
            f"TAGSTREAM_KAFKA__SSL_CAFILE={k.ssl_cafile}"
            if k.ssl_cafile
            else "the system's CAs (TAGSTREAM_KAFKA__SSL_CAFILE is not set)"
        )
        reason = str(tls.verify_message or tls.reason or tls)
        if "mismatch" in reason:
            advice = "the certificate is not for this host name or address"
        else:
            advice = f"{ca} does not hold the CA that signed it"
        raise ConnectionProblem(
            f"TLS handshake with Kafka at {address} failed: the broker's certificate is not "
            f"trusted ({reason}); {advice}"
        ) from None
    if tls is not None and not isinstance(tls, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        reason = str(tls.reason or tls)
        if "ALERT" in reason.upper():  # the broker's verdict on this client
            advice = (
                "the broker refused the handshake: does it require a client certificate "
                "(TAGSTREAM_KAFKA__SSL_CERTFILE / __SSL_KEYFILE) signed by a CA it trusts, "
                "or other TLS versions?"
            )
        else:
            advice = f"does {protocol} match that listener?"
        raise ConnectionProblem(
            f"TLS handshake with Kafka at {address} failed ({reason}); {advice}"
        ) from None
    # A socket error before the broker answered is the network's; after it (SASL under way),
    # only a dropped connection or a timeout is.
    if (
        isinstance(exc, _TRANSIENT)
        or (isinstance(exc, OSError) and not answered)
        or tls is not None
    ):
        if tls is not None or (not answered and "disconnected" in str(exc)):
            return (
                f"the broker at {address} closed the connection before answering: does "
                f"{protocol} match that listener?"
            )
        if answered and sasl and "disconnected" in str(exc):
            return f"the broker at {address} closed the connection during {sasl}"
        return None
    # Anything else came from the SASL mechanism itself (a token provider, Kerberos...).
    raise ConnectionProblem(
        f"{sasl or 'connecting'} to Kafka at {address} failed: {error_text(exc)}"
    ) from None


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind `exc` (kafka-python wraps it in KafkaConnectionError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ssl.SSLError):
            return exc
        seen.add(id(exc))
        wrapped = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc = exc.__cause__ or wrapped or exc.__context__
    return None


def error_text(exc: BaseException) -> str:
    """ "Name: message", without kafka-python's "[Error 58]" and repeated names."""
    name = type(exc).__name__
    message = str(exc.args[0]) if len(exc.args) == 1 else str(exc) if exc.args else ""
    while message.startswith(f"{name}: "):
        message = message[len(name) + 2 :]
    return f"{name}: {message}" if message and message != name else name
