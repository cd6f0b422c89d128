"""Property tests of the handler under moto: buckets, order, and no 5xx for any body."""

import base64
import json
import uuid
from collections import Counter
from typing import Any

import boto3
import pytest
from conftest import (
    REGION,
    FakeLambdaContext,
    api_event,
    reset_cached_clients,
    response_header,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.idempotency import create_idempotency_table
from core.phone import normalize
from core.repository import Repository
from core.settings import Settings

PATH = "/a/demo/api/v0_5/sms_user_registration_reinstall/"
ADMIN = "admin@demo.example:demo-admin-key"
APP_ID = "abcd1234abcd1234"
BUCKETS = ("success_numbers", "invalid_format_numbers", "error_numbers")

# Each example calls the handler and moto in-process, so the counts stay small
# enough for the module to run in a few seconds.
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

valid_numbers = st.builds(lambda n: f"1617555{n:04d}", st.integers(0, 9999))
formatted_numbers = st.builds(
    lambda n, template: template.format(f"{n:04d}"),
    st.integers(0, 9999),
    st.sampled_from(
        ["+1 (617) 555-{}", "1.617.555.{}", "1\u00a0617\u00a0555\u00a0{}", "+1617555{}"]
    ),
)
# In the seed: verified to another domain, pending in another domain, opted
# out (moto's SNS reports every number ending in 99 as opted out), and
# verified to demo itself.
special_numbers = st.sampled_from(
    ["16175550101", "16175550102", "16175550199", "16175550100"]
)
phone_numbers = st.one_of(
    valid_numbers, formatted_numbers, special_numbers, st.text(max_size=20)
)
submissions = st.lists(phone_numbers, max_size=8, unique_by=normalize)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=10), children, max_size=5),
    ),
    max_leaves=20,
)
# Objects shaped like a request, so that examples reach the field checks
# and, now and then, the sending.
request_like = st.fixed_dictionaries(
    {},
    optional={
        "app_id": st.one_of(st.just(APP_ID), json_values),
        "users": st.one_of(
            st.lists(
                st.one_of(
                    st.fixed_dictionaries({"phone_number": phone_numbers}),
                    st.fixed_dictionaries({"phone_number": json_values}),
                    json_values,
                ),
                max_size=4,
            ),
            json_values,
        ),
        "reinstall_message": st.one_of(
            st.sampled_from(["Install: {}", "{0}", "{}{}", "{name}", "}{", ""]),
            json_values,
        ),
    },
)


@pytest.fixture
def handler_under_moto(
    cases_seeded: Repository, monkeypatch: pytest.MonkeyPatch
) -> Any:
    # The send rate limit would only slow the examples down.
    monkeypatch.setenv("SMS_MAX_SEND_RATE", "0")
    reset_cached_clients()
    create_idempotency_table(
        boto3.client("dynamodb", region_name=REGION), Settings().idempotency_table_name
    )
    from handler.api import lambda_handler

    return lambda_handler


def is_subsequence(items: list[str], sequence: list[str]) -> bool:
    remaining = iter(sequence)
    return all(item in remaining for item in items)


@PROPERTY_SETTINGS
@given(numbers=submissions)
def test_every_number_in_one_bucket_in_order(
    handler_under_moto: Any, lambda_context: FakeLambdaContext, numbers: list[str]
) -> None:
    body = {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]}

    response = handler_under_moto(api_event(PATH, body, api_key=ADMIN), lambda_context)

    assert response["statusCode"] == 200
    result = json.loads(response["body"])
    assert sorted(result) == sorted(BUCKETS)
    placed = [number for bucket in BUCKETS for number in result[bucket]]
    assert Counter(placed) == Counter(numbers)
    for bucket in BUCKETS:
        assert is_subsequence(result[bucket], numbers), bucket


def expected_bucket(number: str) -> str | None:
    """Return the bucket a 617-555 number must land in, or None to leave it unchecked.

    Numbers ending in 99 are left unchecked because opt-outs decide them.
    """
    digits = normalize(number)
    if not (digits.isascii() and digits.isdigit() and len(digits) == 11):
        return None
    if not digits.startswith("1617555") or digits.endswith("99"):
        return None
    if digits == "16175550101":  # verified to other-proj
        return "error_numbers"
    return "success_numbers"


@PROPERTY_SETTINGS
@given(numbers=submissions)
def test_known_numbers_land_in_expected_bucket(
    handler_under_moto: Any, lambda_context: FakeLambdaContext, numbers: list[str]
) -> None:
    body = {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]}

    response = handler_under_moto(api_event(PATH, body, api_key=ADMIN), lambda_context)

    result = json.loads(response["body"])
    for number in numbers:
        bucket = expected_bucket(number)
        if bucket is not None:
            assert number in result[bucket], (number, bucket)


def post(
    handler: Any,
    context: FakeLambdaContext,
    raw_body: str,
    *,
    base64_encoded: bool = False,
    key: str | None = None,
) -> dict[str, Any]:
    headers = {"Idempotency-Key": key} if key is not None else {}
    event = api_event(
        PATH,
        raw_body=raw_body,
        base64_encoded=base64_encoded,
        api_key=ADMIN,
        headers=headers,
    )
    return handler(event, context)


def assert_json_response(response: dict[str, Any], allowed: set[int]) -> None:
    assert response["statusCode"] in allowed
    assert response_header(response, "Content-Type") == "application/json"
    assert isinstance(json.loads(response["body"]), dict)


@PROPERTY_SETTINGS
@given(value=json_values)
def test_any_json_value_is_never_5xx(
    handler_under_moto: Any, lambda_context: FakeLambdaContext, value: Any
) -> None:
    response = post(handler_under_moto, lambda_context, json.dumps(value))

    assert_json_response(response, {400})


@PROPERTY_SETTINGS
@given(body=request_like)
def test_request_like_body_is_never_5xx(
    handler_under_moto: Any, lambda_context: FakeLambdaContext, body: dict[str, Any]
) -> None:
    response = post(handler_under_moto, lambda_context, json.dumps(body))

    assert_json_response(response, {200, 400})


@PROPERTY_SETTINGS
@given(body=request_like)
def test_request_like_body_with_key_is_never_5xx(
    handler_under_moto: Any, lambda_context: FakeLambdaContext, body: dict[str, Any]
) -> None:
    key = str(uuid.uuid4())
    text = json.dumps(body)

    first = post(handler_under_moto, lambda_context, text, key=key)
    repeat = post(handler_under_moto, lambda_context, text, key=key)

    assert_json_response(first, {200, 400})
    assert_json_response(repeat, {first["statusCode"]})
    assert repeat["body"] == first["body"]
    replayed = response_header(repeat, "Idempotent-Replayed")
    assert replayed == ("true" if first["statusCode"] == 200 else None)


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=200), key=st.one_of(st.none(), st.text(max_size=40)))
def test_any_bytes_are_never_5xx(
    handler_under_moto: Any,
    lambda_context: FakeLambdaContext,
    data: bytes,
    key: str | None,
) -> None:
    encoded = base64.b64encode(data).decode("ascii")

    response = post(
        handler_under_moto, lambda_context, encoded, base64_encoded=True, key=key
    )

    assert_json_response(response, {400})
