"""A group resized 1 -> 3 -> 1 under a steady stream, eager (range) and cooperative-sticky:
the scenario of tests/integration/test_scaling.py (`scale_1_3_1`, same checks), reported with
the longest time the group committed nothing while it was resized."""

from __future__ import annotations

import os

import pytest

from tests.faults.faultkit import FaultResult, report
from tests.integration.test_scaling import PARTITIONS, RATE, check_scaling, scale_1_3_1

pytestmark = [pytest.mark.faults, pytest.mark.integration]

DELIVERY = os.environ.get("TAGSTREAM_FAULTS_REBALANCE_DELIVERY", "at_least_once")


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_rebalance_1_3_1(cluster, start_worker, bootstrap, strategy):
    topics = cluster.create_topics(partitions=PARTITIONS)
    result = scale_1_3_1(cluster, topics, start_worker, bootstrap, strategy, DELIVERY)
    t = result.tally
    report(
        FaultResult(
            f"rebalance 1→3→1, {strategy}, {DELIVERY}",
            t.inputs,
            t.lost,
            t.total_duplicates,
            f"longest commit stall {result.longest_stall_s:.1f} s while resizing",
            f"{PARTITIONS} partitions, {RATE} inputs/s, "
            f"{sum(result.moves.values())} partition moves; "
            f"committed offsets backwards {len(result.backwards)} times",
            result.seconds,
        )
    )
    check_scaling(result, DELIVERY)
    cluster.delete(topics)
