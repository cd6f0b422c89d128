"""Queued delivery: deciding when to queue, and writing numbers to SQS in chunks.

A queued request is checked exactly like a direct one; only the sending moves
to the queue consumer. Each SQS message is one chunk: up to QUEUE_CHUNK_SIZE
numbers of one request, with the texts and SNS attributes to send them with,
so the consumer needs no other record to send.

The message bodies themselves, Chunk and ChunkNumber, are pydantic models in
core.chunks. This module imports them only to build or name chunks, because
the API function imports it to decide whether to queue, and pydantic would add
about 100 ms to the first request of each container.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from core.dispatch import PairJob
from core.errors import StorageUnavailableError
from core.ledger import DeliveryLedger, QueuedRequest
from core.settings import Settings

# Type checkers see the chunk models here. At run time, __getattr__ below
# imports them on first use.
if TYPE_CHECKING:
    from core.chunks import CHUNK_FORMAT_VERSION, Chunk, ChunkNumber  # noqa: F401

logger = Logger(child=True)

# SendMessageBatch limits: 10 entries, and 256 KiB for all bodies together.
SEND_BATCH_MAX_ENTRIES = 10
SEND_BATCH_MAX_BYTES = 256 * 1024
# Attempts for entries that SQS reports as failed without a sender fault.
SEND_BATCH_MAX_ATTEMPTS = 4
SEND_BATCH_BASE_DELAY_SECONDS = 0.1
# NOTE: an estimate of one SNS Publish round trip in the same region, not
# measured against real SNS. It matters only when SMS_MAX_SEND_RATE is 0 or
# SMS_SEND_CONCURRENCY is low.
PUBLISH_LATENCY_ESTIMATE_MS = 50.0
MESSAGES_PER_NUMBER = 2


class QueueReason(StrEnum):
    """Reason that a request's numbers go through the queue."""

    PREFER_ASYNC = "prefer_respond_async"
    DOMAIN_DELIVERY = "domain_delivery_queued"
    DEADLINE = "deadline"
    EVENT = "event"


def estimated_send_ms(number_count: int, settings: Settings) -> float:
    """Estimate the milliseconds that sending ``number_count`` numbers takes.

    Each number is two publishes. The rate limiter spaces publishes
    1000 / SMS_MAX_SEND_RATE ms apart, and SMS_SEND_CONCURRENCY threads each
    need about PUBLISH_LATENCY_ESTIMATE_MS per publish, so a publish costs
    the larger of the two:

        2 * n * max(1000 / rate, latency / concurrency)

    The estimate is a lower bound: retries and slow publishes take longer.
    """
    rate_ms = 1000.0 / settings.sms_max_send_rate if settings.sms_max_send_rate else 0.0
    thread_ms = PUBLISH_LATENCY_ESTIMATE_MS / settings.sms_send_concurrency
    return MESSAGES_PER_NUMBER * number_count * max(rate_ms, thread_ms)


def queue_reason(
    number_count: int,
    settings: Settings,
    *,
    domain_delivery: str,
    prefer_async: bool,
    remaining_time_ms: Callable[[], int] | None,
) -> QueueReason | None:
    """Return why ``number_count`` sendable numbers should be queued, or None.

    They are queued when the client asked for it (``Prefer: respond-async``),
    when the domain's delivery is ``queued``, or when the estimate shows they
    cannot all be sent before the deadline less DEADLINE_MARGIN_MS. Nothing
    is queued without a QUEUE_URL or without a number to send.
    """
    if not settings.queue_url or number_count == 0:
        return None
    if prefer_async:
        return QueueReason.PREFER_ASYNC
    if domain_delivery == "queued":
        return QueueReason.DOMAIN_DELIVERY
    if remaining_time_ms is None:
        return None
    budget_ms = remaining_time_ms() - settings.deadline_margin_ms
    if estimated_send_ms(number_count, settings) > budget_ms:
        return QueueReason.DEADLINE
    return None


@dataclass(frozen=True, slots=True)
class QueuedNumber:
    """A sendable number and the texts to send it."""

    submitted: str
    job: PairJob


def build_chunks(
    request_id: str,
    domain: str,
    app_id: str,
    numbers: Sequence[QueuedNumber],
    attributes: dict[str, dict[str, str]],
    chunk_size: int,
) -> list[Chunk]:
    """Split ``numbers`` into chunks of at most ``chunk_size``, keeping their order."""
    from core.chunks import Chunk, ChunkNumber

    starts = range(0, len(numbers), chunk_size)
    chunks = []
    for index, start in enumerate(starts):
        part = numbers[start : start + chunk_size]
        first_texts = list(dict.fromkeys(number.job.first_text for number in part))
        chunks.append(
            Chunk(
                request_id=request_id,
                domain=domain,
                app_id=app_id,
                index=index,
                chunk_count=len(starts),
                attributes=attributes,
                first_texts=first_texts,
                second_text=part[0].job.second_text,
                numbers=[
                    ChunkNumber(
                        phone_number=number.job.phone_number,
                        submitted=number.submitted,
                        position=start + offset,
                        first_text=first_texts.index(number.job.first_text),
                    )
                    for offset, number in enumerate(part)
                ],
            )
        )
    return chunks


# Names that moved to core.chunks and that other modules import from here.
_CHUNK_NAMES = frozenset({"CHUNK_FORMAT_VERSION", "Chunk", "ChunkNumber"})


