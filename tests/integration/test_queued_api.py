"""When the API queues a request, and what it returns, through the handler and moto."""

import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from conftest import (
    REGION,
    TABLE_NAME,
    FakeLambdaContext,
    api_event,
    response_header,
    response_json,
    sent_sms,
)

from core.idempotency import create_idempotency_table
from core.ledger import DeliveryLedger
from core.queueing import Chunk, DeliveryQueue
from core.repository import Repository
from core.settings import Settings
from devserver.consumer import Queues, create_queues

PATH = "/a/demo/api/v0_5/sms_user_registration_reinstall/"
APP_ID = "abcd1234abcd1234"
REQUEST_ID = "c0ffee00-0000-4000-8000-00000000a001"


@pytest.fixture
def queues(seeded: Repository, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queues]:
    """A moto delivery queue that the API's settings point at."""
    from conftest import reset_cached_clients

    created = create_queues(boto3.client("sqs", region_name=REGION), "api-test")
    monkeypatch.setenv("QUEUE_URL", created.url)
    reset_cached_clients()
    yield created


def numbers(count: int) -> list[str]:
    return [f"1617555{3000 + index:04d}" for index in range(count)]


def post(
    phone_numbers: list[str],
    *,
    headers: dict[str, str] | None = None,
    remaining_ms: int = 25_000,
) -> dict[str, Any]:
    from handler.api import lambda_handler

    body = {"app_id": APP_ID, "users": [{"phone_number": n} for n in phone_numbers]}
    event = api_event(PATH, body, headers=headers, request_id=REQUEST_ID)
    return lambda_handler(event, FakeLambdaContext(remaining_ms=remaining_ms))


def queued_chunks(queues: Queues) -> list[Chunk]:
    response = boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=queues.url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return [Chunk.from_json(m["Body"]) for m in response.get("Messages", [])]


def ledger() -> DeliveryLedger:
    return DeliveryLedger(
        TABLE_NAME, boto3.client("dynamodb", region_name=REGION), retention_days=90
    )


# Prefer: respond-async


def test_prefer_async_queues_and_answers_at_once(queues: Queues) -> None:
    submitted = numbers(3)

    response = post(submitted, headers={"Prefer": "respond-async"})

    assert response["statusCode"] == 200
    assert response_json(response) == {
        "success_numbers": submitted,
        "invalid_format_numbers": [],
        "error_numbers": [],
    }
    assert response_header(response, "X-Request-Id") == REQUEST_ID
    assert response_header(response, "Location") == f"{PATH}{REQUEST_ID}/"
    assert response_header(response, "Preference-Applied") == "respond-async"
    assert sent_sms() == []
    [chunk] = queued_chunks(queues)
    assert chunk.request_id == REQUEST_ID
    assert [n.submitted for n in chunk.numbers] == submitted


def test_prefer_async_writes_request_record(queues: Queues) -> None:
    post(numbers(3), headers={"Prefer": "respond-async"})

    record = ledger().read("demo", REQUEST_ID)

    assert record is not None
    assert record.request.expected == 3
    assert record.request.chunk_count == 1
    assert record.request.reason == "prefer_respond_async"
    assert record.numbers == []


@pytest.mark.parametrize(
    "prefer",
    ["respond-async", "RESPOND-ASYNC", "wait=10, respond-async", "respond-async; x=1"],
)
def test_prefer_header_variants_queue(queues: Queues, prefer: str) -> None:
    response = post(numbers(1), headers={"Prefer": prefer})

    assert response_header(response, "Location") == f"{PATH}{REQUEST_ID}/"


@pytest.mark.parametrize("prefer", ["return=minimal", "respond-asynchronously", ""])
def test_other_preferences_send_directly(queues: Queues, prefer: str) -> None:
    response = post(numbers(1), headers={"Prefer": prefer})

    assert response_header(response, "Location") is None
    assert len(sent_sms()) == 2
    assert queued_chunks(queues) == []


def test_location_has_stage_on_api_gateway_host(queues: Queues) -> None:
    headers = {
        "Prefer": "respond-async",
        "Host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
    }

    response = post(numbers(1), headers=headers)

    assert response_header(response, "Location") == f"/prod{PATH}{REQUEST_ID}/"


def test_checks_before_queuing_fill_buckets(queues: Queues) -> None:
    # Invalid format, and opted out (on moto's fixed opt-out list).
    submitted = ["16175553000", "1617JKL1234", "447420500600"]

    response = post(submitted, headers={"Prefer": "respond-async"})

    assert response_json(response) == {
        "success_numbers": ["16175553000"],
        "invalid_format_numbers": ["1617JKL1234"],
        "error_numbers": ["447420500600"],
    }
    [chunk] = queued_chunks(queues)
    assert [n.phone_number for n in chunk.numbers] == ["+16175553000"]


