"""EventBridge reinstall requests through the Lambda handler, against moto."""

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import REGION, TABLE_NAME, FakeLambdaContext, sent_sms

from core.errors import StorageUnavailableError
from core.ledger import DeliveryLedger
from core.queueing import Chunk
from core.repository import Repository
from devserver.consumer import Queues, create_queues, sqs_event

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
PLAY_STORE_LINK = (
    "https://play.google.com/store/apps/details?id=org.commcare.dalvik&hl=en"
)
INSTALL_MESSAGE = "[commcare app - do not delete] " + base64.b64encode(
    b"https://www.commcarehq.org/a/demo/sms/app_info/abcd1234abcd1234/"
).decode("ascii")
EVENT_ID = "6a7e8feb-b491-4cf7-a9f1-bf3703467718"
APP_ID = "abcd1234abcd1234"


@pytest.fixture
def queues(
    cases_seeded: Repository, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Queues]:
    """A moto delivery queue that the service's settings point at."""
    from core.aws import reset_clients
    from handler import events

    created = create_queues(boto3.client("sqs", region_name=REGION), "events-test")
    monkeypatch.setenv("QUEUE_URL", created.url)
    reset_clients()
    events.get_service.cache_clear()
    yield created
    events.get_service.cache_clear()


def reinstall_event(**detail: Any) -> dict[str, Any]:
    base = {
        "domain": "demo",
        "app_id": APP_ID,
        "users": [{"phone_number": "16175554001"}, {"phone_number": "16175554002"}],
        "requested_by": "ops@example.org",
    }
    base.update(detail)
    return {
        "version": "0",
        "id": EVENT_ID,
        "detail-type": "CommCare Reinstall Requested",
        "source": "org.commcarehq.hq",
        "account": "123456789012",
        "time": "2026-12-04T16:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {name: value for name, value in base.items() if value is not None},
    }


def handle(event: dict[str, Any]) -> dict[str, Any]:
    from handler.events import eventbridge_handler

    return eventbridge_handler(event, FakeLambdaContext())


