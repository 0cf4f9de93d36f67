"""The worker's settings tree, read from the environment (and an optional `.env` file).

Every setting is an environment variable with the prefix ``TAGSTREAM_``; nested groups use a
double underscore: ``TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS``, ``TAGSTREAM_BATCHING__MAX_WAIT_MS``.
The whole tree is validated once at start-up (`load_settings`); an invalid value raises
`ConfigError`, whose message names the variable and the bad value (never the value of a secret).

This module is the tree: each setting, its type, bounds, default and its description
(``Field(description=...)``); `settings_fields` walks it. The documentation's table
(scripts/gen_docs.py), ``tagstream run --help`` and the JSON Schema of
``tagstream run --settings-schema`` are made from those fields. The ``kafka`` group, the
largest, is `tagstream.worker.settings.kafka`, with the checks between its settings. How every
setting is named and the wording of the errors are `tagstream.worker.settings.rules`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_origin
from unittest import mock

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from ..pointers import PointerError
from ..pointers import parse as parse_pointer
from .kafka import KafkaSettings
from .rules import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    ConfigError,
    describe,
    describe_unparsable,
    env_name,
)


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchingSettings(_Group):
    """When a micro-batch closes: whichever limit is reached first."""

    max_batch_records: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Records per batch. Larger batches use the CPU better (one model call for "
        "more texts) and raise throughput, up to a point; they add latency and bound the records "
        "redone after a crash.",
    )
    max_batch_tokens: int = Field(
        default=4_096,
        ge=1,
        description="Tokens per batch, so a few long texts don't make one huge, slow batch; a "
        "text longer than this is a batch of its own.",
    )
    max_wait_ms: int = Field(
        default=0,
        ge=0,
        description="How long the first record of a batch may wait for more while the model is "
        "free. 0: a batch starts as soon as the model is free, and what arrives while it tags "
        "waits for the next one, so batches grow with the load by themselves. A wait makes larger "
        "batches, fewer produce and commit round trips, at light load only, and adds latency "
        "(docs/delivery.md#micro-batching).",
    )


class ModelSettings(_Group):
    name: str | None = Field(
        default=None,
        min_length=1,
        description="An installed model by name (`tagstream models` lists them: en-news, "
        "en-social, zh-news and those of installed model packages); unset (and no path): en-news.",
    )
    path: Path | None = Field(
        default=None, description="A model artifact file (.pt), instead of a name."
    )
    extra: list[str] = Field(
        default_factory=list,
        description="More models served by the same worker, as a JSON list of names or artifact "
        'paths: ["zh-news", "en-social"]. A record chooses one by select_header or '
        "select_pointer (by its name, as `tagstream models` lists it); the others get the default "
        "model (name/path). Each model costs its own memory (docs/operations.md#sizing).",
    )
    select_header: str | None = Field(
        default=None,
        min_length=1,
        description="The header naming the model a record wants, e.g. tagstream-model. A name no "
        "loaded model has: a dead letter (unknown_model).",
    )
    select_pointer: str | None = Field(
        default=None,
        description="Else the field of the input document naming it, a JSON Pointer such as "
        "/lang_model.",
    )
    threads: int = Field(
        default=1,
        ge=0,
        le=256,
        description="Torch intra-op threads for the inference thread; 0 leaves torch's default "
        "(one per core). 1 by default: the main thread (Kafka, tokenising the next batch) runs "
        "beside it, and more threads than free cores make torch's thread pool slower, not faster. "
        "To use more cores, run more workers (docs/operations.md#sizing).",
    )
    precision: Literal["auto", "bfloat16", "float32"] = Field(
        default="auto",
        description="The network's numeric path. auto: float32 on every CPU; bfloat16 only when "
        "set (the speed of each path: docs/models.md#speed). The choice and its reason are logged "
        "at start-up and are a label of tagstream_model_info.",
    )
    batch_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long tagging one batch may take: this, plus timeout_ms_per_token for "
        "each token of the batch. Past it the batch's records are dead-lettered "
        "(tagging_timeout), the worker goes on with a fresh inference thread, and the late one "
        "finishes on its own; /healthz turns 503 when two late ones are still running (a hung "
        "model: restart me).",
    )
    timeout_ms_per_token: float = Field(
        default=5.0, ge=0, description="The per-token part of that budget (milliseconds)."
    )
    min_score: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Spans scored below this are left out of the output (0: every span the model "
        "finds). A span's score is the model's confidence in it: the mean over its tokens of the "
        "posterior probability of their tags. Each model card shows precision and recall at "
        "several floors (docs/models.md).",
    )
    min_score_by_label: dict[str, float] = Field(
        default_factory=dict,
        description="Floors per label, replacing min_score for those labels, as a JSON object: "
        '{"MISC": 0.8}. A label the model does not have is refused at start-up.',
    )

    @model_validator(mode="after")
    def _exists(self) -> ModelSettings:
        if self.select_pointer is not None:
            _pointer(("model", "select_pointer"), self.select_pointer, whole=False)
        if len(set(self.extra)) != len(self.extra):
            raise ValueError(f"{env_name(('model', 'extra'))}: a model is listed twice")
        for label, floor in self.min_score_by_label.items():
            if not 0 <= floor <= 1:
                raise ValueError(
                    f"{env_name(('model', 'min_score_by_label'))}: {label}: {floor} is not a "
                    "score (0 to 1)"
                )
        if self.path is not None and not self.path.is_file():
            raise ValueError(f"{env_name(('model', 'path'))}={self.path}: no such file")
        if self.path is not None and self.name is not None:
            raise ValueError(
                f"{env_name(('model', 'name'))}={self.name} and {env_name(('model', 'path'))}="
                f"{self.path}: set one of them"
            )
        return self

    @property
    def ref(self) -> str | Path | None:
        """What to load: the path, else the name, else None (the default model)."""
        return self.path if self.path is not None else self.name


class HttpSettings(_Group):
    host: str = Field(
        default="0.0.0.0",
        description="Address of the HTTP server (/metrics, /healthz, /readyz); an IPv6 address "
        '("::") serves IPv4 too where the OS allows. In a Kubernetes pod the kubelet\'s probes '
        "and Prometheus connect to the pod's IP, so keep all interfaces there (the default); "
        "outside a cluster, 127.0.0.1 keeps the endpoints to the machine itself. Either way the "
        "server is bounded: a fixed pool of threads, a cap on idle connections, 5 s to send a "
        "request.",
    )
    port: int = Field(default=8080, ge=0, le=65_535, description="Its port; 0 picks a free one.")
    max_loop_stall_s: float = Field(
        default=60.0,
        gt=0,
        description="/healthz turns 503 when the main loop has not turned for this long.",
    )


class OutputSettings(_Group):
    """What the worker writes for a labelled record (docs/messages.md#output-modes)."""

    mode: Literal["spans", "enrich", "redact"] = Field(
        default="spans",
        description="spans: a span document per text; enrich: the input document unchanged but "
        "for the entities, added at entities_pointer; redact: the input document with the entity "
        "mentions in its text replaced and the entities, without their text, at entities_pointer.",
    )
    format: Literal["json", "avro", "json_schema"] = Field(
        default="json",
        description="json; avro or json_schema: the Schema Registry's wire format, the schema "
        'registered under "<output topic>-value". avro writes the span document with the '
        "shipped Avro schema, or (enrich, redact of an avro input) the input's schema with the "
        "entities field added.",
    )
    entities_pointer: str = Field(
        default="/entities",
        description="enrich and redact: where the entities go in the output document (a JSON "
        "Pointer, RFC 6901); missing objects on the way are created.",
    )
    redact: Literal["mask", "pseudonym"] = Field(
        default="mask",
        description="redact: what replaces a mention: mask (mask_format) or pseudonym (the label, "
        '"_" and 12 hex digits of an HMAC-SHA256 of label and mention under pseudonym_key: the '
        "same mention gets the same pseudonym as long as the key stays).",
    )
    redact_by_label: dict[str, Literal["mask", "pseudonym", "keep"]] = Field(
        default_factory=dict,
        description='Per label, instead of redact for those labels, as a JSON object: {"MISC": '
        '"keep", "PER": "pseudonym"} (keep: the mention stays). A label the model does not '
        "have is refused at start-up.",
    )
    mask_format: str = Field(
        default="[{label}]",
        min_length=1,
        description="redact: a mask; {label} stands for the entity's label.",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="The pseudonyms' key, at least 16 bytes (in Kubernetes from a Secret); never "
        "logged.",
    )

    @model_validator(mode="after")
    def _usable(self) -> OutputSettings:
        _pointer(("output", "entities_pointer"), self.entities_pointer, whole=False)
        uses_key = "pseudonym" in (self.redact, *self.redact_by_label.values())
        if self.mode == "redact" and uses_key:
            key = self.pseudonym_key.get_secret_value() if self.pseudonym_key else ""
            if len(key.encode()) < 16:
                raise ValueError(
                    f"{env_name(('output', 'pseudonym_key'))}: pseudonyms need a key of at least "
                    "16 bytes"
                )
        return self


def _pointer(path: tuple[str, ...], value: str, whole: bool = True) -> tuple[str, ...]:
    """The tokens of a JSON Pointer setting; ValueError naming the variable."""
    try:
        tokens = parse_pointer(value)
    except PointerError as exc:
        raise ValueError(f"{env_name(path)}: {exc}") from None
    if not tokens and not whole:
        raise ValueError(f"{env_name(path)}: the empty pointer is the whole document")
    return tokens


class SchemaRegistrySettings(_Group):
    """A Schema Registry (the Confluent-compatible REST API), for input_format avro or
    json_schema and output.format avro or json_schema (docs/messages.md#avro-and-json-schema)."""

    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="The API's base URL: http://registry:8081 (Confluent, Karapace, Redpanda) or "
        "Apicurio's http://registry:8080/apis/ccompat/v7. Unset: no registry.",
    )
    username: str | None = Field(
        default=None, description="Basic authentication (Confluent Cloud: the API key)."
    )
    password: SecretStr | None = Field(
        default=None, description="Its password (the API secret); never logged."
    )
    cafile: Path | None = Field(
        default=None,
        description="CA certificates (PEM) to verify an https registry with, instead of the "
        "system's.",
    )
    timeout_s: float = Field(default=5.0, gt=0, description="Seconds to wait for one answer.")
    retry_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a lookup is retried while the registry does not answer; then the "
        "worker stops without moving past the record (a restart retries), rather than skip it.",
    )


