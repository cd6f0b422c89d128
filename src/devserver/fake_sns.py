"""Fake Amazon SNS HTTP server for tests and benchmarks.

The server speaks the AWS query protocol, which botocore's SNS model (API version
2010-03-31) declares: form-encoded POST requests with an ``Action`` parameter, XML
responses, and XML error bodies shaped ``ErrorResponse/Error/{Type,Code,Message}``.
A boto3 client reaches it unchanged through ``endpoint_url=fake.url`` or the
``AWS_ENDPOINT_URL_SNS`` environment variable.

Implemented actions: ``Publish`` with ``PhoneNumber``, ``CheckIfPhoneNumberIsOptedOut``
and ``ListPhoneNumbersOptedOut``. Any other action gets a 400 ``InvalidAction`` error.

Knobs (see ``FakeSnsConfig``) add latency, throttling, server errors and permanent
rejections. They can be set at construction, with ``configure()``, on the command
line, or at runtime through the control endpoints, which use paths SNS never uses:

- ``GET /_fake/messages``: the accepted messages, ``{"messages": [...]}``
- ``DELETE /_fake/messages``: clear the messages, per-number history and counters
- ``GET /_fake/stats``: the counters
- ``GET /_fake/config``: the current knobs
- ``POST /_fake/config``: change the knobs given in a JSON object

Command line: ``python -m devserver.fake_sns --help``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import ipaddress
import json
import logging
import math
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self, TypedDict
from urllib.parse import parse_qsl, urlsplit

logger = logging.getLogger(__name__)

XML_NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"

# E.164: a plus sign and at most 15 digits, the first of which is not 0.
E164_PATTERN = re.compile(r"\+[1-9][0-9]{1,14}")

# botocore's SNS model documents 1600 characters as the maximum for one SMS Publish.
MAX_SMS_CHARACTERS = 1600

# botocore's SNS model documents 256 KiB as the default Publish size limit, so this
# leaves room for form encoding.
MAX_REQUEST_BYTES = 1024 * 1024

DEFAULT_OPT_OUT_PAGE_SIZE = 100

CONTROL_PATH_PREFIX = "/_fake/"

# One thread serves each connection, so this only sizes the kernel's accept queue.
LISTEN_BACKLOG = 256

# How often the accept loop checks whether stop() was called, so stop() takes up
# to this long. Tests start and stop many servers, so keep it short.
STOP_POLL_SECONDS = 0.01

NUMBER_SET_KNOBS = ("reject_numbers", "fail_second_numbers", "opted_out_numbers")


class PublishedMessage(TypedDict):
    """One message that Publish accepted."""

    phone_number: str
    message: str
    message_id: str
    attributes: dict[str, str]
    sequence: int


class SnsError(Exception):
    """An SNS error response: HTTP status, error code, message and fault type."""

    def __init__(
        self, status: int, code: str, message: str, fault_type: str = "Sender"
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fault_type = fault_type


def invalid_parameter(name: str, reason: str) -> SnsError:
    """Build a permanent 400 InvalidParameter error, which botocore does not retry."""
    return SnsError(
        400, "InvalidParameter", f"Invalid parameter: {name} Reason: {reason}"
    )


def throttling_error() -> SnsError:
    """Build a ``Throttling`` error with HTTP 400 and the message "Rate exceeded".

    botocore 1.44's SNS model lists no throttling error for Publish. Its
    ``ThrottledException`` (code ``Throttled``, HTTP 429) belongs to other actions,
    and ``Throttled`` is not among the standard retry mode's throttling codes. The
    code ``Throttling`` with HTTP 400 is a throttling definition in botocore's
    ``data/_retry.json`` and one of the codes in ``retries/standard.py``, so both
    retry modes retry it with the longer throttling backoff.
    """
    # NOTE: the code and status that real SNS returns for Publish throttling were
    # not checked against a live service.
    return SnsError(400, "Throttling", "Rate exceeded")


def internal_error() -> SnsError:
    """Build an HTTP 500 InternalError, which botocore retries."""
    return SnsError(
        500,
        "InternalError",
        "Internal error injected by the fake (server_error_ratio)",
        fault_type="Receiver",
    )


def _check_finite_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_ratio(name: str, value: object) -> float:
    ratio = _check_finite_number(name, value)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return ratio


def _check_e164_set(name: str, numbers: object) -> frozenset[str]:
    # A single string is iterable too, and would silently become a set of characters.
    if isinstance(numbers, str | bytes) or not isinstance(numbers, Iterable):
        raise TypeError(f"{name} must be a list of E.164 numbers, got {numbers!r}")
    checked = set()
    for number in numbers:
        if not isinstance(number, str):
            raise TypeError(f"{name} must contain strings, got {number!r}")
        if not E164_PATTERN.fullmatch(number):
            raise ValueError(
                f"{name} contains {number!r}, which is not an E.164 number "
                "such as +16175551234"
            )
        checked.add(number)
    return frozenset(checked)


@dataclasses.dataclass(frozen=True)
class FakeSnsConfig:
    """Behaviour knobs of the fake.

    Construction raises TypeError on a value of the wrong type and ValueError on
    one out of range.

    ``throttle_ratio`` and ``server_error_ratio`` are shares of Publish calls and
    come from one random draw per call, so their sum must not exceed 1. With
    ``random_seed`` set, the n-th Publish call gets the same outcome on every run.
    """

    # Delay before each Publish response, in milliseconds.
    latency_ms: float = 0.0
    # Share of Publish calls that get a retryable Throttling error (0..1).
    throttle_ratio: float = 0.0
    # Share of Publish calls that get a retryable HTTP 500 InternalError (0..1).
    server_error_ratio: float = 0.0
    # E.164 numbers whose every Publish fails with InvalidParameter.
    reject_numbers: frozenset[str] = frozenset()
    # E.164 numbers whose Publish fails with InvalidParameter after one success.
    fail_second_numbers: frozenset[str] = frozenset()
    # E.164 numbers that both opt-out actions report as opted out.
    opted_out_numbers: frozenset[str] = frozenset()
    # Maximum phone numbers in one ListPhoneNumbersOptedOut page.
    opt_out_page_size: int = DEFAULT_OPT_OUT_PAGE_SIZE
    # Seed for the throttling and server error draws, or None to seed from the OS.
    random_seed: int | None = None

    def __post_init__(self) -> None:
        latency_ms = _check_finite_number("latency_ms", self.latency_ms)
        if latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {latency_ms!r}")
        throttle_ratio = _check_ratio("throttle_ratio", self.throttle_ratio)
        server_error_ratio = _check_ratio("server_error_ratio", self.server_error_ratio)
        if throttle_ratio + server_error_ratio > 1.0:
            raise ValueError(
                "throttle_ratio + server_error_ratio must not exceed 1, got "
                f"{throttle_ratio} + {server_error_ratio}"
            )

        page_size = self.opt_out_page_size
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise TypeError(f"opt_out_page_size must be an integer, got {page_size!r}")
        if page_size < 1:
            raise ValueError(f"opt_out_page_size must be at least 1, got {page_size}")
        seed = self.random_seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"random_seed must be an integer or null, got {seed!r}")

        object.__setattr__(self, "latency_ms", latency_ms)
        object.__setattr__(self, "throttle_ratio", throttle_ratio)
        object.__setattr__(self, "server_error_ratio", server_error_ratio)
        for name in NUMBER_SET_KNOBS:
            object.__setattr__(self, name, _check_e164_set(name, getattr(self, name)))

    def updated(self, **knobs: Any) -> FakeSnsConfig:
        """Return a copy with the given knobs changed. Raise TypeError on unknown ones."""
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(knobs) - known)
        if unknown:
            raise TypeError(
                f"unknown knob(s) {', '.join(unknown)}. Known knobs: "
                f"{', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **knobs)

    def to_json(self) -> dict[str, Any]:
        """Return the knobs as JSON-ready values, with number sets as sorted lists."""
        values = dataclasses.asdict(self)
        for name in NUMBER_SET_KNOBS:
            values[name] = sorted(values[name])
        return values


@dataclasses.dataclass(frozen=True)
class _PublishRequest:
    phone_number: str
    message: str
    attributes: dict[str, str]


def _parse_publish(params: dict[str, str]) -> _PublishRequest:
    """Validate Publish parameters, raising an InvalidParameter SnsError on bad ones."""
    for target in ("TopicArn", "TargetArn"):
        if target in params:
            raise invalid_parameter(
                target, "this fake supports only Publish with PhoneNumber"
            )

    phone_number = params.get("PhoneNumber")
    if phone_number is None:
        raise invalid_parameter("PhoneNumber", "missing")
    _check_e164_parameter("PhoneNumber", phone_number)

    message = params.get("Message")
    if message is None:
        raise invalid_parameter("Message", "missing")
    if not message:
        raise invalid_parameter("Message", "empty message")
    if len(message) > MAX_SMS_CHARACTERS:
        raise invalid_parameter(
            "Message",
            f"an SMS has at most {MAX_SMS_CHARACTERS} characters, got {len(message)}",
        )

    return _PublishRequest(phone_number, message, _parse_message_attributes(params))


def _check_e164_parameter(name: str, value: str) -> None:
    if not E164_PATTERN.fullmatch(value):
        raise invalid_parameter(
            name, f"{value!r} is not an E.164 number such as +16175551234"
        )


def _parse_message_attributes(params: dict[str, str]) -> dict[str, str]:
    """Collect ``MessageAttributes.entry.N.*`` parameters as name -> value.

    A Binary attribute's value is kept as the base64 text that the request carried.
    """
    entries: dict[str, dict[str, str]] = {}
    prefix = "MessageAttributes.entry."
    for key, value in params.items():
        if key.startswith(prefix):
            index, _, field = key[len(prefix) :].partition(".")
            entries.setdefault(index, {})[field] = value

    attributes: dict[str, str] = {}
    for index in sorted(entries, key=lambda text: int(text) if text.isdigit() else 0):
        entry = entries[index]
        name = entry.get("Name")
        if not name:
            raise invalid_parameter("MessageAttributes", f"entry {index} has no Name")
        if not entry.get("Value.DataType"):
            raise invalid_parameter(
                "MessageAttributes", f"attribute {name!r} has no DataType"
            )
        attribute_value = entry.get("Value.StringValue")
        if attribute_value is None:
            attribute_value = entry.get("Value.BinaryValue")
        if attribute_value is None:
            raise invalid_parameter(
                "MessageAttributes",
                f"attribute {name!r} has neither StringValue nor BinaryValue",
            )
        attributes[name] = attribute_value
    return attributes


def _encode_next_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode("ascii")


def _decode_next_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error):
        text = ""
    label, _, offset = text.partition(":")
    if label != "offset" or not offset.isascii() or not offset.isdigit():
        raise invalid_parameter(
            "nextToken", f"{token!r} is not a token from this server"
        )
    return int(offset)


class FakeSns:
    """Fake Amazon SNS server on a loopback address, usable as a context manager.

    Every method is thread-safe. ``clear()`` resets the messages, the per-number
    history that ``fail_second_numbers`` uses, and the counters. Sequence numbers
    keep increasing across ``clear()``, so they are never reused.

    Publish does not consult ``opted_out_numbers``: a Publish to an opted-out
    number is accepted and recorded, so a test can see that its caller skipped the
    opt-out check.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = 0.0,
        throttle_ratio: float = 0.0,
        server_error_ratio: float = 0.0,
        reject_numbers: Iterable[str] = (),
        fail_second_numbers: Iterable[str] = (),
        opted_out_numbers: Iterable[str] = (),
        opt_out_page_size: int = DEFAULT_OPT_OUT_PAGE_SIZE,
        random_seed: int | None = None,
    ) -> None:
        self._host = normalize_loopback_host(host)
        self._requested_port = port
        self._config = FakeSnsConfig(
            latency_ms=latency_ms,
            throttle_ratio=throttle_ratio,
            server_error_ratio=server_error_ratio,
            reject_numbers=reject_numbers,  # type: ignore[arg-type]
            fail_second_numbers=fail_second_numbers,  # type: ignore[arg-type]
            opted_out_numbers=opted_out_numbers,  # type: ignore[arg-type]
            opt_out_page_size=opt_out_page_size,
            random_seed=random_seed,
        )
        self._random = random.Random(random_seed)

        # One lock guards all state below. The condition wakes Publish calls that
        # wait out their latency when the knobs change or the server stops.
        self._lock = threading.Lock()
        self._state_changed = threading.Condition(self._lock)
        self._messages: list[PublishedMessage] = []
        self._accepted_per_number: Counter[str] = Counter()
        self._last_sequence = 0
        self._publish_calls = 0
        self._throttled_calls = 0
        self._server_error_calls = 0
        self._rejected_calls = 0
        self._in_flight_publishes = 0
        self._max_in_flight_publishes = 0

        self._server: _FakeSnsHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # Lifecycle

    def start(self) -> Self:
        """Bind the port, serve in a background thread and return self.

        Raises RuntimeError if already started or stopped, and OSError if the port
        cannot be bound.
        """
        server_class = _FakeSnsHttpServer
        if ipaddress.ip_address(self._host).version == 6:
            server_class = _FakeSnsHttpServerIPv6

        with self._lock:
            if self._server is not None or self._stopped:
                raise RuntimeError(
                    "FakeSns can be started only once. Create a new instance."
                )
            server = server_class((self._host, self._requested_port), self)
            self._server = server

        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": STOP_POLL_SECONDS},
            name=f"fake-sns-{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("Fake SNS listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close open connections. Calling it again does nothing."""
        with self._lock:
            server = self._server
            if server is None or self._stopped:
                return
            self._stopped = True
            self._state_changed.notify_all()

        server.shutdown()
        server.server_close()
        server.close_open_connections()
        if self._thread is not None:
            self._thread.join()
        logger.info("Fake SNS on %s stopped", self.url)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """TCP port the server is bound to. Raises RuntimeError before start()."""
        if self._server is None:
            raise RuntimeError("FakeSns is not started. Call start() first.")
        return self._server.server_port

    @property
    def url(self) -> str:
        """Base URL for ``endpoint_url``, such as ``http://127.0.0.1:PORT``."""
        host = self._host
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # Knobs

    @property
    def config(self) -> FakeSnsConfig:
        """Current knobs."""
        with self._lock:
            return self._config

    def configure(self, **knobs: Any) -> FakeSnsConfig:
        """Change the given knobs and return the new configuration.

        Raises TypeError on an unknown knob or a value of the wrong type, and
        ValueError on a value out of range. A failed call changes nothing. A new
        ``latency_ms`` also applies to Publish calls that are still waiting. Passing
        ``random_seed`` restarts the random draws from that seed.
        """
        with self._lock:
            new_config = self._config.updated(**knobs)
            self._config = new_config
            if "random_seed" in knobs:
                self._random = random.Random(new_config.random_seed)
            self._state_changed.notify_all()
        return new_config

    # Recorded state

    def messages(self) -> list[PublishedMessage]:
        """Return copies of the accepted messages in the order they were accepted."""
        with self._lock:
            return [
                PublishedMessage(
                    **{**message, "attributes": dict(message["attributes"])}
                )
                for message in self._messages
            ]

    def clear(self) -> int:
        """Forget the messages, per-number history and counters.

        Returns the number of messages dropped.
        """
        with self._lock:
            dropped = len(self._messages)
            self._messages.clear()
            self._accepted_per_number.clear()
            self._publish_calls = 0
            self._throttled_calls = 0
            self._server_error_calls = 0
            self._rejected_calls = 0
            self._max_in_flight_publishes = self._in_flight_publishes
        return dropped

    def stats(self) -> dict[str, int]:
        """Return all counters at one instant."""
        with self._lock:
            return {
                "publish_calls": self._publish_calls,
                "accepted_calls": len(self._messages),
                "throttled_calls": self._throttled_calls,
                "server_error_calls": self._server_error_calls,
                "rejected_calls": self._rejected_calls,
                "in_flight_publishes": self._in_flight_publishes,
                "max_in_flight_publishes": self._max_in_flight_publishes,
            }

    @property
    def publish_calls(self) -> int:
        """Publish requests received, whatever their outcome."""
        with self._lock:
            return self._publish_calls

    @property
    def throttled_calls(self) -> int:
        """Publish requests that got a Throttling error."""
        with self._lock:
            return self._throttled_calls

    @property
    def server_error_calls(self) -> int:
        """Publish requests that got an HTTP 500 InternalError."""
        with self._lock:
            return self._server_error_calls

    @property
    def rejected_calls(self) -> int:
        """Publish requests that got InvalidParameter, including malformed ones."""
        with self._lock:
            return self._rejected_calls

    @property
    def max_in_flight_publishes(self) -> int:
        """Highest number of Publish requests served at the same time since clear()."""
        with self._lock:
            return self._max_in_flight_publishes

    # SNS actions, called by the request handler

    def _publish(self, params: dict[str, str]) -> str:
        """Apply the knobs to one Publish and return the message id, or raise SnsError."""
        started = time.monotonic()
        with self._lock:
            self._publish_calls += 1
            self._in_flight_publishes += 1
            self._max_in_flight_publishes = max(
                self._max_in_flight_publishes, self._in_flight_publishes
            )
        try:
            self._wait_for_latency(started)
            return self._decide_publish(params)
        finally:
            with self._lock:
                self._in_flight_publishes -= 1

    def _wait_for_latency(self, started: float) -> None:
        with self._state_changed:
            while not self._stopped:
                deadline = started + self._config.latency_ms / 1000.0
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._state_changed.wait(remaining)

    def _decide_publish(self, params: dict[str, str]) -> str:
        with self._lock:
            config = self._config

            # Draw once per call, whatever the ratios, so that the n-th call's
            # outcome depends only on the seed and the ratios.
            draw = self._random.random()
            if draw < config.throttle_ratio:
                self._throttled_calls += 1
                raise throttling_error()
            if draw < config.throttle_ratio + config.server_error_ratio:
                self._server_error_calls += 1
                raise internal_error()

            try:
                request = _parse_publish(params)
                self._check_rejection(config, request.phone_number)
            except SnsError:
                self._rejected_calls += 1
                raise

            self._last_sequence += 1
            message_id = str(uuid.uuid4())
            self._messages.append(
                PublishedMessage(
                    phone_number=request.phone_number,
                    message=request.message,
                    message_id=message_id,
                    attributes=request.attributes,
                    sequence=self._last_sequence,
                )
            )
            self._accepted_per_number[request.phone_number] += 1
            return message_id

    def _check_rejection(self, config: FakeSnsConfig, phone_number: str) -> None:
        if phone_number in config.reject_numbers:
            raise invalid_parameter(
                "PhoneNumber", f"{phone_number} is in the fake's reject_numbers"
            )
        if (
            phone_number in config.fail_second_numbers
            and self._accepted_per_number[phone_number] > 0
        ):
            raise invalid_parameter(
                "PhoneNumber",
                f"{phone_number} already received a message and is in the fake's "
                "fail_second_numbers",
            )

    def _check_if_opted_out(self, params: dict[str, str]) -> bool:
        phone_number = params.get("phoneNumber")
        if phone_number is None:
            raise invalid_parameter("phoneNumber", "missing")
        _check_e164_parameter("phoneNumber", phone_number)
        return phone_number in self.config.opted_out_numbers

    def _list_opted_out(self, params: dict[str, str]) -> tuple[list[str], str | None]:
        """Return one page of opted-out numbers, in sorted order, and the next token."""
        config = self.config
        token = params.get("nextToken")
        offset = _decode_next_token(token) if token else 0

        numbers = sorted(config.opted_out_numbers)
        end = offset + config.opt_out_page_size
        next_token = _encode_next_token(end) if end < len(numbers) else None
        return numbers[offset:end], next_token


