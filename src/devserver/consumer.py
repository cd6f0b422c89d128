"""A local stand-in for Lambda's SQS event source mapping.

It polls the delivery queue on moto and hands each batch to the same
``handler.events.sqs_handler`` that Lambda runs. Messages the handler processed
are deleted. Those it reported in ``batchItemFailures`` stay for another
receive, so moto's redrive policy moves a message that keeps failing to the
dead-letter queue, as SQS does.
"""

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from devserver.server import LocalLambdaContext

logger = logging.getLogger(__name__)

# The consumer function's timeout and batch size in template.yaml.
CONSUMER_TIMEOUT_SECONDS = 120
BATCH_SIZE = 5
# SQS's redrive setting in template.yaml.
MAX_RECEIVE_COUNT = 5
# Locally a message is hidden this long after a receive. It only needs to
# outlast one batch, which is sent at SMS_MAX_SEND_RATE.
VISIBILITY_TIMEOUT_SECONDS = CONSUMER_TIMEOUT_SECONDS * 6
# A failed message is visible again after this delay, not after the whole
# visibility timeout, so that local retries happen within seconds.
RETRY_DELAY_SECONDS = 1
POLL_WAIT_SECONDS = 1

SqsHandler = Callable[[dict[str, Any], Any], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Queues:
    """URL and ARN of the delivery queue, and URL of its dead-letter queue."""

    url: str
    arn: str
    dead_letter_url: str


@dataclass(frozen=True, slots=True)
class PollResult:
    """Counts of one receive: messages received, deleted and left for retry."""

    received: int
    deleted: int
    failed: int


def create_queues(sqs_client: Any, name: str) -> Queues:
    """Create the delivery queue ``name`` and ``name-dlq`` with the template's redrive."""
    dead_letter_url = sqs_client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dead_letter_arn = _queue_arn(sqs_client, dead_letter_url)
    redrive = {
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    }
    url = sqs_client.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    return Queues(url, _queue_arn(sqs_client, url), dead_letter_url)


def _queue_arn(sqs_client: Any, url: str) -> str:
    attributes = sqs_client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["QueueArn"]
    )["Attributes"]
    return str(attributes["QueueArn"])


def sqs_event(
    messages: list[dict[str, Any]], queue_arn: str, region: str
) -> dict[str, Any]:
    """Return the Lambda SQS event for messages from ReceiveMessage."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": hashlib.md5(message["Body"].encode("utf-8")).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


class QueueConsumer:
    """Receives batches from ``queues.url`` and passes them to ``handler``."""

    def __init__(
        self,
        sqs_client: Any,
        queues: Queues,
        handler: SqsHandler,
        region: str,
        retry_delay_seconds: int = RETRY_DELAY_SECONDS,
    ) -> None:
        self.sqs_client = sqs_client
        self.queues = queues
        self.handler = handler
        self.region = region
        self.retry_delay_seconds = retry_delay_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self, wait_seconds: int = POLL_WAIT_SECONDS) -> PollResult:
        """Receive one batch, run the handler on it and settle each message."""
        response = self.sqs_client.receive_message(
            QueueUrl=self.queues.url,
            MaxNumberOfMessages=BATCH_SIZE,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            return PollResult(0, 0, 0)

        event = sqs_event(messages, self.queues.arn, self.region)
        context = LocalLambdaContext(
            function_name="reinstall-sms-consumer-local",
            deadline=time.monotonic() + CONSUMER_TIMEOUT_SECONDS,
        )
        try:
            result = self.handler(event, context)
            failed_ids = {
                item["itemIdentifier"] for item in result.get("batchItemFailures", [])
            }
        except Exception:
            # Lambda treats an invocation that raises as a failure of the whole
            # batch; Powertools raises so when every record failed.
            logger.exception("Queue consumer invocation failed; the batch is retried")
            failed_ids = {message["MessageId"] for message in messages}

        for message in messages:
            if message["MessageId"] in failed_ids:
                self.sqs_client.change_message_visibility(
                    QueueUrl=self.queues.url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.retry_delay_seconds,
                )
            else:
                self.sqs_client.delete_message(
                    QueueUrl=self.queues.url, ReceiptHandle=message["ReceiptHandle"]
                )
        failed = sum(message["MessageId"] in failed_ids for message in messages)
        return PollResult(len(messages), len(messages) - failed, failed)

    def start(self) -> None:
        """Poll in a daemon thread until ``stop()``."""
        self._thread = threading.Thread(
            target=self._run, name="queue-consumer", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                # The moto server may be stopping, or a call failed; keep the
                # thread alive and try again shortly, as Lambda's poller does.
                logger.exception("Polling the delivery queue failed")
                self._stop.wait(RETRY_DELAY_SECONDS)


LOCAL_QUEUE_NAME = "reinstall-sms-local-delivery"


def prepare_local_queues(environ: MutableMapping[str, str] = os.environ) -> Queues:
    """Create the delivery queues on the emulated SQS and point QUEUE_URL at them.

    Call it before the settings are first read, so that the API queues there.
    """
    import boto3

    queues = create_queues(boto3.client("sqs"), LOCAL_QUEUE_NAME)
    environ["QUEUE_URL"] = queues.url
    return queues


def start_local_consumer(queues: Queues) -> QueueConsumer:
    """Start polling ``queues`` in a daemon thread with the Lambda SQS handler."""
    from core.aws import sqs_client
    from handler.events import sqs_handler

    consumer = QueueConsumer(
        sqs_client(), queues, sqs_handler, os.environ["AWS_REGION"]
    )
    consumer.start()
    return consumer
