"""Sending one queued chunk, at most once per number, for the queue consumer.

Each number is claimed in the delivery ledger before anything is published and
settled afterwards (see core.ledger), so a chunk that SQS delivers again
publishes nothing for numbers already sent or failed. The publishes go through
the same SmsSender, RateLimiter and botocore retries as direct delivery, and
each attempt is written to the SMS log under the chunk's request id.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from core.chunks import Chunk, ChunkNumber
from core.errors import StorageUnavailableError
from core.ledger import Claim, DeliveryLedger, NumberState
from core.phone import mask
from core.ratelimit import RateLimiter
from core.sender import (
    DEADLINE_NOT_STARTED,
    INSTALL_MESSAGE,
    DeliveryResult,
    PublishAttempt,
    SmsPublishError,
    SmsSender,
)
from core.smslog import SmsLog, SmsLogRecord, records_for_delivery

logger = Logger(child=True)

# Error codes after botocore's own retries that a later attempt may not get:
# SNS throttling and internal errors, connection failures (botocore's exception
# class names), and numbers not started before the deadline.
TRANSIENT_ERROR_CODES = frozenset(
    {
        DEADLINE_NOT_STARTED,
        "Throttled",
        "Throttling",
        "ThrottlingException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottling",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
    }
)


class ChunkRetryError(Exception):
    """Some numbers of a chunk failed transiently; SQS should deliver it again."""

    def __init__(self, request_id: str, chunk_index: int, retry_count: int) -> None:
        super().__init__(
            f"{retry_count} numbers of chunk {chunk_index} of request {request_id} "
            "failed transiently and will be sent again"
        )
        self.retry_count = retry_count


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    """Counts of one pass over a chunk's numbers."""

    sent: int = 0
    failed: int = 0
    retry: int = 0
    # Numbers claimed earlier: already settled, or owned by another invocation.
    skipped: int = 0
    messages_published: int = 0


def number_state(result: DeliveryResult) -> NumberState:
    """Return the ledger state that a delivery result leads to."""
    if result.succeeded:
        return NumberState.SENT
    if result.error_code in TRANSIENT_ERROR_CODES:
        return NumberState.RETRY
    return NumberState.FAILED