def normalize_loopback_host(host: str) -> str:
    """Return ``host`` as loopback IP address text, or raise ValueError if it is not.

    ``localhost`` becomes ``127.0.0.1``. Host names are not resolved.
    """
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"invalid host {host!r}: use a loopback IP address such as 127.0.0.1 or ::1"
        ) from None
    if not address.is_loopback:
        raise ValueError(
            f"host {host} is not a loopback address. The fake listens only on "
            "loopback, such as 127.0.0.1 or ::1"
        )
    return str(address)


# XML rendering


def _render_success(action: str, result: ET.Element | None, request_id: str) -> bytes:
    root = ET.Element(f"{action}Response", xmlns=XML_NAMESPACE)
    if result is not None:
        root.append(result)
    metadata = ET.SubElement(root, "ResponseMetadata")
    ET.SubElement(metadata, "RequestId").text = request_id
    return ET.tostring(root, encoding="utf-8")


def _render_error(error: SnsError, request_id: str) -> bytes:
    root = ET.Element("ErrorResponse", xmlns=XML_NAMESPACE)
    details = ET.SubElement(root, "Error")
    ET.SubElement(details, "Type").text = error.fault_type
    ET.SubElement(details, "Code").text = error.code
    ET.SubElement(details, "Message").text = error.message
    ET.SubElement(root, "RequestId").text = request_id
    return ET.tostring(root, encoding="utf-8")


