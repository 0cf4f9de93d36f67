"""Every kafka-python client the worker makes, built here from the settings, so that a
client-wide setting (a timeout, the TLS and SASL settings) reaches all of them at once:

* `group_consumer`: the input, as a member of the consumer group (`consumer.Source`);
* `lag_consumer`: end offsets for ``tagstream_consumer_lag``, outside the group (`lag`);
* `probe_consumer`: single offsets of one partition, to find unreadable records (`unreadable`);
* `producer`: outputs and dead letters (`producer.Sink`);
* `admin`: the topics' ``max.message.bytes`` at start-up;
* `connection_manager`: the one connection of the start-up check (`preflight`);
* `local_admin`, `local_producer`, `local_consumer`: clients of a local plaintext broker
  without settings, for ``tagstream demo``.

Each builder first installs the fixes of `patches` that mend kafka-python itself
(`install_fixes`); a kafka-python version they were not written for gets a warning instead.
The options no setting names come from ``TAGSTREAM_KAFKA__CONSUMER_EXTRA_CONFIG`` and
``..._PRODUCER_EXTRA_CONFIG`` (`extra_config`), after the worker's own are refused from them.
"""

from __future__ import annotations

import logging
from typing import Any

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.net.manager import KafkaConnectionManager
from kafka.net.selector import NetworkSelector

from ..settings import Settings
from ..settings.kafka import KafkaSettings
from . import patches
from .oauth import token_provider

log = logging.getLogger(__name__)

_installed: bool | None = None  # None: not tried yet


def install_fixes() -> bool:
    """Install `patches.fix_transport` once; False (and one warning) on a kafka-python version
    it was not written for, where the clients work without it but a rejected SASL exchange may
    be reported only as "socket disconnected"."""
    global _installed
    if _installed is None:
        _installed = patches.fix_transport()
        if not _installed:
            log.warning(
                "kafka-python %s is not the version tagstream's transport fix was written for "
                "(%s): left out; a broker's last answer before it closes a connection may be "
                "lost (pyproject.toml pins the version)",
                kafka.__version__,
                ", ".join(sorted(patches.FIXED_VERSIONS)),
            )
    return _installed


def security(k: KafkaSettings) -> dict[str, Any]:
    """The kafka-python keyword arguments for TLS and SASL (shared by all clients)."""
    out: dict[str, Any] = {"security_protocol": k.security_protocol}
    if k.security_protocol.startswith("SASL"):
        out["sasl_mechanism"] = k.sasl_mechanism
        if k.sasl_password is not None:  # PLAIN, SCRAM-*
            out.update(
                sasl_plain_username=k.sasl_username,
                sasl_plain_password=k.sasl_password.get_secret_value(),
            )
        if k.sasl_mechanism == "OAUTHBEARER":
            out["sasl_oauth_token_provider"] = token_provider(
                k.sasl_oauth_token_file, k.sasl_oauth_token_provider
            )
        if k.sasl_mechanism == "GSSAPI":
            out.update(
                sasl_kerberos_service_name=k.sasl_kerberos_service_name,
                sasl_kerberos_domain_name=k.sasl_kerberos_domain_name,
            )
    if k.security_protocol in ("SSL", "SASL_SSL"):
        out.update(
            ssl_cafile=str(k.ssl_cafile) if k.ssl_cafile else None,
            ssl_certfile=str(k.ssl_certfile) if k.ssl_certfile else None,
            ssl_keyfile=str(k.ssl_keyfile) if k.ssl_keyfile else None,
            ssl_password=k.ssl_password.get_secret_value() if k.ssl_password else None,
            ssl_check_hostname=k.ssl_check_hostname,
        )
    return out


def connection(k: KafkaSettings) -> dict[str, Any]:
    """How every client reaches the brokers: where, with which timeouts, TLS and SASL."""
    install_fixes()
    return {
        "bootstrap_servers": k.bootstrap_servers.split(","),
        "request_timeout_ms": k.request_timeout_ms,
        "reconnect_backoff_max_ms": k.reconnect_backoff_max_ms,
        **security(k),
    }


