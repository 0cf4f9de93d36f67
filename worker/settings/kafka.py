"""The ``kafka`` group of the settings tree (`tagstream.worker.settings`): the brokers, the
topics, the consumer group, the clients' timeouts and the TLS and SASL settings, read from
``TAGSTREAM_KAFKA__*``. As in the rest of the tree, each setting's type, bounds, default and
description (``Field(description=...)``) are its documentation. Below the group, the
checks between its settings: the SASL settings against the protocol and mechanism
(`check_sasl`), an OAUTHBEARER token provider that can be imported (`check_token_provider`), and
the risky but valid combinations logged at start-up (`kafka_warnings`). How the clients are
built from these settings is `tagstream.worker.kafka.clients`.
"""

from __future__ import annotations

import importlib.util
import re
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from .rules import env_name, import_object


class KafkaSettings(BaseModel):
    """Where to read, where to write, and how to talk to the brokers."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # as every group of the tree

    bootstrap_servers: str = Field(
        default="localhost:9092",
        description="Comma-separated host:port list of brokers to bootstrap from.",
    )
    input_topic: str = Field(
        default="tagstream-input",
        description="Texts are read from here. The three topics must exist and differ: the worker "
        "never creates topics (it checks at start-up and exits 1 naming the missing ones).",
    )
    output_topic: str = Field(
        default="tagstream-output", description="Each labelled record goes here."
    )
    dead_letter_topic: str = Field(
        default="tagstream-dead-letters",
        description="Each record that cannot be labelled goes here, unchanged, with headers "
        "saying why.",
    )
    group_id: str = Field(
        default="tagstream",
        description="The consumer group: workers with the same group id share the input topic's "
        "partitions.",
    )
    client_id: str = Field(
        default_factory=lambda: f"tagstream-{socket.gethostname()}",
        description="Client id of the consumer and the producer, as the brokers log it.",
    )
    transactional_id: str | None = Field(
        default=None,
        description="Exactly-once only: must be unique per running worker and stable across its "
        "restarts (a restart with the same id fences the crashed instance and aborts its open "
        'transaction). Default: "<group_id>-<hostname>" (the pod name on Kubernetes).',
    )
    group_instance_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=249,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Static group membership (KIP-345): a stable identity per worker, e.g. the "
        "pod name (the chart sets it so). A worker that restarts with the same id within the "
        "session timeout gets its partitions back at once, with no rebalance of the others; a "
        "worker that stops for good keeps its partitions unserved until the session timeout (a "
        "static member does not leave the group on shutdown). Unset: dynamic membership.",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a group without committed offsets starts reading."
    )
    on_unreadable: Literal["dead_letter", "stop"] = Field(
        default="dead_letter",
        description="A record the Kafka client cannot parse (a batch failing its CRC check, a "
        'header name that is not UTF-8). "dead_letter": after two more tries, move past the '
        "unreadable offsets and write one dead letter for them (reason unreadable_record; headers "
        "name the partition and the first and last offset skipped), counted in "
        'tagstream_unreadable_offsets_total. "stop": exit 1 without committing past it; an '
        "operator moves the group on by hand (docs/messages.md). A batch compressed with a codec "
        "whose library is missing stops the worker either way: that is the installation's fault, "
        "not the record's.",
    )
    assignment_strategy: Literal["range", "roundrobin", "cooperative-sticky"] = Field(
        default="range",
        description='Eager ("range") revokes every partition on each rebalance; '
        '"cooperative-sticky" moves only the partitions that change owner (KIP-429). Every '
        "worker of a group must use the same one.",
    )
    session_timeout_ms: int = Field(
        default=45_000,
        ge=1_000,
        description="A worker that stops heartbeating is removed from the group after this.",
    )
    heartbeat_interval_ms: int = Field(
        default=3_000, ge=100, description="At most a third of the session timeout."
    )
    max_poll_interval_ms: int = Field(
        default=300_000,
        ge=1_000,
        description="Longest time between two polls before the group evicts the worker; must "
        "exceed the drain timeout. Polling goes on while a batch is tagged, however long that "
        "takes.",
    )
    request_timeout_ms: int = Field(
        default=30_000,
        ge=1_000,
        description="Timeout of one broker request; also bounds one offset commit and how long "
        "start-up waits for a broker.",
    )
    reconnect_backoff_max_ms: int = Field(
        default=2_000,
        ge=50,
        le=300_000,
        description="Longest wait between two attempts to reconnect to a broker that is down "
        "(every client of the worker: consumer, producer, admin). The wait doubles from 50 ms "
        "after each failed attempt up to this: the longer it is, the longer a worker can sit idle "
        "after its broker is back (docs/operations.md#broker-outages compares it with "
        "kafka-python's own default, 30 s). A broker that is down gets a connection attempt from "
        "each client about this often.",
    )
    lag_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=3_600,
        description="How often tagstream_consumer_lag is refreshed: each owned partition's end "
        "offset, asked of the broker by a client of its own, minus the group's committed offset.",
    )
    delivery_timeout_ms: int = Field(
        default=120_000,
        ge=1_000,
        description="How long the producer keeps retrying one output before the worker gives up "
        "and exits (nothing is committed for an undelivered output, so a restart redoes it).",
    )
    linger_ms: int = Field(default=5, ge=0, description="Producer batching delay.")
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="none",
        description="Compression of the produced records (outputs and dead letters).",
    )
    max_request_size: int = Field(
        default=1_048_576,
        ge=1_024,
        description="Largest record the producer sends; a larger output is dead-lettered "
        "(output_too_large). The stricter of this and the output and dead-letter topics' "
        "max.message.bytes (read at start-up when the ACLs allow DescribeConfigs) applies.",
    )
    transaction_timeout_ms: int = Field(
        default=60_000,
        ge=1_000,
        description="Exactly-once only: the broker aborts a transaction left open longer than "
        "this (say, by a crashed worker whose successor has another transactional id).",
    )
    consumer_extra_config: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Options of kafka-python's KafkaConsumer that no setting here names, as a "
        'JSON object: {"fetch_max_bytes": 52428800, "client_rack": "eu-west-1a"}; every '
        "consumer of the worker gets them. Refused at start-up (exit 2): an option kafka-python "
        "does not have, one the settings above already set, and one that would break delivery "
        "(offset commits, isolation, deserializers); docs/configuration.md lists them.",
    )
    producer_extra_config: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="The same for the KafkaProducer (acks, idempotence, retries, transactions and "
        "serializers are the worker's).",
    )

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="TLS (SSL, SASL_SSL) and SASL authentication (SASL_PLAINTEXT, SASL_SSL).",
    )
    sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI", "AWS_MSK_IAM"]
        | None
    ) = Field(
        default=None,
        description="With SASL_*: PLAIN or SCRAM-* (a user name and password), OAUTHBEARER (a "
        "token from a file or a function), GSSAPI (Kerberos; extra tagstream[gssapi]) or "
        "AWS_MSK_IAM (the AWS credential chain and AWS_REGION, SASL_SSL only; extra "
        "tagstream[aws]). See docs/security.md.",
    )
    allow_plaintext_credentials: bool = Field(
        default=False,
        description="PLAIN sends the password, and OAUTHBEARER the bearer token, as they are: "
        "over SASL_PLAINTEXT anyone on the network path reads them, so the worker refuses that "
        "pair unless this is true (SCRAM never sends the password; SASL_SSL encrypts the "
        "connection).",
    )
    sasl_username: str | None = Field(
        default=None, description="PLAIN and SCRAM-* only, and required with them: the SASL user."
    )
    sasl_password: SecretStr | None = Field(
        default=None,
        description="PLAIN and SCRAM-* only, and required with them: the user's password.",
    )
    sasl_oauth_token_file: Path | None = Field(
        default=None,
        description="OAUTHBEARER: a file holding the token, read again for every new connection, "
        "so whatever renews it (a projected Kubernetes token, a sidecar) needs no restart. Or the "
        "next one.",
    )
    sasl_oauth_token_provider: str | None = Field(
        default=None,
        description='OAUTHBEARER: "package.module:function" returning the token, called for '
        "every new connection (cache inside it); or an object with a token() method. Or the "
        "previous one.",
    )
    sasl_kerberos_service_name: str = Field(
        default="kafka",
        min_length=1,
        description="GSSAPI: the service name of the brokers' Kerberos principal "
        '("<service>/<host>").',
    )
    sasl_kerberos_domain_name: str | None = Field(
        default=None,
        description="GSSAPI: the host part of the brokers' principal, when it is not the broker's "
        "host name.",
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="CA bundle (PEM file) the brokers' certificates must chain to; unset: the "
        "system's CAs.",
    )
    ssl_certfile: Path | None = Field(
        default=None,
        description="Client certificate (PEM file) for mutual TLS; set together with the key.",
    )
    ssl_keyfile: Path | None = Field(
        default=None,
        description="The client certificate's private key (PEM file); set together with the "
        "certificate.",
    )
    ssl_password: SecretStr | None = Field(
        default=None, description="Password of the client private key, if it is encrypted."
    )
    ssl_check_hostname: bool = Field(
        default=True, description="Check that the broker's certificate matches its host name."
    )

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        check_kafka(self)
        return self

    def warnings(self) -> list[str]:
        """Risky but valid combinations, logged at start-up."""
        return kafka_warnings(self)

    def effective_transactional_id(self) -> str:
        return self.transactional_id or f"{self.group_id}-{socket.gethostname()}"

    def secret_values(self) -> list[str]:
        """The passwords, for the log formatter to blank out wherever they would appear."""
        return [s.get_secret_value() for s in (self.sasl_password, self.ssl_password) if s]


# -- the rules between the Kafka settings ------------------------------------------------------


def kafka_vars(**values: Any) -> str:
    """'TAGSTREAM_KAFKA__A=1, TAGSTREAM_KAFKA__B=2' for a message about a combination."""
    return ", ".join(f"{env_name(('kafka', name))}={value}" for name, value in values.items())


# SASL mechanisms whose kafka-python implementation needs an optional package: (module, extra).
SASL_PACKAGES = {"GSSAPI": ("gssapi", "gssapi"), "AWS_MSK_IAM": ("botocore", "aws")}


def check_token_provider(spec: str) -> None:
    name = env_name(("kafka", "sasl_oauth_token_provider"))
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", spec):
        raise ValueError(f"{name}={spec!r}: expected 'package.module:function'")
    try:
        obj = import_object(spec)
    except ImportError as exc:
        raise ValueError(f"{name}={spec}: cannot import {exc.name or spec}: {exc}") from None
    except AttributeError as exc:
        raise ValueError(f"{name}={spec}: {exc}") from None
    except Exception as exc:  # the module failed while being imported
        raise ValueError(
            f"{name}={spec}: importing it failed: {type(exc).__name__}: {exc}"
        ) from None
    if not callable(obj) and not callable(getattr(obj, "token", None)):
        raise ValueError(
            f"{name}={spec}: neither a function returning a token nor a token "
            "provider (an object with a token() method)"
        )


def check_sasl(k: KafkaSettings) -> None:
    """The SASL settings of ``k`` fit its protocol and mechanism (each message names the
    variables; a secret's value never appears). Raises ValueError."""
    mechanism = k.sasl_mechanism
    if not k.security_protocol.startswith("SASL") and mechanism is None:
        return  # also the class's own default
    protocol = kafka_vars(security_protocol=k.security_protocol)
    if not k.security_protocol.startswith("SASL"):
        if mechanism is not None:
            raise ValueError(
                f"{protocol}, {kafka_vars(sasl_mechanism=mechanism)}: the "
                "protocol does not use SASL (use SASL_PLAINTEXT or SASL_SSL)"
            )
        return
    if mechanism is None:
        raise ValueError(f"{protocol} needs {env_name(('kafka', 'sasl_mechanism'))}")
    uses_password = mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
    credentials = {"sasl_username": k.sasl_username, "sasl_password": k.sasl_password}
    if uses_password:
        missing = [name for name, value in credentials.items() if value is None]
        if missing:
            raise ValueError(
                f"{protocol}, {kafka_vars(sasl_mechanism=mechanism)} needs "
                + ", ".join(env_name(("kafka", m)) for m in missing)
            )
    else:
        unused = [env_name(("kafka", n)) for n, value in credentials.items() if value is not None]
        if unused:
            raise ValueError(
                f"{kafka_vars(sasl_mechanism=mechanism)}: "
                f"{', '.join(unused)} not used by {mechanism}; unset"
            )
    oauth = {
        "sasl_oauth_token_file": k.sasl_oauth_token_file,
        "sasl_oauth_token_provider": k.sasl_oauth_token_provider,
    }
    given = [name for name, value in oauth.items() if value is not None]
    if mechanism == "OAUTHBEARER":
        if len(given) != 1:
            raise ValueError(
                f"{kafka_vars(sasl_mechanism=mechanism)} needs exactly one of "
                f"{env_name(('kafka', 'sasl_oauth_token_file'))}, "
                f"{env_name(('kafka', 'sasl_oauth_token_provider'))}"
            )
        if k.sasl_oauth_token_file is not None and not k.sasl_oauth_token_file.is_file():
            raise ValueError(
                f"{kafka_vars(sasl_oauth_token_file=k.sasl_oauth_token_file)}: no such file"
            )
        if k.sasl_oauth_token_provider is not None:
            check_token_provider(k.sasl_oauth_token_provider)
    elif given:
        raise ValueError(
            f"{kafka_vars(sasl_mechanism=mechanism)}: "
            f"{', '.join(env_name(('kafka', n)) for n in given)} only used by "
            "OAUTHBEARER; unset"
        )
    if (
        k.security_protocol == "SASL_PLAINTEXT"
        and mechanism in ("PLAIN", "OAUTHBEARER")
        and not k.allow_plaintext_credentials
    ):
        secret = "password" if mechanism == "PLAIN" else "bearer token"
        raise ValueError(
            f"{protocol}, {kafka_vars(sasl_mechanism=mechanism)}: the {secret} would cross the "
            "network unencrypted; use SASL_SSL (or SCRAM), or set "
            f"{env_name(('kafka', 'allow_plaintext_credentials'))}=true if the network is "
            "trusted"
        )
    if mechanism == "AWS_MSK_IAM" and k.security_protocol != "SASL_SSL":
        raise ValueError(
            f"{protocol}, {kafka_vars(sasl_mechanism=mechanism)}: AWS_MSK_IAM needs SASL_SSL"
        )
    package, extra = SASL_PACKAGES.get(mechanism, (None, None))
    if package is not None and importlib.util.find_spec(package) is None:
        raise ValueError(
            f"{kafka_vars(sasl_mechanism=mechanism)} needs the Python package "
            f"{package}, which is not installed: pip install 'tagstream[{extra}]'"
        )


def check_kafka(k: KafkaSettings) -> None:
    """The Kafka settings agree with each other and the files they name exist (ValueError)."""
    check_sasl(k)
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(k, name)
        if path is not None and not path.is_file():
            raise ValueError(f"{env_name(('kafka', name))}={path}: no such file")
    if (k.ssl_certfile is None) != (k.ssl_keyfile is None):
        raise ValueError(
            f"{kafka_vars(ssl_certfile=k.ssl_certfile, ssl_keyfile=k.ssl_keyfile)}: "
            "set both or neither"
        )
    if k.heartbeat_interval_ms * 3 > k.session_timeout_ms:
        combo = kafka_vars(
            heartbeat_interval_ms=k.heartbeat_interval_ms, session_timeout_ms=k.session_timeout_ms
        )
        raise ValueError(
            f"{combo}: the heartbeat interval must be at most a third of the session timeout"
        )
    if k.delivery_timeout_ms < k.linger_ms + k.request_timeout_ms:
        combo = kafka_vars(
            delivery_timeout_ms=k.delivery_timeout_ms,
            linger_ms=k.linger_ms,
            request_timeout_ms=k.request_timeout_ms,
        )
        raise ValueError(f"{combo}: the delivery timeout must be at least linger + request timeout")
    topics = [k.input_topic, k.output_topic, k.dead_letter_topic]
    if len(set(topics)) != 3:
        combo = kafka_vars(
            input_topic=k.input_topic,
            output_topic=k.output_topic,
            dead_letter_topic=k.dead_letter_topic,
        )
        raise ValueError(f"{combo}: the three topics must differ")


def kafka_warnings(k: KafkaSettings) -> list[str]:
    """Risky but valid combinations of the Kafka settings, logged at start-up."""
    out = []
    # The main thread waits for one batch's acknowledgements (up to the delivery timeout)
    # and then commits (up to the request timeout) between two polls.
    if k.delivery_timeout_ms + k.request_timeout_ms >= k.max_poll_interval_ms:
        combo = kafka_vars(
            delivery_timeout_ms=k.delivery_timeout_ms,
            request_timeout_ms=k.request_timeout_ms,
            max_poll_interval_ms=k.max_poll_interval_ms,
        )
        out.append(
            f"{combo}: "
            "while the broker is slow to acknowledge, the worker may wait longer than the max "
            "poll interval and be thrown out of its group (its batch is then redone)"
        )
    return out
