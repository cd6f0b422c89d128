"""Pacing of SMS publishes across the sending threads of one invocation."""

import math
import threading
import time
from collections.abc import Callable

NANOSECONDS_PER_SECOND = 1_000_000_000


class RateLimiter:
    """Lets at most ``rate`` publishes start per second, spaced evenly, with no burst.

    Each caller reserves the next free start time under a lock and sleeps until
    it, so consecutive starts are at least ``1 / rate`` seconds apart whatever
    the number of threads. Start times are whole nanoseconds and the spacing is
    rounded up, so float rounding can never squeeze an extra start into a
    one-second window: any such window contains at most ``ceil(rate)`` starts,
    which is ``rate`` itself for a whole number. A rate of 0 turns the limit off.

    ``clock`` returns monotonic time in nanoseconds and ``sleep`` takes seconds,
    like ``time.monotonic_ns`` and ``time.sleep``.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate < 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
        self.interval_ns = math.ceil(NANOSECONDS_PER_SECOND / rate) if rate else 0
        self.clock = clock
        self.sleep = sleep
        self._next_start_ns: int | None = None
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until this caller may start one publish.

        NOTE: the limit applies to the times callers are released. A thread that
        the OS schedules late starts its publish late, so two publishes can
        reach SNS closer together than the spacing.
        """
        if not self.interval_ns:
            return

        with self._lock:
            now = self.clock()
            start = now
            if self._next_start_ns is not None:
                start = max(now, self._next_start_ns)
            self._next_start_ns = start + self.interval_ns

        if start > now:
            self.sleep((start - now) / NANOSECONDS_PER_SECOND)