def _result_element(action: str, **members: str) -> ET.Element:
    result = ET.Element(f"{action}Result")
    for name, text in members.items():
        ET.SubElement(result, name).text = text
    return result


def _run_action(
    fake: FakeSns, action: str | None, params: dict[str, str]
) -> ET.Element:
    """Run one SNS action and return its ``<Action>Result`` element."""
    if action == "Publish":
        return _result_element(action, MessageId=fake._publish(params))

    if action == "CheckIfPhoneNumberIsOptedOut":
        opted_out = fake._check_if_opted_out(params)
        return _result_element(action, isOptedOut="true" if opted_out else "false")

    if action == "ListPhoneNumbersOptedOut":
        numbers, next_token = fake._list_opted_out(params)
        result = ET.Element(f"{action}Result")
        number_list = ET.SubElement(result, "phoneNumbers")
        for number in numbers:
            ET.SubElement(number_list, "member").text = number
        if next_token is not None:
            ET.SubElement(result, "nextToken").text = next_token
        return result

    if action is None:
        raise SnsError(400, "InvalidAction", "The request has no Action parameter")
    raise SnsError(
        400,
        "InvalidAction",
        f"The action {action} is not valid for this fake SNS server, which "
        "implements Publish, CheckIfPhoneNumberIsOptedOut and ListPhoneNumbersOptedOut",
    )


