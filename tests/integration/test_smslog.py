"""The SMS log's record layout, its reads, and its handling of write failures."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import TABLE_NAME

from core.repository import Repository
from core.sender import (
    INSTALL_MESSAGE,
    PLAY_STORE_MESSAGE,
    DeliveryResult,
    PublishAttempt,
)
from core.smslog import SmsLog, SmsLogRecord, records_for_delivery

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(milliseconds=40)
T2 = T0 + timedelta(seconds=1)


def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def sms_log(repository: Repository) -> SmsLog:
    return SmsLog(TABLE_NAME, repository.client, retention_days=90, sleep=no_sleep)


def both_sent() -> DeliveryResult:
    return DeliveryResult(
        "+16175551234",
        "msg-1",
        "msg-2",
        attempts=(
            PublishAttempt(PLAY_STORE_MESSAGE, T0, message_id="msg-1"),
            PublishAttempt(INSTALL_MESSAGE, T1, message_id="msg-2"),
        ),
    )


def second_rejected() -> DeliveryResult:
    return DeliveryResult(
        "+16175550142",
        first_message_id="msg-3",
        error_code="InvalidParameter",
        failed_message=INSTALL_MESSAGE,
        attempts=(
            PublishAttempt(PLAY_STORE_MESSAGE, T0, message_id="msg-3"),
            PublishAttempt(INSTALL_MESSAGE, T1, error_code="InvalidParameter"),
        ),
    )


def raw_items(repository: Repository, partition_key: str) -> list[dict[str, Any]]:
    response = repository.client.query(
        TableName=TABLE_NAME,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": partition_key}},
    )
    return response["Items"]


def test_records_for_delivery_keep_attempt_order() -> None:
    records = records_for_delivery("demo", "req-1", second_rejected())

    assert records == [
        SmsLogRecord(
            "demo", "req-1", "+16175550142", PLAY_STORE_MESSAGE, T0, "msg-3", None
        ),
        SmsLogRecord(
            "demo",
            "req-1",
            "+16175550142",
            INSTALL_MESSAGE,
            T1,
            None,
            "InvalidParameter",
        ),
    ]


def test_record_items_exact(sms_log: SmsLog, repository: Repository) -> None:
    records = records_for_delivery("demo", "req-1", both_sent())

    assert sms_log.write(records) == 0

    expires_at = str(int((T0 + timedelta(days=90)).timestamp()))
    by_request = raw_items(repository, "SMSLOG#demo#REQUEST#req-1")
    assert by_request[0] == {
        "pk": {"S": "SMSLOG#demo#REQUEST#req-1"},
        "sk": {"S": "16175551234#1"},
        "type": {"S": "sms_log"},
        "domain": {"S": "demo"},
        "request_id": {"S": "req-1"},
        "phone_number": {"S": "+16175551234"},
        "message": {"S": "play_store_link"},
        "message_id": {"S": "msg-1"},
        "attempted_at": {"S": "2026-03-01T12:00:00.123456+00:00"},
        "expires_at": {"N": expires_at},
    }
    assert [item["sk"]["S"] for item in by_request] == [
        "16175551234#1",
        "16175551234#2",
    ]
    by_phone = raw_items(repository, "SMSLOG#demo#PHONE#16175551234")
    assert [item["sk"]["S"] for item in by_phone] == [
        "2026-03-01T12:00:00.123456+00:00#req-1#1",
        "2026-03-01T12:00:00.163456+00:00#req-1#2",
    ]
    assert by_phone[1]["message"] == {"S": "install_message"}
    assert by_phone[1]["message_id"] == {"S": "msg-2"}


def test_read_request_returns_records(sms_log: SmsLog) -> None:
    records = records_for_delivery("demo", "req-1", both_sent())
    records += records_for_delivery("demo", "req-1", second_rejected())
    sms_log.write(records)

    found = sms_log.read_request("demo", "req-1")

    # Ordered by number, then message.
    assert found == [records[2], records[3], records[0], records[1]]
    assert found[1].error_code == "InvalidParameter"
    assert found[1].message_id is None


def test_read_request_other_domain_empty(sms_log: SmsLog) -> None:
    sms_log.write(records_for_delivery("demo", "req-1", both_sent()))

    assert sms_log.read_request("other", "req-1") == []


def test_read_phone_number_newest_first(sms_log: SmsLog) -> None:
    earlier = records_for_delivery("demo", "req-1", both_sent())
    later = [
        SmsLogRecord(
            "demo", "req-2", "+16175551234", PLAY_STORE_MESSAGE, T2, "msg-9", None
        )
    ]
    sms_log.write(earlier + later)

    found = sms_log.read_phone_number("demo", "16175551234")
    assert found == [later[0], earlier[1], earlier[0]]

    assert sms_log.read_phone_number("demo", "+16175551234", limit=2) == [
        later[0],
        earlier[1],
    ]


def test_write_in_batches_of_25(sms_log: SmsLog) -> None:
    calls: list[int] = []
    client = sms_log.client
    original = client.batch_write_item

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["RequestItems"][TABLE_NAME]))
        return original(**kwargs)

    sms_log.client = type(
        "Counting", (), {"batch_write_item": staticmethod(counting)}
    )()
    records = [
        SmsLogRecord(
            "demo", "req-1", f"+1617555{n:04d}", PLAY_STORE_MESSAGE, T0, f"m{n}"
        )
        for n in range(30)
    ]

    assert sms_log.write(records) == 0
    # 30 records are 60 items: two full batches and one of ten.
    assert sorted(calls) == [10, 25, 25]
    sms_log.client = client
    assert len(sms_log.read_request("demo", "req-1")) == 30


class UnprocessedOnce:
    """Returns the second item of the first call as unprocessed, then writes all."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[list[str]] = []

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        entries = RequestItems[TABLE_NAME]
        self.calls.append([entry["PutRequest"]["Item"]["sk"]["S"] for entry in entries])
        if len(self.calls) == 1:
            self.client.batch_write_item(RequestItems={TABLE_NAME: entries[:1]})
            return {"UnprocessedItems": {TABLE_NAME: entries[1:2]}}
        return self.client.batch_write_item(RequestItems=RequestItems)


