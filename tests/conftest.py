"""Shared fixtures: moto-backed AWS, a seeded table, API Gateway events."""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from core.aws import reset_clients
from core.optout import reset_list_caches
from core.repository import Repository
from core.seed import load_seed

ROOT = Path(__file__).resolve().parent.parent
DEMO_SEED = ROOT / "src" / "devserver" / "demo_seed.json"
CASES_SEED = Path(__file__).resolve().parent / "data" / "seed.json"
REGION = "us-east-1"
TABLE_NAME = "reinstall-test"

TEST_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "TABLE_NAME": TABLE_NAME,
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "test",
    "POWERTOOLS_SERVICE_NAME": "reinstall-sms-test",
}


def reset_cached_clients() -> None:
    """Forget clients, settings, cached opt-out lists and the handler's service.

    Environment changes then apply, and no test gets an opt-out list that an
    earlier test loaded.
    """
    from handler import api

    reset_clients()
    reset_list_caches()
    api.get_service.cache_clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run the test under moto, with only loopback-free in-process AWS."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name == "AWS_PROFILE":
            monkeypatch.delenv(name)
    for name, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    reset_cached_clients()
    with mock_aws():
        yield
    reset_cached_clients()


@pytest.fixture
def repository(aws: None) -> Repository:
    repository = Repository(TABLE_NAME, boto3.client("dynamodb", region_name=REGION))
    repository.create_table()
    return repository


@pytest.fixture
def seeded(repository: Repository) -> Repository:
    """The table with the demo seed (domain ``demo``, key ``demo-api-key``)."""
    load_seed(json.loads(DEMO_SEED.read_text()), repository)
    return repository


@pytest.fixture
def cases_seeded(repository: Repository) -> Repository:
    """The table with the multi-domain seed used by the acceptance cases."""
    load_seed(json.loads(CASES_SEED.read_text()), repository)
    return repository


@dataclass
class FakeLambdaContext:
    function_name: str = "reinstall-sms"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:reinstall-sms"
    )
    aws_request_id: str = "lambda-request-0001"
    remaining_ms: int = 25_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def sent_sms() -> list[tuple[str, str]]:
    """Return (E.164 number, text) of every SMS moto's SNS accepted, in order."""
    backend = sns_backends[DEFAULT_ACCOUNT_ID][REGION]
    return list(backend.sms_messages.values())


def api_event(
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    api_key: str | None = "admin@demo.example:demo-api-key",
    headers: dict[str, str] | None = None,
    raw_body: str | None = None,
    base64_encoded: bool = False,
    request_id: str = "apigw-request-0001",
) -> dict[str, Any]:
    """Build an API Gateway REST (v1) proxy event as API Gateway sends it."""
    all_headers = {"Content-Type": "application/json", "Host": "example.test"}
    if api_key is not None:
        all_headers["Authorization"] = f"ApiKey {api_key}"
    all_headers.update(headers or {})
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": "/prod" + path,
            "stage": "prod",
            "requestId": request_id,
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "pytest"},
            "requestTimeEpoch": 1764860000000,
        },
        "body": raw_body,
        "isBase64Encoded": base64_encoded,
    }


def response_json(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def response_header(response: dict[str, Any], name: str) -> str | None:
    """Return a header of a Lambda proxy response, from either header map."""
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return values[0]
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None