# Options that are never taken from the extra config: delivery depends on them (offsets committed
# only after delivery, read_committed, idempotent acks=all, transactions, bytes in and out), or
# their value is a Python object no environment variable can hold.
UNSAFE = {
    "consumer": {
        "enable_auto_commit": "offsets are committed after delivery, never automatically",
        "auto_commit_interval_ms": "offsets are committed after delivery, never automatically",
        "default_offset_commit_callback": "offsets are committed after delivery",
        "isolation_level": "the worker reads read_committed (never aborted transactions)",
        "key_deserializer": "the worker reads raw bytes",
        "value_deserializer": "the worker reads raw bytes",
        "consumer_timeout_ms": "the worker polls with its own timeouts",
        "exclude_internal_topics": "the worker subscribes to one topic",
    },
    "producer": {
        "acks": "outputs are acknowledged by every in-sync replica (acks=all)",
        "enable_idempotence": "the producer is idempotent: no duplicates from its retries",
        "retries": "idempotence and delivery_timeout_ms bound the retries",
        "max_in_flight_requests_per_connection": "more than 5 would reorder an idempotent producer",
        "transactional_id": "TAGSTREAM_KAFKA__TRANSACTIONAL_ID sets it",
        "key_serializer": "the worker writes raw bytes",
        "value_serializer": "the worker writes raw bytes",
    },
}
KNOWN = {
    "consumer": set(KafkaConsumer.DEFAULT_CONFIG),
    "producer": set(KafkaProducer.DEFAULT_CONFIG),
}
_OBJECTS = {"selector", "kafka_client", "ssl_context", "socket_options", "metric_reporters",
            "partitioner", "sasl_oauth_token_provider"}  # fmt: skip


# What the worker sets itself, from its settings (besides `connection` and the TLS and SASL
# options): an extra option may not override it.
OWNED = {
    "consumer": {
        "bootstrap_servers", "request_timeout_ms", "reconnect_backoff_max_ms",
        "security_protocol", "client_id", "group_id", "group_instance_id", "auto_offset_reset",
        "partition_assignment_strategy", "max_poll_records", "max_poll_interval_ms",
        "session_timeout_ms", "heartbeat_interval_ms", "bootstrap_timeout_ms",
        "allow_auto_create_topics",
    },
    "producer": {
        "bootstrap_servers", "request_timeout_ms", "reconnect_backoff_max_ms",
        "security_protocol", "client_id", "linger_ms", "compression_type",
        "delivery_timeout_ms", "max_request_size", "batch_size", "allow_auto_create_topics",
        "transaction_timeout_ms",
    },
}  # fmt: skip


def extra_config(k: KafkaSettings, role: str) -> dict[str, Any]:
    """The consumer's or producer's extra options, checked: ValueError naming the variable and
    each option refused (unknown to kafka-python, set by the worker, or unsafe)."""
    given = k.consumer_extra_config if role == "consumer" else k.producer_extra_config
    if not given:
        return {}
    known = KNOWN[role]
    problems = []
    for name in sorted(given):
        if name not in known:
            problems.append(f"{name}: not a kafka-python {role} option")
        elif name in OWNED[role] or name.startswith(("sasl_", "ssl_")):
            problems.append(f"{name}: set by the worker from its settings")
        elif name in UNSAFE[role]:
            problems.append(f"{name}: {UNSAFE[role][name]}")
        elif name in _OBJECTS:
            problems.append(f"{name}: takes a Python object, not a value")
    if problems:
        variable = f"TAGSTREAM_KAFKA__{role.upper()}_EXTRA_CONFIG"
        raise ValueError(f"{variable}: " + "; ".join(problems))
    return dict(given)


def _consumer(k: KafkaSettings, **options: Any) -> KafkaConsumer:
    configs = {**connection(k), **options}
    return KafkaConsumer(**configs, **extra_config(k, "consumer"))


