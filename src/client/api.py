"""Calls to the reinstall endpoint over HTTP, with retries, using urllib."""

import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from client.state import BUCKETS, Buckets

API_PATH = "/a/{domain}/api/v0_5/sms_user_registration_reinstall/"
USER_AGENT = "reinstall-send/0.1"

# Statuses worth retrying: throttling and the service being briefly unavailable.
# 409 is what the server returns, with Retry-After, while an earlier request with
# the same Idempotency-Key is still running.
RETRY_STATUSES = frozenset({429, 503})
IN_PROGRESS_STATUS = 409
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
# A longer Retry-After is shortened to this, so that a run never stalls silently.
RETRY_AFTER_MAX_SECONDS = 300.0

RetryNotice = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class ChunkResponse:
    """The buckets of a 200 response, and where to follow a queued request.

    The server sets ``X-Request-Id`` and ``Location`` only when it queued the
    numbers, so both are None for numbers sent within the request.
    """

    buckets: Buckets
    request_id: str | None = None
    status_url: str | None = None


class ApiError(Exception):
    """The server rejected a request, or failed in a way not worth retrying.

    ``may_have_sent`` is False only when the request certainly sent no SMS: a
    4xx response other than 409, or a connection that was never made. A 409
    means that an earlier attempt with the same Idempotency-Key is still running.
    """

    def __init__(self, status: int | None, message: str, may_have_sent: bool) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.may_have_sent = may_have_sent


def describe_error_body(body: bytes) -> str:
    """Return the server's error message from a JSON error body, or the raw text."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body.decode("utf-8", "replace").strip()[:500] or "(empty body)"
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return parsed["error"]
    if isinstance(parsed, dict) and len(parsed) == 1:
        # Validation errors come keyed by field under the resource name.
        (fields,) = parsed.values()
        if isinstance(fields, dict):
            return "; ".join(f"{name}: {text}" for name, text in fields.items())
    return json.dumps(parsed)


def retry_after_seconds(headers: Message, now: datetime | None = None) -> float | None:
    """Return the wait in seconds that a Retry-After header requests, or None.

    The header is either a number of seconds or an HTTP date.
    """
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def backoff_seconds(attempt: int) -> float:
    """Return the wait before retry number ``attempt`` (1 for the first retry).

    The wait doubles from BACKOFF_BASE_SECONDS up to BACKOFF_MAX_SECONDS, with
    random jitter of up to half of it so that many clients do not retry together.
    """
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class ReinstallApi:
    """Client of ``POST /a/{domain}/api/v0_5/sms_user_registration_reinstall/``."""

    def __init__(
        self,
        base_url: str,
        domain: str,
        api_key: str,
        *,
        timeout_seconds: float = 60.0,
        max_attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: RetryNotice | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + API_PATH.format(domain=quote(domain, safe=""))
        self.api_key = api_key
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.on_retry = on_retry

    def reinstall(
        self,
        app_id: str,
        numbers: list[str],
        message: str | None,
        idempotency_key: str,
    ) -> ChunkResponse:
        """Send one request and return its buckets.

        Retries 429, 503, 409 with Retry-After, and network errors, up to
        ``max_attempts`` attempts in all. Raises ApiError for any other error
        status, an invalid response, or when the attempts run out.
        """
        body: dict[str, Any] = {
            "app_id": app_id,
            "users": [{"phone_number": number} for number in numbers],
        }
        if message is not None:
            body["reinstall_message"] = message
        data = json.dumps(body).encode("utf-8")
        headers = {
            "Authorization": f"ApiKey {self.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": idempotency_key,
            "User-Agent": USER_AGENT,
        }

        for attempt in range(1, self.max_attempts + 1):
            request = urllib.request.Request(self.url, data, headers, method="POST")
            try:
                with urllib.request.urlopen(
                    request, timeout=self.timeout_seconds
                ) as response:
                    return ChunkResponse(
                        parse_buckets(response.read()),
                        request_id=response.headers.get("X-Request-Id"),
                        status_url=response.headers.get("Location"),
                    )
            except urllib.error.HTTPError as error:
                error_body = error.read()
                wait = self._retry_wait(error, attempt)
                if wait is None:
                    raise ApiError(
                        error.code,
                        f"HTTP {error.code}: {describe_error_body(error_body)}",
                        may_have_sent=error.code >= 500 or error.code == 409,
                    ) from None
                self._wait(f"HTTP {error.code}", wait)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                reason = getattr(error, "reason", None) or error
                if attempt == self.max_attempts:
                    raise ApiError(
                        None,
                        f"Cannot reach {self.url}: {reason}",
                        may_have_sent=not _never_connected(reason),
                    ) from None
                self._wait(f"network error ({reason})", backoff_seconds(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _retry_wait(self, error: urllib.error.HTTPError, attempt: int) -> float | None:
        """Return how long to wait before retrying ``error``, or None to give up."""
        retry_after = retry_after_seconds(error.headers)
        retryable = error.code in RETRY_STATUSES or (
            error.code == IN_PROGRESS_STATUS and retry_after is not None
        )
        if not retryable or attempt == self.max_attempts:
            return None
        if retry_after is None:
            return backoff_seconds(attempt)
        return min(retry_after, RETRY_AFTER_MAX_SECONDS)

    def _wait(self, reason: str, seconds: float) -> None:
        if self.on_retry is not None:
            self.on_retry(reason, seconds)
        self.sleep(seconds)


def _never_connected(reason: object) -> bool:
    """Return whether a network error happened before the request reached a server."""
    return isinstance(reason, (ConnectionRefusedError, socket.gaierror))


def parse_buckets(body: bytes) -> Buckets:
    """Return the three lists of a 200 response; raise ApiError if the shape differs."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        parsed = None
    if not isinstance(parsed, dict) or not all(
        isinstance(parsed.get(name), list) for name in BUCKETS
    ):
        raise ApiError(
            200,
            f"The server's response is not a reinstall result: {body[:200]!r}",
            may_have_sent=True,
        )
    return {name: [str(number) for number in parsed[name]] for name in BUCKETS}
