"""Run the sample events in events/ through the Lambda handlers.

Each event is the exact payload that `sam local invoke -e events/FILE.json`
passes to the function, so these tests keep the samples and the handlers in
step. events/expected_status.json maps each API Gateway event file to its
expected status, and each other event file to an object naming its handler
(`sqs` or `eventbridge`) and the outcome expected from it.
"""

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
EXPECTED_STATUS_FILE = "expected_status.json"
EXPECTED_OUTCOMES: dict[str, Any] = json.loads(
    (EVENTS_DIR / EXPECTED_STATUS_FILE).read_text(encoding="utf-8")
)
# API Gateway events map to an HTTP status; the others to an object.
EXPECTED_STATUS: dict[str, int] = {
    name: outcome
    for name, outcome in EXPECTED_OUTCOMES.items()
    if isinstance(outcome, int)
}
SQS_EVENTS: dict[str, dict[str, Any]] = {
    name: outcome
    for name, outcome in EXPECTED_OUTCOMES.items()
    if isinstance(outcome, dict) and outcome["handler"] == "sqs"
}

REGION = "us-east-1"
PLAY_STORE_LINK = (
    "https://play.google.com/store/apps/details?id=org.commcare.dalvik&hl=en"
)
APP_INFO_URL = "https://www.commcarehq.org/a/demo/sms/app_info/abcd1234abcd1234/"
INSTALL_MESSAGE = "[commcare app - do not delete] " + base64.b64encode(
    APP_INFO_URL.encode("ascii")
).decode("ascii")

# First SMS expected for each sample event that returns 200.
EXPECTED_PLAY_STORE_MESSAGE = {
    "reinstall.json": (
        "To install CommCare, follow this link to the Google Play store: "
        + PLAY_STORE_LINK
    ),
    "custom_message.json": "Click here to install CommCare: " + PLAY_STORE_LINK,
}


def load_event(file_name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / file_name).read_text(encoding="utf-8"))


def response_header(response: dict[str, Any], name: str) -> list[str]:
    """Collect a header's values from `headers` and `multiValueHeaders`.

    Header names are compared case-insensitively, as HTTP requires.
    """
    values: list[str] = []
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            values.append(value)
    for key, value_list in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            values.extend(value_list)
    return values


def sent_sms() -> list[tuple[str, str]]:
    """Return (phone number, message) for each SMS that moto's SNS accepted."""
    backend = sns_backends[DEFAULT_ACCOUNT_ID][REGION]
    return list(backend.sms_messages.values())


def test_every_sample_event_has_expected_status() -> None:
    event_files = sorted(
        path.name
        for path in EVENTS_DIR.glob("*.json")
        if path.name != EXPECTED_STATUS_FILE
    )

    assert event_files == sorted(EXPECTED_OUTCOMES)


@pytest.mark.parametrize("event_file", sorted(EXPECTED_STATUS))
def test_sample_event_returns_expected_status(
    event_file: str, seeded: Any, lambda_context: Any
) -> None:
    # Imported inside the test so that the module's import-time settings come
    # from the environment that the fixtures set.
    from handler.api import lambda_handler

    event = load_event(event_file)

    response = lambda_handler(event, lambda_context)

    assert response["statusCode"] == EXPECTED_STATUS[event_file]
    assert response_header(response, "Content-Type") == ["application/json"]
    assert isinstance(json.loads(response["body"]), dict)


@pytest.mark.parametrize("event_file", sorted(EXPECTED_PLAY_STORE_MESSAGE))
def test_sample_event_sends_both_sms(
    event_file: str, seeded: Any, lambda_context: Any
) -> None:
    from handler.api import lambda_handler

    event = load_event(event_file)
    phone_numbers = [
        user["phone_number"] for user in json.loads(event["body"])["users"]
    ]

    response = lambda_handler(event, lambda_context)

    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {
        "success_numbers": phone_numbers,
        "invalid_format_numbers": [],
        "error_numbers": [],
    }
    assert phone_numbers == ["16175551234"]
    assert sent_sms() == [
        ("+16175551234", EXPECTED_PLAY_STORE_MESSAGE[event_file]),
        ("+16175551234", INSTALL_MESSAGE),
    ]


def test_invalid_body_event_reports_field_errors(
    seeded: Any, lambda_context: Any
) -> None:
    from handler.api import lambda_handler

    event = load_event("invalid_body.json")

    response = lambda_handler(event, lambda_context)
    errors = json.loads(response["body"])["sms_user_registration_reinstall"]

    assert response["statusCode"] == 400
    # The body lacks app_id and has a string for users. The service may stop at
    # the first error, as CommCare HQ does, or report both.
    assert errors
    assert set(errors) <= {"app_id", "users"}
    if "app_id" in errors:
        assert errors["app_id"].startswith("This field is required")
    if "users" in errors:
        assert errors["users"].startswith("Expected type: list")


@pytest.mark.parametrize("event_file", sorted(SQS_EVENTS))
def test_sqs_sample_event_sends_both_sms(
    event_file: str, seeded: Any, lambda_context: Any
) -> None:
    from handler.events import sqs_handler

    event = load_event(event_file)

    response = sqs_handler(event, lambda_context)

    failures = response["batchItemFailures"]
    assert len(failures) == SQS_EVENTS[event_file]["batch_item_failures"]
    assert sent_sms() == [
        ("+16175551234", EXPECTED_PLAY_STORE_MESSAGE["reinstall.json"]),
        ("+16175551234", INSTALL_MESSAGE),
    ]
