"""Concurrent delivery of many numbers' message pairs under a rate limit."""

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from core.ratelimit import RateLimiter
from core.sender import DeliveryResult, SmsSender


@dataclass(frozen=True, slots=True)
class PairJob:
    """One number's two messages. ``phone_number`` is E.164 with ``+``."""

    phone_number: str
    first_text: str
    second_text: str


class Dispatcher:
    """Sends many numbers at once through one sender.

    Up to ``concurrency`` numbers are in flight; each number's two messages go
    one after the other. Publishes of all threads share one RateLimiter.
    """

    def __init__(self, sender: SmsSender, concurrency: int, max_rate: float) -> None:
        self.sender = sender
        self.concurrency = concurrency
        self.max_rate = max_rate

    def deliver_all(
        self,
        jobs: Sequence[PairJob],
        attributes: dict[str, dict[str, str]],
        remaining_time_ms: Callable[[], int] | None = None,
        deadline_margin_ms: int = 0,
    ) -> list[DeliveryResult]:
        """Deliver ``jobs``; return one result per job, in the same order.

        A number is not started once ``remaining_time_ms()`` drops below
        ``deadline_margin_ms``; its result has error code DEADLINE_NOT_STARTED. A
        number whose first message was published always gets its second attempted.

        NOTE: the margin bounds when a number starts, not how long its two
        publishes take. Under sustained throttling botocore's backoff alone can
        exceed it (up to 15 s per publish with 5 attempts), so the Lambda
        timeout could still end a started pair after its first message.
        """
        limiter = RateLimiter(self.max_rate)

        def may_start() -> bool:
            if remaining_time_ms is None:
                return True
            return remaining_time_ms() >= deadline_margin_ms

        def deliver(job: PairJob) -> DeliveryResult:
            return self.sender.deliver(
                job.phone_number,
                job.first_text,
                job.second_text,
                attributes,
                pace=limiter.acquire,
                may_start=may_start,
            )

        if len(jobs) <= 1 or self.concurrency == 1:
            return [deliver(job) for job in jobs]
        workers = min(self.concurrency, len(jobs))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(deliver, jobs))
