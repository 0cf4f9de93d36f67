"""``tagstream run``: the worker, with its signal handling. Settings, HTTP server and model
first (a SIGTERM meanwhile stops it at once), then the start-up check of the connection, the
Kafka clients, and the pipeline until a signal drains it. Also what ``tagstream run`` prints
about its settings instead of running: the list at the end of its ``--help``
(`settings_epilog`) and their JSON Schema (``--settings-schema``, `settings_schema`).

The heavy imports (torch, kafka-python) happen inside the command, so ``tagstream --help`` stays
quick.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import re
import shutil
import signal
import sys
import textwrap
import threading
from collections.abc import Callable
from typing import TypeVar

from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE

T = TypeVar("T")

log = logging.getLogger("tagstream")

WARM_UP_TEXT = "Ada Lovelace wrote the first program in London."  # tagged once before /readyz


def cmd_run(args: argparse.Namespace) -> int:
    if getattr(args, "settings_schema", False):
        print(settings_schema())
        return EXIT_OK

    from prometheus_client import CollectorRegistry

    from .. import logs
    from ..formats import Reader, RegistryUnavailable, Writer, registry_of
    from ..http import Health, HttpServer
    from ..metrics import Metrics
    from ..registry import RegistryRefused
    from ..settings import ConfigError, check_environment, load_settings

    try:
        check_environment()
        settings = load_settings()
    except ConfigError as exc:
        print(f"tagstream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(settings.log.level, settings.log.format)
    logs.redact(settings.secret_values())
    log.info("starting", extra={"settings": settings.redacted()})
    for warning in settings.kafka.warnings():
        log.warning("risky settings: %s", warning)

    stop = _install_signal_handlers()
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    health = Health(settings.http.max_loop_stall_s)
    try:
        http = HttpServer(settings.http.host, settings.http.port, registry, health).start()
    except OSError as exc:
        log.error("cannot serve HTTP on %s:%s: %s", settings.http.host, settings.http.port, exc)
        return EXIT_USAGE

    # Imported here: these pull in torch and kafka-python, slow to import for --help.
    from kafka.errors import KafkaConfigurationError, KafkaError

    from ..kafka.consumer import Source
    from ..kafka.preflight import ConnectionProblem, preflight
    from ..kafka.producer import Sink
    from ..models import load_tagger
    from ..pipeline import Pipeline
    from ..pointers import parse as parse_pointer
    from ..routing import Models

    def load_and_warm_up():  # noqa: ANN202
        m = settings.model
        taggers = []
        for ref in [m.ref, *(_ref(x) for x in m.extra)]:
            tagger = load_tagger(ref, m.threads, m.precision)
            # The first call of a TorchScript network plans its execution (8x a later call):
            # spent here, before /readyz, not on the first record a client is waiting for.
            tagger.tag_prepared([tagger.prepare(WARM_UP_TEXT)])
            taggers.append(tagger)
        return taggers

    try:
        taggers = _unless_stopped(load_and_warm_up, stop)
    except ValueError as exc:  # model.ArtifactError
        log.error("cannot load the model: %s", exc)
        return EXIT_USAGE
    if taggers is None:
        log.info("stopped during start-up, before joining the group")
        http.stop()
        return EXIT_OK
    try:
        models = Models.of(
            taggers,
            settings.model.select_header,
            parse_pointer(settings.model.select_pointer) if settings.model.select_pointer else None,
        )
    except ValueError as exc:
        log.error("TAGSTREAM_MODEL__EXTRA: %s", exc)
        http.stop()
        return EXIT_USAGE
    tagger = models.default
    unknown = sorted(set(settings.model.min_score_by_label) - models.labels())
    if unknown:
        log.error(
            "TAGSTREAM_MODEL__MIN_SCORE_BY_LABEL: %s has no label %s (its labels: %s)",
            ", ".join(f"{t.name}@{t.version}" for t in models.all),
            ", ".join(unknown),
            ", ".join(sorted(models.labels())),
        )
        http.stop()
        return EXIT_USAGE
    metrics.set_models([(t.name, t.version, t.precision) for t in models.all])
    health.model_loaded = True
    for loaded in models.all:
        log.info(
            "model loaded",
            extra={
                "model": f"{loaded.name}@{loaded.version}",
                "precision": dataclasses.asdict(loaded.precision_choice),
            },
        )

    try:  # fails fast, with the cause, on a rejected password, mechanism or certificate
        preflight(settings)
    except ConnectionProblem as exc:
        log.error("%s", exc)
        return exc.exit_status
    if stop.is_set():
        log.info("stopped during start-up, before joining the group")
        http.stop()
        return EXIT_OK

    try:
        source = Source(settings, metrics)
        missing = source.missing_topics(
            [
                settings.kafka.input_topic,
                settings.kafka.output_topic,
                settings.kafka.dead_letter_topic,
            ]
        )
        if missing:
            log.error("topics do not exist (create them first): %s", ", ".join(missing))
            source.close()
            return EXIT_FAILED
        sink = Sink(settings)
    except (KafkaConfigurationError, ValueError, RuntimeError, AssertionError, OSError) as exc:
        # kafka-python checks its settings when a client is made: a codec whose library is
        # missing (RuntimeError), an unknown option value, an unreadable certificate file
        log.error("the Kafka client refuses these settings: %s", exc or type(exc).__name__)
        return EXIT_USAGE
    except KafkaError as exc:
        log.error("cannot connect to Kafka at %s: %r", settings.kafka.bootstrap_servers, exc)
        return EXIT_FAILED
    registry = registry_of(settings, waiting=health.beat)
    try:
        reader, writer = Reader(settings, registry), Writer(settings, registry)
        writer.register()  # a refused output schema stops the worker here, not per record
    except (RegistryUnavailable, RegistryRefused) as exc:
        log.error("the schema registry at %s: %s", settings.schema_registry.url, exc)
        source.close()
        sink.close()
        return EXIT_FAILED
    pipeline = Pipeline(
        settings,
        tagger,
        source,
        sink,
        metrics,
        health,
        stop,
        reader=reader,
        writer=writer,
        models=models,
    )
    # What start-up made (torch, the model, the clients: ~200,000 objects) lives as long as the
    # process: out of the cyclic GC's reach, a full collection no longer walks it (113 ms on an
    # AMD EPYC, a pause in the middle of a batch that showed as the p99 latency).
    gc.collect()
    gc.freeze()
    try:
        status = pipeline.run()
    finally:
        http.stop()
        log.info("stopped")
    if pipeline.busy:  # a drain timeout left the model tagging a batch nobody will deliver
        logging.shutdown()
        sys.stdout.flush()
        os._exit(status)  # do not wait for the inference thread
    return status


def settings_schema() -> str:
    """``tagstream run --settings-schema``: the JSON Schema of the settings tree, with each
    setting's type, bounds, default and description."""
    import json

    from ..settings import Settings

    return json.dumps(Settings.model_json_schema(), indent=2, ensure_ascii=False)


