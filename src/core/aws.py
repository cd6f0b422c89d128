"""AWS clients, created once per container.

No endpoint is hard-coded: boto3 reads ``AWS_ENDPOINT_URL`` and the per-service
``AWS_ENDPOINT_URL_SNS``, ``AWS_ENDPOINT_URL_DYNAMODB`` and ``AWS_ENDPOINT_URL_SQS``
itself, which is how local runs and tests reach moto.
"""

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from core.settings import get_settings

DYNAMODB_MAX_ATTEMPTS = 3


@cache
def dynamodb_client() -> Any:
    settings = get_settings()
    config = Config(
        retries={"mode": "standard", "total_max_attempts": DYNAMODB_MAX_ATTEMPTS},
        max_pool_connections=max(10, settings.sms_send_concurrency),
    )
    return boto3.client("dynamodb", config=config)


@cache
def sns_client() -> Any:
    settings = get_settings()
    config = Config(
        # total_max_attempts counts the first attempt; botocore's max_attempts does not.
        retries={"mode": "standard", "total_max_attempts": settings.sns_max_attempts},
        # At least one connection per sending thread, so no sender waits for a socket.
        max_pool_connections=max(10, settings.sms_send_concurrency),
    )
    return boto3.client("sns", config=config)


@cache
def sqs_client() -> Any:
    return boto3.client("sqs")


def reset_clients() -> None:
    """Forget the cached clients and settings, so the next use reads the environment."""
    dynamodb_client.cache_clear()
    sns_client.cache_clear()
    sqs_client.cache_clear()
    get_settings.cache_clear()
