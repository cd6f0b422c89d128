"""Idempotency-Key handling through the Lambda handler, with DynamoDB and SNS in moto."""

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from conftest import (
    REGION,
    FakeLambdaContext,
    api_event,
    response_header,
    response_json,
    sent_sms,
)

from core.errors import StorageUnavailableError
from core.idempotency import create_idempotency_table
from core.repository import Repository
from core.settings import Settings

PATH = "/a/demo/api/v0_5/sms_user_registration_reinstall/"
ENTERPRISE_PATH = "/a/enterprise-proj/api/v0_5/sms_user_registration_reinstall/"
ADMIN = "admin@demo.example:demo-admin-key"
SCOPED = "scoped@demo.example:scoped-key"
BODY = {"app_id": "abcd1234abcd1234", "users": [{"phone_number": "16175551234"}]}
OTHER_BODY = {"app_id": "abcd1234abcd1234", "users": [{"phone_number": "16175551235"}]}
SUCCESS = {
    "success_numbers": ["16175551234"],
    "invalid_format_numbers": [],
    "error_numbers": [],
}
IDEMPOTENCY_TABLE = Settings().idempotency_table_name


@pytest.fixture
def idempotency_table(cases_seeded: Repository) -> Iterator[Any]:
    """The multi-domain seed plus an empty idempotency table; yields a client."""
    client = boto3.client("dynamodb", region_name=REGION)
    create_idempotency_table(client, IDEMPOTENCY_TABLE)
    yield client


def call(
    context: FakeLambdaContext,
    body: Any = BODY,
    *,
    key: str | None = "retry-0001",
    api_key: str | None = ADMIN,
    path: str = PATH,
    raw_body: str | None = None,
) -> dict[str, Any]:
    from handler.api import lambda_handler

    headers = {"Idempotency-Key": key} if key is not None else {}
    event = api_event(path, body, api_key=api_key, headers=headers, raw_body=raw_body)
    return lambda_handler(event, context)


def records(client: Any) -> list[dict[str, Any]]:
    return client.scan(TableName=IDEMPOTENCY_TABLE, ConsistentRead=True)["Items"]


