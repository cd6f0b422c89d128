"""Faults and abuse limits of the sending pipeline, through the Lambda handler.

SNS is the fake server of devserver.fake_sns on loopback, reached through
AWS_ENDPOINT_URL_SNS. moto's mock_aws still serves DynamoDB in process: it
intercepts only requests to AWS hostnames, so requests to the fake's
127.0.0.1 URL reach the fake (test_fake_reached_under_mock_aws checks this).
botocore's retry delays are patched to zero, so retries happen as in AWS but
without waiting.
"""

import base64
import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff
from conftest import (
    TABLE_NAME,
    FakeLambdaContext,
    api_event,
    reset_cached_clients,
    response_header,
    response_json,
)

from core import sender as sender_module
from core import service as service_module
from core.dailylimit import DailySmsLimit, utc_day
from core.models import PhoneRegistration
from core.repository import Repository
from core.sender import INSTALL_MESSAGE, PLAY_STORE_MESSAGE
from core.smslog import SmsLog, SmsLogRecord
from devserver.fake_sns import FakeSns, PublishedMessage

APP_ID = "abcd1234abcd1234"
PATH = "/a/demo/api/v0_5/sms_user_registration_reinstall/"
PLAY_STORE_TEXT = (
    "To install CommCare, follow this link to the Google Play store: "
    "https://play.google.com/store/apps/details?id=org.commcare.dalvik&hl=en"
)
INSTALL_TEXT = "[commcare app - do not delete] " + base64.b64encode(
    f"https://www.commcarehq.org/a/demo/sms/app_info/{APP_ID}/".encode("ascii")
).decode("ascii")


def us_numbers(count: int, start: int = 0) -> list[str]:
    """Return ``count`` valid US numbers as E.164 digits, none ending in 99.

    moto's CheckIfPhoneNumberIsOptedOut reports every number ending in 99 as
    opted out, so such numbers are kept out of tests that expect sending.
    """
    numbers = []
    index = start
    while len(numbers) < count:
        number = f"1617555{index:04d}"
        if not number.endswith("99"):
            numbers.append(number)
        index += 1
    return numbers


@pytest.fixture
def fake_sns(seeded: Repository, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSns]:
    """A fake SNS on loopback that the handler's SNS client sends to."""
    with FakeSns(random_seed=7) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", fake.url)
        # The send rate limit is tested elsewhere; here it would only slow.
        monkeypatch.setenv("SMS_MAX_SEND_RATE", "0")
        monkeypatch.setattr(
            ExponentialBackoff, "delay_amount", lambda self, context: 0.0
        )
        reset_cached_clients()
        yield fake


def post(
    numbers: list[str],
    request_id: str = "req-0001",
    context: Any = None,
) -> dict[str, Any]:
    from handler.api import lambda_handler

    body = {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]}
    event = api_event(PATH, body, request_id=request_id)
    return lambda_handler(event, context or FakeLambdaContext())


def texts_by_number(fake: FakeSns) -> dict[str, list[str]]:
    """Return each E.164 number's accepted texts, in the order SNS accepted them."""
    messages = sorted(fake.messages(), key=lambda message: message["sequence"])
    texts: dict[str, list[str]] = {}
    for message in messages:
        texts.setdefault(message["phone_number"], []).append(message["message"])
    return texts


def assert_pairs_whole(body: dict[str, list[str]], numbers: list[str], fake: FakeSns):
    """Check buckets and messages: the invariants every fault must keep."""
    placed = (
        body["success_numbers"] + body["invalid_format_numbers"] + body["error_numbers"]
    )
    assert sorted(placed) == sorted(numbers)
    assert len(placed) == len(set(placed))

    texts = texts_by_number(fake)
    for number in body["success_numbers"]:
        assert texts.get("+" + number) == [PLAY_STORE_TEXT, INSTALL_TEXT], number
    for number in body["error_numbers"]:
        assert texts.get("+" + number, []) in ([], [PLAY_STORE_TEXT]), number
    for number, received in texts.items():
        assert received[0] == PLAY_STORE_TEXT, number
        assert received.count(PLAY_STORE_TEXT) == 1, number
        assert received.count(INSTALL_TEXT) <= 1, number


def messages_of(fake: FakeSns, number: str) -> list[PublishedMessage]:
    return sorted(
        (m for m in fake.messages() if m["phone_number"] == "+" + number),
        key=lambda message: message["sequence"],
    )


def sms_log(repository: Repository) -> SmsLog:
    return SmsLog(TABLE_NAME, repository.client, retention_days=90)


