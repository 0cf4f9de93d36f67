"""Issue 21 on the real broker: a batch whose offset commit the group refuses with a generation
error, then a revocation of some of its partitions, then more batches of the partitions kept.
The partitions that moved must start, with their new owner, at or before every record this
worker gave up: the group's committed offsets never pass a record without an output.

The refusal is forced, not waited for: exactly-once hands the broker group metadata one
generation old (the broker answers ILLEGAL_GENERATION, kafka-python's real error path follows);
at-least-once, whose commit goes through the consumer, has that commit raise kafka-python's
CommitFailedError once. A gate then holds the tagger, so that nothing is delivered until a second
member of the group has taken its share of the partitions. The worker's loop runs in-process,
with both real Kafka clients and a tagger that finds nothing (the model plays no part here)."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError
from prometheus_client import CollectorRegistry

from tagstream.worker.http import Health
from tagstream.worker.kafka.consumer import ASSIGNORS, Source
from tagstream.worker.kafka.producer import Sink
from tagstream.worker.metrics import Metrics
from tagstream.worker.pipeline import Pipeline
from tagstream.worker.records import TopicPartition
from tagstream.worker.settings import load_settings
from tests.integration.kit import kafka_settings, read_all

PARTITIONS = 4


class GatedTagger:
    """Finds nothing; once `hold` is set, every batch waits for `gate`."""

    name, version, precision = "gated", "0", "float32"

    def __init__(self) -> None:
        self.hold = False
        self.gate = threading.Event()

    def prepare(self, text: str):
        return SimpleNamespace(num_tokens=1)

    def tag_prepared(self, docs):
        if self.hold:
            assert self.gate.wait(60), "the gate was never opened"
        return [[] for _ in docs]


class Member:
    """A second member of the group: a plain consumer that polls and never commits."""

    def __init__(self, bootstrap: str, topic: str, group: str, strategy: str):
        self._consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            isolation_level="read_committed",
            partition_assignment_strategy=ASSIGNORS[strategy],
        )
        self.owned: set[TopicPartition] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._consumer.poll(timeout_ms=100)
            assigned = self._consumer.assignment()
            self.owned = {TopicPartition(tp.topic, tp.partition) for tp in assigned}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close(autocommit=False)


def produce_one_each(producer: KafkaProducer, topic: str, tag: str, partitions) -> None:
    for tp in partitions:
        value = json.dumps({"id": f"{tp.partition}-{tag}", "text": "Oslo"}).encode()
        producer.send(topic, value, partition=tp.partition)
    producer.flush()


def turn_until(pipeline: Pipeline, condition, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        pipeline.turn()


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_a_refused_commit_then_a_revocation_loses_nothing(cluster, bootstrap, strategy, delivery):
    topics = cluster.create_topics(partitions=PARTITIONS)
    everything = [TopicPartition(topics.input, p) for p in range(PARTITIONS)]
    settings = load_settings(
        delivery=delivery,
        kafka=kafka_settings(
            bootstrap, topics, assignment_strategy=strategy, transactional_id=f"{topics.group}-a"
        ),
        batching={"max_batch_records": PARTITIONS, "max_wait_ms": 50},
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry, process_metrics=False)

    def commit_failures() -> float:
        return registry.get_sample_value("tagstream_commit_failures_total") or 0.0

    tagger = GatedTagger()
    source, sink = Source(settings, metrics), Sink(settings)
    pipeline = Pipeline(settings, tagger, source, sink, metrics, Health(60), threading.Event())
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    member = None
    try:
        # 0. One record in every partition, delivered and committed.
        produce_one_each(producer, topics.input, "a", everything)
        turn_until(
            pipeline,
            lambda: len(cluster.committed(topics.group, topics.input)) == PARTITIONS,
            "the first batch is committed",
        )

        # 1. The next batch (offset 1 everywhere) is delivered; its offset commit is refused.
        failures = commit_failures()
        refuse_next_commit(source, sink, delivery)
        produce_one_each(producer, topics.input, "b", everything)
        turn_until(
            pipeline,
            lambda: commit_failures() > failures,
            "the commit is refused",
        )
        tagger.hold = True  # nothing more is delivered until the group has moved partitions

        # 2. A second member joins; the group moves some partitions to it.
        member = Member(bootstrap, topics.input, topics.group, strategy)
        turn_until(
            pipeline,
            lambda: member.owned and source.owned() == set(everything) - member.owned,
            "the second member takes its share",
        )
        moved, kept = member.owned, source.owned()

        # 3. This worker goes on with the partitions it kept.
        tagger.gate.set()
        produce_one_each(producer, topics.input, "c", kept)
        turn_until(
            pipeline,
            lambda: all(
                cluster.committed(topics.group, topics.input).get(tp.partition, 0) >= 3
                for tp in kept
            ),
            "the kept partitions are committed past the new records",
        )
    finally:
        if member is not None:
            member.close()
        source.close(1.0)
        sink.close(0.0)
        producer.close()

    committed = cluster.committed(topics.group, topics.input)
    outputs = read_all(bootstrap, topics.output, lambda rs: False, timeout_s=3)
    labelled = {json.loads(r.value)["id"] for r in outputs}
    skipped = [
        f"{tp.partition}-{tag}"
        for tp in moved
        for offset, tag in enumerate("ab")
        if offset < committed[tp.partition] and f"{tp.partition}-{tag}" not in labelled
    ]
    assert not skipped, (
        f"the group committed {committed} past inputs without an output: {skipped} "
        f"(partitions moved to the other member: {sorted(tp.partition for tp in moved)})"
    )
    if delivery == "exactly_once":  # the aborted batch's records there are the new owner's
        assert {committed[tp.partition] for tp in moved} == {1}
    cluster.delete(topics)


def refuse_next_commit(source: Source, sink: Sink, delivery: str) -> None:
    if delivery == "exactly_once":
        real = source.group_metadata

        def one_generation_old():
            source.group_metadata = real
            metadata = real()
            return metadata._replace(generation_id=metadata.generation_id - 1)

        source.group_metadata = one_generation_old
    else:
        real_commit = source._consumer.commit

        def refused(*args, **kwargs):
            source._consumer.commit = real_commit
            raise CommitFailedError("the group has moved to a newer generation")

        source._consumer.commit = refused
