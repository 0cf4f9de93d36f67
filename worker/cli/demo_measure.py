"""``tagstream demo``, the measuring part: stream the sentences at a steady rate and print each
labelled result as it arrives, send a burst as fast as possible, and summarise (messages/s,
messages per CPU-second, p50/p99 end-to-end latency). Setting up the broker, the topics and the
worker is `tagstream.worker.cli.demo`.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections import Counter

BURST_REPEAT = 10  # the burst sends the sentences this many times


class DemoError(Exception):
    """A step of the demo failed; `status` is the demo's exit status."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status  # the demo's exit status


def say(line: str) -> None:
    print(line, flush=True)


class OutputReader(threading.Thread):
    """Reads the output topic; hands (arrival time, record value) to the main thread."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True, name="demo-output-reader")
        from kafka import TopicPartition

        from ..kafka import clients

        self._consumer = clients.local_consumer(bootstrap, fetch_max_wait_ms=10)
        parts = [TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic)]
        self._consumer.assign(parts)
        self._consumer.seek_to_beginning(*parts)
        self.arrivals: queue.Queue[tuple[float, int, dict]] = queue.Queue()
        self.labels: Counter[str] = Counter()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for records in self._consumer.poll(timeout_ms=50).values():
                now = time.time()
                for r in records:
                    doc = json.loads(r.value)
                    self.labels.update(s["label"] for s in entities_of(doc))
                    self.arrivals.put((now, r.timestamp, doc))
        self._consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def run_stream(
    bootstrap: str, topic: str, sentences: list[str], rate: float, outputs: OutputReader
) -> dict:
    """Phase 1: a steady stream; every result printed as it arrives."""
    from ..kafka import clients

    say(f"streaming    {len(sentences)} sentences at {rate:g} messages/s\n")
    producer = clients.local_producer(bootstrap, linger_ms=0)
    # The first send() would wait for the topic's metadata after the clock started: learn it now.
    producer.partitions_for(topic)
    texts = {f"s{i:04d}": s for i, s in enumerate(sentences)}
    latencies: list[float] = []
    sent_to_send: list[float] = []  # sent -> the worker's send of its output
    start = time.monotonic()
    for i, (doc_id, text) in enumerate(texts.items()):
        due = start + i / rate
        while (left := due - time.monotonic()) > 0:
            print_arrivals(outputs, texts, latencies, sent_to_send, min(0.01, left))
        _SENT[doc_id] = time.time()
        producer.send(topic, json.dumps({"id": doc_id, "text": text}).encode())
        producer.flush()
    deadline = time.monotonic() + 60
    while len(latencies) < len(texts) and time.monotonic() < deadline:
        print_arrivals(outputs, texts, latencies, sent_to_send, 0.05)
    producer.close()
    if len(latencies) < len(texts):
        raise DemoError(f"only {len(latencies)} of {len(texts)} outputs arrived")
    return {
        "messages": len(texts),
        "rate": rate,
        "latencies": latencies,
        "worker_latencies": sent_to_send,
    }


def print_arrivals(
    outputs: OutputReader,
    texts: dict[str, str],
    latencies: list[float],
    sent_to_send: list[float],
    wait_s: float,
) -> None:
    """Print the next arrival; append its latency, and the part of it up to the worker's send
    (the output's timestamp: the worker's producer stamps it when it sends)."""
    try:
        arrived, produced_ms, doc = outputs.arrivals.get(timeout=max(0.0, wait_s))
    except queue.Empty:
        return
    text = texts.get(doc["id"], "")
    latencies.append(arrived - _SENT[doc["id"]])
    sent_to_send.append(produced_ms / 1000 - _SENT[doc["id"]])
    if "spans" not in doc and all("text" not in e for e in entities_of(doc)):  # redacted
        say(f"{doc['id']}  {doc.get('text', '')}")
    else:
        say(f"{doc['id']}  {highlight(text, entities_of(doc))}")


def entities_of(doc: dict) -> list[dict]:
    """The spans of a span document, or the entities of an enriched or redacted one."""
    return doc["spans"] if "spans" in doc else doc.get("entities", [])


# When each demo message was sent (epoch seconds), by id: latency = arrival - sent.
_SENT: dict[str, float] = {}


def highlight(text: str, spans: list[dict]) -> str:
    """'Ryanair[ORG] flies to Kraków[LOC]' style, spans in order of appearance."""
    out, at = [], 0
    for s in sorted(spans, key=lambda s: s["start"]):
        out.append(text[at : s["start"]])
        out.append(
            f"\033[1m{s['text']}\033[0m[{s['label']}]"
            if sys.stdout.isatty()
            else f"{s['text']}[{s['label']}]"
        )
        at = s["end"]
    out.append(text[at:])
    return "".join(out)


def run_burst(bootstrap: str, topic: str, sentences: list[str], outputs: OutputReader) -> dict:
    """Phase 2: everything at once; throughput from the first send to the last output."""
    from ..kafka import clients

    say(f"\nburst        {len(sentences)} messages as fast as the producer sends them ...")
    producer = clients.local_producer(bootstrap, linger_ms=5)
    ids = []
    start = time.time()
    for i, text in enumerate(sentences):
        doc_id = f"b{i:05d}"
        ids.append(doc_id)
        _SENT[doc_id] = time.time()
        producer.send(topic, json.dumps({"id": doc_id, "text": text}).encode())
    producer.flush()
    producer.close()
    wanted, latencies, last = set(ids), [], start
    deadline = time.monotonic() + 180
    while wanted and time.monotonic() < deadline:
        try:
            arrived, _, doc = outputs.arrivals.get(timeout=0.5)
        except queue.Empty:
            continue
        if doc["id"] in wanted:
            wanted.discard(doc["id"])
            latencies.append(arrived - _SENT[doc["id"]])
            last = arrived
    if wanted:
        raise DemoError(f"{len(wanted)} burst outputs did not arrive")
    return {"messages": len(ids), "seconds": last - start, "latencies": latencies}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def print_summary(model_ref, args, streamed, burst, cpu_used, rss, dead, labels) -> None:
    lat = streamed["latencies"]
    blat = burst["latencies"]
    per_s = burst["messages"] / burst["seconds"]
    say("\n== summary ==")
    say(f"model         {model_ref}; 1 worker; {args.partitions} partitions")
    say(
        f"streamed      {streamed['messages']} messages at {streamed['rate']:g}/s: "
        f"end-to-end latency p50 {percentile(lat, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(lat, 0.99) * 1000:.0f} ms"
    )
    wlat = streamed.get("worker_latencies") or []
    if wlat:
        say(
            "              of which up to the worker's send (the output's timestamp): "
            f"p50 {percentile(wlat, 0.5) * 1000:.0f} ms, p99 {percentile(wlat, 0.99) * 1000:.0f} ms"
        )
    say(
        f"burst         {burst['messages']} messages in {burst['seconds']:.2f} s: "
        f"{per_s:,.0f} messages/s; "
        f"latency p50 {percentile(blat, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(blat, 0.99) * 1000:.0f} ms "
        "(includes queueing behind the burst)"
    )
    if cpu_used > 0:
        say(
            f"cpu           {cpu_used:.2f} CPU-seconds for the burst: "
            f"{burst['messages'] / cpu_used:,.0f} messages per CPU-second"
        )
    say(f"memory        {rss / 2**20:,.0f} MiB resident (the worker process)")
    say("entities      " + ", ".join(f"{label} {n}" for label, n in labels.most_common()))
    say(f"dead letters  {dead:.0f}")
