"""Tests for the fake SNS server, driven by a real boto3 client over HTTP."""

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff

from devserver.fake_sns import FakeSns, main

REGION = "us-east-1"
NUMBER = "+16175551234"
OTHER_NUMBER = "+16175551235"
SRC_DIR = Path(__file__).resolve().parents[2] / "src"

# Upper bound for waits on background threads and subprocesses. Tests assert
# counts and contents, never how long anything took.
WAIT_SECONDS = 20.0

# One session loads botocore's service models once for all clients.
BOTO3_SESSION = boto3.session.Session(
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
    region_name=REGION,
)

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeSns]:
    with FakeSns() as server:
        yield server


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make botocore retry without delay, keeping its choice of which errors to retry."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


def sns_client(
    url: str, total_max_attempts: int = 1, max_pool_connections: int = 10
) -> Any:
    """Create an SNS client for the fake with botocore's standard retry mode.

    ``total_max_attempts`` counts the first attempt too, unlike the ``max_attempts``
    key of botocore's Config, which counts only retries.
    """
    config = Config(
        retries={"mode": "standard", "total_max_attempts": total_max_attempts},
        max_pool_connections=max_pool_connections,
        connect_timeout=WAIT_SECONDS,
        read_timeout=WAIT_SECONDS,
    )
    return BOTO3_SESSION.client("sns", endpoint_url=url, config=config)


def error_code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def http_status(error: ClientError) -> int:
    return int(error.response["ResponseMetadata"]["HTTPStatusCode"])


