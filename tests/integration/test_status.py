"""The status endpoint of queued requests, through the Lambda handler and moto."""

from datetime import UTC, datetime
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
)

from core.ledger import Claim, DeliveryLedger, NumberState, QueuedRequest
from core.repository import Repository

REQUEST_ID = "5f0c3c1e-8f7e-4b7a-9a51-00000000d001"
OTHER_REQUEST_ID = "5f0c3c1e-8f7e-4b7a-9a51-00000000e001"
ADMIN = "admin@demo.example:demo-admin-key"
BASE = "/a/demo/api/v0_5/sms_user_registration_reinstall"
NUMBERS = ["+1 617 555 2001", "16175552002", "(617) 555-2003"]
DIGITS = ["16175552001", "16175552002", "16175552003"]


@pytest.fixture
def ledger(cases_seeded: Repository) -> DeliveryLedger:
    return DeliveryLedger(
        TABLE_NAME, boto3.client("dynamodb", region_name=REGION), retention_days=90
    )


def record(ledger: DeliveryLedger, domain: str, request_id: str, expected: int) -> None:
    ledger.record_request(
        QueuedRequest(
            domain=domain,
            request_id=request_id,
            app_id="abcd1234abcd1234",
            expected=expected,
            chunk_count=1,
            reason="prefer_respond_async",
            queued_at=datetime.now(UTC),
        )
    )


def settle(
    ledger: DeliveryLedger, index: int, state: NumberState, domain: str = "demo"
) -> None:
    claim = ledger.claim(domain, REQUEST_ID, DIGITS[index], NUMBERS[index], index)
    assert isinstance(claim, Claim)
    if state != NumberState.SENDING:
        ledger.settle(domain, REQUEST_ID, DIGITS[index], claim, state)


def get_status(
    request_id: str = REQUEST_ID,
    *,
    path: str = BASE,
    api_key: str | None = ADMIN,
    method: str = "GET",
) -> dict[str, Any]:
    from handler.api import lambda_handler

    event = api_event(f"{path}/{request_id}/", method=method, api_key=api_key)
    return lambda_handler(event, FakeLambdaContext())


def not_found_body(request_id: str, domain: str = "demo") -> dict[str, str]:
    return {"error": f"No queued reinstall request {request_id} in domain {domain}."}


# Progress


def test_status_queued_before_any_send(ledger: DeliveryLedger) -> None:
    record(ledger, "demo", REQUEST_ID, expected=3)

    response = get_status()

    assert response["statusCode"] == 200
    assert response_json(response) == {
        "request_id": REQUEST_ID,
        "status": "queued",
        "sent_numbers": [],
        "failed_numbers": [],
        "pending": 3,
    }


def test_status_sending_while_numbers_remain(ledger: DeliveryLedger) -> None:
    record(ledger, "demo", REQUEST_ID, expected=3)
    settle(ledger, 0, NumberState.SENT)
    settle(ledger, 2, NumberState.RETRY)

    body = response_json(get_status())

    assert body["status"] == "sending"
    assert body["sent_numbers"] == [NUMBERS[0]]
    assert body["failed_numbers"] == []
    assert body["pending"] == 2


def test_status_complete_in_submitted_order(ledger: DeliveryLedger) -> None:
    record(ledger, "demo", REQUEST_ID, expected=3)
    settle(ledger, 2, NumberState.SENT)
    settle(ledger, 1, NumberState.FAILED)
    settle(ledger, 0, NumberState.SENT)

    body = response_json(get_status())

    assert body == {
        "request_id": REQUEST_ID,
        "status": "complete",
        "sent_numbers": [NUMBERS[0], NUMBERS[2]],
        "failed_numbers": [NUMBERS[1]],
        "pending": 0,
    }


def test_status_counts_claimed_number_as_pending(ledger: DeliveryLedger) -> None:
    record(ledger, "demo", REQUEST_ID, expected=1)
    settle(ledger, 0, NumberState.SENDING)

    body = response_json(get_status())

    assert body["status"] == "sending"
    assert body["pending"] == 1