class LogSettings(_Group):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description="Lowest level logged (kafka-python's own logs: WARNING and above).",
    )
    format: Literal["text", "json"] = Field(
        default="text",
        description="text, or json: one object per line with ts, level, logger, msg and the "
        "event's fields.",
    )


class Settings(BaseSettings):
    """The root of the tree. Construct through `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    delivery: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="at_least_once: a batch's outputs are acknowledged before its offsets are "
        "committed (a crash redoes at most one batch). exactly_once: each batch is one Kafka "
        "transaction.",
    )
    input_format: Literal["json", "text", "avro", "json_schema"] = Field(
        default="json",
        description='json: the value is an object {"id" (optional), "text"}; text: the whole '
        "value is the text; avro, json_schema: the Schema Registry's wire format "
        "(schema_registry.url), the text and id found by their pointers in the decoded record.",
    )
    text_pointer: str = Field(
        default="/text",
        description="json: where the text is in the input document, a JSON Pointer (RFC 6901), "
        "e.g. /payload/body. A record without a string there is a dead letter (missing_text, "
        "text_not_a_string).",
    )
    id_pointer: str = Field(
        default="/id",
        description="json: where the id is (a JSON Pointer); empty: the records have no id. Not a "
        "string or null there: a dead letter (invalid_id).",
    )
    echo_text: bool = Field(
        default=False,
        description='Copy the input text into the output value ("text"); output mode spans only.',
    )
    max_text_chars: int = Field(
        default=100_000, ge=1, description="Longer texts are dead-lettered (text_too_long)."
    )
    drain_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="SIGTERM: time allowed to finish tagging what was consumed, deliver it and "
        "commit; closing the clients then takes up to 5 s each. Must be shorter than the max poll "
        "interval.",
    )

    kafka: KafkaSettings = Field(
        default_factory=KafkaSettings,
        description="The brokers, the topics, the consumer group, the clients' timeouts, TLS and "
        "SASL (TAGSTREAM_KAFKA__*).",
    )
    batching: BatchingSettings = Field(
        default_factory=BatchingSettings,
        description="When a micro-batch closes (TAGSTREAM_BATCHING__*).",
    )
    model: ModelSettings = Field(
        default_factory=ModelSettings,
        description="The models served, their threads, numeric path, time budget and score "
        "floors (TAGSTREAM_MODEL__*).",
    )
    output: OutputSettings = Field(
        default_factory=OutputSettings,
        description="What the worker writes for a labelled record (TAGSTREAM_OUTPUT__*).",
    )
    schema_registry: SchemaRegistrySettings = Field(
        default_factory=SchemaRegistrySettings,
        description="The Schema Registry for Avro and JSON Schema records "
        "(TAGSTREAM_SCHEMA_REGISTRY__*).",
    )
    http: HttpSettings = Field(
        default_factory=HttpSettings,
        description="The HTTP server of /metrics, /healthz and /readyz (TAGSTREAM_HTTP__*).",
    )
    log: LogSettings = Field(
        default_factory=LogSettings, description="The log's level and format (TAGSTREAM_LOG__*)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        text = _pointer(("text_pointer",), self.text_pointer, whole=False)
        _pointer(("id_pointer",), self.id_pointer)
        mode = env_name(("output", "mode"))
        if self.output.mode != "spans" and self.echo_text:
            raise ValueError(
                f"{env_name(('echo_text',))}=true, {mode}={self.output.mode}: echoing is for the "
                "span document; this mode writes the input document itself"
            )
        if self.output.mode == "enrich" and self.input_format == "text":
            raise ValueError(
                f"{mode}=enrich, {env_name(('input_format',))}=text: enrich writes into a JSON "
                "input document"
            )
        entities = parse_pointer(self.output.entities_pointer)
        self._registry_formats(entities)
        if self.output.mode == "redact" and self.input_format == "json":
            shorter = min(len(text), len(entities))
            if text[:shorter] == entities[:shorter]:
                raise ValueError(
                    f"{env_name(('output', 'entities_pointer'))}={self.output.entities_pointer}, "
                    f"{env_name(('text_pointer',))}={self.text_pointer}: the entities would "
                    "overwrite the text or go inside it"
                )
        if self.drain_timeout_s * 1000 >= self.kafka.max_poll_interval_ms:
            raise ValueError(
                f"{env_name(('drain_timeout_s',))}={self.drain_timeout_s}, "
                f"{env_name(('kafka', 'max_poll_interval_ms'))}={self.kafka.max_poll_interval_ms}: "
                "the drain timeout must be shorter than the max poll interval"
            )
        return self

    def _registry_formats(self, entities: tuple[str, ...]) -> None:
        out = self.output
        formats = env_name(("input_format",)), env_name(("output", "format"))
        used = [
            f"{name}={value}"
            for name, value in zip(formats, (self.input_format, out.format), strict=True)
            if value in ("avro", "json_schema")
        ]
        if used and self.schema_registry.url is None:
            raise ValueError(f"{', '.join(used)}: needs {env_name(('schema_registry', 'url'))}")
        if out.format == "json_schema" and out.mode != "spans":
            raise ValueError(
                f"{formats[1]}=json_schema writes the span document; {out.mode} writes the "
                "input's own document: use json or avro"
            )
        if out.format == "avro" and out.mode != "spans":
            if self.input_format != "avro":
                raise ValueError(
                    f"{formats[1]}=avro with output mode {out.mode} writes the input's Avro "
                    f"schema with the entities added: {formats[0]} must be avro"
                )
            if len(entities) != 1:
                raise ValueError(
                    f"{env_name(('output', 'entities_pointer'))}={out.entities_pointer}: with "
                    "Avro output the entities are a field of the input record: one name, "
                    "such as /entities"
                )

    def secret_values(self) -> list[str]:
        """Every secret's value, for the log formatter to scrub wherever it might appear."""
        more = [self.schema_registry.password, self.output.pseudonym_key]
        return self.kafka.secret_values() + [s.get_secret_value() for s in more if s]

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data for logging; secrets appear as '**********'."""
        return self.model_dump(mode="json")


def _group(info: FieldInfo) -> type[BaseModel] | None:
    """The model of a field that is a group of settings, else None."""
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def settings_fields(
    model: type[BaseModel] = Settings, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], FieldInfo]]:
    """Every setting of the tree under ``model`` (a field that is no group) with its path, such
    as ``("kafka", "group_id")``: the model's own settings first, in definition order, then each
    group's. `env_name` of the path is the variable; the field's description documents it in
    docs/configuration.md (scripts/gen_docs.py), ``tagstream run --help`` and the JSON Schema of
    ``tagstream run --settings-schema``."""
    own, groups = [], []
    for name, info in model.model_fields.items():
        group = _group(info)
        if group is None:
            own.append(((*path, name), info))
        else:
            groups.append((group, (*path, name)))
    for group, group_path in groups:
        own.extend(settings_fields(group, group_path))
    return own


UNSET, REQUIRED = "unset", "required"


def default_text(info: FieldInfo) -> str:
    """A setting's default as it is shown (docs/configuration.md, ``tagstream run --help``): the
    value as the variable would hold it, `UNSET` for None, `REQUIRED` without a default. A
    default that depends on the machine shows ``<hostname>`` for this machine's name."""
    if info.default_factory is not None:
        with mock.patch.object(socket, "gethostname", return_value="<hostname>"):
            value = info.default_factory()  # type: ignore[call-arg]
    else:
        value = info.default
    if value is PydanticUndefined:
        return REQUIRED
    if value is None:
        return UNSET
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def env_names() -> set[str]:
    """Every environment variable the worker reads (used by the Helm chart's tests)."""
    return {env_name(path) for path, _ in settings_fields()}