def test_first_request_runs_and_is_stored(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    response = call(lambda_context)

    assert response["statusCode"] == 200
    assert response_json(response) == SUCCESS
    assert response_header(response, "Idempotent-Replayed") is None
    assert len(sent_sms()) == 2
    stored = records(idempotency_table)
    assert len(stored) == 1
    assert stored[0]["status"]["S"] == "COMPLETED"
    stored_response = json.loads(stored[0]["data"]["S"])
    assert stored_response == {"status_code": 200, "body": json.dumps(SUCCESS)}


def test_repeat_replays_without_sending(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    first = call(lambda_context)
    sent_after_first = sent_sms()

    repeat = call(lambda_context)

    assert repeat["statusCode"] == first["statusCode"]
    assert repeat["body"] == first["body"]
    assert response_json(repeat) == SUCCESS
    assert response_header(repeat, "Idempotent-Replayed") == "true"
    assert response_header(repeat, "Content-Type") == "application/json"
    assert sent_sms() == sent_after_first
    assert len(sent_after_first) == 2


def test_reserialized_body_replays(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    call(lambda_context)
    reordered = json.dumps(
        {"users": [{"phone_number": "16175551234"}], "app_id": "abcd1234abcd1234"},
        indent=4,
    )

    repeat = call(lambda_context, raw_body="\ufeff" + reordered)

    assert repeat["statusCode"] == 200
    assert response_header(repeat, "Idempotent-Replayed") == "true"
    assert len(sent_sms()) == 2


def test_different_body_is_422(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    call(lambda_context)

    response = call(lambda_context, OTHER_BODY)

    assert response["statusCode"] == 422
    body = response_json(response)
    assert list(body) == ["error"]
    assert body["error"].startswith(
        "Idempotency-Key 'retry-0001' was already used with a different request body."
    )
    assert response_header(response, "Idempotent-Replayed") is None
    assert len(sent_sms()) == 2


def test_other_user_same_key_runs_separately(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    call(lambda_context)

    response = call(lambda_context, api_key=SCOPED)

    assert response["statusCode"] == 200
    assert response_header(response, "Idempotent-Replayed") is None
    assert len(sent_sms()) == 4
    assert len(records(idempotency_table)) == 2


def test_other_domain_same_key_runs_separately(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    call(lambda_context)
    enterprise_body = {
        "app_id": "ent-app-0001",
        "users": [{"phone_number": "16175551234"}],
    }

    response = call(lambda_context, enterprise_body, path=ENTERPRISE_PATH)

    assert response["statusCode"] == 200
    assert response_header(response, "Idempotent-Replayed") is None
    assert len(sent_sms()) == 4


def test_in_progress_record_is_409(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    call(lambda_context)
    (record,) = records(idempotency_table)
    # Turn the finished record back into the state it had while the first
    # request ran: in progress, its Lambda deadline 20 s ahead, no response.
    idempotency_table.update_item(
        TableName=IDEMPOTENCY_TABLE,
        Key={"id": record["id"]},
        UpdateExpression="SET #status = :in_progress, #deadline = :deadline "
        "REMOVE #data",
        ExpressionAttributeNames={
            "#status": "status",
            "#deadline": "in_progress_expiration",
            "#data": "data",
        },
        ExpressionAttributeValues={
            ":in_progress": {"S": "INPROGRESS"},
            ":deadline": {"N": str(int(time.time() * 1000) + 20_000)},
        },
    )

    response = call(lambda_context)

    assert response["statusCode"] == 409
    assert response_header(response, "Retry-After") == "5"
    assert response_json(response) == {
        "error": "A request with Idempotency-Key 'retry-0001' is still being "
        "processed. Retry after 5 seconds."
    }
    assert len(sent_sms()) == 2


def test_concurrent_repeat_is_409(
    idempotency_table: Any,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from handler import api

    service = api.get_service()
    real_reinstall = service.reinstall
    repeats: list[dict[str, Any]] = []

    def reinstall_and_repeat(*args: Any, **kwargs: Any) -> Any:
        # The repeat arrives while the first request is still inside the
        # service, before it has sent anything.
        repeats.append(call(lambda_context))
        return real_reinstall(*args, **kwargs)

    monkeypatch.setattr(service, "reinstall", reinstall_and_repeat)

    first = call(lambda_context)

    assert first["statusCode"] == 200
    assert len(repeats) == 1
    assert repeats[0]["statusCode"] == 409
    assert response_header(repeats[0], "Retry-After") == "5"
    assert len(sent_sms()) == 2


def test_expired_record_runs_again(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    call(lambda_context)
    (record,) = records(idempotency_table)
    idempotency_table.update_item(
        TableName=IDEMPOTENCY_TABLE,
        Key={"id": record["id"]},
        UpdateExpression="SET #expiration = :past",
        ExpressionAttributeNames={"#expiration": "expiration"},
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 10)}},
    )

    response = call(lambda_context)

    assert response["statusCode"] == 200
    assert response_header(response, "Idempotent-Replayed") is None
    assert len(sent_sms()) == 4


def test_record_expires_after_ttl(
    idempotency_table: Any,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conftest import reset_cached_clients

    monkeypatch.setenv("IDEMPOTENCY_TTL_SECONDS", "3600")
    reset_cached_clients()
    before = int(time.time())

    call(lambda_context)

    after = int(time.time())
    (record,) = records(idempotency_table)
    expiration = int(record["expiration"]["N"])
    assert before + 3600 <= expiration <= after + 3600


@pytest.mark.parametrize(
    ("api_key", "status"),
    [
        (None, 401),
        ("admin@demo.example:wrong-key", 401),
        ("viewer@demo.example:demo-viewer-key", 403),
    ],
)
def test_rejected_caller_reaches_no_record(
    idempotency_table: Any,
    lambda_context: FakeLambdaContext,
    api_key: str | None,
    status: int,
) -> None:
    call(lambda_context)

    response = call(lambda_context, api_key=api_key)

    assert response["statusCode"] == status
    assert list(response_json(response)) == ["error"]
    assert response_header(response, "Idempotent-Replayed") is None
    assert len(records(idempotency_table)) == 1


def test_rejected_request_is_not_stored(
    idempotency_table: Any,
    lambda_context: FakeLambdaContext,
    cases_seeded: Repository,
) -> None:
    disabled = call(lambda_context, path=PATH.replace("demo", "disabled-proj"))
    assert disabled["statusCode"] == 403

    bad_app = call(lambda_context, {"app_id": "nope", "users": []})
    assert bad_app["statusCode"] == 400
    assert records(idempotency_table) == []

    retried = call(lambda_context, {"app_id": "nope", "users": []})
    assert retried["statusCode"] == 400
    assert response_header(retried, "Idempotent-Replayed") is None


def test_rejection_does_not_block_the_key(
    idempotency_table: Any,
    lambda_context: FakeLambdaContext,
    cases_seeded: Repository,
) -> None:
    domain = cases_seeded.get_domain("demo")
    assert domain is not None
    cases_seeded.put_domain(dataclasses.replace(domain, sms_registration_enabled=False))
    rejected = call(lambda_context)
    assert rejected["statusCode"] == 403
    cases_seeded.put_domain(domain)

    retried = call(lambda_context)

    assert retried["statusCode"] == 200
    assert response_header(retried, "Idempotent-Replayed") is None
    assert len(sent_sms()) == 2


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (StorageUnavailableError("The service's storage is unavailable."), 503),
        (RuntimeError("unexpected"), 500),
    ],
)
def test_server_error_is_not_stored(
    idempotency_table: Any,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
) -> None:
    from handler import api

    service = api.get_service()
    real_reinstall = service.reinstall
    failures = [error]

    def fail_once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_reinstall(*args, **kwargs)

    monkeypatch.setattr(service, "reinstall", fail_once)

    failed = call(lambda_context)
    assert failed["statusCode"] == status
    assert records(idempotency_table) == []
    assert sent_sms() == []

    retried = call(lambda_context)

    assert retried["statusCode"] == 200
    assert response_header(retried, "Idempotent-Replayed") is None
    assert response_json(retried) == SUCCESS
    assert len(sent_sms()) == 2


def test_missing_table_is_503_and_sends_nothing(
    cases_seeded: Repository, lambda_context: FakeLambdaContext
) -> None:
    response = call(lambda_context)

    assert response["statusCode"] == 503
    assert response_header(response, "Retry-After") == "5"
    assert response_json(response)["error"] == (
        "The service's storage is unavailable; retry later."
    )
    assert sent_sms() == []


def test_unstorable_response_is_still_returned(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    # The echoed invalid number makes the record larger than DynamoDB's
    # 400 KB item limit, so it cannot be saved.
    long_number = "1" * 450_000
    body = {
        "app_id": "abcd1234abcd1234",
        "users": [{"phone_number": "16175551234"}, {"phone_number": long_number}],
    }

    response = call(lambda_context, body)

    assert response["statusCode"] == 200
    assert response_json(response) == {
        "success_numbers": ["16175551234"],
        "invalid_format_numbers": [long_number],
        "error_numbers": [],
    }
    assert len(sent_sms()) == 2


def test_request_without_key_stores_nothing(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    first = call(lambda_context, key=None)
    second = call(lambda_context, key=None)

    assert first["statusCode"] == 200
    assert second["statusCode"] == 200
    assert response_header(second, "Idempotent-Replayed") is None
    assert records(idempotency_table) == []
    assert len(sent_sms()) == 4


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "the value is empty"),
        ("k" * 256, "the value is 256 characters long"),
        (" leading-space", "the value contains a character outside printable ASCII"),
        ("trailing-space ", "the value contains a character outside printable ASCII"),
        ("tab\there", "the value contains a character outside printable ASCII"),
        ("clé", "the value contains a character outside printable ASCII"),
        ("null\x00byte", "the value contains a character outside printable ASCII"),
    ],
)
def test_invalid_key_is_400(
    idempotency_table: Any, lambda_context: FakeLambdaContext, key: str, problem: str
) -> None:
    response = call(lambda_context, key=key)

    assert response["statusCode"] == 400
    body = response_json(response)
    assert list(body) == ["sms_user_registration_reinstall"]
    assert list(body["sms_user_registration_reinstall"]) == ["__all__"]
    message = body["sms_user_registration_reinstall"]["__all__"]
    assert message.startswith(f"Invalid Idempotency-Key header: {problem}")
    assert records(idempotency_table) == []
    assert sent_sms() == []


def test_repeated_key_header_is_400(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    from handler.api import lambda_handler

    event = api_event(PATH, BODY, api_key=ADMIN)
    event["multiValueHeaders"]["Idempotency-Key"] = ["retry-0001", "retry-0002"]
    event["headers"]["Idempotency-Key"] = "retry-0002"

    response = lambda_handler(event, lambda_context)

    assert response["statusCode"] == 400
    message = response_json(response)["sms_user_registration_reinstall"]["__all__"]
    assert message.startswith(
        "Invalid Idempotency-Key header: the header was sent 2 times; send it once."
    )
    assert sent_sms() == []


def test_invalid_key_without_credentials_is_401(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    response = call(lambda_context, key="", api_key=None)

    assert response["statusCode"] == 401


@pytest.mark.parametrize(
    "key", ["x", "k" * 255, "with inner space", "!~\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}"]
)
def test_valid_key_formats_are_accepted(
    idempotency_table: Any, lambda_context: FakeLambdaContext, key: str
) -> None:
    first = call(lambda_context, key=key)
    repeat = call(lambda_context, key=key)

    assert first["statusCode"] == 200
    assert repeat["statusCode"] == 200
    assert response_header(repeat, "Idempotent-Replayed") == "true"
    assert len(sent_sms()) == 2


def test_key_header_name_is_case_insensitive(
    idempotency_table: Any, lambda_context: FakeLambdaContext
) -> None:
    from handler.api import lambda_handler

    call(lambda_context)
    event = api_event(
        PATH, BODY, api_key=ADMIN, headers={"idempotency-key": "retry-0001"}
    )

    repeat = lambda_handler(event, lambda_context)

    assert repeat["statusCode"] == 200
    assert response_header(repeat, "Idempotent-Replayed") == "true"
    assert len(sent_sms()) == 2