# A sentence ends at a full stop followed by a space, but not the one of "e.g." or "i.e.".
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)\.(?=\s)")


def first_sentence(text: str) -> str:
    match = _SENTENCE_END.search(text)
    return text if match is None else text[: match.end()]


def settings_epilog(width: int | None = None) -> str:
    """The end of ``tagstream run --help``: every ``TAGSTREAM_*`` variable with its default and
    the first sentence of its description, from the same fields as docs/configuration.md."""
    from ..settings import default_text, settings_fields
    from ..settings.rules import env_name

    if width is None:  # as argparse's own formatter
        width = max(40, min(100, shutil.get_terminal_size().columns - 2))
    lines = textwrap.wrap(
        "Settings: these environment variables (and a .env file in the working directory), each "
        "with its default and the first sentence of its description. docs/configuration.md "
        "describes them in full; --settings-schema prints them as a JSON Schema.",
        width,
    )
    group: tuple[str, ...] | None = None
    for path, info in settings_fields():
        if path[:-1] != group:
            group = path[:-1]
            lines.append("")
        lines.append(f"  {env_name(path)} (default: {default_text(info)})")
        lines += textwrap.wrap(
            first_sentence(info.description or ""),
            width,
            initial_indent=" " * 6,
            subsequent_indent=" " * 6,
            break_long_words=False,
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def _unless_stopped(work: Callable[[], T], stop: threading.Event) -> T | None:
    """``work()`` on a thread of its own, while this (the main) thread stays free to take
    signals: a SIGTERM during a long start-up step (loading the model) is acted on at once.
    Returns None, leaving the step to the daemon thread, if a stop was requested first; raises
    what ``work`` raised."""
    done = threading.Event()
    result: list = []

    def run() -> None:
        try:
            result.append(("ok", work()))
        except BaseException as exc:  # noqa: BLE001 (re-raised on the main thread)
            result.append(("error", exc))
        finally:
            done.set()

    threading.Thread(target=run, name="tagstream-start-up", daemon=True).start()
    while not done.wait(0.1):
        if stop.is_set():
            return None
    kind, value = result[0]
    if kind == "error":
        raise value
    return value


def _install_signal_handlers() -> threading.Event:
    """SIGTERM/SIGINT set the stop flag (drain, then exit); a second one exits at once."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            log.warning("second %s: exiting without draining", signal.Signals(signum).name)
            os._exit(EXIT_FAILED)
        log.info("%s: stopping after the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _ref(text: str) -> str | os.PathLike:
    """An entry of TAGSTREAM_MODEL__EXTRA: an artifact path (it ends in .pt) or a name."""
    from pathlib import Path

    return Path(text) if text.endswith(".pt") else text