def queued_chunks(queues: Queues) -> list[Chunk]:
    sqs = boto3.client("sqs", region_name=REGION)
    response = sqs.receive_message(
        QueueUrl=queues.url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return [Chunk.from_json(m["Body"]) for m in response.get("Messages", [])]


def consume(queues: Queues) -> dict[str, Any]:
    from handler.events import sqs_handler

    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(
        QueueUrl=queues.url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        VisibilityTimeout=0,
    ).get("Messages", [])
    return sqs_handler(sqs_event(messages, queues.arn, REGION), FakeLambdaContext())


# Valid events


def test_event_queues_its_numbers(queues: Queues) -> None:
    result = handle(reinstall_event())

    assert result == {
        "request_id": EVENT_ID,
        "accepted": True,
        "success_numbers": ["16175554001", "16175554002"],
        "invalid_format_numbers": [],
        "error_numbers": [],
    }
    [chunk] = queued_chunks(queues)
    assert chunk.request_id == EVENT_ID
    assert chunk.domain == "demo"
    assert [n.phone_number for n in chunk.numbers] == ["+16175554001", "+16175554002"]
    assert sent_sms() == []


def test_event_numbers_are_sent_by_consumer(queues: Queues) -> None:
    handle(reinstall_event(reinstall_message="Install CommCare: {}"))

    response = consume(queues)

    assert response["batchItemFailures"] == []
    for number in ("+16175554001", "+16175554002"):
        assert [text for sent_to, text in sent_sms() if sent_to == number] == [
            "Install CommCare: " + PLAY_STORE_LINK,
            INSTALL_MESSAGE,
        ]
    assert len(sent_sms()) == 4
    ledger = DeliveryLedger(
        TABLE_NAME, boto3.client("dynamodb", region_name=REGION), retention_days=90
    )
    record = ledger.read("demo", EVENT_ID)
    assert record is not None
    assert record.request.expected == 2
    assert [entry.submitted for entry in record.numbers] == [
        "16175554001",
        "16175554002",
    ]


def test_event_applies_per_number_checks(queues: Queues) -> None:
    result = handle(
        reinstall_event(
            users=[
                {"phone_number": "16175554001"},
                {"phone_number": "1617JKL1234"},
                # Verified to another domain.
                {"phone_number": "16175550101"},
            ]
        )
    )

    assert result["accepted"] is True
    assert result["success_numbers"] == ["16175554001"]
    assert result["invalid_format_numbers"] == ["1617JKL1234"]
    assert result["error_numbers"] == ["16175550101"]
    [chunk] = queued_chunks(queues)
    assert [n.phone_number for n in chunk.numbers] == ["+16175554001"]


def test_event_delivered_twice_sends_once(queues: Queues) -> None:
    handle(reinstall_event())
    handle(reinstall_event())

    consume(queues)
    consume(queues)

    assert sorted(number for number, _ in sent_sms()) == [
        "+16175554001",
        "+16175554001",
        "+16175554002",
        "+16175554002",
    ]


def test_sample_eventbridge_events(queues: Queues) -> None:
    expected = json.loads((EVENTS_DIR / "expected_status.json").read_text())
    samples = {
        name: outcome
        for name, outcome in expected.items()
        if isinstance(outcome, dict) and outcome["handler"] == "eventbridge"
    }

    assert sorted(samples) == ["eventbridge_invalid.json", "eventbridge_reinstall.json"]
    for name, outcome in samples.items():
        event = json.loads((EVENTS_DIR / name).read_text())
        assert handle(event)["accepted"] is outcome["accepted"], name


# Invalid events: logged, not raised, nothing queued


def without(event: dict[str, Any], *names: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    for name in names:
        del event["detail"][name]
    return event


@pytest.mark.parametrize(
    ("event", "error_type", "reason_start"),
    [
        (without(reinstall_event(), "domain"), "InvalidEvent", "detail.domain"),
        (
            without(reinstall_event(), "requested_by"),
            "InvalidEvent",
            "detail.requested_by",
        ),
        ({**reinstall_event(), "detail": ["not", "an", "object"]}, "InvalidEvent", ""),
        (
            {**reinstall_event(), "detail-type": "Something Else"},
            "InvalidEvent",
            "detail-type",
        ),
        (
            reinstall_event(domain="no-such-domain"),
            "PermissionDeniedError",
            "",
        ),
        (
            reinstall_event(domain="community-proj", app_id="comm-app-0001"),
            "PlanNotEntitledError",
            "Your current plan does not have access to this feature",
        ),
        (
            reinstall_event(domain="disabled-proj", app_id="dis-app-0001"),
            "RegistrationDisabledError",
            "Please first enable SMS mobile worker registration",
        ),
        (without(reinstall_event(), "app_id"), "RequestValidationError", "app_id"),
        (reinstall_event(users="16175554001"), "RequestValidationError", "users"),
        (
            reinstall_event(app_id="deleted-app-0001"),
            "RequestValidationError",
            "app_id: Invalid app_id specified",
        ),
        (
            reinstall_event(reinstall_message="no placeholder"),
            "RequestValidationError",
            "reinstall_message",
        ),
    ],
)
def test_invalid_event_is_rejected_without_raising(
    queues: Queues, event: dict[str, Any], error_type: str, reason_start: str
) -> None:
    result = handle(event)

    assert result["accepted"] is False
    assert result["error_type"] == error_type
    assert result["reason"].startswith(reason_start)
    assert queued_chunks(queues) == []


def test_storage_failure_raises_for_retry(
    queues: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> bool:
        raise StorageUnavailableError("The service's storage is unavailable.")

    monkeypatch.setattr(DeliveryLedger, "record_request", unavailable)

    with pytest.raises(StorageUnavailableError):
        handle(reinstall_event())
    assert queued_chunks(queues) == []