class ChunkSender:
    """Sends chunks of one invocation under one shared rate limit."""

    def __init__(
        self,
        sender: SmsSender,
        ledger: DeliveryLedger,
        sms_log: SmsLog,
        limiter: RateLimiter,
        concurrency: int,
    ) -> None:
        self.sender = sender
        self.ledger = ledger
        self.sms_log = sms_log
        self.limiter = limiter
        self.concurrency = concurrency

    def send(
        self,
        chunk: Chunk,
        remaining_time_ms: Callable[[], int] | None = None,
        deadline_margin_ms: int = 0,
    ) -> ChunkOutcome:
        """Send the chunk's numbers that are not settled yet; return the counts.

        Raises ChunkRetryError when a number failed transiently or was not
        started before the deadline, after settling and logging all the others.
        Raises core.errors.StorageUnavailableError when the ledger cannot be
        read or written.
        """
        first_texts = chunk.first_texts
        for number in chunk.numbers:
            if number.first_text >= len(first_texts):
                raise ValueError(
                    f"Chunk {chunk.index} of request {chunk.request_id} refers to "
                    f"first text {number.first_text}; it has {len(first_texts)}"
                )

        def may_start() -> bool:
            if remaining_time_ms is None:
                return True
            return remaining_time_ms() >= deadline_margin_ms

        def deliver(number: ChunkNumber) -> _NumberOutcome:
            return self._deliver_number(chunk, number, may_start)

        workers = max(1, min(self.concurrency, len(chunk.numbers)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(deliver, chunk.numbers))

        self._write_sms_log(chunk, [o.result for o in outcomes if o.result])
        counts = _count(outcomes)
        logger.info(
            "Queued chunk processed",
            extra={
                "request_id": chunk.request_id,
                "domain": chunk.domain,
                "chunk": chunk.index,
                "chunk_count": chunk.chunk_count,
                "sent_count": counts.sent,
                "failed_count": counts.failed,
                "retry_count": counts.retry,
                "skipped_count": counts.skipped,
                "messages_published": counts.messages_published,
            },
        )
        if counts.retry:
            raise ChunkRetryError(chunk.request_id, chunk.index, counts.retry)
        return counts

    def _deliver_number(
        self, chunk: Chunk, number: ChunkNumber, may_start: Callable[[], bool]
    ) -> "_NumberOutcome":
        """Claim, send and settle one number."""
        digits = number.phone_number.removeprefix("+")
        try:
            claim = self.ledger.claim(
                chunk.domain,
                chunk.request_id,
                digits,
                number.submitted,
                number.position,
            )
        except StorageUnavailableError:
            # Nothing was sent, so the number can simply be tried again.
            return _NumberOutcome(state=NumberState.RETRY)
        if claim is None:
            return _NumberOutcome()

        if claim.first_message_id is None:
            result = self.sender.deliver(
                number.phone_number,
                chunk.first_texts[number.first_text],
                chunk.second_text,
                chunk.attributes,
                pace=self.limiter.acquire,
                may_start=may_start,
            )
        else:
            result = self._send_install_message(chunk, number, claim, may_start)

        state = number_state(result)
        try:
            self.ledger.settle(
                chunk.domain,
                chunk.request_id,
                digits,
                claim,
                state,
                first_message_id=result.first_message_id,
                second_message_id=result.second_message_id,
                error_code=result.error_code,
            )
        except StorageUnavailableError:
            # The claim stays "sending" and turns into a failed entry once stale:
            # the SMS may have gone out, so the number is not sent again. The
            # chunk is still retried, to settle the number's entry sooner.
            logger.error(
                "The outcome of a sent number could not be stored",
                extra={
                    "request_id": chunk.request_id,
                    "phone_number": mask(number.phone_number),
                    "state": str(state),
                },
            )
            return _NumberOutcome(result, NumberState.RETRY)
        return _NumberOutcome(result, state)

    def _send_install_message(
        self,
        chunk: Chunk,
        number: ChunkNumber,
        claim: Claim,
        may_start: Callable[[], bool],
    ) -> DeliveryResult:
        """Send only the install message of a number whose first was accepted."""
        first_id = claim.first_message_id
        self.limiter.acquire()
        if not may_start():
            return DeliveryResult(
                number.phone_number,
                first_message_id=first_id,
                error_code=DEADLINE_NOT_STARTED,
            )
        attempted_at = self.sender.clock()
        try:
            second_id = self.sender.publish(
                number.phone_number, chunk.second_text, chunk.attributes
            )
        except SmsPublishError as error:
            logger.warning(
                "SNS rejected the install message again",
                extra={
                    "phone_number": mask(number.phone_number),
                    "error_code": error.code,
                    "request_id": chunk.request_id,
                },
            )
            return DeliveryResult(
                number.phone_number,
                first_message_id=first_id,
                error_code=error.code,
                failed_message=INSTALL_MESSAGE,
                attempts=(
                    PublishAttempt(
                        INSTALL_MESSAGE, attempted_at, error_code=error.code
                    ),
                ),
            )
        return DeliveryResult(
            number.phone_number,
            first_message_id=first_id,
            second_message_id=second_id,
            attempts=(
                PublishAttempt(INSTALL_MESSAGE, attempted_at, message_id=second_id),
            ),
        )

    def _write_sms_log(self, chunk: Chunk, results: list[DeliveryResult]) -> None:
        records: list[SmsLogRecord] = []
        for result in results:
            records += records_for_delivery(chunk.domain, chunk.request_id, result)
        failures = self.sms_log.write(records)
        if failures:
            logger.error(
                "SMS log records were not stored; the SMS were sent regardless",
                extra={
                    "request_id": chunk.request_id,
                    "chunk": chunk.index,
                    "sms_log_failures": failures,
                },
            )


@dataclass(frozen=True, slots=True)
class _NumberOutcome:
    """Outcome of one number; no state means that it was skipped."""

    result: DeliveryResult | None = None
    state: NumberState | None = None


def _count(outcomes: list[_NumberOutcome]) -> ChunkOutcome:
    states = [outcome.state for outcome in outcomes]
    return ChunkOutcome(
        sent=states.count(NumberState.SENT),
        failed=states.count(NumberState.FAILED),
        retry=states.count(NumberState.RETRY),
        skipped=states.count(None),
        messages_published=sum(
            attempt.message_id is not None
            for outcome in outcomes
            if outcome.result
            for attempt in outcome.result.attempts
        ),
    )
