"""RateLimiter under a virtual clock: no test here waits on wall time.

Each thread has its own virtual time in nanoseconds. The fake ``sleep`` moves
the calling thread's time forward instead of blocking, and a thread's time after
``acquire()`` returns is the moment the limiter let it start. Separate clocks
per thread are a harder case than one shared clock, because the limiter may
read times that go backwards between threads.
"""

import itertools
import math
import random
import threading
from collections.abc import Iterator

import pytest

from core.ratelimit import NANOSECONDS_PER_SECOND, RateLimiter


class VirtualTime:
    """Per-thread virtual time for a RateLimiter's ``clock`` and ``sleep``."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.sleeps: list[float] = []
        self.clock_reads = 0
        self._lock = threading.Lock()

    def now(self) -> int:
        return getattr(self._local, "now", 0)

    def set_now(self, value: int) -> None:
        self._local.now = value

    def advance(self, nanoseconds: int) -> None:
        self._local.now = self.now() + nanoseconds

    def clock(self) -> int:
        with self._lock:
            self.clock_reads += 1
        return self.now()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
        self.advance(round(seconds * NANOSECONDS_PER_SECOND))


def max_starts_in_one_second(starts: list[int]) -> int:
    """Return the maximum number of starts in any half-open one-second window."""
    ordered = sorted(starts)
    highest = 0
    first = 0
    for last, start in enumerate(ordered):
        while ordered[first] <= start - NANOSECONDS_PER_SECOND:
            first += 1
        highest = max(highest, last - first + 1)
    return highest


def run_threads(
    limiter: RateLimiter,
    time_source: VirtualTime,
    threads: int,
    acquires_per_thread: int,
    max_work_ns: int,
    seed: int,
) -> list[int]:
    """Acquire from many threads, each working a random time between acquires.

    Returns every start time. Each thread begins at a random virtual time
    within the first second.
    """
    starts: list[int] = []
    starts_lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(index: int) -> None:
        generator = random.Random(seed * 1000 + index)
        time_source.set_now(generator.randrange(NANOSECONDS_PER_SECOND))
        barrier.wait()
        for _ in range(acquires_per_thread):
            limiter.acquire()
            with starts_lock:
                starts.append(time_source.now())
            time_source.advance(generator.randrange(max_work_ns + 1))

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return starts


@pytest.fixture
def time_source() -> Iterator[VirtualTime]:
    yield VirtualTime()


def limiter_for(rate: float, time_source: VirtualTime) -> RateLimiter:
    return RateLimiter(rate, clock=time_source.clock, sleep=time_source.sleep)


def test_single_thread_starts_are_evenly_spaced(time_source: VirtualTime) -> None:
    limiter = limiter_for(20, time_source)
    starts = []

    for _ in range(5):
        limiter.acquire()
        starts.append(time_source.now())

    assert starts == [0, 50_000_000, 100_000_000, 150_000_000, 200_000_000]
    assert time_source.sleeps == [0.05, 0.05, 0.05, 0.05]


def test_first_acquire_does_not_sleep(time_source: VirtualTime) -> None:
    time_source.set_now(-7_000_000_000)
    limiter = limiter_for(20, time_source)

    limiter.acquire()

    assert time_source.now() == -7_000_000_000
    assert time_source.sleeps == []


def test_idle_caller_starts_at_once(time_source: VirtualTime) -> None:
    limiter = limiter_for(10, time_source)
    limiter.acquire()
    time_source.advance(5 * NANOSECONDS_PER_SECOND)

    limiter.acquire()

    assert time_source.now() == 5 * NANOSECONDS_PER_SECOND
    assert time_source.sleeps == []


def test_idle_time_is_not_saved_up_as_burst(time_source: VirtualTime) -> None:
    limiter = limiter_for(10, time_source)
    limiter.acquire()
    time_source.advance(5 * NANOSECONDS_PER_SECOND)
    starts = []

    for _ in range(3):
        limiter.acquire()
        starts.append(time_source.now())

    base = 5 * NANOSECONDS_PER_SECOND
    assert starts == [base, base + 100_000_000, base + 200_000_000]


def test_rate_zero_never_reads_clock_or_sleeps(time_source: VirtualTime) -> None:
    limiter = limiter_for(0, time_source)

    for _ in range(1000):
        limiter.acquire()

    assert time_source.clock_reads == 0
    assert time_source.sleeps == []


@pytest.mark.parametrize("rate", [-1, math.inf, math.nan])
def test_invalid_rate_is_rejected(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be a finite number >= 0"):
        RateLimiter(rate)


@pytest.mark.parametrize(
    ("rate", "interval_ns"),
    [(1, 1_000_000_000), (3, 333_333_334), (20, 50_000_000), (2.5, 400_000_000)],
)
def test_spacing_is_rounded_up_to_whole_ns(rate: float, interval_ns: int) -> None:
    assert RateLimiter(rate).interval_ns == interval_ns


@pytest.mark.parametrize("rate", [1, 3, 7, 20, 100])
def test_back_to_back_threads_start_exactly_on_spacing(
    rate: int, time_source: VirtualTime
) -> None:
    limiter = limiter_for(rate, time_source)
    interval_ns = math.ceil(NANOSECONDS_PER_SECOND / rate)
    threads = 12
    per_thread = 25
    starts: list[int] = []
    starts_lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            limiter.acquire()
            with starts_lock:
                starts.append(time_source.now())

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    # Every thread requests again at once, so the limiter never idles and every
    # start lands on the next slot: no gap, no burst.
    assert sorted(starts) == [k * interval_ns for k in range(threads * per_thread)]
    assert max_starts_in_one_second(starts) == rate


@pytest.mark.parametrize("rate", [1, 3, 20, 100])
@pytest.mark.parametrize("seed", range(5))
def test_many_threads_never_exceed_rate_in_any_second(
    rate: int, seed: int, time_source: VirtualTime
) -> None:
    limiter = limiter_for(rate, time_source)

    starts = run_threads(
        limiter,
        time_source,
        threads=32,
        acquires_per_thread=20,
        max_work_ns=60_000_000,
        seed=seed,
    )

    assert len(starts) == 32 * 20
    assert max_starts_in_one_second(starts) <= rate
    ordered = sorted(starts)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ordered)]
    assert min(gaps) >= math.ceil(NANOSECONDS_PER_SECOND / rate)


def test_fractional_rate_allows_its_ceiling_per_second(
    time_source: VirtualTime,
) -> None:
    limiter = limiter_for(2.5, time_source)

    starts = run_threads(
        limiter,
        time_source,
        threads=8,
        acquires_per_thread=10,
        max_work_ns=10_000_000,
        seed=1,
    )

    # Starts 400 ms apart put three in [0 s, 1 s): ceil(2.5), never more.
    assert max_starts_in_one_second(starts) == 3
    assert max(starts) - min(starts) >= (8 * 10 - 1) * 400_000_000


def test_window_counter_counts_half_open_window() -> None:
    assert max_starts_in_one_second([0, 999_999_999]) == 2
    assert max_starts_in_one_second([0, 1_000_000_000]) == 1
    assert max_starts_in_one_second([5, 3, 1_000_000_003, 4]) == 3
    assert max_starts_in_one_second([5, 3, 1_000_000_002, 4]) == 4
