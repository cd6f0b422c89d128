"""When requests are queued, how numbers are chunked, and how chunks reach SQS."""

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from core.dispatch import PairJob
from core.queueing import (
    SEND_BATCH_MAX_ATTEMPTS,
    SEND_BATCH_MAX_BYTES,
    Chunk,
    DeliveryQueue,
    QueuedNumber,
    QueueReason,
    build_chunks,
    estimated_send_ms,
    queue_reason,
)
from core.settings import Settings

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/delivery"
ATTRIBUTES = {
    "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
}
SECOND_TEXT = "[commcare app - do not delete] aHR0cHM6Ly9leGFtcGxlLnRlc3Qv"


def settings(**values: Any) -> Settings:
    return Settings(queue_url=QUEUE_URL, **values)


def numbers(count: int, first_text: str = "Install: link") -> list[QueuedNumber]:
    return [
        QueuedNumber(
            f"+1 617 555 {index:04d}",
            PairJob(f"+1617555{index:04d}", first_text, SECOND_TEXT),
        )
        for index in range(count)
    ]


def chunks(count: int, size: int) -> list[Chunk]:
    return build_chunks("req-1", "demo", "app-1", numbers(count), ATTRIBUTES, size)


# The estimate and the decision


def test_estimate_uses_rate_when_rate_limits() -> None:
    # 20 SMS/s: 50 ms a message, more than 50 ms / 16 threads.
    assert estimated_send_ms(10, settings(sms_max_send_rate=20)) == 1000.0


def test_estimate_uses_threads_when_rate_is_off() -> None:
    unlimited = settings(sms_max_send_rate=0, sms_send_concurrency=5)

    assert estimated_send_ms(10, unlimited) == 200.0


def test_estimate_uses_threads_when_they_are_slower() -> None:
    # 1000 SMS/s allows 1 ms a message, but one thread needs 50 ms a publish.
    slow = settings(sms_max_send_rate=1000, sms_send_concurrency=1)

    assert estimated_send_ms(3, slow) == 300.0


def test_small_request_is_sent_directly() -> None:
    reason = queue_reason(
        10,
        settings(),
        domain_delivery="direct",
        prefer_async=False,
        remaining_time_ms=lambda: 24_000,
    )

    assert reason is None


def test_request_over_deadline_is_queued() -> None:
    # 300 numbers at 20 SMS/s take 30 s; 24 s remain, less the 3 s margin.
    reason = queue_reason(
        300,
        settings(),
        domain_delivery="direct",
        prefer_async=False,
        remaining_time_ms=lambda: 24_000,
    )

    assert reason is QueueReason.DEADLINE


def test_request_just_within_deadline_is_sent_directly() -> None:
    # 210 numbers take exactly 21 s, which is 24 s less the 3 s margin.
    reason = queue_reason(
        210,
        settings(),
        domain_delivery="direct",
        prefer_async=False,
        remaining_time_ms=lambda: 24_000,
    )

    assert reason is None


def test_prefer_respond_async_queues() -> None:
    reason = queue_reason(
        1,
        settings(),
        domain_delivery="direct",
        prefer_async=True,
        remaining_time_ms=lambda: 24_000,
    )

    assert reason is QueueReason.PREFER_ASYNC


def test_queued_domain_queues() -> None:
    reason = queue_reason(
        1,
        settings(),
        domain_delivery="queued",
        prefer_async=False,
        remaining_time_ms=None,
    )

    assert reason is QueueReason.DOMAIN_DELIVERY


def test_nothing_queued_without_queue_url() -> None:
    reason = queue_reason(
        5000,
        Settings(queue_url=""),
        domain_delivery="queued",
        prefer_async=True,
        remaining_time_ms=lambda: 1,
    )

    assert reason is None


def test_nothing_queued_without_numbers() -> None:
    reason = queue_reason(
        0,
        settings(),
        domain_delivery="queued",
        prefer_async=True,
        remaining_time_ms=lambda: 1,
    )

    assert reason is None


# Chunks


def test_chunks_split_at_chunk_size() -> None:
    built = chunks(120, 50)

    assert [len(chunk.numbers) for chunk in built] == [50, 50, 20]
    assert [chunk.index for chunk in built] == [0, 1, 2]
    assert {chunk.chunk_count for chunk in built} == {3}


def test_chunks_keep_order_and_positions() -> None:
    built = chunks(7, 3)
    flat = [number for chunk in built for number in chunk.numbers]

    assert [number.position for number in flat] == list(range(7))
    assert [number.phone_number for number in flat] == [
        f"+1617555{index:04d}" for index in range(7)
    ]
    assert flat[2].submitted == "+1 617 555 0002"


