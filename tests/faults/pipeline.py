"""The fault scenarios' pipeline: one consumer group's own topics, worker processes, a steady
stream in and a reader out (the shared pieces are in tests/faults/faultkit.py)."""

from __future__ import annotations

from tests.faults.faultkit import OutputWatch, wait_for

# -- a pipeline: topics, workers, a steady stream in, a reader out -------------------------------


class Pipeline:
    """One consumer group's worth: its own topics, `workers` worker processes (transactional ids
    "<group>-a", "-b", ...), a steady stream of inputs and an `OutputWatch` on the outputs.
    Several pipelines can live through one broker fault side by side."""

    def __init__(
        self,
        cluster,
        start_worker,
        bootstrap: str,
        *,
        partitions: int = 4,
        workers: int = 1,
        rate: float = 50,
        max_records: int = 40_000,
        **settings: str,
    ):
        from tests.integration.kit_stream import Stream

        self.cluster = cluster
        self.bootstrap = bootstrap
        self.topics = cluster.create_topics(partitions=partitions)
        self.partitions = partitions
        self.rate = rate
        self.workers = [
            start_worker(
                self.topics,
                **settings,
                kafka__transactional_id=f"{self.topics.group}-{chr(97 + i)}",
            )
            for i in range(workers)
        ]
        self.stream = Stream(bootstrap, self.topics.input, rate=rate, max_records=max_records)
        self.watch = OutputWatch(bootstrap, self.topics.output)

    def start(self) -> Pipeline:
        """Once every worker is ready: the reader, then the stream."""
        for w in self.workers:
            w.wait_ready()
        self.watch.begin()
        self.stream.start()
        return self

    def wait_working(self, timeout_s: float = 60) -> None:
        from tests.integration.kit_stream import produced

        wait_for(
            "every worker labels its share",
            lambda: all(produced(w, self.topics.output) > 0 for w in self.workers),
            timeout_s,
        )

    def finish(self, timeout_s: float = 120):
        """Stop the stream, wait until every input's output is visible, stop the workers
        (SIGTERM: they drain), read the outputs back. Returns (tally of the read_committed
        outputs, outputs that only a read_uncommitted reader sees)."""
        from tests.integration.kit import read_all
        from tests.integration.kit_stream import tally

        ids = self.stream.stop()
        try:
            wait_for("every input has its output", lambda: self.watch.present(ids), timeout_s, 0.5)
        except AssertionError:
            raise AssertionError(
                f"{self.watch.missing(ids)} of {len(ids)} inputs have no output "
                f"after {timeout_s:.0f} s"
            ) from None
        finally:
            self.watch.stop()
        for w in self.workers:
            assert w.terminate() == 0, w.log()
        committed = read_all(
            self.bootstrap,
            self.topics.output,
            lambda rs: len(rs) >= len(ids),
            timeout_s=60,
            settle_s=1.0,
            isolation_level="read_committed",
        )
        everything = read_all(
            self.bootstrap,
            self.topics.output,
            lambda rs: len(rs) >= len(committed),
            timeout_s=60,
            settle_s=1.0,
            isolation_level="read_uncommitted",
        )
        self.cluster.delete(self.topics)
        return tally(ids, committed), len(everything) - len(committed)

    def abandon(self) -> None:
        """A failed scenario: stop the stream and the reader, whatever they say."""
        for stop in (self.stream.stop, self.watch.stop):
            try:
                stop()
            except Exception:  # noqa: BLE001, S110 (the scenario's own failure is the one to report)
                pass
