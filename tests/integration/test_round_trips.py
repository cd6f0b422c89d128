"""DynamoDB round trips of one reinstall request, counted per API call.

The reads are one BatchGetItem for the web user, domain and app, then one
BatchGetItem per 100 numbers for the phone registry (100 keys is DynamoDB's
limit for one BatchGetItem). Every botocore client call is counted, whichever
client makes it, by wrapping ``BaseClient._make_api_call``. Moto intercepts
requests below that level, so the counts are the calls a deployed function
would make.
"""

import math
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from conftest import api_event, reset_cached_clients, response_json

PATH = "/a/demo/api/v0_5/sms_user_registration_reinstall/"
APP_ID = "abcd1234abcd1234"
DYNAMODB_READS = frozenset(
    {"BatchGetItem", "GetItem", "Query", "Scan", "TransactGetItems"}
)


class ApiCallCounter:
    """Counts botocore API calls as (service name, operation name).

    The handler calls from several threads, so ``record`` takes a lock.
    """

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, service: str, operation: str) -> None:
        with self._lock:
            self.calls[(service, operation)] += 1

    def dynamodb_reads(self) -> int:
        return sum(
            count
            for (service, operation), count in self.calls.items()
            if service == "dynamodb" and operation in DYNAMODB_READS
        )

    def dynamodb_writes(self) -> int:
        # Any DynamoDB operation that is not a read counts as a write.
        return sum(
            count
            for (service, operation), count in self.calls.items()
            if service == "dynamodb" and operation not in DYNAMODB_READS
        )

    def count(self, service: str, operation: str) -> int:
        return self.calls[(service, operation)]


@pytest.fixture
def unpaced(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn the send rate limit off, which would make 1000 numbers take 100 s."""
    monkeypatch.setenv("SMS_MAX_SEND_RATE", "0")
    reset_cached_clients()


@pytest.fixture
def api_calls(
    unpaced: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ApiCallCounter]:
    counter = ApiCallCounter()
    original = BaseClient._make_api_call

    def counting_call(client: Any, operation_name: str, params: Any) -> Any:
        service = client.meta.service_model.service_name
        counter.record(service, operation_name)
        return original(client, operation_name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting_call)
    yield counter


def phone_numbers(count: int) -> list[str]:
    """Return ``count`` distinct valid US numbers, none in the demo seed.

    Numbers ending in 99 are left out because moto's SNS reports them as
    opted out.
    """
    candidates = (f"1617201{index:04d}" for index in range(10_000))
    return [number for number in candidates if not number.endswith("99")][:count]


def send_request(numbers: list[str], lambda_context: Any) -> dict[str, Any]:
    from handler.api import lambda_handler

    event = api_event(
        PATH,
        {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]},
    )
    response = lambda_handler(event, lambda_context)
    assert response["statusCode"] == 200
    return response_json(response)


@pytest.mark.parametrize("count", [1, 100, 101, 1000])
def test_reads_per_request_stay_within_bound(
    count: int, seeded: Any, lambda_context: Any, api_calls: ApiCallCounter
) -> None:
    numbers = phone_numbers(count)

    body = send_request(numbers, lambda_context)

    assert body["success_numbers"] == numbers
    assert api_calls.count("sns", "Publish") == 2 * count
    assert api_calls.dynamodb_reads() <= 1 + math.ceil(count / 100)


def test_rejected_request_reads_once(
    seeded: Any, lambda_context: Any, api_calls: ApiCallCounter
) -> None:
    from handler.api import lambda_handler

    event = api_event(
        PATH,
        {"app_id": APP_ID, "users": [{"phone_number": "16172010000"}]},
        api_key="admin@demo.example:wrong-key",
    )

    response = lambda_handler(event, lambda_context)

    assert response["statusCode"] == 401
    assert api_calls.count("dynamodb", "BatchGetItem") == 1
    assert api_calls.dynamodb_writes() == 0
    assert api_calls.count("sns", "Publish") == 0


def test_clients_are_created_once_per_container(
    seeded: Any, lambda_context: Any, api_calls: ApiCallCounter
) -> None:
    from core import aws

    send_request(phone_numbers(3), lambda_context)
    send_request(phone_numbers(5), lambda_context)

    assert aws.dynamodb_client.cache_info().misses == 1
    assert aws.sns_client.cache_info().misses == 1
    assert api_calls.count("sns", "Publish") == 2 * (3 + 5)