def test_chunk_shares_first_texts_between_numbers() -> None:
    mixed = numbers(2, "English: link") + numbers(1, "Français : lien")
    [chunk] = build_chunks("req-1", "demo", "app-1", mixed, ATTRIBUTES, 50)

    assert chunk.first_texts == ["English: link", "Français : lien"]
    assert [number.first_text for number in chunk.numbers] == [0, 0, 1]
    assert [job.first_text for job in chunk.jobs()] == [
        "English: link",
        "English: link",
        "Français : lien",
    ]


def test_chunk_round_trips_through_json() -> None:
    [chunk] = chunks(2, 50)

    assert Chunk.from_json(chunk.to_json()) == chunk


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "{}",
        json.dumps({"request_id": "r", "domain": "d", "app_id": "a"}),
    ],
)
def test_invalid_chunk_body_is_rejected(body: str) -> None:
    with pytest.raises(ValidationError):
        Chunk.from_json(body)


def test_chunk_rejects_number_without_plus() -> None:
    [chunk] = chunks(1, 50)
    data = json.loads(chunk.to_json())
    data["numbers"][0]["phone_number"] = "16175550000"

    with pytest.raises(ValidationError):
        Chunk.from_json(json.dumps(data))


# Sending to SQS


class StubSqs:
    """Records SendMessageBatch calls and fails entries as scripted."""

    def __init__(self, scripted: list[Any] | None = None) -> None:
        self.calls: list[list[dict[str, str]]] = []
        self.scripted = scripted or []

    def send_message_batch(
        self, QueueUrl: str, Entries: list[dict[str, str]]
    ) -> dict[str, Any]:
        assert QueueUrl == QUEUE_URL
        self.calls.append(Entries)
        script = self.scripted.pop(0) if self.scripted else {}
        if isinstance(script, Exception):
            raise script
        failed = [
            {"Id": entry["Id"], "Code": code, "SenderFault": sender_fault}
            for entry in Entries
            for failed_id, (code, sender_fault) in script.items()
            if entry["Id"] == failed_id
        ]
        successful = [
            {"Id": entry["Id"], "MessageId": f"m-{entry['Id']}"}
            for entry in Entries
            if entry["Id"] not in script
        ]
        return {"Successful": successful, "Failed": failed}


def no_sleep(seconds: float) -> None:
    return None


def test_send_batches_ten_entries_a_call() -> None:
    sqs = StubSqs()

    failed = DeliveryQueue(sqs, QUEUE_URL, no_sleep).send(chunks(23, 1))

    assert failed == set()
    assert [len(call) for call in sqs.calls] == [10, 10, 3]
    assert [entry["Id"] for entry in sqs.calls[2]] == ["20", "21", "22"]
    assert Chunk.from_json(sqs.calls[0][0]["MessageBody"]).index == 0


def test_send_splits_batches_by_size() -> None:
    big_text = "x" * 1500
    many = [
        QueuedNumber(str(i), PairJob(f"+1617555{i:04d}", big_text + str(i), "s"))
        for i in range(300)
    ]
    built = build_chunks("req-1", "demo", "app-1", many, ATTRIBUTES, 100)
    sqs = StubSqs()

    DeliveryQueue(sqs, QUEUE_URL, no_sleep).send(built)

    sizes = [
        sum(len(entry["MessageBody"].encode()) for entry in call) for call in sqs.calls
    ]
    # Each chunk carries 100 distinct texts of 1.5 kB, so two never fit in one call.
    assert [len(call) for call in sqs.calls] == [1, 1, 1]
    assert max(sizes) <= SEND_BATCH_MAX_BYTES


def test_send_retries_failed_entries_only() -> None:
    sqs = StubSqs([{"1": ("ServiceUnavailable", False)}, {}])

    failed = DeliveryQueue(sqs, QUEUE_URL, no_sleep).send(chunks(3, 1))

    assert failed == set()
    assert [[entry["Id"] for entry in call] for call in sqs.calls] == [
        ["0", "1", "2"],
        ["1"],
    ]


def test_send_gives_up_after_max_attempts() -> None:
    always = {"2": ("ServiceUnavailable", False)}
    sqs = StubSqs([always] * SEND_BATCH_MAX_ATTEMPTS)

    failed = DeliveryQueue(sqs, QUEUE_URL, no_sleep).send(chunks(3, 1))

    assert failed == {2}
    assert len(sqs.calls) == SEND_BATCH_MAX_ATTEMPTS


def test_send_does_not_retry_sender_fault() -> None:
    sqs = StubSqs([{"0": ("InvalidMessageContents", True)}])

    failed = DeliveryQueue(sqs, QUEUE_URL, no_sleep).send(chunks(2, 1))

    assert failed == {0}
    assert len(sqs.calls) == 1


def test_send_retries_after_call_error() -> None:
    error = ClientError(
        {"Error": {"Code": "InternalError", "Message": "boom"}}, "SendMessageBatch"
    )
    sqs = StubSqs([error, {}])

    failed = DeliveryQueue(sqs, QUEUE_URL, no_sleep).send(chunks(2, 1))

    assert failed == set()
    assert len(sqs.calls) == 2
