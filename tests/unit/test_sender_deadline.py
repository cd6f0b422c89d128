"""The sender's deadline check runs before the rate limiter's wait."""

from typing import Any

from core.sender import DEADLINE_NOT_STARTED, SmsSender


class RecordingSnsClient:
    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def publish(self, **request: Any) -> dict[str, str]:
        self.published.append((request["PhoneNumber"], request["Message"]))
        return {"MessageId": f"message-{len(self.published)}"}


def test_past_deadline_skips_pacing() -> None:
    client = RecordingSnsClient()
    waits: list[str] = []

    result = SmsSender(client).deliver(
        "+16175551234",
        "first",
        "second",
        {},
        pace=lambda: waits.append("wait"),
        may_start=lambda: False,
    )

    assert result.error_code == DEADLINE_NOT_STARTED
    assert waits == []
    assert client.published == []


def test_deadline_reached_during_wait_sends_nothing() -> None:
    client = RecordingSnsClient()
    answers = iter([True, False])

    result = SmsSender(client).deliver(
        "+16175551234",
        "first",
        "second",
        {},
        pace=lambda: None,
        may_start=lambda: next(answers),
    )

    assert result.error_code == DEADLINE_NOT_STARTED
    assert client.published == []


def test_started_number_gets_both_messages() -> None:
    client = RecordingSnsClient()
    waits: list[str] = []

    result = SmsSender(client).deliver(
        "+16175551234",
        "first",
        "second",
        {},
        pace=lambda: waits.append("wait"),
        may_start=lambda: True,
    )

    assert result.succeeded
    assert waits == ["wait", "wait"]
    assert client.published == [("+16175551234", "first"), ("+16175551234", "second")]
