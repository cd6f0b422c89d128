"""The devserver over HTTP: the acceptance cases, its curl example and its outbox.

One devserver subprocess serves the whole module, started with the
multi-domain seed in tests/data/seed.json and its own moto server, so every
request goes through real sockets on 127.0.0.1. Each test empties the outbox
before it sends anything.
"""

import base64
import http.client
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "data" / "seed.json"
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")
# Bounds on waiting for the subprocess, so that a broken devserver fails the
# tests instead of hanging them. They are not performance checks.
STARTUP_LIMIT_SECONDS = 90
REQUEST_TIMEOUT_SECONDS = 60

ADMIN = "admin@demo.example:demo-admin-key"
VIEWER = "viewer@demo.example:demo-viewer-key"
PATH = "/a/demo/api/v0_5/sms_user_registration_reinstall/"
LINK = "https://play.google.com/store/apps/details?id=org.commcare.dalvik&hl=en"
ENGLISH = f"To install CommCare, follow this link to the Google Play store: {LINK}"
FRENCH = f"Pour installer CommCare, suivez ce lien : {LINK}"
INSTALL = "[commcare app - do not delete] " + base64.b64encode(
    b"https://www.commcarehq.org/a/demo/sms/app_info/abcd1234abcd1234/"
).decode("ascii")
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Devserver:
    port: int
    base_url: str
    banner: list[str]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        api_key: str | None = None,
    ) -> Response:
        """Send one request and return its status, lower-case headers and JSON body."""
        headers = {"Content-Type": "application/json"}
        if api_key is not None:
            headers["Authorization"] = f"ApiKey {api_key}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_SECONDS
        )
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        return Response(
            status=response.status,
            headers={name.lower(): value for name, value in response.getheaders()},
            body=json.loads(payload) if payload else None,
        )

    def post(
        self, body: Any, api_key: str | None = ADMIN, path: str = PATH
    ) -> Response:
        return self.request("POST", path, body, api_key)

    def outbox(self) -> list[dict[str, str]]:
        response = self.request("GET", "/_dev/outbox")
        assert response.status == 200
        return response.body["messages"]

    def sms_by_number(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for message in self.outbox():
            grouped.setdefault(message["phone_number"], []).append(message["message"])
        return grouped

    def clear_outbox(self) -> None:
        assert self.request("DELETE", "/_dev/outbox").status == 200


def child_environment() -> dict[str, str]:
    """Return this environment without AWS endpoints, profiles or proxies.

    The devserver then points boto3 at its own moto server, and no request to
    127.0.0.1 is sent through a proxy.
    """
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_ENDPOINT_URL")
        and name != "AWS_PROFILE"
        and name.lower() not in PROXY_VARIABLES
    }
    environment.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return environment


def read_banner(process: subprocess.Popen[bytes], output: Path) -> list[str]:
    """Wait until the devserver has printed its banner, and return its lines."""
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while time.monotonic() < deadline:
        lines = output.read_text(encoding="utf-8", errors="replace").splitlines()
        if any(line.startswith("Sent SMS:") for line in lines):
            return lines
        if process.poll() is not None:
            pytest.fail(f"devserver exited with {process.returncode}: {lines}")
        time.sleep(0.05)
    pytest.fail(f"devserver printed no banner within {STARTUP_LIMIT_SECONDS} s")


def wait_until_ready(server: Devserver, process: subprocess.Popen[bytes]) -> None:
    """Wait until GET /_dev/outbox returns 200."""
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"devserver exited with {process.returncode}")
        try:
            if server.request("GET", "/_dev/outbox").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"GET /_dev/outbox did not return 200 within {STARTUP_LIMIT_SECONDS} s")


