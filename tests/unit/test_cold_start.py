"""What importing the Lambda handler does, checked in a fresh interpreter.

Lambda imports ``handler.api`` once per container, before the first request,
so everything done at import time is paid by each cold start.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src"

# Audit events of calls that reach or resolve another host. Importing urllib3
# binds a socket to ::1 to detect IPv6 support, which sends nothing.
NETWORK_EVENTS = (
    "socket.connect",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "socket.sendto",
    "socket.sendmsg",
)

# Runs in the child: records network audit events, the modules loaded and the
# number of cached AWS clients.
PROBE = f"""
import json, sys

network_events = []

def audit(event, args):
    if event in {NETWORK_EVENTS!r}:
        network_events.append(event)

sys.addaudithook(audit)
import handler.api
from core import aws
clients = aws.dynamodb_client.cache_info().currsize + aws.sns_client.cache_info().currsize
print(json.dumps(
    {{"network_events": network_events, "modules": sorted(sys.modules), "clients": clients}}
))
"""


def import_handler_in_fresh_interpreter() -> dict[str, Any]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "POWERTOOLS_", "LAMBDA_"))
    }
    environment.update(
        {
            "PYTHONPATH": str(SRC),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "TABLE_NAME": "reinstall-cold-start-test",
        }
    )
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return result


def loaded(modules: list[str], package: str) -> list[str]:
    return [name for name in modules if name.split(".")[0] == package]


def test_handler_import_makes_no_network_call() -> None:
    result = import_handler_in_fresh_interpreter()

    assert result["network_events"] == []


def test_handler_import_defers_xray_sdk() -> None:
    result = import_handler_in_fresh_interpreter()

    assert loaded(result["modules"], "aws_xray_sdk") == []


def test_handler_import_defers_phonenumbers() -> None:
    result = import_handler_in_fresh_interpreter()

    assert loaded(result["modules"], "phonenumbers") == []


def test_handler_import_creates_no_boto3_client() -> None:
    result = import_handler_in_fresh_interpreter()

    assert result["clients"] == 0
