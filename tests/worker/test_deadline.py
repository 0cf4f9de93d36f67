"""The one bounded-wait helper: a timeout, shortened by an outside deadline looked up between
slices, on an injected clock."""

from __future__ import annotations

import pytest

from tagstream.worker.deadline import Deadline


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_waits_in_slices_and_gives_up_at_the_timeout():
    clock, slices, looked = Clock(), [], []

    def attempt(seconds):
        slices.append(seconds)
        clock.now += seconds
        raise TimeoutError

    def outside():
        looked.append(clock.now)
        return None

    with pytest.raises(TimeoutError):
        Deadline(1.0, outside, clock, slice_s=0.3).wait(attempt, (TimeoutError,))
    assert slices == pytest.approx([0.3, 0.3, 0.3, 0.1])
    assert len(looked) == 4  # once at the start, then between slices


def test_an_outside_deadline_that_appears_shortens_the_wait():
    clock = Clock()
    stop_at: list[float] = []

    def attempt(seconds):
        clock.now += seconds
        if clock.now >= 0.5 and not stop_at:
            stop_at.append(clock.now + 0.2)  # a stop request: the drain ends 0.2 s later
        raise TimeoutError

    with pytest.raises(TimeoutError):
        Deadline(30.0, lambda: stop_at[0] if stop_at else None, clock, slice_s=0.25).wait(
            attempt, (TimeoutError,)
        )
    assert clock.now == pytest.approx(0.7)


def test_returns_what_the_attempt_returns_and_lets_other_errors_through():
    clock = Clock()
    assert Deadline(1.0, clock=clock).wait(lambda s: "acked", (TimeoutError,)) == "acked"
    with pytest.raises(KeyError):
        Deadline(1.0, clock=clock).wait(lambda s: {}["x"], (TimeoutError,))
