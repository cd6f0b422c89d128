"""ReinstallApi's retries against a scripted HTTP server on loopback."""

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from client.api import ApiError, ReinstallApi

OK_BODY = {
    "success_numbers": ["16175550100"],
    "invalid_format_numbers": [],
    "error_numbers": [],
}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Close the connection without any response, as a dropped network would.
    drop: bool = False


@dataclass
class ScriptedServer:
    """Replies to each POST with the next scripted Reply and records the requests."""

    replies: list[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    script = ScriptedServer(replies=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            script.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            reply = script.replies.pop(0)
            if reply.drop:
                self.close_connection = True
                return
            data = json.dumps(reply.body).encode("utf-8")
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield script
    server.shutdown()
    server.server_close()
    thread.join()


def make_api(
    script: ScriptedServer, waits: list[float], **options: Any
) -> ReinstallApi:
    return ReinstallApi(
        script.url + "/prod/",
        "my proj",
        "ops@example.org:secret",
        sleep=waits.append,
        timeout_seconds=10,
        **options,
    )


def send(api: ReinstallApi) -> dict[str, list[str]]:
    return api.reinstall("app-1", ["16175550100"], "Install: {}", "key-0").buckets


def test_request_shape(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(200, OK_BODY)]
    assert send(make_api(scripted, [])) == OK_BODY

    (request,) = scripted.requests
    assert request["path"] == (
        "/prod/a/my%20proj/api/v0_5/sms_user_registration_reinstall/"
    )
    assert request["headers"]["Authorization"] == "ApiKey ops@example.org:secret"
    assert request["headers"]["Idempotency-Key"] == "key-0"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == {
        "app_id": "app-1",
        "users": [{"phone_number": "16175550100"}],
        "reinstall_message": "Install: {}",
    }


def test_direct_response_has_no_status(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(200, OK_BODY)]
    response = make_api(scripted, []).reinstall("app-1", ["16175550100"], None, "k")
    assert response.request_id is None
    assert response.status_url is None


def test_queued_response_keeps_status(scripted: ScriptedServer) -> None:
    status_url = (
        scripted.url + "/a/my%20proj/api/v0_5/sms_user_registration_reinstall/r-1/"
    )
    scripted.replies = [
        Reply(200, OK_BODY, {"X-Request-Id": "r-1", "Location": status_url})
    ]
    response = make_api(scripted, []).reinstall("app-1", ["16175550100"], None, "k")
    assert response.buckets == OK_BODY
    assert response.request_id == "r-1"
    assert response.status_url == status_url


def test_no_message_leaves_field_out(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(200, OK_BODY)]
    make_api(scripted, []).reinstall("app-1", ["16175550100"], None, "key-0")
    assert "reinstall_message" not in scripted.requests[0]["body"]


def test_retries_429_with_retry_after(scripted: ScriptedServer) -> None:
    scripted.replies = [
        Reply(429, {"message": "Too Many Requests"}, {"Retry-After": "3"}),
        Reply(429, {"message": "Too Many Requests"}, {"Retry-After": "1000"}),
        Reply(200, OK_BODY),
    ]
    waits: list[float] = []
    notices: list[tuple[str, float]] = []
    api = make_api(scripted, waits, on_retry=lambda r, s: notices.append((r, s)))
    assert send(api) == OK_BODY
    assert waits == [3.0, 300.0]
    assert notices == [("HTTP 429", 3.0), ("HTTP 429", 300.0)]
    keys = [request["headers"]["Idempotency-Key"] for request in scripted.requests]
    assert keys == ["key-0", "key-0", "key-0"]


def test_retries_503_with_backoff(scripted: ScriptedServer) -> None:
    scripted.replies = [
        Reply(503, {"error": "The service's storage is unavailable"}),
        Reply(503, {"error": "The service's storage is unavailable"}),
        Reply(200, OK_BODY),
    ]
    waits: list[float] = []
    assert send(make_api(scripted, waits)) == OK_BODY
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0


def test_retries_409_in_progress(scripted: ScriptedServer) -> None:
    scripted.replies = [
        Reply(409, {"error": "still being processed"}, {"Retry-After": "2"}),
        Reply(200, OK_BODY),
    ]
    waits: list[float] = []
    assert send(make_api(scripted, waits)) == OK_BODY
    assert waits == [2.0]


def test_409_without_retry_after_stops(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(409, {"error": "conflict"})]
    with pytest.raises(ApiError) as raised:
        send(make_api(scripted, []))
    assert raised.value.status == 409
    assert raised.value.may_have_sent is True


def test_retries_dropped_connection(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(0, drop=True), Reply(200, OK_BODY)]
    waits: list[float] = []
    assert send(make_api(scripted, waits)) == OK_BODY
    assert len(waits) == 1
    assert len(scripted.requests) == 2


def test_gives_up_after_max_attempts(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(503, {"error": "unavailable"}) for _ in range(3)]
    waits: list[float] = []
    with pytest.raises(ApiError) as raised:
        send(make_api(scripted, waits, max_attempts=3))
    assert raised.value.status == 503
    assert raised.value.message == "HTTP 503: unavailable"
    assert raised.value.may_have_sent is True
    assert len(waits) == 2
    assert len(scripted.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_error_stops_at_once(scripted: ScriptedServer, status: int) -> None:
    scripted.replies = [Reply(status, {"error": "rejected for a reason"})]
    waits: list[float] = []
    with pytest.raises(ApiError) as raised:
        send(make_api(scripted, waits))
    assert raised.value.status == status
    assert raised.value.message == f"HTTP {status}: rejected for a reason"
    assert raised.value.may_have_sent is False
    assert waits == []
    assert len(scripted.requests) == 1


def test_server_error_not_retried(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(502, {"message": "Internal server error"})]
    with pytest.raises(ApiError) as raised:
        send(make_api(scripted, []))
    assert raised.value.status == 502
    assert raised.value.may_have_sent is True
    assert len(scripted.requests) == 1


def test_unexpected_success_body(scripted: ScriptedServer) -> None:
    scripted.replies = [Reply(200, {"success_numbers": []})]
    with pytest.raises(ApiError, match="not a reinstall result"):
        send(make_api(scripted, []))


def test_refused_connection_sent_nothing() -> None:
    # Bind and close a socket to find a loopback port with no listener.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []
    api = ReinstallApi(
        f"http://127.0.0.1:{port}", "demo", "u:k", sleep=waits.append, max_attempts=2
    )
    with pytest.raises(ApiError) as raised:
        send(api)
    assert raised.value.status is None
    assert raised.value.may_have_sent is False
    assert raised.value.message.startswith(f"Cannot reach http://127.0.0.1:{port}/a/")
    assert len(waits) == 1
