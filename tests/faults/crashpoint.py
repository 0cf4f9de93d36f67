"""`python -m tests.faults.crashpoint run`: `tagstream run` with a window between a transaction's
outputs and its commit, for a fault test to kill the worker in.

With TAGSTREAM_FAULT_COMMIT_DELAY_S set, every transaction's commit step (exactly-once: the
batch's outputs are acknowledged and its offsets added to the transaction by then; the sink
starts it through `tagstream.worker.kafka.patches.transaction_step`) first prints
``fault: transaction open, committing in <s> s`` to stderr and sleeps that long. Nothing else of
the worker changes."""

from __future__ import annotations

import os
import sys
import time

from tagstream.worker.kafka import producer

DELAY_S = float(os.environ.get("TAGSTREAM_FAULT_COMMIT_DELAY_S", "0"))
MARKER = "fault: transaction open, committing in"

_step = producer.transaction_step


def _delayed_step(kafka_producer, step, *args):
    if step == "commit":
        print(f"{MARKER} {DELAY_S} s", file=sys.stderr, flush=True)
        time.sleep(DELAY_S)
    return _step(kafka_producer, step, *args)


if DELAY_S > 0:
    producer.transaction_step = _delayed_step

if __name__ == "__main__":
    from tagstream.worker.cli import console

    console()
