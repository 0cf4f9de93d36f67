"""`python -m tests.integration.replay_crash replay ...`: `tagstream replay` that dies (exit 9,
no clean-up) inside its second transaction, after producing that batch and before committing
it: the worst moment for a replay to be interrupted. Nothing else changes."""

from __future__ import annotations

import os
import sys

from tagstream.worker.kafka import replayer

MARKER = "replay-crash: dying inside a transaction"

_commits = 0
_Producer = replayer.replay_producer


def _producer(k, group):
    real = _Producer(k, group)
    commit = real.commit_transaction

    def commit_or_die():
        global _commits
        _commits += 1
        if _commits == 2:
            real.flush()  # the batch is on the broker, in the open transaction
            print(MARKER, file=sys.stderr, flush=True)
            os._exit(9)
        commit()

    real.commit_transaction = commit_or_die
    return real


replayer.replay_producer = _producer

if __name__ == "__main__":
    from tagstream.worker.cli import console

    console()
