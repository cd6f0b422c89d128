"""Entry points for events other than HTTP.

``sqs_handler`` sends the chunks that queued requests wrote to SQS and reports
the chunks to retry as partial batch failures.
"""

import os
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

from core.aws import dynamodb_client, sns_client
from core.chunksender import ChunkRetryError, ChunkSender
from core.errors import StorageUnavailableError
from core.ledger import DeliveryLedger
from core.queueing import Chunk
from core.ratelimit import RateLimiter
from core.sender import SmsSender
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
