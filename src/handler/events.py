"""Entry points for events other than HTTP: the delivery queue and EventBridge.

``sqs_handler`` sends the chunks that queued requests wrote to SQS and reports
the chunks to retry as partial batch failures. ``eventbridge_handler`` accepts
``CommCare Reinstall Requested`` events and always queues their numbers.
"""

import json
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from core.aws import dynamodb_client, sns_client, sqs_client
from core.chunksender import ChunkRetryError, ChunkSender
from core.errors import RequestValidationError, ServiceError, StorageUnavailableError
from core.ledger import DeliveryLedger
from core.queueing import Chunk
from core.ratelimit import RateLimiter
from core.sender import SmsSender
from core.service import ReinstallService, build_service
from core.settings import get_settings
from core.smslog import SmsLog

SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME", "reinstall-sms")
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CommCareReinstall")

logger = Logger(service=SERVICE_NAME)
# Powertools' Metrics shares its metric set between all instances in a process.
# EphemeralMetrics keeps its own, so the devserver can run this handler in a
# thread beside the API's without one flushing the other's metrics.
metrics = EphemeralMetrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
# A batch whose records all failed is reported like any other, record by
# record, not raised as an invocation error: SQS retries the same records
# either way, and Lambda's error metric stays for unexpected errors.
processor = BatchProcessor(
    event_type=EventType.SQS, raise_on_entire_batch_failure=False
)

REINSTALL_REQUESTED = "CommCare Reinstall Requested"
# Detail fields that make up the request body, as in the API.
BODY_FIELDS = ("app_id", "users", "reinstall_message")


@cache
def get_service() -> ReinstallService:
    """Build the service once per container, from the environment's settings."""
    return build_service(get_settings(), dynamodb_client(), sns_client(), sqs_client())


def chunk_sender() -> ChunkSender:
    """Return a sender for one invocation: its rate limit spans all its chunks."""
    settings = get_settings()
    dynamodb = dynamodb_client()
    return ChunkSender(
        SmsSender(sns_client()),
        DeliveryLedger(settings.table_name, dynamodb, settings.sms_log_retention_days),
        SmsLog(settings.table_name, dynamodb, settings.sms_log_retention_days),
        RateLimiter(settings.sms_max_send_rate),
        settings.sms_send_concurrency,
    )


# The delivery queue


@logger.inject_lambda_context
@metrics.log_metrics
def sqs_handler(
    event: dict[str, Any], context: LambdaContext
) -> PartialItemFailureResponse:
    """Send each record's chunk; return the records to retry as batchItemFailures.

    A record fails when its body is not a valid chunk, when a number failed
    transiently, or when the ledger is unavailable. SQS delivers a failed
    record again after the visibility timeout, and moves it to the
    dead-letter queue after maxReceiveCount receives.
    """
    sender = chunk_sender()
    margin_ms = get_settings().deadline_margin_ms

    def send_record(record: SQSRecord) -> None:
        receive_count = record.attributes.approximate_receive_count
        try:
            chunk = Chunk.from_json(record.body)
        except ValidationError as error:
            logger.error(
                "Queue message is not a valid chunk",
                extra={
                    "message_id": record.message_id,
                    "receive_count": receive_count,
                    "errors": error.errors(include_input=False, include_url=False),
                },
            )
            metrics.add_metric("InvalidChunks", MetricUnit.Count, 1)
            raise
        try:
            outcome = sender.send(
                chunk, context.get_remaining_time_in_millis, margin_ms
            )
        except (ChunkRetryError, StorageUnavailableError) as error:
            logger.warning(
                "Chunk returned to the queue for another attempt",
                extra={
                    "request_id": chunk.request_id,
                    "chunk": chunk.index,
                    "message_id": record.message_id,
                    "receive_count": receive_count,
                    "reason": str(error),
                },
            )
            metrics.add_metric("ChunksRetried", MetricUnit.Count, 1)
            raise
        except Exception:
            # The batch processor turns any exception into a record failure
            # without logging it, so an unexpected one is logged here.
            logger.exception(
                "Chunk failed unexpectedly",
                extra={"request_id": chunk.request_id, "chunk": chunk.index},
            )
            raise
        metrics.add_metric("QueuedNumbersSent", MetricUnit.Count, outcome.sent)
        metrics.add_metric("QueuedNumbersFailed", MetricUnit.Count, outcome.failed)
        metrics.add_metric("SmsPublished", MetricUnit.Count, outcome.messages_published)

    return process_partial_response(
        event=event, record_handler=send_record, processor=processor, context=context
    )