def __getattr__(name: str) -> Any:
    """Import the chunk models from core.chunks on first use (PEP 562)."""
    if name in _CHUNK_NAMES:
        from core import chunks

        return getattr(chunks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _batches(entries: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    """Group entries into SendMessageBatch calls within the count and size limits."""
    batches: list[list[dict[str, str]]] = []
    size = 0
    for entry in entries:
        entry_bytes = len(entry["MessageBody"].encode("utf-8"))
        full = batches and (
            len(batches[-1]) == SEND_BATCH_MAX_ENTRIES
            or size + entry_bytes > SEND_BATCH_MAX_BYTES
        )
        if not batches or full:
            batches.append([])
            size = 0
        batches[-1].append(entry)
        size += entry_bytes
    return batches


class DeliveryQueue:
    """Writes chunks to the SQS queue at ``queue_url``."""

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sqs_client = sqs_client
        self.queue_url = queue_url
        self.sleep = sleep

    def send(self, chunks: Sequence[Chunk]) -> set[int]:
        """Send ``chunks`` with SendMessageBatch; return the indexes not queued.

        Entries that SQS fails without a sender fault (throttling, internal
        errors) are sent again, up to SEND_BATCH_MAX_ATTEMPTS times in all. A
        call that raises counts as every entry of it failing.
        """
        entries = [
            {"Id": str(chunk.index), "MessageBody": chunk.to_json()} for chunk in chunks
        ]
        failed: set[int] = set()
        for batch in _batches(entries):
            failed |= self._send_batch(batch)
        if failed:
            logger.error(
                "Chunks could not be queued",
                extra={
                    "request_id": chunks[0].request_id,
                    "failed_chunks": sorted(failed),
                    "chunk_count": len(chunks),
                },
            )
        return failed

    def _send_batch(self, batch: list[dict[str, str]]) -> set[int]:
        pending = batch
        rejected: set[str] = set()
        for attempt in range(SEND_BATCH_MAX_ATTEMPTS):
            if attempt:
                self.sleep(SEND_BATCH_BASE_DELAY_SECONDS * 2 ** (attempt - 1))
            try:
                response = self.sqs_client.send_message_batch(
                    QueueUrl=self.queue_url, Entries=pending
                )
            except (ClientError, BotoCoreError) as error:
                logger.warning(
                    "SQS SendMessageBatch failed",
                    extra={"attempt": attempt + 1, "error": str(error)},
                )
                continue

            retryable = set()
            for failure in response.get("Failed") or []:
                logger.warning(
                    "SQS did not accept a chunk",
                    extra={
                        "attempt": attempt + 1,
                        "chunk": failure["Id"],
                        "error_code": failure.get("Code"),
                        "sender_fault": bool(failure.get("SenderFault")),
                    },
                )
                # A sender fault (such as a body too large) fails the same way
                # again, so only the others are sent again.
                if failure.get("SenderFault"):
                    rejected.add(failure["Id"])
                else:
                    retryable.add(failure["Id"])
            pending = [entry for entry in pending if entry["Id"] in retryable]
            if not pending:
                break
        return {int(entry_id) for entry_id in rejected} | {
            int(entry["Id"]) for entry in pending
        }


class QueuedDelivery:
    """Records a queued request in the ledger and writes its chunks to the queue."""

    def __init__(
        self,
        queue: DeliveryQueue,
        ledger: DeliveryLedger,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.queue = queue
        self.ledger = ledger
        self.settings = settings
        self.clock = clock

    def reason(
        self,
        number_count: int,
        *,
        domain_delivery: str,
        prefer_async: bool,
        remaining_time_ms: Callable[[], int] | None,
    ) -> QueueReason | None:
        """Return why these numbers should be queued, or None to send them now."""
        return queue_reason(
            number_count,
            self.settings,
            domain_delivery=domain_delivery,
            prefer_async=prefer_async,
            remaining_time_ms=remaining_time_ms,
        )

    def enqueue(
        self,
        request_id: str,
        domain: str,
        app_id: str,
        numbers: Sequence[QueuedNumber],
        attributes: dict[str, dict[str, str]],
        reason: QueueReason,
    ) -> set[int]:
        """Queue ``numbers``; return the positions of those that could not be queued.

        The request record is written first, so the status endpoint finds the
        request as soon as a consumer can see a chunk. Raises
        StorageUnavailableError when that write fails; nothing is queued then.
        """
        chunks = build_chunks(
            request_id,
            domain,
            app_id,
            numbers,
            attributes,
            self.settings.queue_chunk_size,
        )
        created = self.ledger.record_request(
            QueuedRequest(
                domain=domain,
                request_id=request_id,
                app_id=app_id,
                expected=len(numbers),
                chunk_count=len(chunks),
                reason=str(reason),
                queued_at=self.clock(),
            )
        )
        if not created:
            # An event delivered again: its numbers' sends are idempotent per
            # request id, so queuing the chunks again sends nothing twice.
            logger.info(
                "Request already queued; queuing its chunks again",
                extra={"request_id": request_id, "domain": domain},
            )

        failed_chunks = self.queue.send(chunks)
        not_queued = {
            number.position
            for chunk in chunks
            if chunk.index in failed_chunks
            for number in chunk.numbers
        }
        if not_queued and created:
            self._forget(domain, request_id, len(not_queued))
        logger.info(
            "Numbers queued for delivery",
            extra={
                "request_id": request_id,
                "domain": domain,
                "reason": str(reason),
                "queued_count": len(numbers) - len(not_queued),
                "not_queued_count": len(not_queued),
                "chunk_count": len(chunks),
            },
        )
        return not_queued

    def _forget(self, domain: str, request_id: str, count: int) -> None:
        try:
            self.ledger.reduce_expected(domain, request_id, count)
        except StorageUnavailableError:
            # The numbers are reported as errors either way; only the status
            # endpoint is affected, counting them as pending.
            logger.error(
                "Could not lower the expected count of a partly queued request",
                extra={"request_id": request_id, "not_queued_count": count},
            )
