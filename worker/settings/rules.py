"""The rules every group of the settings tree follows (`tagstream.worker.settings`): how a
setting is named in the environment (`env_name`), the error that lists every bad variable
(`ConfigError`) and how one pydantic error becomes one line of it (`describe`). A message names
the variables and their values, never a secret's. The rules between the Kafka settings are
`tagstream.worker.settings.kafka`'s.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from pydantic_settings import SettingsError

ENV_PREFIX = "TAGSTREAM_"
ENV_NESTED_DELIMITER = "__"


class ConfigError(Exception):
    """The settings are invalid; `problems` holds one line per bad variable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))


def env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part).upper() for part in loc)


SECRET_FIELDS = {"sasl_password", "ssl_password"}


def import_object(spec: str) -> Any:
    """The object named by "package.module:name" (name may be dotted: "mod:Class.attr")."""
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def describe(error: dict[str, Any]) -> str:
    loc = tuple(p for p in error["loc"] if not isinstance(p, int))
    message = error["msg"].removeprefix("Value error, ")
    if not loc or message.startswith(ENV_PREFIX):  # a combination: the message names the variables
        return message
    if len(loc) > 2:  # inside a JSON setting of a group: the variable, then the key
        key = ".".join(str(part) for part in loc[2:])
        return f"{env_name(loc[:2])}: {key}={error.get('input')!r}: {message}"
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