def set_domain(repository: Repository, **changes: Any) -> None:
    domain = repository.get_domain("demo")
    assert domain is not None
    repository.put_domain(dataclasses.replace(domain, **changes))


# SNS faults


def test_fake_reached_under_mock_aws(fake_sns: FakeSns) -> None:
    numbers = us_numbers(2)

    response = post(numbers)

    assert response["statusCode"] == 200
    assert response_json(response)["success_numbers"] == numbers
    assert len(fake_sns.messages()) == 4
    assert fake_sns.stats()["publish_calls"] == 4


def test_throttling_30_percent_retried(fake_sns: FakeSns, seeded: Repository) -> None:
    fake_sns.configure(throttle_ratio=0.3)
    numbers = us_numbers(60)

    response = post(numbers)

    body = response_json(response)
    assert response["statusCode"] == 200
    assert_pairs_whole(body, numbers, fake_sns)
    stats = fake_sns.stats()
    # Throttling happened and was retried: every accepted message is in the
    # fake, and each throttled call was followed by another call.
    assert stats["throttled_calls"] > 0
    assert stats["accepted_calls"] == len(fake_sns.messages())
    assert stats["publish_calls"] == stats["accepted_calls"] + stats["throttled_calls"]
    assert body["invalid_format_numbers"] == []

    # The SMS log has one record per accepted message, with its SNS id.
    records = sms_log(seeded).read_request("demo", "req-0001")
    accepted = {m["message_id"] for m in fake_sns.messages()}
    assert {r.message_id for r in records if r.message_id} == accepted
    throttled_out = [r for r in records if r.error_code]
    assert all(r.error_code == "Throttling" for r in throttled_out)