def test_status_path_without_trailing_slash(ledger: DeliveryLedger) -> None:
    from handler.api import lambda_handler

    record(ledger, "demo", REQUEST_ID, expected=1)
    event = api_event(f"{BASE}/{REQUEST_ID}", method="GET", api_key=ADMIN)

    response = lambda_handler(event, FakeLambdaContext())

    assert response["statusCode"] == 200
    assert response_json(response)["status"] == "queued"


# Unknown ids and other domains


def test_status_unknown_request_is_404(ledger: DeliveryLedger) -> None:
    response = get_status(OTHER_REQUEST_ID)

    assert response["statusCode"] == 404
    assert response_json(response) == not_found_body(OTHER_REQUEST_ID)
    assert response_header(response, "Content-Type") == "application/json"


def test_status_other_domains_request_is_404(ledger: DeliveryLedger) -> None:
    # The admin is a member of both domains; the request belongs to the other.
    record(ledger, "enterprise-proj", OTHER_REQUEST_ID, expected=1)

    in_demo = get_status(OTHER_REQUEST_ID)
    in_owner = get_status(
        OTHER_REQUEST_ID,
        path="/a/enterprise-proj/api/v1/sms_user_registration_reinstall",
    )

    assert in_demo["statusCode"] == 404
    assert response_json(in_demo) == not_found_body(OTHER_REQUEST_ID)
    assert in_owner["statusCode"] == 200


def test_status_malformed_request_id_is_404(ledger: DeliveryLedger) -> None:
    response = get_status("not%20an%20id")

    assert response["statusCode"] == 404
    assert response_json(response) == not_found_body("not%20an%20id")


def test_status_unsupported_version_is_404(ledger: DeliveryLedger) -> None:
    record(ledger, "demo", REQUEST_ID, expected=1)

    response = get_status(path="/a/demo/api/v0_4/sms_user_registration_reinstall")

    assert response["statusCode"] == 404


# The same checks as a reinstall request


@pytest.mark.parametrize(
    ("path", "api_key", "status", "error"),
    [
        (BASE, None, 401, None),
        (BASE, "admin@demo.example:wrong-key", 401, None),
        (BASE, "viewer@demo.example:demo-viewer-key", 403, None),
        (
            "/a/other-proj/api/v0_5/sms_user_registration_reinstall",
            "scoped@demo.example:scoped-key",
            401,
            None,
        ),
        (
            "/a/community-proj/api/v0_5/sms_user_registration_reinstall",
            ADMIN,
            401,
            "Your current plan does not have access to this feature",
        ),
        (
            "/a/disabled-proj/api/v0_5/sms_user_registration_reinstall",
            ADMIN,
            403,
            "Please first enable SMS mobile worker registration for your project.",
        ),
        (
            "/a/no-such-domain/api/v0_5/sms_user_registration_reinstall",
            ADMIN,
            403,
            None,
        ),
    ],
)
def test_status_checks_caller_and_domain(
    ledger: DeliveryLedger,
    path: str,
    api_key: str | None,
    status: int,
    error: str | None,
) -> None:
    record(ledger, "demo", REQUEST_ID, expected=1)

    response = get_status(path=path, api_key=api_key)

    assert response["statusCode"] == status
    body = response_json(response)
    assert set(body) == {"error"}
    if error is not None:
        assert body["error"] == error


# Methods


def test_status_path_rejects_post_with_405(ledger: DeliveryLedger) -> None:
    response = get_status(method="POST")

    assert response["statusCode"] == 405
    assert response_header(response, "Allow") == "GET"


def test_collection_get_is_still_405(ledger: DeliveryLedger) -> None:
    from handler.api import lambda_handler

    event = api_event(BASE + "/", method="GET", api_key=ADMIN)

    response = lambda_handler(event, FakeLambdaContext())

    assert response["statusCode"] == 405
    assert response_header(response, "Allow") == "POST"
