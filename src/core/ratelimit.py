"""Pacing of SMS publishes across the sending threads of one invocation."""

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Lets at most ``rate`` publishes start per second, spaced evenly, with no burst.

    Each caller reserves the next free start time under a lock and sleeps until
    it, so in any one-second window at most ``rate`` starts happen whatever the
    number of threads. A rate of 0 turns the limit off.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock = clock
        self.sleep = sleep
        self._next_start = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until this caller may start one publish."""
        if not self.interval:
            return
        with self._lock:
            now = self.clock()
            start = max(now, self._next_start)
            self._next_start = start + self.interval
        if start > now:
            self.sleep(start - now)