# EventBridge


class InvalidEventError(Exception):
    """The event cannot become a reinstall request; retrying would not help."""


@dataclass(frozen=True, slots=True)
class EventRequest:
    """A reinstall request read from an event's detail."""

    domain: str
    requested_by: str
    # The API request body that the detail's other fields make up.
    body: bytes


def parse_event(event: dict[str, Any]) -> EventRequest:
    """Return the request an event carries.

    Raises InvalidEventError for another detail-type, a detail that is not an
    object, or a ``domain`` or ``requested_by`` that is missing or not a
    non-empty string. The body fields are validated later, as the API's are.
    """
    if event.get("detail-type") != REINSTALL_REQUESTED:
        raise InvalidEventError(
            f"detail-type must be {REINSTALL_REQUESTED!r}, "
            f"got {event.get('detail-type')!r}"
        )
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InvalidEventError("detail must be a JSON object")
    for name in ("domain", "requested_by"):
        value = detail.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidEventError(f"detail.{name} must be a non-empty string")
    body = {name: detail[name] for name in BODY_FIELDS if name in detail}
    return EventRequest(
        detail["domain"], detail["requested_by"], json.dumps(body).encode("utf-8")
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def eventbridge_handler(
    event: dict[str, Any], context: LambdaContext
) -> dict[str, Any]:
    """Queue the reinstall SMS that a ``CommCare Reinstall Requested`` event requests.

    IAM authenticated the sender, so there is no API key; every check from
    the domain's plan onward applies. The event id is the request id. An
    invalid event is logged with its reason and returns normally, so Lambda
    does not retry it. A storage or queue failure raises, so Lambda retries
    the event; its numbers are sent at most once per event id.
    """
    request_id = str(event.get("id") or context.aws_request_id)
    logger.append_keys(request_id=request_id)
    try:
        request = parse_event(event)
        logger.append_keys(domain=request.domain, requested_by=request.requested_by)
        result = get_service().reinstall_from_event(
            request.domain, request.body, request_id
        )
    except InvalidEventError as error:
        return _rejected(request_id, str(error), "InvalidEvent")
    except StorageUnavailableError:
        raise
    except RequestValidationError as error:
        # The messages may quote a submitted phone number, so the log names
        # only the fields.
        fields = ", ".join(sorted(error.field_errors))
        return _rejected(
            request_id, error.message, type(error).__name__, f"invalid {fields}"
        )
    except ServiceError as error:
        return _rejected(request_id, error.message, type(error).__name__)

    metrics.add_metric("EventRequests", MetricUnit.Count, 1)
    logger.info(
        "Reinstall event accepted",
        extra={
            "success_count": len(result.success_numbers),
            "invalid_format_count": len(result.invalid_format_numbers),
            "error_count": len(result.error_numbers),
        },
    )
    return {"request_id": request_id, "accepted": True, **result.to_body()}


def _rejected(
    request_id: str, reason: str, error_type: str, logged_reason: str | None = None
) -> dict[str, Any]:
    logger.warning(
        "Reinstall event rejected; it is not retried",
        extra={"reason": logged_reason or reason, "error_type": error_type},
    )
    metrics.add_metric("RejectedEvents", MetricUnit.Count, 1)
    return {
        "request_id": request_id,
        "accepted": False,
        "error_type": error_type,
        "reason": reason,
    }
