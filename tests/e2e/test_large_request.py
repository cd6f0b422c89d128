"""A 1000-number request through the devserver, with SNS 25 ms away.

The devserver runs as a subprocess with ``AWS_ENDPOINT_URL_SNS`` pointing at
the fake SNS server, itself a subprocess that responds to each Publish after
25 ms, and with the rate limit off. The devserver's Lambda context reports
the deployed function's 25 s timeout, and numbers are not started in the last
DEADLINE_MARGIN_MS (3 s). So the test shows that the maximum request fits in
one invocation at the default concurrency of 16: every number must be in
``success_numbers``.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
PATH = "/a/demo/api/v0_5/sms_user_registration_reinstall/"
API_KEY = "admin@demo.example:demo-api-key"
APP_ID = "abcd1234abcd1234"
LATENCY_MS = 25
NUMBER_COUNT = 1000
INSTALL_PREFIX = "[commcare app - do not delete] "
# Bounds on waiting for the subprocesses, so that a broken server fails the
# test instead of hanging it. They are not performance checks.
STARTUP_LIMIT_SECONDS = 90
REQUEST_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Servers:
    devserver_port: int
    fake_sns_url: str


def child_environment(**extra: str) -> dict[str, str]:
    """Return this environment without AWS, SMS or Powertools variables or proxies."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "SMS_", "POWERTOOLS_"))
        and name.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }
    environment.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONPATH=str(ROOT / "src"),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return environment


def stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_line(
    process: subprocess.Popen[Any], output: Path, pattern: re.Pattern[str]
) -> re.Match[str]:
    """Wait until ``output`` has a line matching ``pattern``; return the match."""
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while time.monotonic() < deadline:
        text = output.read_text(encoding="utf-8", errors="replace")
        match = pattern.search(text)
        if match:
            return match
        if process.poll() is not None:
            pytest.fail(f"{process.args} exited with {process.returncode}: {text}")
        time.sleep(0.05)
    pytest.fail(f"{process.args} printed nothing within {STARTUP_LIMIT_SECONDS} s")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Start the fake SNS, then the devserver pointed at it, on free ports."""
    logs = tmp_path_factory.mktemp("large-request")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        fake_output = logs / "fake_sns.txt"
        with fake_output.open("wb") as stdout:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "devserver.fake_sns",
                        "--port",
                        "0",
                        "--latency-ms",
                        str(LATENCY_MS),
                    ],
                    env=child_environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=subprocess.STDOUT,
                )
            )
        fake_sns_url = wait_for_line(
            processes[0], fake_output, re.compile(r"http://127\.0\.0\.1:\d+")
        ).group(0)

        # Files, not pipes, because the devserver logs a line per request and a
        # full pipe would block it.
        devserver_output = logs / "devserver.txt"
        with devserver_output.open("wb") as stdout:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "devserver", "--port", "0"],
                    cwd=ROOT,
                    env=child_environment(
                        AWS_ENDPOINT_URL_SNS=fake_sns_url, SMS_MAX_SEND_RATE="0"
                    ),
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=subprocess.STDOUT,
                )
            )
        port = wait_for_line(processes[1], devserver_output, LISTENING).group(1)
        yield Servers(devserver_port=int(port), fake_sns_url=fake_sns_url)
    finally:
        for process in reversed(processes):
            stop(process)


def post_reinstall(port: int, numbers: list[str]) -> tuple[int, Any]:
    body = json.dumps(
        {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]}
    )
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=REQUEST_TIMEOUT_SECONDS
    )
    try:
        connection.request(
            "POST",
            PATH,
            body=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"ApiKey {API_KEY}",
            },
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def fake_sns_messages(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/_fake/messages", timeout=30) as response:
        messages: list[dict[str, Any]] = json.loads(response.read())["messages"]
    return messages


def test_thousand_numbers_all_succeed(servers: Servers) -> None:
    # Valid US numbers that the demo seed does not register anywhere.
    numbers = [f"1617201{index:04d}" for index in range(NUMBER_COUNT)]

    status, body = post_reinstall(servers.devserver_port, numbers)

    assert status == 200
    assert body["invalid_format_numbers"] == []
    assert body["error_numbers"] == []
    assert body["success_numbers"] == numbers

    messages = fake_sns_messages(servers.fake_sns_url)
    assert len(messages) == 2 * NUMBER_COUNT
    by_number: dict[str, list[dict[str, Any]]] = {}
    for message in sorted(messages, key=lambda message: message["sequence"]):
        by_number.setdefault(message["phone_number"], []).append(message)
    assert sorted(by_number) == sorted("+" + number for number in numbers)
    for sent in by_number.values():
        assert len(sent) == 2
        assert not sent[0]["message"].startswith(INSTALL_PREFIX)
        assert sent[1]["message"].startswith(INSTALL_PREFIX)