def control_request(
    fake: FakeSns, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    """Send one request to a control endpoint and return status, headers and JSON."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", fake.port, timeout=WAIT_SECONDS
    )
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, json.loads(response.read())
    finally:
        connection.close()


def publish_outcome(client: Any, phone_number: str) -> str:
    """Publish once and return "accepted" or the error code."""
    try:
        client.publish(PhoneNumber=phone_number, Message="outcome")
    except ClientError as error:
        return error_code(error)
    return "accepted"


# Publish


def test_publish_records_text_and_attributes(fake: FakeSns) -> None:
    client = sns_client(fake.url)
    text = 'Install: <a href="x">link</a> & more\nSecond line, ünïcode ✓ 123'

    response = client.publish(
        PhoneNumber=NUMBER,
        Message=text,
        MessageAttributes={
            "AWS.SNS.SMS.SMSType": {
                "DataType": "String",
                "StringValue": "Transactional",
            },
            "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "CommCare"},
            "AWS.SNS.SMS.MaxPrice": {"DataType": "Number", "StringValue": "0.50"},
            "Raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )

    assert fake.messages() == [
        {
            "phone_number": NUMBER,
            "message": text,
            "message_id": response["MessageId"],
            "attributes": {
                "AWS.SNS.SMS.SMSType": "Transactional",
                "AWS.SNS.SMS.SenderID": "CommCare",
                "AWS.SNS.SMS.MaxPrice": "0.50",
                "Raw": "AAE=",
            },
            "sequence": 1,
        }
    ]
    assert fake.publish_calls == 1


def test_publish_without_attributes(fake: FakeSns) -> None:
    sns_client(fake.url).publish(PhoneNumber=NUMBER, Message="plain")

    assert fake.messages()[0]["attributes"] == {}


def test_publish_keeps_order_and_sequence(fake: FakeSns) -> None:
    client = sns_client(fake.url)
    numbers = [f"+1617555{index:04d}" for index in range(5)]

    message_ids = [
        client.publish(PhoneNumber=number, Message=f"message {index}")["MessageId"]
        for index, number in enumerate(numbers)
    ]

    messages = fake.messages()
    assert [message["phone_number"] for message in messages] == numbers
    assert [message["message"] for message in messages] == [
        f"message {index}" for index in range(5)
    ]
    assert [message["message_id"] for message in messages] == message_ids
    assert [message["sequence"] for message in messages] == [1, 2, 3, 4, 5]
    assert len(set(message_ids)) == 5


def test_messages_returns_copies(fake: FakeSns) -> None:
    sns_client(fake.url).publish(PhoneNumber=NUMBER, Message="original")

    fake.messages()[0]["attributes"]["added"] = "by caller"
    fake.messages()[0]["message"] = "changed"

    assert fake.messages()[0]["attributes"] == {}
    assert fake.messages()[0]["message"] == "original"


def test_publish_records_opted_out_number() -> None:
    with FakeSns(opted_out_numbers=[NUMBER]) as fake:
        sns_client(fake.url).publish(PhoneNumber=NUMBER, Message="still recorded")

        assert [message["phone_number"] for message in fake.messages()] == [NUMBER]


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (
            {"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": "m"},
            "TopicArn",
        ),
        ({"PhoneNumber": "16175551234", "Message": "m"}, "E.164"),
        ({"PhoneNumber": "+1 617 555 1234", "Message": "m"}, "E.164"),
        ({"PhoneNumber": NUMBER, "Message": ""}, "empty message"),
        ({"PhoneNumber": NUMBER, "Message": "x" * 1601}, "1600 characters"),
    ],
)
def test_publish_rejects_invalid_parameters(
    fake: FakeSns, arguments: dict[str, str], reason: str
) -> None:
    with pytest.raises(ClientError) as caught:
        sns_client(fake.url).publish(**arguments)

    assert error_code(caught.value) == "InvalidParameter"
    assert http_status(caught.value) == 400
    assert reason in caught.value.response["Error"]["Message"]
    assert fake.messages() == []
    assert fake.rejected_calls == 1


def test_publish_accepts_1600_characters(fake: FakeSns) -> None:
    sns_client(fake.url).publish(PhoneNumber=NUMBER, Message="x" * 1600)

    assert len(fake.messages()[0]["message"]) == 1600


# Permanent rejections


def test_reject_number_fails_without_retry(no_retry_delay: None) -> None:
    with FakeSns(reject_numbers=[NUMBER]) as fake:
        client = sns_client(fake.url, total_max_attempts=5)

        with pytest.raises(ClientError) as caught:
            client.publish(PhoneNumber=NUMBER, Message="rejected")
        client.publish(PhoneNumber=OTHER_NUMBER, Message="accepted")

        assert error_code(caught.value) == "InvalidParameter"
        assert http_status(caught.value) == 400
        assert NUMBER in caught.value.response["Error"]["Message"]
        assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 0
        assert [message["phone_number"] for message in fake.messages()] == [
            OTHER_NUMBER
        ]
        assert fake.publish_calls == 2
        assert fake.rejected_calls == 1


def test_fail_second_number_accepts_first_only(no_retry_delay: None) -> None:
    with FakeSns(fail_second_numbers=[NUMBER]) as fake:
        client = sns_client(fake.url, total_max_attempts=5)

        client.publish(PhoneNumber=NUMBER, Message="first")
        errors = []
        for text in ("second", "third"):
            with pytest.raises(ClientError) as caught:
                client.publish(PhoneNumber=NUMBER, Message=text)
            errors.append(caught.value)
        client.publish(PhoneNumber=OTHER_NUMBER, Message="other number")

        assert [error_code(error) for error in errors] == [
            "InvalidParameter",
            "InvalidParameter",
        ]
        assert [http_status(error) for error in errors] == [400, 400]
        assert [message["message"] for message in fake.messages()] == [
            "first",
            "other number",
        ]
        assert fake.publish_calls == 4
        assert fake.rejected_calls == 2


def test_fail_second_counts_only_accepted_publishes() -> None:
    with FakeSns(fail_second_numbers=[NUMBER], throttle_ratio=1.0) as fake:
        client = sns_client(fake.url)

        assert publish_outcome(client, NUMBER) == "Throttling"
        fake.configure(throttle_ratio=0.0)

        assert publish_outcome(client, NUMBER) == "accepted"
        assert publish_outcome(client, NUMBER) == "InvalidParameter"


def test_clear_resets_history_and_counters() -> None:
    with FakeSns(fail_second_numbers=[NUMBER]) as fake:
        client = sns_client(fake.url)
        client.publish(PhoneNumber=NUMBER, Message="before clear")
        assert publish_outcome(client, NUMBER) == "InvalidParameter"

        assert fake.clear() == 1
        assert fake.messages() == []
        assert fake.stats()["publish_calls"] == 0
        assert fake.stats()["rejected_calls"] == 0

        client.publish(PhoneNumber=NUMBER, Message="after clear")
        assert [message["message"] for message in fake.messages()] == ["after clear"]
        # Sequence numbers are never reused.
        assert fake.messages()[0]["sequence"] == 2


# Throttling and server errors


def test_throttling_surfaces_with_one_attempt() -> None:
    with FakeSns(throttle_ratio=1.0) as fake:
        with pytest.raises(ClientError) as caught:
            sns_client(fake.url, total_max_attempts=1).publish(
                PhoneNumber=NUMBER, Message="m"
            )

        assert error_code(caught.value) == "Throttling"
        assert http_status(caught.value) == 400
        assert fake.messages() == []
        assert fake.publish_calls == 1
        assert fake.throttled_calls == 1


def test_throttling_is_retried_by_standard_mode(no_retry_delay: None) -> None:
    with FakeSns(throttle_ratio=1.0) as fake:
        with pytest.raises(ClientError) as caught:
            sns_client(fake.url, total_max_attempts=3).publish(
                PhoneNumber=NUMBER, Message="m"
            )

        assert error_code(caught.value) == "Throttling"
        assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 2
        assert fake.publish_calls == 3
        assert fake.throttled_calls == 3
        assert fake.messages() == []


def test_partial_throttling_delivers_each_once(no_retry_delay: None) -> None:
    numbers = [f"+1617555{index:04d}" for index in range(20)]
    with FakeSns(throttle_ratio=0.3, random_seed=7) as fake:
        client = sns_client(fake.url, total_max_attempts=10)

        for number in numbers:
            client.publish(PhoneNumber=number, Message="retried until accepted")

        assert [message["phone_number"] for message in fake.messages()] == numbers
        assert fake.throttled_calls > 0
        assert fake.publish_calls == len(numbers) + fake.throttled_calls


def test_server_error_surfaces_with_one_attempt() -> None:
    with FakeSns(server_error_ratio=1.0) as fake:
        with pytest.raises(ClientError) as caught:
            sns_client(fake.url, total_max_attempts=1).publish(
                PhoneNumber=NUMBER, Message="m"
            )

        assert error_code(caught.value) == "InternalError"
        assert http_status(caught.value) == 500
        assert fake.messages() == []
        assert fake.server_error_calls == 1


def test_partial_server_errors_deliver_each_once(no_retry_delay: None) -> None:
    numbers = [f"+1617555{index:04d}" for index in range(20)]
    with FakeSns(server_error_ratio=0.3, random_seed=11) as fake:
        client = sns_client(fake.url, total_max_attempts=10)

        for number in numbers:
            client.publish(PhoneNumber=number, Message="retried until accepted")

        assert [message["phone_number"] for message in fake.messages()] == numbers
        assert fake.server_error_calls > 0
        assert fake.publish_calls == len(numbers) + fake.server_error_calls


def test_same_seed_gives_same_outcomes() -> None:
    runs = []
    for _ in range(2):
        with FakeSns(
            throttle_ratio=0.3, server_error_ratio=0.3, random_seed=42
        ) as fake:
            client = sns_client(fake.url, total_max_attempts=1)
            runs.append([publish_outcome(client, NUMBER) for _ in range(30)])

    assert runs[0] == runs[1]
    assert set(runs[0]) == {"accepted", "Throttling", "InternalError"}


def test_configure_seed_restarts_draws(fake: FakeSns) -> None:
    client = sns_client(fake.url, total_max_attempts=1)

    fake.configure(throttle_ratio=0.5, random_seed=3)
    first = [publish_outcome(client, NUMBER) for _ in range(20)]
    fake.configure(random_seed=3)
    second = [publish_outcome(client, NUMBER) for _ in range(20)]

    assert first == second
    assert set(first) == {"accepted", "Throttling"}


# Opt-out actions


def test_check_opted_out(fake: FakeSns) -> None:
    fake.configure(opted_out_numbers=[NUMBER])
    client = sns_client(fake.url)

    opted_out = client.check_if_phone_number_is_opted_out(phoneNumber=NUMBER)
    opted_in = client.check_if_phone_number_is_opted_out(phoneNumber=OTHER_NUMBER)

    assert opted_out["isOptedOut"] is True
    assert opted_in["isOptedOut"] is False


def test_check_opted_out_rejects_invalid_number(fake: FakeSns) -> None:
    with pytest.raises(ClientError) as caught:
        sns_client(fake.url).check_if_phone_number_is_opted_out(phoneNumber="0617")

    assert error_code(caught.value) == "InvalidParameter"
    assert http_status(caught.value) == 400


def test_list_opted_out_paginates() -> None:
    numbers = [f"+4420794601{index:02d}" for index in range(5)]
    with FakeSns(opted_out_numbers=reversed(numbers), opt_out_page_size=2) as fake:
        client = sns_client(fake.url)

        pages = [client.list_phone_numbers_opted_out()]
        while "nextToken" in pages[-1] and len(pages) < 10:
            pages.append(
                client.list_phone_numbers_opted_out(nextToken=pages[-1]["nextToken"])
            )

        assert [page["phoneNumbers"] for page in pages] == [
            numbers[0:2],
            numbers[2:4],
            numbers[4:5],
        ]
        assert "nextToken" not in pages[-1]

        paginator = client.get_paginator("list_phone_numbers_opted_out")
        listed = [
            number for page in paginator.paginate() for number in page["phoneNumbers"]
        ]
        assert listed == numbers


def test_list_opted_out_default_page_size() -> None:
    numbers = [f"+1617555{index:04d}" for index in range(150)]
    with FakeSns(opted_out_numbers=numbers) as fake:
        client = sns_client(fake.url)

        first = client.list_phone_numbers_opted_out()
        second = client.list_phone_numbers_opted_out(nextToken=first["nextToken"])

        assert first["phoneNumbers"] == numbers[:100]
        assert second["phoneNumbers"] == numbers[100:]
        assert "nextToken" not in second


def test_list_opted_out_empty(fake: FakeSns) -> None:
    response = sns_client(fake.url).list_phone_numbers_opted_out()

    assert response["phoneNumbers"] == []
    assert "nextToken" not in response


def test_list_opted_out_rejects_unknown_token(fake: FakeSns) -> None:
    with pytest.raises(ClientError) as caught:
        sns_client(fake.url).list_phone_numbers_opted_out(nextToken="not-a-token")

    assert error_code(caught.value) == "InvalidParameter"
    assert "nextToken" in caught.value.response["Error"]["Message"]


# Protocol


def test_unknown_action_names_it(fake: FakeSns) -> None:
    with pytest.raises(ClientError) as caught:
        sns_client(fake.url).create_topic(Name="topic")

    assert error_code(caught.value) == "InvalidAction"
    assert http_status(caught.value) == 400
    assert "CreateTopic" in caught.value.response["Error"]["Message"]


def test_error_body_has_sns_shape(fake: FakeSns) -> None:
    connection = http.client.HTTPConnection(
        "127.0.0.1", fake.port, timeout=WAIT_SECONDS
    )
    body = urlencode({"Action": "DeleteTopic", "Version": "2010-03-31"})
    connection.request(
        "POST",
        "/",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    response = connection.getresponse()
    text = response.read().decode("utf-8")
    connection.close()

    assert response.status == 400
    assert response.getheader("Content-Type") == "text/xml"
    assert text.startswith(
        '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
        "<Error><Type>Sender</Type><Code>InvalidAction</Code>"
    )
    assert f"<RequestId>{response.getheader('x-amzn-RequestId')}</RequestId>" in text


def test_keep_alive_connection_serves_many_requests(fake: FakeSns) -> None:
    connection = http.client.HTTPConnection(
        "127.0.0.1", fake.port, timeout=WAIT_SECONDS
    )
    connection.connect()
    first_socket = connection.sock
    statuses = []
    for index in range(3):
        body = urlencode(
            {
                "Action": "Publish",
                "PhoneNumber": NUMBER,
                "Message": f"kept alive {index}",
            }
        )
        connection.request(
            "POST",
            "/",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        response.read()
        statuses.append((response.status, response.version))

    assert connection.sock is first_socket
    connection.close()
    assert statuses == [(200, 11), (200, 11), (200, 11)]
    assert len(fake.messages()) == 3


def test_endpoint_from_environment_variable(
    fake: FakeSns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", fake.url)
    client = boto3.client("sns", region_name=REGION)

    client.publish(PhoneNumber=NUMBER, Message="through the environment")

    assert [message["message"] for message in fake.messages()] == [
        "through the environment"
    ]


def test_stop_closes_kept_alive_connections() -> None:
    fake = FakeSns().start()
    connection = http.client.HTTPConnection(
        "127.0.0.1", fake.port, timeout=WAIT_SECONDS
    )
    connection.request("GET", "/_fake/stats")
    connection.getresponse().read()

    fake.stop()

    with pytest.raises(ConnectionError):
        connection.request("GET", "/_fake/stats")
        connection.getresponse().read()
    connection.close()


def test_start_twice_raises(fake: FakeSns) -> None:
    with pytest.raises(RuntimeError):
        fake.start()


# Concurrency


def test_concurrent_publishes_with_latency() -> None:
    numbers = [f"+1617555{index:04d}" for index in range(32)]
    with FakeSns(latency_ms=50) as fake:
        client = sns_client(fake.url, max_pool_connections=32)

        with ThreadPoolExecutor(max_workers=32) as pool:
            responses = list(
                pool.map(
                    lambda number: client.publish(
                        PhoneNumber=number, Message="parallel"
                    ),
                    numbers,
                )
            )

        messages = fake.messages()
        assert len(responses) == 32
        assert sorted(message["phone_number"] for message in messages) == numbers
        assert {message["message_id"] for message in messages} == {
            response["MessageId"] for response in responses
        }
        assert sorted(message["sequence"] for message in messages) == list(range(1, 33))
        assert fake.publish_calls == 32


def test_serves_64_publishes_in_parallel() -> None:
    # Publishes wait out a latency far longer than the test, so all 64 must be in
    # flight at once before the latency is lifted and they complete.
    numbers = [f"+1617555{index:04d}" for index in range(64)]
    with FakeSns(latency_ms=600_000) as fake:
        client = sns_client(fake.url, max_pool_connections=64)

        with ThreadPoolExecutor(max_workers=64) as pool:
            futures = [
                pool.submit(client.publish, PhoneNumber=number, Message="parallel")
                for number in numbers
            ]
            deadline = time.monotonic() + WAIT_SECONDS
            while (
                fake.stats()["in_flight_publishes"] < 64 and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            in_flight = fake.stats()["in_flight_publishes"]
            accepted_while_waiting = len(fake.messages())
            fake.configure(latency_ms=0)
            responses = [future.result(timeout=WAIT_SECONDS) for future in futures]

        assert in_flight == 64
        assert accepted_while_waiting == 0
        assert len(responses) == 64
        assert sorted(message["phone_number"] for message in fake.messages()) == numbers
        assert fake.max_in_flight_publishes == 64
        assert fake.stats()["in_flight_publishes"] == 0


# Control endpoints


def test_control_messages_lists_and_clears(fake: FakeSns) -> None:
    sns_client(fake.url).publish(PhoneNumber=NUMBER, Message="listed")

    status, headers, listed = control_request(fake, "GET", "/_fake/messages")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert listed == {"messages": fake.messages()}

    status, _, cleared = control_request(fake, "DELETE", "/_fake/messages")
    assert status == 200
    assert cleared == {"cleared": 1}
    assert fake.messages() == []
    assert control_request(fake, "GET", "/_fake/messages")[2] == {"messages": []}


def test_control_stats_counts() -> None:
    with FakeSns(reject_numbers=[OTHER_NUMBER]) as fake:
        client = sns_client(fake.url)
        client.publish(PhoneNumber=NUMBER, Message="accepted")
        assert publish_outcome(client, OTHER_NUMBER) == "InvalidParameter"
        fake.configure(throttle_ratio=1.0)
        assert publish_outcome(client, NUMBER) == "Throttling"
        fake.configure(throttle_ratio=0.0, server_error_ratio=1.0)
        assert publish_outcome(client, NUMBER) == "InternalError"

        status, _, stats = control_request(fake, "GET", "/_fake/stats")

        assert status == 200
        assert stats == {
            "publish_calls": 4,
            "accepted_calls": 1,
            "throttled_calls": 1,
            "server_error_calls": 1,
            "rejected_calls": 1,
            "in_flight_publishes": 0,
            "max_in_flight_publishes": 1,
        }
        assert stats == fake.stats()


def test_control_config_changes_knobs(fake: FakeSns) -> None:
    knobs = {"reject_numbers": [NUMBER], "latency_ms": 5, "opt_out_page_size": 3}

    status, _, config = control_request(
        fake, "POST", "/_fake/config", json.dumps(knobs).encode()
    )

    assert status == 200
    assert config == {
        "latency_ms": 5.0,
        "throttle_ratio": 0.0,
        "server_error_ratio": 0.0,
        "reject_numbers": [NUMBER],
        "fail_second_numbers": [],
        "opted_out_numbers": [],
        "opt_out_page_size": 3,
        "random_seed": None,
    }
    assert control_request(fake, "GET", "/_fake/config")[2] == config
    assert publish_outcome(sns_client(fake.url), NUMBER) == "InvalidParameter"


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        (b'{"latency": 5}', "unknown knob(s) latency"),
        (b'{"throttle_ratio": 2}', "between 0 and 1"),
        (b'{"throttle_ratio": 0.6, "server_error_ratio": 0.6}', "must not exceed 1"),
        (b'{"reject_numbers": "+16175551234"}', "list of E.164 numbers"),
        (b'{"opted_out_numbers": ["16175551234"]}', "not an E.164 number"),
        (b'{"opt_out_page_size": 0}', "at least 1"),
        (b'{"random_seed": "seven"}', "integer or null"),
        (b"[1, 2]", "JSON object"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_control_config_rejects_invalid_body(
    fake: FakeSns, body: bytes, message_part: str
) -> None:
    status, _, payload = control_request(fake, "POST", "/_fake/config", body)

    assert status == 400
    assert message_part in payload["error"]
    assert fake.config.throttle_ratio == 0.0
    assert fake.config.reject_numbers == frozenset()


def test_control_unknown_path_and_method(fake: FakeSns) -> None:
    status, _, payload = control_request(fake, "GET", "/_fake/unknown")
    assert status == 404
    assert "/_fake/unknown" in payload["error"]

    status, headers, payload = control_request(fake, "POST", "/_fake/stats", b"{}")
    assert status == 405
    assert headers["allow"] == "GET"

    status, headers, _ = control_request(fake, "GET", "/")
    assert status == 405
    assert headers["allow"] == "POST"


# Construction and configuration


@pytest.mark.parametrize(
    ("knobs", "error_type"),
    [
        ({"latency_ms": -1}, ValueError),
        ({"latency_ms": float("nan")}, ValueError),
        ({"latency_ms": "5"}, TypeError),
        ({"throttle_ratio": 1.5}, ValueError),
        ({"server_error_ratio": -0.1}, ValueError),
        ({"throttle_ratio": True}, TypeError),
        ({"throttle_ratio": 0.5, "server_error_ratio": 0.51}, ValueError),
        ({"reject_numbers": NUMBER}, TypeError),
        ({"fail_second_numbers": [16175551234]}, TypeError),
        ({"opted_out_numbers": ["+0617555"]}, ValueError),
        ({"opt_out_page_size": 0}, ValueError),
        ({"opt_out_page_size": 2.5}, TypeError),
        ({"random_seed": "1"}, TypeError),
        ({"no_such_knob": 1}, TypeError),
    ],
)
def test_configure_rejects_invalid_knobs(
    fake: FakeSns, knobs: dict[str, Any], error_type: type[Exception]
) -> None:
    before = fake.config

    with pytest.raises(error_type):
        fake.configure(**knobs)

    assert fake.config == before


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "::", "example.com", ""])
def test_rejects_non_loopback_host(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakeSns(host=host)


def test_localhost_binds_ipv4_loopback() -> None:
    with FakeSns(host="localhost") as fake:
        assert fake.url == f"http://127.0.0.1:{fake.port}"


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
def test_ipv6_loopback() -> None:
    with FakeSns(host="::1") as fake:
        sns_client(fake.url).publish(PhoneNumber=NUMBER, Message="over IPv6")

        assert fake.url == f"http://[::1]:{fake.port}"
        assert len(fake.messages()) == 1


# Command line


def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], WAIT_SECONDS)
    assert ready, "the fake printed nothing"
    return process.stdout.readline().strip()


def start_cli(*arguments: str) -> subprocess.Popen[str]:
    environment = {**os.environ, **FAKE_CREDENTIALS}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SRC_DIR), environment.get("PYTHONPATH")])
    )
    return subprocess.Popen(
        [sys.executable, "-m", "devserver.fake_sns", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_until_signal(no_retry_delay: None, stop_signal: int) -> None:
    process = start_cli(
        "--reject", NUMBER, "--opted-out", OTHER_NUMBER, "+16175550000",
        "--fail-second", "+16175550001", "--throttle-ratio", "0.2",
        "--random-seed", "5", "--latency-ms", "1",
    )  # fmt: skip
    try:
        url = read_line(process)
        client = sns_client(url, total_max_attempts=10)

        assert url.startswith("http://127.0.0.1:")
        assert publish_outcome(client, NUMBER) == "InvalidParameter"
        assert publish_outcome(client, "+16175550001") == "accepted"
        assert publish_outcome(client, "+16175550001") == "InvalidParameter"
        listed = client.list_phone_numbers_opted_out()["phoneNumbers"]
        assert listed == ["+16175550000", OTHER_NUMBER]
    finally:
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=WAIT_SECONDS)

    assert process.returncode == 0
    assert stdout == ""
    assert stderr == ""


def test_cli_rejects_non_loopback_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--host", "0.0.0.0"])

    assert caught.value.code == 2
    assert "0.0.0.0 is not a loopback address" in capsys.readouterr().err


def test_cli_rejects_invalid_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--reject", "6175551234"])

    assert caught.value.code == 2
    assert "not an E.164 number" in capsys.readouterr().err
