"""`python -m tests.faults.crashpoint run`: `tagstream run` with a window between a transaction's
outputs and its commit, for a fault test to kill the worker in.

With TAGSTREAM_FAULT_COMMIT_DELAY_S set, every ``commit_transaction`` (exactly-once: the
batch's outputs are acknowledged and its offsets added to the transaction by then) first prints
``fault: transaction open, committing in <s> s`` to stderr and sleeps that long. Nothing else of
the worker changes."""

from __future__ import annotations

import os
import sys
import time

from kafka import KafkaProducer

DELAY_S = float(os.environ.get("TAGSTREAM_FAULT_COMMIT_DELAY_S", "0"))
MARKER = "fault: transaction open, committing in"

_commit = KafkaProducer.commit_transaction


def _delayed_commit(self, *args, **kwargs):
    print(f"{MARKER} {DELAY_S} s", file=sys.stderr, flush=True)
    time.sleep(DELAY_S)
    return _commit(self, *args, **kwargs)


if DELAY_S > 0:
    KafkaProducer.commit_transaction = _delayed_commit

if __name__ == "__main__":
    from tagstream.worker.cli import console

    console()
