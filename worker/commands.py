"""What each ``tagstream`` command does, once `tagstream.worker.cli` has parsed its arguments:
``run`` (the worker, with its signal handling), ``tag``, ``models`` and ``demo``.

Each command takes the parsed arguments and returns the exit status: 0 done; 1 failed at run
time (nothing undelivered was committed); 2 bad settings, arguments or model file. The heavy
imports (torch, kafka-python) happen inside the commands, so ``tagstream --help`` stays quick.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")

log = logging.getLogger("tagstream")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
WARM_UP_TEXT = "Ada Lovelace wrote the first program in London."  # tagged once before /readyz


# -- run -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from tagstream.worker import logs
    from tagstream.worker.config import ConfigError, check_environment, load_settings
    from tagstream.worker.http import Health, HttpServer
    from tagstream.worker.metrics import Metrics

    try:
        check_environment()
        settings = load_settings()
    except ConfigError as exc:
        print(f"tagstream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.configure(settings.log.level, settings.log.format)
    logs.redact(settings.kafka.secret_values())
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

    from tagstream.worker.kafka_auth import ConnectionProblem, preflight
    from tagstream.worker.pipeline import Pipeline, load_tagger
    from tagstream.worker.sink import Sink
    from tagstream.worker.source import Source

    def load_and_warm_up():  # noqa: ANN202
        tagger = load_tagger(settings.model.ref, settings.model.threads, settings.model.precision)
        # The first call of a TorchScript network plans its execution (8x a later call): spent
        # here, before /readyz, not on the first record a client is waiting for.
        tagger.tag_prepared([tagger.prepare(WARM_UP_TEXT)])
        return tagger

    try:
        tagger = _unless_stopped(load_and_warm_up, stop)
    except ValueError as exc:  # model.ArtifactError
        log.error("cannot load the model: %s", exc)
        return EXIT_USAGE
    if tagger is None:
        log.info("stopped during start-up, before joining the group")
        http.stop()
        return EXIT_OK
    metrics.set_model(tagger.name, tagger.version, tagger.precision)
    health.model_loaded = True
    log.info(
        "model loaded",
        extra={"model": f"{tagger.name}@{tagger.version}", "precision": tagger.info["precision"]},
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
    pipeline = Pipeline(settings, tagger, source, sink, metrics, health, stop)
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


# -- models --------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from tagstream.worker.pipeline import installed_models

    rows = [("name", "version", "language", "dev F1", "held-out F1", "size", "labels", "file")]
    for card in installed_models():
        f1, held = (f"{v:.2f}" if v is not None else "-" for v in (card.dev_f1, card.holdout_f1))
        rows.append(
            (
                card.name,
                card.version,
                card.language,
                f1,
                held,
                f"{card.size_mb:.1f} MB",
                " ".join(card.labels),
                str(card.path),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    print(
        "\nUse one with `tagstream tag --model NAME` or TAGSTREAM_MODEL__NAME=NAME; "
        "docs/models.md has their cards."
    )
    return EXIT_OK


# -- tag -----------------------------------------------------------------------------------


def cmd_tag(args: argparse.Namespace) -> int:
    from tagstream.worker import logs
    from tagstream.worker.messages import InvalidMessage, dumps, output_doc, parse_input
    from tagstream.worker.pipeline import load_tagger

    logs.configure("WARNING")
    try:
        tagger = load_tagger(args.model, args.threads, args.precision)
    except ValueError as exc:
        print(f"tagstream tag: cannot load the model: {exc}", file=sys.stderr)
        return EXIT_USAGE
    model_ref = f"{tagger.name}@{tagger.version}"
    name = str(args.input) if args.input else "-"
    errors = 0
    with contextlib.ExitStack() as files:
        try:
            inp = files.enter_context(open(args.input, "rb")) if args.input else sys.stdin.buffer
            out = files.enter_context(open(args.output, "wb")) if args.output else sys.stdout.buffer
        except OSError as exc:
            print(f"tagstream tag: cannot open {exc.filename}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
        for chunk in _chunks(_lines(inp, args.input_format), args.batch_size):
            docs, prepared = [], []
            for number, raw in chunk:
                source = {"file": name, "line": number}
                try:
                    doc_id, text = parse_input(raw, args.input_format, args.max_text_chars)
                except InvalidMessage as exc:
                    docs.append(
                        {
                            "id": None,
                            "error": {"class": exc.reason, "message": exc.message},
                            "source": source,
                        }
                    )
                    errors += 1
                    continue
                docs.append((doc_id, text, source))
                prepared.append(tagger.prepare(text))
            results = iter(tagger.tag_prepared(prepared))
            for doc in docs:
                if isinstance(doc, tuple):
                    doc_id, text, source = doc
                    doc = output_doc(
                        doc_id, next(results), model_ref, source, text if args.echo_text else None
                    )
                out.write(dumps(doc) + b"\n")
            out.flush()
    if errors:
        print(
            f'tagstream tag: {errors} line(s) could not be labelled (see their "error")',
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _lines(inp: IO[bytes], input_format: str) -> Iterator[tuple[int, bytes]]:
    """Numbered lines. JSON lines: blank lines are skipped. Text: every line is a text (a blank
    one gets no spans), so output line N answers input line N."""
    for number, raw in enumerate(inp, start=1):
        raw = raw.rstrip(b"\r\n")
        if input_format == "text" or raw.strip():
            yield number, raw


def _chunks(items: Iterator[tuple[int, bytes]], size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- demo ----------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from tagstream.worker import demo

    return demo.run(args)