def group_consumer(settings: Settings, assignors: tuple) -> KafkaConsumer:
    """The group member that consumes the input; offsets are committed only when told."""
    k = settings.kafka
    return _consumer(
        k,
        client_id=k.client_id,
        group_id=k.group_id,
        group_instance_id=k.group_instance_id,  # static membership when set (KIP-345)
        enable_auto_commit=False,  # offsets are committed after delivery, never before
        auto_offset_reset=k.auto_offset_reset,
        isolation_level="read_committed",  # never label an aborted upstream transaction
        partition_assignment_strategy=assignors,
        max_poll_records=settings.batching.max_batch_records,
        max_poll_interval_ms=k.max_poll_interval_ms,
        session_timeout_ms=k.session_timeout_ms,
        heartbeat_interval_ms=k.heartbeat_interval_ms,
        bootstrap_timeout_ms=k.request_timeout_ms,  # how long start-up waits for a broker
        allow_auto_create_topics=False,
    )


def lag_consumer(k: KafkaSettings) -> KafkaConsumer:
    """Outside the group: asks the brokers for end offsets only."""
    return _consumer(k, client_id=f"{k.client_id}-lag", group_id=None, enable_auto_commit=False)


def probe_consumer(k: KafkaSettings) -> KafkaConsumer:
    """Outside the group: reads one record of one partition at a time."""
    return _consumer(
        k,
        client_id=f"{k.client_id}-probe",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=1,
    )


def producer(settings: Settings, batch_size: int) -> KafkaProducer:
    """Idempotent, acks=all; transactional in exactly-once mode."""
    k = settings.kafka
    transactions = {}
    if settings.delivery == "exactly_once":
        transactions = {
            "transactional_id": k.effective_transactional_id(),
            "transaction_timeout_ms": k.transaction_timeout_ms,
        }
    configs = {
        **connection(k),
        "client_id": k.client_id,
        "acks": "all",
        "enable_idempotence": True,  # no duplicates or reordering from producer retries
        "linger_ms": k.linger_ms,
        "compression_type": None if k.compression_type == "none" else k.compression_type,
        "delivery_timeout_ms": k.delivery_timeout_ms,
        "max_request_size": k.max_request_size,
        "batch_size": batch_size,
        "allow_auto_create_topics": False,
        **transactions,
    }
    return KafkaProducer(**configs, **extra_config(k, "producer"))


def replay_consumer(k: KafkaSettings, group: str, batch_records: int) -> KafkaConsumer:
    """``tagstream replay``'s reader of the dead-letter topic: partitions assigned by the replay,
    offsets committed only through its transactions."""
    return _consumer(
        k,
        client_id=f"{k.client_id}-replay",
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=batch_records,
        allow_auto_create_topics=False,
    )


def replay_producer(k: KafkaSettings, group: str) -> KafkaProducer:
    """``tagstream replay``'s writer: transactional, one transactional id per replay group."""
    configs = {
        **connection(k),
        "client_id": f"{k.client_id}-replay",
        "acks": "all",
        "enable_idempotence": True,
        "transactional_id": f"{group}-producer",
        "transaction_timeout_ms": k.transaction_timeout_ms,
        "delivery_timeout_ms": k.delivery_timeout_ms,
        "max_request_size": k.max_request_size,
        "allow_auto_create_topics": False,
    }
    return KafkaProducer(**configs, **extra_config(k, "producer"))


def admin(k: KafkaSettings) -> KafkaAdminClient:
    return KafkaAdminClient(**connection(k), client_id=k.client_id)


def connection_manager(k: KafkaSettings) -> tuple[NetworkSelector, KafkaConnectionManager]:
    """kafka-python's connection manager and its network loop, as its clients make them, with
    a short reconnect back-off: the start-up check connects to one broker at a time."""
    net = NetworkSelector(client_id=k.client_id)
    configs = {**connection(k), "reconnect_backoff_max_ms": 1000}
    return net, KafkaConnectionManager(net, client_id=k.client_id, **configs)


# -- a local broker, without settings (tagstream demo) ----------------------------------------


def local_admin(bootstrap: str, client_id: str) -> KafkaAdminClient:
    install_fixes()
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)


def local_producer(bootstrap: str, **options: Any) -> KafkaProducer:
    install_fixes()
    return KafkaProducer(bootstrap_servers=bootstrap, **options)


def local_consumer(bootstrap: str, **options: Any) -> KafkaConsumer:
    install_fixes()
    return KafkaConsumer(bootstrap_servers=bootstrap, **options)
