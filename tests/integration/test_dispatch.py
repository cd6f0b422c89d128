"""Concurrent sending keeps each number's message order and the response order.

A recording SNS client replaces boto3's. Each Publish sleeps a random few
milliseconds, so concurrent numbers overtake each other, and the client
records (phone number, message, sequence) in the order the calls arrive. The
assertions check orders and counts only, never durations.
"""

import json
import random
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import REGION, TABLE_NAME

from core.dispatch import Dispatcher, PairJob
from core.repository import Repository
from core.sender import SmsSender
from core.service import build_service
from core.settings import Settings

DOMAIN = "demo"
APP_ID = "abcd1234abcd1234"
AUTHORIZATION = "ApiKey admin@demo.example:demo-api-key"
ATTRIBUTES = {
    "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
}
INSTALL_PREFIX = "[commcare app - do not delete] "


class RecordingSnsClient:
    """A boto3 SNS client double whose Publish sleeps a random 0 to ``max_delay_s``.

    ``reject_first`` and ``reject_second`` are E.164 numbers whose first or
    second Publish fails with InvalidParameter, as SNS rejects a bad number.
    """

    def __init__(
        self,
        seed: int,
        max_delay_s: float = 0.004,
        reject_first: frozenset[str] = frozenset(),
        reject_second: frozenset[str] = frozenset(),
    ) -> None:
        self.max_delay_s = max_delay_s
        self.reject_first = reject_first
        self.reject_second = reject_second
        self.calls: list[tuple[str, str, int]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._random = random.Random(seed)
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def publish(self, **request: Any) -> dict[str, str]:
        number = request["PhoneNumber"]
        with self._lock:
            sequence = len(self.calls)
            self.calls.append((number, request["Message"], sequence))
            attempt = self._counts.get(number, 0) + 1
            self._counts[number] = attempt
            delay = self._random.uniform(0, self.max_delay_s)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(delay)
            rejected = (attempt == 1 and number in self.reject_first) or (
                attempt == 2 and number in self.reject_second
            )
            if rejected:
                raise ClientError(
                    {"Error": {"Code": "InvalidParameter", "Message": "rejected"}},
                    "Publish",
                )
            return {"MessageId": f"message-{sequence}"}
        finally:
            with self._lock:
                self.in_flight -= 1

    def check_if_phone_number_is_opted_out(self, **request: Any) -> dict[str, bool]:
        return {"isOptedOut": False}

    def list_phone_numbers_opted_out(self, **request: Any) -> dict[str, list[str]]:
        return {"phoneNumbers": []}

    def messages_to(self, number: str) -> list[str]:
        return [message for to, message, _ in self.calls if to == number]


def phone_numbers(count: int) -> list[str]:
    """Return ``count`` distinct valid US numbers as E.164 digits."""
    return [f"1617555{index:04d}" for index in range(count)]


def pair_jobs(numbers: list[str]) -> list[PairJob]:
    return [
        PairJob("+" + number, f"first for {number}", f"second for {number}")
        for number in numbers
    ]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("concurrency", [2, 16, 32])
def test_dispatch_sends_first_before_second(seed: int, concurrency: int) -> None:
    client = RecordingSnsClient(seed)
    numbers = phone_numbers(150)
    dispatcher = Dispatcher(SmsSender(client), concurrency, max_rate=0)

    results = dispatcher.deliver_all(pair_jobs(numbers), ATTRIBUTES)

    assert len(client.calls) == 2 * len(numbers)
    for number in numbers:
        assert client.messages_to("+" + number) == [
            f"first for {number}",
            f"second for {number}",
        ]
    assert [result.phone_number for result in results] == [
        "+" + number for number in numbers
    ]
    assert all(result.succeeded for result in results)


@pytest.mark.parametrize("seed", range(3))
def test_dispatch_results_keep_job_order(seed: int) -> None:
    numbers = phone_numbers(120)
    rejected_first = {"+" + number for number in numbers[5::7]}
    rejected_second = {"+" + number for number in numbers[3::11]} - rejected_first
    client = RecordingSnsClient(
        seed,
        reject_first=frozenset(rejected_first),
        reject_second=frozenset(rejected_second),
    )
    dispatcher = Dispatcher(SmsSender(client), concurrency=16, max_rate=0)

    results = dispatcher.deliver_all(pair_jobs(numbers), ATTRIBUTES)

    assert [result.phone_number for result in results] == [
        "+" + number for number in numbers
    ]
    for number, result in zip(numbers, results, strict=True):
        e164 = "+" + number
        expected_success = e164 not in rejected_first | rejected_second
        assert result.succeeded == expected_success
        if e164 in rejected_first:
            # Nothing follows a rejected Play Store message.
            assert client.messages_to(e164) == [f"first for {number}"]
        else:
            assert client.messages_to(e164) == [
                f"first for {number}",
                f"second for {number}",
            ]


def test_dispatch_uses_full_concurrency() -> None:
    concurrency = 16
    barrier = threading.Barrier(concurrency, timeout=30)
    client = RecordingSnsClient(seed=0, max_delay_s=0.001)
    recorded_publish = client.publish
    first_wave = threading.Semaphore(concurrency)

    def publish_after_first_wave_meets(**request: Any) -> dict[str, str]:
        # The first `concurrency` calls wait for each other, so the test fails
        # with BrokenBarrierError if fewer threads send at once.
        if first_wave.acquire(blocking=False):
            barrier.wait()
        return recorded_publish(**request)

    client.publish = publish_after_first_wave_meets  # type: ignore[method-assign]
    dispatcher = Dispatcher(SmsSender(client), concurrency, max_rate=0)

    results = dispatcher.deliver_all(pair_jobs(phone_numbers(64)), ATTRIBUTES)

    assert len(results) == 64
    assert client.max_in_flight == concurrency


@pytest.fixture
def demo_service(seeded: Repository) -> Any:
    """Build a service whose SNS is a RecordingSnsClient, on the seeded moto table."""

    def build(client: RecordingSnsClient, concurrency: int) -> Any:
        settings = Settings(
            table_name=TABLE_NAME, sms_send_concurrency=concurrency, sms_max_send_rate=0
        )
        return build_service(
            settings, boto3.client("dynamodb", region_name=REGION), client
        )

    return build


@pytest.mark.parametrize("seed", range(3))
def test_response_keeps_submission_order(seed: int, demo_service: Any) -> None:
    numbers = list(reversed(phone_numbers(200)))
    shuffled = random.Random(seed).sample(numbers, len(numbers))
    rejected = frozenset("+" + number for number in shuffled[:30])
    invalid = ["12", "not a number", "+1 617 555"]
    submitted = shuffled[:100] + invalid + shuffled[100:]
    client = RecordingSnsClient(seed, reject_second=rejected)
    service = demo_service(client, concurrency=16)
    body = json.dumps(
        {"app_id": APP_ID, "users": [{"phone_number": n} for n in submitted]}
    ).encode()

    result = service.reinstall(DOMAIN, AUTHORIZATION, body)

    assert result.to_body() == {
        "success_numbers": [
            n for n in submitted if n not in invalid and "+" + n not in rejected
        ],
        "invalid_format_numbers": invalid,
        "error_numbers": [n for n in submitted if "+" + n in rejected],
    }
    for number in shuffled:
        sent = client.messages_to("+" + number)
        assert len(sent) == 2
        assert not sent[0].startswith(INSTALL_PREFIX)
        assert sent[1].startswith(INSTALL_PREFIX)
