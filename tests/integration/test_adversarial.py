"""Hostile requests: huge bodies, deep nesting, and probes of other domains."""

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from conftest import (
    REGION,
    FakeLambdaContext,
    api_event,
    reset_cached_clients,
    response_header,
    response_json,
    sent_sms,
)

from core.idempotency import create_idempotency_table
from core.repository import Repository
from core.settings import Settings

BODY = {"app_id": "abcd1234abcd1234", "users": [{"phone_number": "16175551234"}]}
# A small limit keeps the bodies in these tests small.
MAX_BODY_BYTES = 2048


def path_for(domain: str) -> str:
    return f"/a/{domain}/api/v0_5/sms_user_registration_reinstall/"


def invoke(event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
    from handler.api import lambda_handler

    return lambda_handler(event, context)


@pytest.fixture
def idempotency_table(cases_seeded: Repository) -> Iterator[None]:
    client = boto3.client("dynamodb", region_name=REGION)
    create_idempotency_table(client, Settings().idempotency_table_name)
    yield


@pytest.fixture
def small_body_limit(
    idempotency_table: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """Set MAX_BODY_BYTES to 2048; yield the DynamoDB operations the handler calls."""
    monkeypatch.setenv("MAX_BODY_BYTES", str(MAX_BODY_BYTES))
    reset_cached_clients()
    from core.aws import dynamodb_client

    operations: list[str] = []

    def record(model: Any, **kwargs: Any) -> None:
        operations.append(model.name)

    dynamodb_client().meta.events.register("before-call.dynamodb", record)
    yield operations


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record every body that reaches JSON parsing in the service or the idempotency digest."""
    import core.idempotency
    import core.service
    import core.validation

    calls: list[bytes] = []
    real_parse_body = core.validation.parse_body
    real_body_digest = core.idempotency.body_digest

    def parse_body(body: bytes) -> Any:
        calls.append(body)
        return real_parse_body(body)

    def body_digest(body: bytes) -> str:
        calls.append(body)
        return real_body_digest(body)

    monkeypatch.setattr(core.service, "parse_body", parse_body)
    monkeypatch.setattr(core.idempotency, "body_digest", body_digest)
    return calls


def padded_body(size: int) -> str:
    """Return BODY as JSON padded with spaces to exactly ``size`` bytes."""
    text = json.dumps(BODY)
    return text + " " * (size - len(text))


# Body size


@pytest.mark.parametrize("key", [None, "size-0001"])
def test_body_over_limit_is_413_before_parsing(
    small_body_limit: list[str],
    parse_calls: list[bytes],
    lambda_context: FakeLambdaContext,
    key: str | None,
) -> None:
    headers = {"Idempotency-Key": key} if key else {}
    event = api_event(
        path_for("demo"),
        raw_body=padded_body(MAX_BODY_BYTES + 1),
        api_key="admin@demo.example:demo-admin-key",
        headers=headers,
    )

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 413
    assert response_json(response) == {
        "error": f"Request body is {MAX_BODY_BYTES + 1} bytes; the maximum is "
        f"{MAX_BODY_BYTES} bytes."
    }
    assert small_body_limit == []
    assert parse_calls == []
    assert sent_sms() == []


def test_body_at_limit_is_accepted(
    small_body_limit: list[str], lambda_context: FakeLambdaContext
) -> None:
    event = api_event(
        path_for("demo"),
        raw_body=padded_body(MAX_BODY_BYTES),
        api_key="admin@demo.example:demo-admin-key",
    )

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 200
    assert len(sent_sms()) == 2


def test_body_limit_counts_utf8_bytes(
    small_body_limit: list[str], lambda_context: FakeLambdaContext
) -> None:
    # 1100 "é" are 2200 bytes in UTF-8: the body is under the limit in
    # characters and over it in bytes.
    message = "é" * 1100 + " {}"
    body = {**BODY, "reinstall_message": message}
    event = api_event(
        path_for("demo"), body, api_key="admin@demo.example:demo-admin-key"
    )

    response = invoke(event, lambda_context)

    size = len(json.dumps(body).encode("utf-8"))
    assert response["statusCode"] == 413
    assert response_json(response)["error"] == (
        f"Request body is {size} bytes; the maximum is {MAX_BODY_BYTES} bytes."
    )
    assert small_body_limit == []


def test_base64_body_over_limit_is_not_decoded(
    small_body_limit: list[str],
    parse_calls: list[bytes],
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from handler import api

    decoded: list[str] = []
    real_b64decode = base64.b64decode

    def b64decode(data: Any, *args: Any, **kwargs: Any) -> bytes:
        decoded.append(data)
        return real_b64decode(data, *args, **kwargs)

    monkeypatch.setattr(api.base64, "b64decode", b64decode)
    encoded = base64.b64encode(b"x" * (MAX_BODY_BYTES * 2)).decode("ascii")
    event = api_event(
        path_for("demo"),
        raw_body=encoded,
        base64_encoded=True,
        api_key="admin@demo.example:demo-admin-key",
    )

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 413
    assert response_json(response)["error"] == (
        f"Request body is at least {len(encoded) // 4 * 3 - 2} bytes; the maximum is "
        f"{MAX_BODY_BYTES} bytes."
    )
    assert decoded == []
    assert parse_calls == []
    assert small_body_limit == []


def test_base64_body_just_over_limit_is_413(
    small_body_limit: list[str], lambda_context: FakeLambdaContext
) -> None:
    # The length bound lets this one through to decoding; its exact size fails.
    encoded = base64.b64encode(padded_body(MAX_BODY_BYTES + 1).encode()).decode()
    event = api_event(
        path_for("demo"),
        raw_body=encoded,
        base64_encoded=True,
        api_key="admin@demo.example:demo-admin-key",
    )

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 413
    assert response_json(response)["error"] == (
        f"Request body is {MAX_BODY_BYTES + 1} bytes; the maximum is "
        f"{MAX_BODY_BYTES} bytes."
    )
    assert small_body_limit == []


# Hostile JSON


def test_deeply_nested_body_is_400(
    cases_seeded: Repository, lambda_context: FakeLambdaContext
) -> None:
    depth = 100_000
    event = api_event(
        path_for("demo"),
        raw_body="[" * depth + "]" * depth,
        api_key="admin@demo.example:demo-admin-key",
    )

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 400
    message = response_json(response)["sms_user_registration_reinstall"]["__all__"]
    assert message.startswith("Request body must be a JSON object")


def test_deeply_nested_body_with_key_digests(
    idempotency_table: None, lambda_context: FakeLambdaContext
) -> None:
    from core.idempotency import body_digest

    nested = ("[" * 100_000 + "]" * 100_000).encode()

    assert body_digest(nested).startswith("bytes:")


# Other domains

# (credential, what it is) pairs. None of these may learn anything about
# "other-proj" (exists, app other-app-0001) that they could not learn about a
# project that does not exist.
PROBES = [
    ("admin@demo.example:demo-admin-key", "member of demo, not of other-proj"),
    ("viewer@demo.example:demo-viewer-key", "member of demo without edit_data"),
    ("scoped@demo.example:scoped-key", "key restricted to demo, edit_data in both"),
    ("expired@demo.example:expired-key", "expired key"),
    ("inactive@demo.example:inactive-key", "inactive web user"),
    ("nobody@demo.example:some-key", "unknown web user"),
]
APP_IDS = ["other-app-0001", "abcd1234abcd1234", "no-such-app"]


def probe(credential: str, domain: str, app_id: str, key: str | None) -> dict[str, Any]:
    body = {"app_id": app_id, "users": [{"phone_number": "16175551234"}]}
    headers = {"Idempotency-Key": key} if key else {}
    return api_event(path_for(domain), body, api_key=credential, headers=headers)


@pytest.mark.parametrize("credential", [c for c, _ in PROBES])
@pytest.mark.parametrize("key", [None, "probe-0001"])
def test_other_domain_answers_as_unknown_domain(
    idempotency_table: None,
    lambda_context: FakeLambdaContext,
    credential: str,
    key: str | None,
) -> None:
    answers = []
    for domain in ["other-proj", "no-such-proj"]:
        for app_id in APP_IDS:
            response = invoke(probe(credential, domain, app_id, key), lambda_context)
            # The project's own name is the only difference allowed.
            text = response["body"].replace(domain, "<domain>")
            answers.append((response["statusCode"], text))

    assert answers[0][0] in (401, 403)
    assert set(answers) == {answers[0]}
    assert sent_sms() == []


def test_scoped_key_rejected_in_other_member_domain(
    cases_seeded: Repository, lambda_context: FakeLambdaContext
) -> None:
    response = invoke(
        probe("scoped@demo.example:scoped-key", "other-proj", "other-app-0001", None),
        lambda_context,
    )

    assert response["statusCode"] == 401
    assert response_json(response) == {
        "error": "API key is restricted to another project and cannot be used here."
    }
    assert sent_sms() == []


def test_other_domains_app_is_invalid_app_id(
    cases_seeded: Repository, lambda_context: FakeLambdaContext
) -> None:
    answers = []
    for app_id in ["other-app-0001", "no-such-app"]:
        response = invoke(
            probe("admin@demo.example:demo-admin-key", "demo", app_id, None),
            lambda_context,
        )
        answers.append((response["statusCode"], response_json(response)))

    assert answers[0] == (
        400,
        {"sms_user_registration_reinstall": {"app_id": "Invalid app_id specified"}},
    )
    assert answers[1] == answers[0]
    assert sent_sms() == []


@pytest.mark.parametrize(
    ("credential", "status"),
    [
        ("viewer@demo.example:demo-viewer-key", 403),
        ("expired@demo.example:expired-key", 401),
        ("inactive@demo.example:inactive-key", 401),
        ("nobody@demo.example:some-key", 401),
        ("admin@demo.example:wrong-key", 401),
    ],
)
def test_stored_response_hidden_from_others(
    idempotency_table: None,
    lambda_context: FakeLambdaContext,
    credential: str,
    status: int,
) -> None:
    first = invoke(
        probe("admin@demo.example:demo-admin-key", "demo", "abcd1234abcd1234", "k-1"),
        lambda_context,
    )
    assert first["statusCode"] == 200

    response = invoke(
        probe(credential, "demo", "abcd1234abcd1234", "k-1"), lambda_context
    )

    assert response["statusCode"] == status
    assert list(response_json(response)) == ["error"]
    assert response_header(response, "Idempotent-Replayed") is None
    assert len(sent_sms()) == 2


def test_same_key_of_other_member_runs_fresh(
    idempotency_table: None, lambda_context: FakeLambdaContext
) -> None:
    invoke(
        probe("admin@demo.example:demo-admin-key", "demo", "abcd1234abcd1234", "k-1"),
        lambda_context,
    )

    response = invoke(
        probe("scoped@demo.example:scoped-key", "demo", "abcd1234abcd1234", "k-1"),
        lambda_context,
    )

    assert response["statusCode"] == 200
    assert response_header(response, "Idempotent-Replayed") is None
    assert len(sent_sms()) == 4


@pytest.mark.parametrize(
    ("credential", "status"),
    [
        (None, 401),
        ("viewer@demo.example:demo-viewer-key", 403),
        ("admin@demo.example:demo-admin-key", 400),
    ],
)
@pytest.mark.parametrize("key", [None, "base64-0001"])
def test_invalid_base64_checked_after_credentials(
    idempotency_table: None,
    lambda_context: FakeLambdaContext,
    credential: str | None,
    status: int,
    key: str | None,
) -> None:
    headers = {"Idempotency-Key": key} if key else {}
    event = api_event(
        path_for("demo"),
        raw_body="%%% not base64 %%%",
        base64_encoded=True,
        api_key=credential,
        headers=headers,
    )

    response = invoke(event, lambda_context)

    assert response["statusCode"] == status
    if status == 400:
        assert response_json(response) == {
            "sms_user_registration_reinstall": {
                "__all__": "Request body must be a JSON object; the base64 body "
                "could not be decoded"
            }
        }
    assert response_header(response, "Idempotent-Replayed") is None
    assert sent_sms() == []


# Methods the resolver has no route for


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "CONNECT"])
def test_unrouted_method_on_endpoint_405(
    cases_seeded: Repository, lambda_context: FakeLambdaContext, method: str
) -> None:
    event = api_event(path_for("demo"), method=method, body={})

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 405
    assert response_header(response, "Allow") == "POST"
    assert response_json(response) == {
        "error": f"Method {method} is not allowed; use POST."
    }
    assert sent_sms() == []


def test_unrouted_method_on_status_405(
    cases_seeded: Repository, lambda_context: FakeLambdaContext
) -> None:
    event = api_event(path_for("demo") + "some-request-id/", method="TRACE")

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 405
    assert response_header(response, "Allow") == "GET"


def test_unrouted_method_old_version_404(
    cases_seeded: Repository, lambda_context: FakeLambdaContext
) -> None:
    event = api_event(
        "/a/demo/api/v0_4/sms_user_registration_reinstall/", method="TRACE"
    )

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 404


def test_post_with_unroutable_domain_404(
    cases_seeded: Repository, lambda_context: FakeLambdaContext
) -> None:
    event = api_event(path_for("de`mo"), body=BODY)

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 404
    assert sent_sms() == []


@pytest.mark.parametrize(
    "raw_body",
    [
        '{"app_id": "abcd1234abcd1234", "users": [], "x": NaN}',
        '{"app_id": "abcd1234abcd1234", "users": [], "x": Infinity}',
        '{"app_id": "abcd1234abcd1234", "users": [], "x": ' + "9" * 5000 + "}",
        '{"app_id": "abcd1234abcd1234", "users": [], "x": "\\ud800"}',
        '{"app_id": "\\ud800", "users": []}',
        '{"app_id": "abcd1234abcd1234", "users": [], "reinstall_message": "\\ud800 {}"}',
    ],
    ids=[
        "nan",
        "infinity",
        "long-integer",
        "surrogate",
        "surrogate-app",
        "surrogate-msg",
    ],
)
def test_non_json_values_400(
    cases_seeded: Repository, lambda_context: FakeLambdaContext, raw_body: str
) -> None:
    event = api_event(
        path_for("demo"),
        raw_body=raw_body,
        api_key="admin@demo.example:demo-admin-key",
    )

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 400
    message = response_json(response)["sms_user_registration_reinstall"]["__all__"]
    assert message.startswith("Request body must be a JSON object")
    assert sent_sms() == []


def test_surrogate_with_idempotency_key_400(
    cases_seeded: Repository, lambda_context: FakeLambdaContext
) -> None:
    create_idempotency_table(
        boto3.client("dynamodb", region_name=REGION), Settings().idempotency_table_name
    )
    event = api_event(
        path_for("demo"),
        raw_body='{"app_id": "abcd1234abcd1234", "users": [], "x": "\\ud800"}',
        api_key="admin@demo.example:demo-admin-key",
        headers={"Idempotency-Key": "surrogate-1"},
    )

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 400


def test_same_e164_in_two_spellings_400(
    cases_seeded: Repository, lambda_context: FakeLambdaContext
) -> None:
    body = {
        "app_id": "abcd1234abcd1234",
        "users": [
            {"phone_number": "+44 (0)20 7946 0123"},
            {"phone_number": "+44 20 7946 0123"},
        ],
    }
    event = api_event(
        path_for("demo"), body=body, api_key="admin@demo.example:demo-admin-key"
    )

    response = invoke(event, lambda_context)

    assert response["statusCode"] == 400
    assert response_json(response) == {
        "sms_user_registration_reinstall": {
            "users": "phone_number cannot be reused within a request: 442079460123 "
            "(users[0] is the same number, +442079460123)"
        }
    }
    assert sent_sms() == []
