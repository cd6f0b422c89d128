"""A 200-number request through the devserver while SNS throttles 30% of Publishes.

The devserver runs as a subprocess with AWS_ENDPOINT_URL_SNS pointing at a fake
SNS on loopback, so its real boto3 client, with botocore's standard retries and
their real backoff, meets the throttling. DynamoDB is the devserver's own moto
server, which the test reads afterwards for the SMS log.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from core.smslog import SmsLog
from devserver.fake_sns import FakeSns

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "abcd1234abcd1234"
AUTHORIZATION = "ApiKey admin@demo.example:demo-api-key"
COLLECTION = "/a/demo/api/v0_5/sms_user_registration_reinstall/"
TABLE_NAME = "reinstall-faults-e2e"
STARTUP_WAIT_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 120
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass
class RunningDevServer:
    base_url: str
    moto_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def start_devserver(tmp_path: Path, sns_url: str) -> RunningDevServer:
    """Start ``python -m devserver`` on a free port with SNS at ``sns_url``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_ENDPOINT_URL")
        and name not in ("AWS_PROFILE", "QUEUE_URL", "TABLE_NAME")
    }
    environment.update(FAKE_CREDENTIALS)
    environment.update(
        {
            "AWS_ENDPOINT_URL_SNS": sns_url,
            "TABLE_NAME": TABLE_NAME,
            # Without the rate limit the 400 messages fit well within the
            # devserver's 25 s Lambda deadline, so the deadline does not
            # decide the buckets here.
            "SMS_MAX_SEND_RATE": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log_path = tmp_path / "devserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devserver", "--port", "0"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    deadline = time.monotonic() + STARTUP_WAIT_SECONDS
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if " listening on " in line and "moto at " in line:
                base_url = line.split(" listening on ", 1)[1].split()[0]
                moto_url = line.split("moto at ", 1)[1].rstrip(")").strip()
                return RunningDevServer(base_url, moto_url, process, log_path)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise AssertionError(
        "devserver did not start:\n" + log_path.read_text(errors="replace")
    )


@pytest.fixture
def throttling_sns() -> Iterator[FakeSns]:
    with FakeSns(throttle_ratio=0.3, random_seed=11) as fake:
        yield fake


@pytest.fixture
def devserver(tmp_path: Path, throttling_sns: FakeSns) -> Iterator[RunningDevServer]:
    server = start_devserver(tmp_path, throttling_sns.url)
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def post_reinstall(server: RunningDevServer, numbers: list[str]) -> tuple[int, Any]:
    body = {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]}
    request = urllib.request.Request(
        server.base_url + COLLECTION,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={"Authorization": AUTHORIZATION, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
        return response.status, json.loads(response.read())


def two_hundred_numbers() -> list[str]:
    """Return 200 valid US numbers, none ending in 99, with mixed spelling."""
    digits = [f"1617555{index:04d}" for index in range(3000, 3210)]
    digits = [number for number in digits if not number.endswith("99")][:200]
    return [
        f"+{number}" if index % 2 else f"{number[:1]} ({number[1:4]}) {number[4:]}"
        for index, number in enumerate(digits)
    ]


def e164(number: str) -> str:
    return "+" + "".join(character for character in number if character.isdigit())


def test_200_numbers_under_throttling(
    devserver: RunningDevServer, throttling_sns: FakeSns
) -> None:
    numbers = two_hundred_numbers()

    status, body = post_reinstall(devserver, numbers)

    assert status == 200, devserver.log_path.read_text(errors="replace")
    success = body["success_numbers"]
    errors = body["error_numbers"]
    assert body["invalid_format_numbers"] == []
    # Every number in exactly one bucket, as the client spelled it.
    assert sorted(success + errors) == sorted(numbers)
    assert len(success) + len(errors) == 200

    play_store_text, install_text = expected_texts()
    received: dict[str, list[str]] = {}
    for message in sorted(throttling_sns.messages(), key=lambda m: m["sequence"]):
        received.setdefault(message["phone_number"], []).append(message["message"])
    for number in success:
        assert received[e164(number)] == [play_store_text, install_text], number
    for number in errors:
        assert received.get(e164(number), []) in ([], [play_store_text]), number
    for number, texts in received.items():
        assert texts[0] == play_store_text, number

    stats = throttling_sns.stats()
    assert stats["throttled_calls"] > 0
    assert stats["publish_calls"] == stats["accepted_calls"] + stats["throttled_calls"]
    assert stats["accepted_calls"] == len(throttling_sns.messages())

    # The devserver's SMS log names the same SNS message ids.
    log = SmsLog(TABLE_NAME, moto_dynamodb(devserver.moto_url), retention_days=90)
    accepted_ids = {m["message_id"] for m in throttling_sns.messages()}
    logged_ids = {
        record.message_id
        for number in numbers
        for record in log.read_phone_number("demo", e164(number))
        if record.message_id
    }
    assert logged_ids == accepted_ids


def expected_texts() -> tuple[str, str]:
    """Return the Play Store and install texts that the demo domain sends."""
    from core import messages

    install = messages.install_message("https://www.commcarehq.org", "demo", APP_ID)
    play_store = messages.default_first_message({}, "en", None)
    return play_store, install


def moto_dynamodb(url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
