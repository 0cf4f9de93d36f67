"""The settings' rules and messages, apart from the tree itself (`tagstream.worker.config`).

How a setting is named in the environment (`env_name`), the error that lists every bad
variable (`ConfigError`) and how one pydantic error becomes one line of it (`describe`), and the
checks that need more than a field's type and bounds: the SASL settings against the protocol
and mechanism (`check_sasl`), an OAUTHBEARER token provider that can be imported
(`check_token_provider`). A message names the variables and their values, never a secret's.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from typing import TYPE_CHECKING, Any

from pydantic_settings import SettingsError

if TYPE_CHECKING:
    from tagstream.worker.kafka_settings import KafkaSettings

ENV_PREFIX = "TAGSTREAM_"
ENV_NESTED_DELIMITER = "__"


class ConfigError(Exception):
    """The settings are invalid; `problems` holds one line per bad variable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))


def env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part).upper() for part in loc)


def kafka_vars(**values: Any) -> str:
    """'TAGSTREAM_KAFKA__A=1, TAGSTREAM_KAFKA__B=2' for a message about a combination."""
    return ", ".join(f"{env_name(('kafka', name))}={value}" for name, value in values.items())


SECRET_FIELDS = {"sasl_password", "ssl_password"}

# SASL mechanisms whose kafka-python implementation needs an optional package: (module, extra).
SASL_PACKAGES = {"GSSAPI": ("gssapi", "gssapi"), "AWS_MSK_IAM": ("botocore", "aws")}


def import_object(spec: str) -> Any:
    """The object named by "package.module:name" (name may be dotted: "mod:Class.attr")."""
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


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


def describe(error: dict[str, Any]) -> str:
    loc = tuple(p for p in error["loc"] if not isinstance(p, int))
    message = error["msg"].removeprefix("Value error, ")
    if not loc or message.startswith(ENV_PREFIX):  # a combination: the message names the variables
        return message
    name = env_name(loc)
    if error["type"] == "extra_forbidden":  # a typo; its value may be a misspelt secret
        return f"{name}: not a setting (check the spelling)"
    if loc[-1] in SECRET_FIELDS:
        return f"{name}: {message}"
    value = error.get("input")
    if isinstance(value, dict):  # a group-level check
        return f"{name}: {message}"
    return f"{name}={value!r}: {message}"


def describe_unparsable(exc: SettingsError) -> str:
    """pydantic-settings says 'error parsing value for field "kafka" from source "..."'; name
    the variable, never the value (it may hold a secret)."""
    match = re.search(r'field "([^"]+)" from source "([^"]+)"', str(exc))
    if match is None:
        return f"unreadable settings: {exc}"
    field, source = match.groups()
    where = "the .env file" if "DotEnv" in source else "the environment"
    return (
        f"{env_name((field,))} (in {where}): cannot be parsed; groups are set "
        f"variable by variable: {env_name((field,))}__<SETTING>"
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
