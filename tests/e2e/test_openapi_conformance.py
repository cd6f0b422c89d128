"""The running devserver against docs/openapi.json: no 5xx, every response as documented.

schemathesis generates requests from the document (its examples, boundary
values, then random data) and checks each response's status, content type,
headers and body against it.
"""

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "openapi.json"
SEED = ROOT / "tests" / "data" / "seed.json"
ADMIN_AUTHORIZATION = "ApiKey admin@demo.example:demo-admin-key"
# How long the devserver may take to print its address: moto and the seed
# load in a few seconds on a quiet machine.
STARTUP_TIMEOUT_SECONDS = 60
# Generated examples per operation and phase. The module then took 25 to 35 s
# for its 14 operations on a 2-core machine.
MAX_EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def devserver_environment() -> dict[str, str]:
    """Return the environment for the child: fake credentials, no AWS endpoints."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_ENDPOINT_URL")
    }
    environment.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            # Sending at the deployed rate would only slow the examples down.
            "SMS_MAX_SEND_RATE": "0",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    return environment


@pytest.fixture(scope="module")
def devserver_url() -> Iterator[str]:
    """Start ``python -m devserver`` on a free loopback port; yield its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devserver", "--port", "0", "--seed", str(SEED)],
        cwd=ROOT,
        env=devserver_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    first_line: list[str] = []
    reader = threading.Thread(
        target=lambda: first_line.append(process.stdout.readline()), daemon=True
    )
    reader.start()
    reader.join(STARTUP_TIMEOUT_SECONDS)
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", "".join(first_line))
    if match is None:
        process.kill()
        process.wait()
        pytest.fail(f"devserver did not start: first line {first_line!r}")

    # Drain the rest of the output so that the child never blocks on a full pipe.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    try:
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


# The document is loaded at import and the base URL is given to each call.
# schemathesis.pytest.from_fixture would be the natural way to pass the URL,
# but under pytest 9.2 it fails reading the node attribute _nodeid.
schema = schemathesis.openapi.from_path(DOCUMENT)
schema.config.generation.update(max_examples=MAX_EXAMPLES)
# NOTE: TRACE and QUERY are left out of schemathesis' probes of undocumented
# methods. The devserver's http.server returns 501 for them without calling
# the handler, and API Gateway's ANY method does not include them.
schema.config.phases.coverage.unexpected_methods -= {"trace", "query"}


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_authenticated_requests_conform(
    case: schemathesis.Case, devserver_url: str
) -> None:
    case.call_and_validate(
        base_url=devserver_url,
        headers={"Authorization": ADMIN_AUTHORIZATION},
        checks=CHECKS,
    )


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_generated_credentials_conform(
    case: schemathesis.Case, devserver_url: str
) -> None:
    case.call_and_validate(base_url=devserver_url, checks=CHECKS)