def test_throttled_every_time_exhausts_attempts(
    fake_sns: FakeSns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNS_MAX_ATTEMPTS", "3")
    reset_cached_clients()
    fake_sns.configure(throttle_ratio=1.0)
    numbers = us_numbers(1)

    response = post(numbers)

    assert response_json(response) == {
        "success_numbers": [],
        "invalid_format_numbers": [],
        "error_numbers": numbers,
    }
    # One number, one message tried, SNS_MAX_ATTEMPTS calls.
    assert fake_sns.stats()["publish_calls"] == 3
    assert fake_sns.stats()["throttled_calls"] == 3
    assert fake_sns.messages() == []


def test_server_errors_exhaust_attempts(
    fake_sns: FakeSns, monkeypatch: pytest.MonkeyPatch, seeded: Repository
) -> None:
    monkeypatch.setenv("SNS_MAX_ATTEMPTS", "4")
    reset_cached_clients()
    fake_sns.configure(server_error_ratio=1.0)
    numbers = us_numbers(1)

    response = post(numbers)

    assert response_json(response)["error_numbers"] == numbers
    assert fake_sns.stats()["server_error_calls"] == 4
    assert fake_sns.stats()["publish_calls"] == 4
    [record] = sms_log(seeded).read_request("demo", "req-0001")
    assert record.message == PLAY_STORE_MESSAGE
    assert record.error_code == "InternalError"
    assert record.message_id is None


def test_permanent_rejection_of_first(fake_sns: FakeSns, seeded: Repository) -> None:
    numbers = us_numbers(4)
    rejected = numbers[1]
    fake_sns.configure(reject_numbers=["+" + rejected])

    response = post(numbers)

    body = response_json(response)
    assert body == {
        "success_numbers": [numbers[0], numbers[2], numbers[3]],
        "invalid_format_numbers": [],
        "error_numbers": [rejected],
    }
    assert_pairs_whole(body, numbers, fake_sns)
    assert messages_of(fake_sns, rejected) == []
    # InvalidParameter is permanent: one call, not retried.
    assert fake_sns.stats()["rejected_calls"] == 1

    records = sms_log(seeded).read_phone_number("demo", rejected)
    assert [(r.message, r.message_id, r.error_code) for r in records] == [
        (PLAY_STORE_MESSAGE, None, "InvalidParameter")
    ]


def test_failure_on_second_message(
    fake_sns: FakeSns, seeded: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    numbers = us_numbers(3)
    half_sent = numbers[2]
    fake_sns.configure(fail_second_numbers=["+" + half_sent])
    summaries = record_log_calls(monkeypatch, service_module.logger, "info")
    errors = record_log_calls(monkeypatch, sender_module.logger, "error")

    response = post(numbers, request_id="req-half")

    body = response_json(response)
    assert body["success_numbers"] == numbers[:2]
    assert body["error_numbers"] == [half_sent]
    assert_pairs_whole(body, numbers, fake_sns)
    [first] = messages_of(fake_sns, half_sent)
    assert first["message"] == PLAY_STORE_TEXT

    # The SMS log shows the first message sent and the second rejected.
    records = [
        r
        for r in sms_log(seeded).read_request("demo", "req-half")
        if r.phone_number == "+" + half_sent
    ]
    assert [(r.message, r.message_id, r.error_code) for r in records] == [
        (PLAY_STORE_MESSAGE, first["message_id"], None),
        (INSTALL_MESSAGE, None, "InvalidParameter"),
    ]
    # So does the request's log line.
    [(message, extra)] = summaries
    assert message == "Reinstall request processed"
    assert extra["first_message_only_count"] == 1
    assert extra["messages_published"] == 5
    assert extra["request_id"] == "req-half"
    [(message, extra)] = errors
    assert message == (
        "SNS rejected the install message after the Play Store message was sent"
    )
    assert extra["first_message_id"] == first["message_id"]
    assert extra["phone_number"] == "+1********02"


def record_log_calls(
    monkeypatch: pytest.MonkeyPatch, logger: Any, level: str
) -> list[tuple[str, dict[str, Any]]]:
    """Record a logger's calls at ``level`` as (message, extra)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(message: str, *args: Any, **kwargs: Any) -> None:
        calls.append((message, kwargs.get("extra", {})))

    monkeypatch.setattr(logger, level, record)
    return calls


def test_sms_log_contents_exact(fake_sns: FakeSns, seeded: Repository) -> None:
    numbers = us_numbers(2)
    fake_sns.configure(reject_numbers=["+" + numbers[1]])

    post(numbers, request_id="req-exact")

    records = sms_log(seeded).read_request("demo", "req-exact")
    sent = messages_of(fake_sns, numbers[0])
    assert records == [
        SmsLogRecord(
            "demo",
            "req-exact",
            "+" + numbers[0],
            PLAY_STORE_MESSAGE,
            records[0].attempted_at,
            sent[0]["message_id"],
            None,
        ),
        SmsLogRecord(
            "demo",
            "req-exact",
            "+" + numbers[0],
            INSTALL_MESSAGE,
            records[1].attempted_at,
            sent[1]["message_id"],
            None,
        ),
        SmsLogRecord(
            "demo",
            "req-exact",
            "+" + numbers[1],
            PLAY_STORE_MESSAGE,
            records[2].attempted_at,
            None,
            "InvalidParameter",
        ),
    ]
    assert records[0].attempted_at <= records[1].attempted_at


def test_sms_log_failure_keeps_response(
    fake_sns: FakeSns, capsys: pytest.CaptureFixture[str]
) -> None:
    from handler import api

    class FailingWrites:
        def batch_write_item(self, **request: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected"}},
                "BatchWriteItem",
            )

    api.get_service().sms_log.client = FailingWrites()
    numbers = us_numbers(2)

    response = post(numbers)

    assert response["statusCode"] == 200
    assert response_json(response)["success_numbers"] == numbers
    metrics = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]
    assert [m["SmsLogWriteFailures"] for m in metrics] == [[4.0]]


# Opt-outs


def test_opted_out_number_gets_nothing(fake_sns: FakeSns, seeded: Repository) -> None:
    numbers = us_numbers(3)
    fake_sns.configure(opted_out_numbers=["+" + numbers[0]])

    response = post(numbers)

    assert response_json(response) == {
        "success_numbers": numbers[1:],
        "invalid_format_numbers": [],
        "error_numbers": [numbers[0]],
    }
    assert messages_of(fake_sns, numbers[0]) == []
    assert sms_log(seeded).read_phone_number("demo", numbers[0]) == []


def test_checks_before_sending_skip_sns(fake_sns: FakeSns, seeded: Repository) -> None:
    elsewhere, opted_out = us_numbers(2)
    seeded.put_phone(PhoneRegistration(elsewhere, "other-project", verified=True))
    fake_sns.configure(opted_out_numbers=["+" + opted_out])

    response = post([elsewhere, "not a number", opted_out])

    assert response_json(response) == {
        "success_numbers": [],
        "invalid_format_numbers": ["not a number"],
        "error_numbers": [elsewhere, opted_out],
    }
    assert fake_sns.stats()["publish_calls"] == 0


# Abuse limits


def test_countries_outside_list_rejected(fake_sns: FakeSns, seeded: Repository) -> None:
    set_domain(seeded, allowed_countries=("US", "ke"))
    us, india, kenya = "16175551234", "919876543210", "254712345678"

    response = post([us, india, kenya])

    assert response_json(response) == {
        "success_numbers": [us, kenya],
        "invalid_format_numbers": [],
        "error_numbers": [india],
    }
    assert messages_of(fake_sns, india) == []
    assert sorted(texts_by_number(fake_sns)) == ["+16175551234", "+254712345678"]


def test_empty_country_list_sends_nothing(
    fake_sns: FakeSns, seeded: Repository
) -> None:
    set_domain(seeded, allowed_countries=())
    numbers = us_numbers(2)

    response = post(numbers)

    assert response_json(response)["error_numbers"] == numbers
    assert fake_sns.stats()["publish_calls"] == 0


def test_daily_limit_sends_whole_pairs(fake_sns: FakeSns, seeded: Repository) -> None:
    # 7 messages allow three numbers; the odd message is never used alone.
    set_domain(seeded, daily_sms_limit=7)
    numbers = us_numbers(5)

    response = post(numbers)

    body = response_json(response)
    assert body["success_numbers"] == numbers[:3]
    assert body["error_numbers"] == numbers[3:]
    assert_pairs_whole(body, numbers, fake_sns)
    assert len(fake_sns.messages()) == 6
    limit = DailySmsLimit(TABLE_NAME, seeded.client)
    assert limit.used("demo", utc_day(records_day(seeded))) == 6

    second = post(us_numbers(1, start=500), request_id="req-0002")

    assert response_json(second)["error_numbers"] == us_numbers(1, start=500)
    assert len(fake_sns.messages()) == 6


def records_day(repository: Repository) -> Any:
    [record, *_] = sms_log(repository).read_request("demo", "req-0001")
    return record.attempted_at


def test_daily_limit_gives_back_unsent(fake_sns: FakeSns, seeded: Repository) -> None:
    set_domain(seeded, daily_sms_limit=8)
    numbers = us_numbers(4)
    fake_sns.configure(
        reject_numbers=["+" + numbers[0]], fail_second_numbers=["+" + numbers[1]]
    )

    response = post(numbers)

    body = response_json(response)
    assert body["success_numbers"] == numbers[2:]
    # Reserved 8, published 1 + 2 + 2 = 5, so 3 were given back.
    limit = DailySmsLimit(TABLE_NAME, seeded.client)
    assert limit.used("demo", utc_day(records_day(seeded))) == 5

    fake_sns.configure(reject_numbers=[], fail_second_numbers=[])
    more = us_numbers(3, start=500)
    second = post(more, request_id="req-0002")

    # 3 messages left: one more number.
    assert response_json(second)["success_numbers"] == more[:1]
    assert response_json(second)["error_numbers"] == more[1:]


def test_opted_out_not_counted_against_limit(
    fake_sns: FakeSns, seeded: Repository
) -> None:
    set_domain(seeded, daily_sms_limit=2)
    numbers = us_numbers(2)
    fake_sns.configure(opted_out_numbers=["+" + numbers[0]])

    response = post(numbers)

    assert response_json(response)["success_numbers"] == numbers[1:]


def test_over_max_users_sends_nothing(
    fake_sns: FakeSns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_USERS_PER_REQUEST", "3")
    reset_cached_clients()

    response = post(us_numbers(4))

    assert response["statusCode"] == 400
    assert "users" in response_json(response)["sms_user_registration_reinstall"]
    assert fake_sns.stats()["publish_calls"] == 0


def test_overlong_phone_number_not_sent(fake_sns: FakeSns) -> None:
    padded = "1617555" + "1234".ljust(58)  # 65 characters, valid digits within

    response = post([padded])

    assert response_json(response)["invalid_format_numbers"] == [padded]
    assert fake_sns.stats()["publish_calls"] == 0


# DynamoDB failures


class FailingCall:
    """Wraps a boto3 client; the ``fail_from``-th call of ``operation`` on raises."""

    def __init__(self, client: Any, operation: str, fail_from: int) -> None:
        self._client = client
        self._operation = operation
        self._fail_from = fail_from
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._operation:
            return real

        def call(**request: Any) -> Any:
            self.calls += 1
            if self.calls >= self._fail_from:
                raise ClientError(
                    {
                        "Error": {
                            "Code": "ProvisionedThroughputExceededException",
                            "Message": "injected after retries",
                        },
                        "ResponseMetadata": {"HTTPStatusCode": 400},
                    },
                    name,
                )
            return real(**request)

        return call


@pytest.mark.parametrize(
    ("operation", "fail_from", "failed_read"),
    [
        ("batch_get_item", 1, "credentials, domain and app"),
        ("batch_get_item", 2, "phone number registry"),
        ("update_item", 1, "daily SMS limit"),
    ],
)
def test_dynamodb_failure_is_503(
    fake_sns: FakeSns,
    seeded: Repository,
    operation: str,
    fail_from: int,
    failed_read: str,
) -> None:
    from handler import api

    set_domain(seeded, daily_sms_limit=100)
    service = api.get_service()
    failing = FailingCall(service.repository.client, operation, fail_from)
    service.repository.client = failing
    service.daily_limit.client = failing

    response = post(us_numbers(3), request_id="req-503")

    assert response["statusCode"] == 503, failed_read
    assert response_json(response) == {
        "error": "The service's storage is unavailable; retry later.",
        "request_id": "req-503",
    }
    assert response_header(response, "Retry-After") == "5"
    assert response_header(response, "Content-Type") == "application/json"
    assert fake_sns.stats()["publish_calls"] == 0
    assert failing.calls == fail_from


# Concurrency of the daily limit


@pytest.fixture
def atomic_moto_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto apply UpdateItem atomically, as DynamoDB does.

    moto evaluates a condition and applies the update in plain Python without a
    lock, so two threads could both pass a condition that DynamoDB would let
    only one pass. The lock gives moto DynamoDB's per-item atomicity.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.Lock()
    original = DynamoDBBackend.update_item

    def update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "update_item", update_item)


def test_parallel_requests_within_limit(
    seeded: Repository, atomic_moto_updates: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handler import api

    monkeypatch.setenv("SMS_MAX_SEND_RATE", "0")
    reset_cached_clients()
    set_domain(seeded, daily_sms_limit=21)
    service = api.get_service()
    requests = 8
    per_request = 5
    results: list[Any] = [None] * requests
    start = threading.Barrier(requests)

    def send(index: int) -> None:
        numbers = us_numbers(per_request, start=100 * index)
        start.wait()
        results[index] = service.reinstall(
            "demo",
            "ApiKey admin@demo.example:demo-api-key",
            json.dumps(
                {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]}
            ).encode(),
            request_id=f"req-{index}",
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    successes = sum(len(result.success_numbers) for result in results)
    published = sum(result.messages_published for result in results)
    errors = sum(len(result.error_numbers) for result in results)
    # 21 messages allow exactly ten numbers over all requests, never eleven.
    assert successes == 10
    assert published == 20
    assert errors == requests * per_request - 10
    limit = DailySmsLimit(TABLE_NAME, seeded.client)
    [first_log, *_] = [
        record
        for index in range(requests)
        for record in sms_log(seeded).read_request("demo", f"req-{index}")
    ]
    assert limit.used("demo", utc_day(first_log.attempted_at)) == 20


# Lambda deadline


class Countdown:
    """Remaining time that drops below the margin after ``calls_left`` readings."""

    def __init__(self, calls_left: int) -> None:
        self.calls_left = calls_left
        self.readings = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.readings += 1
            if self.readings <= self.calls_left:
                return 25_000
            return 100


@pytest.mark.parametrize("concurrency", ["1", "8"])
def test_deadline_stops_new_numbers(
    fake_sns: FakeSns,
    seeded: Repository,
    monkeypatch: pytest.MonkeyPatch,
    concurrency: str,
) -> None:
    from handler import api

    monkeypatch.setenv("SMS_SEND_CONCURRENCY", concurrency)
    reset_cached_clients()
    summaries = record_log_calls(monkeypatch, service_module.logger, "info")
    service = api.get_service()
    numbers = us_numbers(10)
    body = {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]}

    result = service.reinstall(
        "demo",
        "ApiKey admin@demo.example:demo-api-key",
        json.dumps(body).encode(),
        # The sender reads the remaining time twice per number, before and
        # after its rate-limiter wait: eight readings let four numbers start.
        remaining_time_ms=Countdown(calls_left=8),
        request_id="req-deadline",
    )

    started = len(result.success_numbers)
    if concurrency == "1":
        assert started == 4
        assert result.success_numbers == numbers[:4]
    else:
        # Threads interleave their two readings, so fewer may start; never more.
        assert started <= 4
    assert len(result.error_numbers) == 10 - started
    # Each started number gets both messages, and no number only its first.
    assert_pairs_whole(result.to_body(), numbers, fake_sns)
    assert len(fake_sns.messages()) == 2 * started
    [(_, extra)] = summaries
    assert extra["not_started_before_deadline"] == 10 - started
    assert extra["first_message_only_count"] == 0
    assert extra["error_reasons"] == {"DeadlineNotStarted": 10 - started}
    records = sms_log(seeded).read_request("demo", "req-deadline")
    assert len(records) == 2 * started