@pytest.fixture(scope="module")
def devserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devserver]:
    """Start ``python -m devserver --port 0`` and stop it after the module."""
    logs = tmp_path_factory.mktemp("devserver")
    output = logs / "stdout.txt"
    # Files, not pipes, because the server keeps logging a JSON line per request
    # and a full pipe would block it.
    with (
        output.open("wb") as stdout,
        (logs / "stderr.txt").open("wb") as stderr,
    ):
        process = subprocess.Popen(
            [sys.executable, "-m", "devserver", "--port", "0", "--seed", str(SEED)],
            cwd=ROOT,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        banner = read_banner(process, output)
        match = LISTENING.search(banner[0])
        assert match is not None, banner[0]
        server = Devserver(
            port=int(match.group(2)), base_url=match.group(1), banner=banner
        )
        wait_until_ready(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def server(devserver: Devserver) -> Devserver:
    """Return the module's devserver with an empty outbox."""
    devserver.clear_outbox()
    return devserver


def buckets(
    success: list[str] | None = None,
    invalid: list[str] | None = None,
    error: list[str] | None = None,
) -> dict[str, list[str]]:
    return {
        "success_numbers": success or [],
        "invalid_format_numbers": invalid or [],
        "error_numbers": error or [],
    }


def users(*numbers: str) -> list[dict[str, str]]:
    return [{"phone_number": number} for number in numbers]


# The acceptance cases, one test each


def test_case_one_number_both_messages(server: Devserver) -> None:
    response = server.post(
        {"app_id": "abcd1234abcd1234", "users": users("16175551234")}
    )

    assert response.status == 200
    assert response.body == buckets(success=["16175551234"])
    assert server.sms_by_number() == {"+16175551234": [ENGLISH, INSTALL]}


def test_case_letters_invalid_format(server: Devserver) -> None:
    response = server.post(
        {"app_id": "abcd1234abcd1234", "users": users("1617JKL1234")}
    )

    assert response.status == 200
    assert response.body == buckets(invalid=["1617JKL1234"])
    assert server.outbox() == []


def test_case_custom_message_link(server: Devserver) -> None:
    response = server.post(
        {
            "app_id": "abcd1234abcd1234",
            "users": users("16175551234"),
            "reinstall_message": "Click here to install CommCare: {}",
        }
    )

    assert response.status == 200
    assert response.body == buckets(success=["16175551234"])
    assert server.sms_by_number() == {
        "+16175551234": [f"Click here to install CommCare: {LINK}", INSTALL]
    }


def test_case_standard_plan_401(server: Devserver) -> None:
    response = server.post(
        {"app_id": "std-app-0001", "users": users("16175551234")},
        path="/a/standard-proj/api/v0_5/sms_user_registration_reinstall/",
    )

    assert response.status == 401
    assert response.body == {
        "error": "Your current plan does not have access to this feature"
    }
    assert server.outbox() == []


def test_case_registration_off_403(server: Devserver) -> None:
    response = server.post(
        {"app_id": "dis-app-0001", "users": users("16175551234")},
        path="/a/disabled-proj/api/v0_5/sms_user_registration_reinstall/",
    )

    assert response.status == 403
    assert response.body == {
        "error": "Please first enable SMS mobile worker registration for your project."
    }
    assert server.outbox() == []


def test_case_missing_app_id(server: Devserver) -> None:
    response = server.post({"users": users("16175551234")})

    assert response.status == 400
    assert response.body == {
        "sms_user_registration_reinstall": {"app_id": "This field is required"}
    }
    assert server.outbox() == []


def test_case_unknown_app_id(server: Devserver) -> None:
    response = server.post({"app_id": "no-such-app", "users": users("16175551234")})

    assert response.status == 400
    assert response.body == {
        "sms_user_registration_reinstall": {"app_id": "Invalid app_id specified"}
    }
    assert server.outbox() == []


def test_case_same_number_respelled(server: Devserver) -> None:
    response = server.post(
        {
            "app_id": "abcd1234abcd1234",
            "users": users("+1 (617) 555-1234", "16175551234"),
        }
    )

    assert response.status == 400
    assert response.body == {
        "sms_user_registration_reinstall": {
            "users": "phone_number cannot be reused within a request: 16175551234 "
            "(users[0] and users[1])"
        }
    }
    assert server.outbox() == []


def test_case_verified_other_domain(server: Devserver) -> None:
    response = server.post(
        {"app_id": "abcd1234abcd1234", "users": users("16175550101")}
    )

    assert response.status == 200
    assert response.body == buckets(error=["16175550101"])
    assert server.outbox() == []


def test_case_contact_language(server: Devserver) -> None:
    response = server.post(
        {"app_id": "abcd1234abcd1234", "users": users("16175550100")}
    )

    assert response.status == 200
    assert response.body == buckets(success=["16175550100"])
    assert server.sms_by_number() == {"+16175550100": [FRENCH, INSTALL]}


def test_case_no_credentials(server: Devserver) -> None:
    response = server.post(
        {"app_id": "abcd1234abcd1234", "users": users("16175551234")}, api_key=None
    )

    assert response.status == 401
    assert response.body == {
        "error": "Missing Authorization header. "
        "Send the header 'Authorization: ApiKey <username>:<api_key>'."
    }
    assert server.outbox() == []


def test_case_no_edit_data(server: Devserver) -> None:
    response = server.post(
        {"app_id": "abcd1234abcd1234", "users": users("16175551234")}, api_key=VIEWER
    )

    assert response.status == 403
    assert response.body == {
        "error": "You do not have permission to send reinstall SMS in project "
        "'demo'. The edit_data permission is required."
    }
    assert server.outbox() == []


def test_case_mixed_buckets(server: Devserver) -> None:
    numbers = ["16175551234", "bad", "16175550101", "+44 20 7946 0958"]

    response = server.post({"app_id": "abcd1234abcd1234", "users": users(*numbers)})

    assert response.status == 200
    assert response.body == buckets(
        success=["16175551234", "+44 20 7946 0958"],
        invalid=["bad"],
        error=["16175550101"],
    )
    assert server.sms_by_number() == {
        "+16175551234": [ENGLISH, INSTALL],
        "+442079460958": [ENGLISH, INSTALL],
    }


# The devserver itself


def test_banner_first_line(devserver: Devserver) -> None:
    assert devserver.banner[0].startswith(
        f"Reinstall API listening on {devserver.base_url} "
    )


def test_printed_curl_command(server: Devserver) -> None:
    command = server.banner[server.banner.index("Try it:") + 1].strip()
    arguments = shlex.split(command) + ["--write-out", "\n%{http_code}"]

    completed = subprocess.run(
        arguments,
        capture_output=True,
        text=True,
        env=child_environment(),
        timeout=REQUEST_TIMEOUT_SECONDS,
        check=False,
    )
    body, _, status = completed.stdout.rpartition("\n")

    assert arguments[:4] == ["curl", "-s", "-X", "POST"]
    assert f"{server.base_url}/a/demo/api/" in command
    assert completed.returncode == 0, completed.stderr
    assert status == "200"
    assert json.loads(body) == buckets(success=["16175551234"])
    assert server.sms_by_number() == {"+16175551234": [ENGLISH, INSTALL]}


def test_outbox_message_fields(server: Devserver) -> None:
    server.post({"app_id": "abcd1234abcd1234", "users": users("16175551234")})

    messages = server.outbox()

    assert [sorted(message) for message in messages] == [
        ["message", "message_id", "phone_number"],
        ["message", "message_id", "phone_number"],
    ]
    assert [message["message"] for message in messages] == [ENGLISH, INSTALL]
    assert messages[0]["message_id"] != messages[1]["message_id"]


def test_outbox_delete_empties(server: Devserver) -> None:
    server.post({"app_id": "abcd1234abcd1234", "users": users("16175551234")})
    assert len(server.outbox()) == 2

    deleted = server.request("DELETE", "/_dev/outbox")

    assert deleted.status == 200
    assert deleted.body == {"messages": []}
    assert server.outbox() == []


def test_method_not_allowed_over_http(server: Devserver) -> None:
    response = server.request("GET", PATH, api_key=ADMIN)

    assert response.status == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/json"
    assert response.body == {"error": "Method GET is not allowed; use POST."}


# Robustness of the devserver itself


@pytest.mark.parametrize("length", ["abc", "-1"])
def test_invalid_content_length_400(server: Devserver, length: str) -> None:
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=REQUEST_TIMEOUT_SECONDS
    )
    try:
        connection.putrequest("POST", PATH)
        connection.putheader("Content-Length", length)
        connection.endheaders()
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()

    assert response.status == 400
    assert json.loads(payload) == {"error": "Invalid Content-Length header."}


def test_busy_port_fails_fast(server: Devserver) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "devserver", "--port", str(server.port)],
        check=False,
        cwd=ROOT,
        env=child_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )

    assert completed.returncode == 2
    assert b"Address already in use" in completed.stderr
    assert b"choose another port with --port" in completed.stderr
