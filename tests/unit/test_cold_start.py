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

# Runs in the child: builds the service as the first request does and lists
# the modules loaded by then.
SERVICE_PROBE = """
import json, sys
import handler.api
handler.api.get_service()
print(json.dumps({"modules": sorted(sys.modules)}))
"""

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/reinstall-delivery"

# Modules that only some requests need.
OPENAPI_PARAMS = "aws_lambda_powertools.event_handler.openapi.params"
IDEMPOTENCY_UTILITY = "aws_lambda_powertools.utilities.idempotency"


def run_in_fresh_interpreter(code: str, **variables: str) -> dict[str, Any]:
    """Run ``code`` with src on the path and fake credentials, parse its last line."""
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
            **variables,
        }
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return result


def import_handler_in_fresh_interpreter() -> dict[str, Any]:
    return run_in_fresh_interpreter(PROBE)


def loaded(modules: list[str], package: str) -> list[str]:
    return [name for name in modules if name.split(".")[0] == package]


def loaded_under(modules: list[str], prefix: str) -> list[str]:
    return [name for name in modules if name == prefix or name.startswith(prefix + ".")]


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


def test_handler_import_defers_pydantic() -> None:
    result = import_handler_in_fresh_interpreter()

    assert loaded(result["modules"], "pydantic") == []
    assert loaded(result["modules"], "pydantic_core") == []


def test_handler_import_defers_openapi_params() -> None:
    result = import_handler_in_fresh_interpreter()

    assert loaded_under(result["modules"], OPENAPI_PARAMS) == []


def test_handler_import_defers_idempotency_utility() -> None:
    result = import_handler_in_fresh_interpreter()

    assert loaded_under(result["modules"], IDEMPOTENCY_UTILITY) == []


def test_handler_import_defers_queueing() -> None:
    result = import_handler_in_fresh_interpreter()

    assert loaded_under(result["modules"], "core.queueing") == []
    assert loaded_under(result["modules"], "core.chunks") == []


def test_service_with_queue_defers_pydantic() -> None:
    result = run_in_fresh_interpreter(SERVICE_PROBE, QUEUE_URL=QUEUE_URL)

    # The service calls core.queueing to decide whether to queue. Only
    # building a chunk needs the pydantic models in core.chunks.
    assert "core.queueing" in result["modules"]
    assert loaded_under(result["modules"], "core.chunks") == []
    assert loaded(result["modules"], "pydantic") == []
