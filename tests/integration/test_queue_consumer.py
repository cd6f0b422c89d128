"""The queue consumer against moto: sending chunks once, retries, dead letters."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import REGION, TABLE_NAME, FakeLambdaContext, sent_sms

from core.dispatch import PairJob
from core.ledger import (
    CLAIM_TIMEOUT_SECONDS,
    DELIVERY_INTERRUPTED,
    DeliveryLedger,
    NumberEntry,
    NumberState,
)
from core.queueing import DeliveryQueue, QueuedDelivery, QueuedNumber, QueueReason
from core.repository import Repository
from core.settings import Settings
from core.smslog import SmsLog
from devserver.consumer import MAX_RECEIVE_COUNT, QueueConsumer, Queues, create_queues

DOMAIN = "demo"
REQUEST_ID = "0b5e7a52-7c1e-4a43-9d0f-000000000001"
FIRST_TEXT = "To install CommCare, follow this link: https://example.test/play"
SECOND_TEXT = "[commcare app - do not delete] aHR0cHM6Ly9leGFtcGxlLnRlc3Qv"
ATTRIBUTES = {
    "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
}
NUMBERS = ["+16175551001", "+16175551002", "+16175551003"]


@dataclass
class QueueSetup:
    sqs: Any
    queues: Queues
    ledger: DeliveryLedger
    sms_log: SmsLog


@pytest.fixture
def setup(repository: Repository) -> Iterator[QueueSetup]:
    sqs = boto3.client("sqs", region_name=REGION)
    queues = create_queues(sqs, "delivery-test")
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    yield QueueSetup(
        sqs,
        queues,
        DeliveryLedger(TABLE_NAME, dynamodb, retention_days=90),
        SmsLog(TABLE_NAME, dynamodb, retention_days=90),
    )


def queue_numbers(setup: QueueSetup, numbers: list[str], chunk_size: int = 50) -> None:
    """Queue ``numbers`` for REQUEST_ID as the API does, request record included."""
    settings = Settings(
        table_name=TABLE_NAME, queue_url=setup.queues.url, queue_chunk_size=chunk_size
    )
    delivery = QueuedDelivery(
        DeliveryQueue(setup.sqs, setup.queues.url), setup.ledger, settings
    )
    queued = [
        QueuedNumber(number.removeprefix("+"), PairJob(number, FIRST_TEXT, SECOND_TEXT))
        for number in numbers
    ]

    not_queued = delivery.enqueue(
        REQUEST_ID, DOMAIN, "app-1", queued, ATTRIBUTES, QueueReason.PREFER_ASYNC
    )

    assert not_queued == set()


def receive_event(setup: QueueSetup) -> dict[str, Any]:
    """Receive every visible message and return them as one Lambda SQS event."""
    from devserver.consumer import sqs_event

    response = setup.sqs.receive_message(
        QueueUrl=setup.queues.url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        VisibilityTimeout=0,
    )
    return sqs_event(response.get("Messages", []), setup.queues.arn, REGION)


def handle(event: dict[str, Any], remaining_ms: int = 100_000) -> dict[str, Any]:
    from handler.events import sqs_handler

    return sqs_handler(event, FakeLambdaContext(remaining_ms=remaining_ms))


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def expected_pair(number: str) -> list[tuple[str, str]]:
    return [(number, FIRST_TEXT), (number, SECOND_TEXT)]


def entries(setup: QueueSetup) -> list[NumberEntry]:
    ledger = setup.ledger.read(DOMAIN, REQUEST_ID)
    assert ledger is not None
    return ledger.numbers


def states(setup: QueueSetup) -> dict[str, NumberState]:
    return {"+" + entry.digits: entry.state for entry in entries(setup)}


class FlakySns:
    """Passes publishes to moto, but fails chosen (number, text) pairs first."""

    def __init__(self, real: Any, failures: dict[tuple[str, str], list[str]]) -> None:
        self.real = real
        # (number, text) -> error codes to raise, one per publish, in order.
        self.failures = failures

    def publish(self, PhoneNumber: str, Message: str, **kwargs: Any) -> Any:
        codes = self.failures.get((PhoneNumber, Message))
        if codes:
            code = codes.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": code}}, "Publish")
        return self.real.publish(PhoneNumber=PhoneNumber, Message=Message, **kwargs)


def use_flaky_sns(
    monkeypatch: pytest.MonkeyPatch, failures: dict[tuple[str, str], list[str]]
) -> None:
    from handler import events

    flaky = FlakySns(boto3.client("sns", region_name=REGION), failures)
    monkeypatch.setattr(events, "sns_client", lambda: flaky)


# Sending


def test_consumer_sends_each_number_in_order(setup: QueueSetup) -> None:
    queue_numbers(setup, NUMBERS)
    event = receive_event(setup)

    response = handle(event)

    assert failed_ids(response) == []
    assert sorted(sent_sms()) == sorted(
        pair for number in NUMBERS for pair in expected_pair(number)
    )
    for number in NUMBERS:
        assert [m for m in sent_sms() if m[0] == number] == expected_pair(number)
    assert states(setup) == {number: NumberState.SENT for number in NUMBERS}


def test_consumer_writes_sms_log(setup: QueueSetup) -> None:
    queue_numbers(setup, NUMBERS[:1])

    handle(receive_event(setup))
    records = setup.sms_log.read_request(DOMAIN, REQUEST_ID)

    assert [(r.phone_number, r.message) for r in records] == [
        (NUMBERS[0], "play_store_link"),
        (NUMBERS[0], "install_message"),
    ]
    assert all(record.message_id for record in records)


def test_consumer_handles_several_chunks(setup: QueueSetup) -> None:
    queue_numbers(setup, NUMBERS, chunk_size=1)
    event = receive_event(setup)

    response = handle(event)

    assert len(event["Records"]) == 3
    assert failed_ids(response) == []
    assert len(sent_sms()) == 6


# Redelivery and retries


def test_redelivered_message_sends_nothing_twice(setup: QueueSetup) -> None:
    queue_numbers(setup, NUMBERS)
    event = receive_event(setup)
    handle(event)
    sent_once = sent_sms()

    response = handle(event)

    assert failed_ids(response) == []
    assert sent_sms() == sent_once
    assert len(sent_once) == 6


def test_transient_failure_retries_only_that_number(
    setup: QueueSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_flaky_sns(monkeypatch, {(NUMBERS[1], FIRST_TEXT): ["Throttled"]})
    queue_numbers(setup, NUMBERS)
    event = receive_event(setup)

    first = handle(event)

    assert failed_ids(first) == [event["Records"][0]["messageId"]]
    assert states(setup) == {
        NUMBERS[0]: NumberState.SENT,
        NUMBERS[1]: NumberState.RETRY,
        NUMBERS[2]: NumberState.SENT,
    }
    assert len(sent_sms()) == 4

    second = handle(event)

    assert failed_ids(second) == []
    assert states(setup)[NUMBERS[1]] == NumberState.SENT
    assert [m for m in sent_sms() if m[0] == NUMBERS[1]] == expected_pair(NUMBERS[1])
    assert len(sent_sms()) == 6


def test_install_message_retry_sends_only_it(
    setup: QueueSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_flaky_sns(monkeypatch, {(NUMBERS[0], SECOND_TEXT): ["InternalError"]})
    queue_numbers(setup, NUMBERS[:1])
    event = receive_event(setup)

    first = handle(event)

    assert len(failed_ids(first)) == 1
    assert sent_sms() == [(NUMBERS[0], FIRST_TEXT)]

    second = handle(event)

    assert failed_ids(second) == []
    assert sent_sms() == expected_pair(NUMBERS[0])
    [entry] = entries(setup)
    assert entry.state == NumberState.SENT
    assert entry.first_message_id is not None
    assert entry.second_message_id is not None


def test_permanent_failure_is_not_retried(
    setup: QueueSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_flaky_sns(monkeypatch, {(NUMBERS[0], FIRST_TEXT): ["InvalidParameter"]})
    queue_numbers(setup, NUMBERS[:2])
    event = receive_event(setup)

    first = handle(event)
    second = handle(event)

    assert failed_ids(first) == []
    assert failed_ids(second) == []
    assert states(setup) == {
        NUMBERS[0]: NumberState.FAILED,
        NUMBERS[1]: NumberState.SENT,
    }
    assert sent_sms() == expected_pair(NUMBERS[1])


def test_numbers_past_deadline_are_retried(setup: QueueSetup) -> None:
    queue_numbers(setup, NUMBERS)
    event = receive_event(setup)

    # Less than DEADLINE_MARGIN_MS (3000) remains, so no number may start.
    first = handle(event, remaining_ms=1000)

    assert len(failed_ids(first)) == 1
    assert sent_sms() == []
    assert set(states(setup).values()) == {NumberState.RETRY}

    second = handle(event)

    assert failed_ids(second) == []
    assert len(sent_sms()) == 6


def test_live_claim_is_skipped(setup: QueueSetup) -> None:
    queue_numbers(setup, NUMBERS[:1])
    claim = setup.ledger.claim(DOMAIN, REQUEST_ID, NUMBERS[0][1:], NUMBERS[0], 0)
    assert claim is not None

    response = handle(receive_event(setup))

    assert failed_ids(response) == []
    assert sent_sms() == []
    assert states(setup) == {NUMBERS[0]: NumberState.SENDING}


def test_stale_claim_fails_without_sending(setup: QueueSetup) -> None:
    queue_numbers(setup, NUMBERS[:1])
    long_ago = datetime.now(UTC) - timedelta(seconds=CLAIM_TIMEOUT_SECONDS + 1)
    dead = DeliveryLedger(
        TABLE_NAME, setup.ledger.client, retention_days=90, clock=lambda: long_ago
    )
    assert dead.claim(DOMAIN, REQUEST_ID, NUMBERS[0][1:], NUMBERS[0], 0) is not None

    response = handle(receive_event(setup))

    assert failed_ids(response) == []
    assert sent_sms() == []
    [entry] = entries(setup)
    assert entry.state == NumberState.FAILED
    assert entry.error_code == DELIVERY_INTERRUPTED


# Poison messages and the dead-letter queue


def test_poison_message_reaches_dead_letter_queue(setup: QueueSetup) -> None:
    from handler.events import sqs_handler

    setup.sqs.send_message(QueueUrl=setup.queues.url, MessageBody='{"not": "a chunk"}')
    consumer = QueueConsumer(
        setup.sqs, setup.queues, sqs_handler, REGION, retry_delay_seconds=0
    )

    results = [consumer.poll_once(wait_seconds=0) for _ in range(MAX_RECEIVE_COUNT)]
    after_last_receive = consumer.poll_once(wait_seconds=0)

    assert [result.failed for result in results] == [1] * MAX_RECEIVE_COUNT
    assert after_last_receive.received == 0
    dead = setup.sqs.receive_message(
        QueueUrl=setup.queues.dead_letter_url, MaxNumberOfMessages=10
    )["Messages"]
    assert [message["Body"] for message in dead] == ['{"not": "a chunk"}']
    assert sent_sms() == []


def test_poison_message_does_not_block_others(setup: QueueSetup) -> None:
    from handler.events import sqs_handler

    setup.sqs.send_message(QueueUrl=setup.queues.url, MessageBody="not json")
    queue_numbers(setup, NUMBERS[:1])
    consumer = QueueConsumer(
        setup.sqs, setup.queues, sqs_handler, REGION, retry_delay_seconds=0
    )

    result = consumer.poll_once(wait_seconds=0)

    assert (result.received, result.deleted, result.failed) == (2, 1, 1)
    assert sent_sms() == expected_pair(NUMBERS[0])


def test_consumer_deletes_processed_messages(setup: QueueSetup) -> None:
    from handler.events import sqs_handler

    queue_numbers(setup, NUMBERS, chunk_size=2)
    consumer = QueueConsumer(setup.sqs, setup.queues, sqs_handler, REGION)

    first = consumer.poll_once(wait_seconds=0)
    second = consumer.poll_once(wait_seconds=0)

    assert (first.received, first.deleted, first.failed) == (2, 2, 0)
    assert second.received == 0
    attributes = setup.sqs.get_queue_attributes(
        QueueUrl=setup.queues.url, AttributeNames=["All"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 5
