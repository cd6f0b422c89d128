"""HTTP front end that turns requests into API Gateway REST proxy events."""

import base64
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devserver import aws

# The function's timeout in template.yaml, so that the Lambda context reports
# the remaining time the deployed function would have.
FUNCTION_TIMEOUT_SECONDS = 25
STAGE = "local"


@dataclass
class LocalLambdaContext:
    """The parts of the Lambda context object that the handler and Powertools use."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "reinstall-sms-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:reinstall-sms-local"
    )
    log_group_name: str = "/aws/lambda/reinstall-sms-local"
    log_stream_name: str = "local"
    deadline: float = field(
        default_factory=lambda: time.monotonic() + FUNCTION_TIMEOUT_SECONDS
    )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def build_event(
    method: str, target: str, headers: dict[str, list[str]], body: bytes
) -> dict[str, Any]:
    """Return the API Gateway REST (v1) proxy event for one HTTP request."""
    url = urlsplit(target)
    query = parse_qsl(url.query, keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        multi_query.setdefault(name, []).append(value)
    try:
        text_body: str | None = body.decode("utf-8") if body else None
        encoded = False
    except UnicodeDecodeError:
        text_body = base64.b64encode(body).decode("ascii")
        encoded = True
    request_id = str(uuid.uuid4())
    return {
        "resource": "/{proxy+}",
        "path": url.path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in headers.items()},
        "multiValueHeaders": headers,
        "queryStringParameters": {n: v[-1] for n, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": url.path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{STAGE}{url.path}",
            "stage": STAGE,
            "requestId": request_id,
            "accountId": "123456789012",
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": "127.0.0.1"},
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": text_body,
        "isBase64Encoded": encoded,
    }


class DevRequestHandler(BaseHTTPRequestHandler):
    """Serves the API through the Lambda handler, plus the ``/_dev`` routes."""

    protocol_version = "HTTP/1.1"
    server_version = "reinstall-devserver"
    # Powertools' resolver keeps the current event as module state, so the
    # handler must run one event at a time.
    handler_lock = threading.Lock()

    def do_request(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self.send_json(400, {"error": "Invalid Content-Length header."})
            return
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        if path == "/_dev/outbox" and self.command in ("GET", "DELETE"):
            self.serve_outbox()
            return
        if path == "/_dev/info" and self.command == "GET":
            self.serve_info()
            return
        self.serve_lambda(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_request

    def __getattr__(self, name: str) -> Any:
        # API Gateway passes any method (TRACE, QUERY, ...) to the function, and
        # the handler returns 404 or 405, where http.server would send an HTML 501.
        method = name.removeprefix("do_")
        if name.startswith("do_") and method.isalpha() and method.isupper():
            return self.do_request
        raise AttributeError(name)

    def do_HEAD(self) -> None:
        self.do_request()

    def serve_outbox(self) -> None:
        if self.command == "DELETE":
            aws.clear_outbox()
        self.send_json(200, {"messages": aws.outbox_messages()})

    def serve_info(self) -> None:
        """Send the table name and DynamoDB endpoint, for tools such as reinstall-admin."""
        from core.settings import get_settings

        endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get(
            "AWS_ENDPOINT_URL"
        )
        self.send_json(
            200,
            {"aws_endpoint_url": endpoint, "table_name": get_settings().table_name},
        )

    def serve_lambda(self, body: bytes) -> None:
        from handler.api import lambda_handler

        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name, []).append(value)
        event = build_event(self.command, self.path, headers, body)
        with self.handler_lock:
            response = lambda_handler(event, LocalLambdaContext())

        payload = response.get("body") or ""
        data = (
            base64.b64decode(payload)
            if response.get("isBase64Encoded")
            else payload.encode("utf-8")
        )
        self.send_response(response["statusCode"])
        sent = set()
        for name, values in (response.get("multiValueHeaders") or {}).items():
            for value in values:
                self.send_header(name, value)
            sent.add(name.lower())
        for name, value in (response.get("headers") or {}).items():
            if name.lower() not in sent:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Paths carry no phone numbers or keys, so the default access line is safe.
        if not self.path.startswith("/_dev/"):
            super().log_message(format, *args)


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), DevRequestHandler)
    server.daemon_threads = True
    return server