# TAGSTREAM_* variables that are not settings: the project's own tools (the corpora, caches, the
# local broker, the fault suite, the image test) and the variables Kubernetes sets in every pod
# for each Service of its namespace (a release named "tagstream" makes TAGSTREAM_SERVICE_HOST,
# TAGSTREAM_PORT=tcp://..., TAGSTREAM_PORT_8080_TCP_ADDR and so on).
_TOOLS = re.compile(
    r"TAGSTREAM_(?:DATA_DIR|CACHE_DIR|FAULTS|FAULTS?_\w+|IMAGE_TEST_\w+"
    r"|KAFKA_(?:STATE|HEAP_OPTS|UP_TIMEOUT)|KAFKA_SECURITY\w*)"
)
_SERVICE_LINK = re.compile(
    r"TAGSTREAM_(?:\w+_)?(?:SERVICE_HOST|SERVICE_PORT(?:_\w+)?|PORT_\d+_(?:TCP|UDP|SCTP)\w*)"
)
_SERVICE_PORT = re.compile(r"TAGSTREAM_(?:\w+_)?PORT")  # its value: tcp://10.0.0.1:8080


def _not_a_setting(name: str, value: str) -> bool:
    return bool(
        _TOOLS.fullmatch(name)
        or _SERVICE_LINK.fullmatch(name)
        or (_SERVICE_PORT.fullmatch(name) and re.match(r"(tcp|udp|sctp)://", value))
    )


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Refuse a ``TAGSTREAM_*`` variable that is no setting (a misspelt name would otherwise be
    ignored, and its setting keep its default), naming the nearest real one. Raises
    `ConfigError`."""
    environ = os.environ if environ is None else environ
    known = env_names()
    problems = []
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in known or _not_a_setting(name, value):
            continue
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f"; did you mean {near[0]}?" if near else ""
        problems.append(f"{name}: not a setting{hint} (docs/configuration.md lists them)")
    if problems:
        raise ConfigError(problems)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the whole tree; raise `ConfigError` naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError([describe(e) for e in exc.errors()]) from None
    except SettingsError as exc:  # a value that cannot even be parsed (say, a group as a string)
        raise ConfigError(_not_json(os.environ) or [describe_unparsable(exc)]) from None


def _not_json(environ: Mapping[str, str]) -> list[str]:
    """The settings given as JSON (a dict or list field of a group) whose variable does not
    hold JSON: pydantic-settings names only the group."""
    problems = []
    for group, info in Settings.model_fields.items():
        annotation = info.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            continue
        for field, sub in annotation.model_fields.items():
            if get_origin(sub.annotation) not in (dict, list):
                continue
            name = env_name((group, field))
            value = environ.get(name)
            if value is None:
                continue
            try:
                json.loads(value)
            except ValueError:
                example = '{"MISC": 0.8}' if get_origin(sub.annotation) is dict else '["a"]'
                problems.append(f"{name}={value!r}: not JSON; expected e.g. {example}")
    return problems