def test_unprocessed_items_retried(sms_log: SmsLog) -> None:
    fake = UnprocessedOnce(sms_log.client)
    real_client = sms_log.client
    sms_log.client = fake
    record = records_for_delivery("demo", "req-1", both_sent())[0]

    assert sms_log.write([record]) == 0

    assert len(fake.calls) == 2
    assert fake.calls[1] == [fake.calls[0][1]]
    sms_log.client = real_client
    assert sms_log.read_request("demo", "req-1") == [record]
    assert sms_log.read_phone_number("demo", "+16175551234") == [record]


class AlwaysUnprocessed:
    def __init__(self) -> None:
        self.calls = 0

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {"UnprocessedItems": RequestItems}


def test_unprocessed_forever_counted(sms_log: SmsLog) -> None:
    fake = AlwaysUnprocessed()
    sms_log.client = fake

    failures = sms_log.write(records_for_delivery("demo", "req-1", both_sent()))

    assert failures == 2
    assert fake.calls == 6


class Failing:
    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        raise ClientError(
            {"Error": {"Code": "InternalServerError", "Message": "injected"}},
            "BatchWriteItem",
        )


def test_client_error_counted_not_raised(sms_log: SmsLog) -> None:
    sms_log.client = Failing()
    records = records_for_delivery("demo", "req-1", both_sent())
    records += records_for_delivery("demo", "req-1", second_rejected())

    assert sms_log.write(records) == 4


def test_write_nothing(sms_log: SmsLog) -> None:
    assert sms_log.write([]) == 0