# HTTP server


class _FakeSnsHttpServer(ThreadingHTTPServer):
    """Threaded HTTP server that tracks open connections so stop() can close them."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], fake: FakeSns) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can query DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """Shut down kept-alive client connections so their threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            # Clients that disconnect, and stop() closing connections, end up here.
            logger.debug("Connection from %s ended: %s", client_address, error)
        else:
            logger.exception("Unhandled error serving %s", client_address)


class _FakeSnsHttpServerIPv6(_FakeSnsHttpServer):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, so every response sets Content-Length.
    protocol_version = "HTTP/1.1"
    # Without this, Nagle's algorithm and delayed ACKs can add about 40 ms per
    # response on a kept-alive connection.
    disable_nagle_algorithm = True
    server: _FakeSnsHttpServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _dispatch(self) -> None:
        # One handler instance serves every request on a kept-alive connection.
        self._body_read = False
        path = urlsplit(self.path).path
        if path.startswith(CONTROL_PATH_PREFIX):
            self._handle_control(path)
        elif self.command == "POST":
            self._handle_sns()
        else:
            self._send_json(
                405,
                {
                    "error": f"{self.command} is not allowed on {path}. SNS requests are POST."
                },
                extra_headers={"Allow": "POST"},
            )

    # SNS query protocol

    def _handle_sns(self) -> None:
        request_id = str(uuid.uuid4())
        try:
            body = self._read_body()
            params = self._parse_form(body)
            result = _run_action(self.server.fake, params.get("Action"), params)
        except SnsError as error:
            payload = _render_error(error, request_id)
            self._send(
                error.status, "text/xml", payload, {"x-amzn-RequestId": request_id}
            )
            return
        except Exception:
            logger.exception("Fake SNS failed on request %s", request_id)
            payload = _render_error(
                SnsError(
                    500, "InternalError", "Unexpected error in the fake", "Receiver"
                ),
                request_id,
            )
            self._send(500, "text/xml", payload, {"x-amzn-RequestId": request_id})
            return

        action = str(params["Action"])
        payload = _render_success(action, result, request_id)
        self._send(200, "text/xml", payload, {"x-amzn-RequestId": request_id})

    def _read_body(self) -> bytes:
        """Read the request body, or raise SnsError if it cannot be read safely."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise SnsError(411, "MissingParameter", "Content-Length is required")
        length_text = self.headers.get("Content-Length", "0")
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise SnsError(
                400, "InvalidParameter", f"Invalid Content-Length {length_text!r}"
            )
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            raise SnsError(
                413,
                "RequestEntityTooLarge",
                f"Request body of {length} bytes exceeds {MAX_REQUEST_BYTES} bytes",
            )
        self._body_read = True
        return self.rfile.read(length)

    @staticmethod
    def _parse_form(body: bytes) -> dict[str, str]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SnsError(
                400, "InvalidParameter", "The request body is not UTF-8 form data"
            ) from None
        return dict(parse_qsl(text, keep_blank_values=True))

    # Control endpoints

    def _handle_control(self, path: str) -> None:
        fake = self.server.fake
        routes: dict[str, dict[str, Any]] = {
            "/_fake/messages": {
                "GET": lambda: {"messages": fake.messages()},
                "DELETE": lambda: {"cleared": fake.clear()},
            },
            "/_fake/stats": {"GET": fake.stats},
            "/_fake/config": {
                "GET": lambda: fake.config.to_json(),
                "POST": self._post_config,
            },
        }
        methods = routes.get(path.rstrip("/"))
        if methods is None:
            self._send_json(404, {"error": f"no control endpoint at {path}"})
            return
        handler = methods.get(self.command)
        if handler is None:
            allowed = ", ".join(methods)
            self._send_json(
                405,
                {"error": f"{self.command} is not allowed on {path}. Use {allowed}."},
                extra_headers={"Allow": allowed},
            )
            return

        try:
            payload = handler()
        except (SnsError, TypeError, ValueError) as error:
            message = error.message if isinstance(error, SnsError) else str(error)
            logger.warning("Rejected %s %s: %s", self.command, path, message)
            self._send_json(400, {"error": message})
            return
        self._send_json(200, payload)

    def _post_config(self) -> dict[str, Any]:
        body = self._read_body()
        try:
            knobs = json.loads(body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"request body is not valid JSON: {error}") from None
        if not isinstance(knobs, dict):
            raise TypeError(
                'request body must be a JSON object such as {"latency_ms": 50}'
            )
        return self.server.fake.configure(**knobs).to_json()

    # Responses

    def _send_json(
        self, status: int, payload: Any, extra_headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send(status, "application/json", body, extra_headers or {})

    def _send(
        self, status: int, content_type: str, body: bytes, extra_headers: dict[str, str]
    ) -> None:
        if not self._body_read and self._has_body():
            # The unread bytes would otherwise be parsed as the next request.
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _has_body(self) -> bool:
        if "Transfer-Encoding" in self.headers:
            return True
        return self.headers.get("Content-Length", "0").strip() not in ("", "0")


# Command line


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devserver.fake_sns",
        description=(
            "Run a fake Amazon SNS server on loopback for tests and benchmarks. "
            "It prints its URL on one line when ready and runs until interrupted."
        ),
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to listen on (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port, or 0 for a free one (default: 0)"
    )
    parser.add_argument(
        "--latency-ms",
        metavar="MS",
        type=float,
        default=0.0,
        help="delay before each Publish response, in milliseconds (default: 0)",
    )
    parser.add_argument(
        "--throttle-ratio",
        metavar="RATIO",
        type=float,
        default=0.0,
        help="share of Publish calls that get a retryable Throttling error, "
        "0 to 1 (default: 0)",
    )
    parser.add_argument(
        "--server-error-ratio",
        metavar="RATIO",
        type=float,
        default=0.0,
        help="share of Publish calls that get a retryable HTTP 500 "
        "InternalError, 0 to 1 (default: 0)",
    )
    for option, knob, help_text in (
        ("--reject", "reject_numbers", "E.164 number whose every Publish is rejected"),
        (
            "--fail-second",
            "fail_second_numbers",
            "E.164 number whose Publish is rejected after the first success",
        ),
        ("--opted-out", "opted_out_numbers", "E.164 number reported as opted out"),
    ):
        parser.add_argument(
            option,
            dest=knob,
            metavar="NUMBER",
            nargs="+",
            action="extend",
            default=[],
            help=f"{help_text} (repeatable)",
        )
    parser.add_argument(
        "--opt-out-page-size",
        metavar="N",
        type=int,
        default=DEFAULT_OPT_OUT_PAGE_SIZE,
        help="maximum numbers per ListPhoneNumbersOptedOut page "
        f"(default: {DEFAULT_OPT_OUT_PAGE_SIZE})",
    )
    parser.add_argument(
        "--random-seed",
        metavar="N",
        type=int,
        default=None,
        help="seed for throttling and server error draws, for repeatable runs",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every request to stderr"
    )
    return parser


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake from the command line until SIGINT or SIGTERM, returning the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    try:
        fake = FakeSns(
            host=args.host,
            port=args.port,
            latency_ms=args.latency_ms,
            throttle_ratio=args.throttle_ratio,
            server_error_ratio=args.server_error_ratio,
            reject_numbers=args.reject_numbers,
            fail_second_numbers=args.fail_second_numbers,
            opted_out_numbers=args.opted_out_numbers,
            opt_out_page_size=args.opt_out_page_size,
            random_seed=args.random_seed,
        )
    except (TypeError, ValueError) as error:
        parser.error(str(error))

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        fake.start()
    except OSError as error:
        print(
            f"Failed to listen on {args.host} port {args.port}: {error}",
            file=sys.stderr,
        )
        return 1

    try:
        print(fake.url, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