def test_nothing_sendable_is_not_queued(queues: Queues) -> None:
    response = post(["1617JKL1234"], headers={"Prefer": "respond-async"})

    assert response["statusCode"] == 200
    assert response_header(response, "Location") is None
    assert queued_chunks(queues) == []


def test_validation_error_is_not_queued(queues: Queues) -> None:
    from handler.api import lambda_handler

    event = api_event(PATH, {"users": []}, headers={"Prefer": "respond-async"})

    response = lambda_handler(event, FakeLambdaContext())

    assert response["statusCode"] == 400
    assert response_header(response, "Location") is None
    assert queued_chunks(queues) == []


# The deadline estimate and the domain's delivery setting


def test_small_request_is_sent_directly(queues: Queues) -> None:
    submitted = numbers(10)

    response = post(submitted)

    assert response_json(response)["success_numbers"] == submitted
    assert response_header(response, "Location") is None
    assert response_header(response, "X-Request-Id") is None
    assert len(sent_sms()) == 20
    assert queued_chunks(queues) == []


def test_request_over_deadline_is_queued(queues: Queues) -> None:
    # 11 numbers at 20 SMS/s take 1100 ms; 4000 ms remain, less the 3000 ms margin.
    response = post(numbers(11), remaining_ms=4000)

    assert response_header(response, "Location") == f"{PATH}{REQUEST_ID}/"
    assert response_header(response, "Preference-Applied") is None
    assert sent_sms() == []
    record = ledger().read("demo", REQUEST_ID)
    assert record is not None
    assert record.request.reason == "deadline"


def test_request_at_deadline_is_sent_directly(queues: Queues) -> None:
    # 10 numbers take exactly the 1000 ms left before the margin.
    response = post(numbers(10), remaining_ms=4000)

    assert response_header(response, "Location") is None
    assert len(sent_sms()) == 20


def test_queued_domain_queues_every_request(queues: Queues, seeded: Repository) -> None:
    domain = seeded.get_domain("demo")
    assert domain is not None
    seeded.put_domain(dataclasses.replace(domain, delivery="queued"))

    response = post(numbers(1))

    assert response_header(response, "Location") == f"{PATH}{REQUEST_ID}/"
    assert sent_sms() == []
    record = ledger().read("demo", REQUEST_ID)
    assert record is not None
    assert record.request.reason == "domain_delivery_queued"


def test_without_queue_url_everything_is_direct(seeded: Repository) -> None:
    response = post(numbers(2), headers={"Prefer": "respond-async"})

    assert response["statusCode"] == 200
    assert response_header(response, "Location") is None
    assert len(sent_sms()) == 4


# Failures and idempotency


def test_unqueued_chunk_numbers_are_errors(
    queues: Queues, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reject_first_chunk(self: DeliveryQueue, chunks: list[Chunk]) -> set[int]:
        return {0}

    monkeypatch.setenv("QUEUE_CHUNK_SIZE", "2")
    from conftest import reset_cached_clients

    reset_cached_clients()
    monkeypatch.setattr(DeliveryQueue, "send", reject_first_chunk)
    submitted = numbers(3)

    response = post(submitted, headers={"Prefer": "respond-async"})

    assert response_json(response) == {
        "success_numbers": submitted[2:],
        "invalid_format_numbers": [],
        "error_numbers": submitted[:2],
    }
    record = ledger().read("demo", REQUEST_ID)
    assert record is not None
    assert record.request.expected == 1
    assert sent_sms() == []


def test_idempotent_queued_request_has_headers_once(queues: Queues) -> None:
    create_idempotency_table(
        boto3.client("dynamodb", region_name=REGION),
        Settings().idempotency_table_name,
    )
    headers = {"Prefer": "respond-async", "Idempotency-Key": "queued-request-0001"}

    first = post(numbers(2), headers=headers)
    replay = post(numbers(2), headers=headers)

    assert first["statusCode"] == 200
    assert response_header(first, "Location") == f"{PATH}{REQUEST_ID}/"
    assert replay["statusCode"] == 200
    assert response_json(replay) == response_json(first)
    # The idempotency record keeps no headers, so the replay has no Location.
    assert response_header(replay, "Location") is None
    assert len(queued_chunks(queues)) == 1
