"""Bounded waits on the broker or the model, in slices.

Every wait of the worker (acknowledgements, an offset commit, the batch being tagged) has its
own timeout, and may end sooner: once a stop is requested, the drain's deadline bounds it too.
The wait goes in slices; between two, ``outside()`` is called (the pipeline beats its liveness
heartbeat there) and returns the outside deadline, or None. The clock is injected.

>>> clock = iter([0.0, 0.0, 0.4, 0.4, 0.8, 0.8, 1.2]).__next__
>>> def attempt(seconds):
...     raise TimeoutError
>>> Deadline(1.0, clock=clock, slice_s=0.4).wait(attempt, (TimeoutError,))
Traceback (most recent call last):
TimeoutError
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SLICE_S = 0.2  # how often a waiting loop looks up (heartbeat, stop request)


class Deadline:
    """``timeout_s`` from now, or the outside deadline if that comes first."""

    def __init__(
        self,
        timeout_s: float,
        outside: Callable[[], float | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        slice_s: float = SLICE_S,
    ):
        self._clock = clock
        self._timeout_at = clock() + timeout_s
        self._outside = outside
        self._slice_s = slice_s
        self._end = self._timeout_at
        self.look_up()

    def look_up(self) -> None:
        """Ask for the outside deadline again (it appears once a stop is requested)."""
        outside = self._outside()
        self._end = self._timeout_at if outside is None else min(self._timeout_at, outside)

    def left(self) -> float:
        return max(0.0, self._end - self._clock())

    def passed(self) -> bool:
        return self._clock() >= self._end

    def wait(self, attempt: Callable[[float], T], timeouts: tuple[type[BaseException], ...]) -> T:
        """``attempt(seconds)`` in slices until it returns; an exception of ``timeouts`` means
        the slice ran out: look up and go on, or re-raise it once the deadline has passed."""
        while True:
            try:
                return attempt(min(self._slice_s, self.left()))
            except timeouts:
                if self.passed():
                    raise
                self.look_up()
