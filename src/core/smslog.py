"""The SMS log: one record per SNS Publish attempt, kept in the service's table.

Each record is stored as two items with the same attributes, so that an operator
can read it by domain and request id, or by domain and phone number, with one
Query each and no index:

=========================  =========================================================
item                       keys
=========================  =========================================================
by request                 pk ``SMSLOG#<domain>#REQUEST#<request_id>``,
                           sk ``<E.164 digits>#<n>``
by phone number            pk ``SMSLOG#<domain>#PHONE#<E.164 digits>``,
                           sk ``<attempted_at>#<request_id>#<n>``
=========================  =========================================================

``<n>`` is the message's place in the pair: 1 for the Play Store message, 2 for
the install message. Attributes of both items:

- ``type``: ``"sms_log"``
- ``domain``, ``request_id``
- ``phone_number``: E.164 with ``+``
- ``message``: ``"play_store_link"`` or ``"install_message"``
- ``message_id``: the SNS message id, present when SNS accepted the message
- ``error_code``: the SNS error code (or ``DeadlineNotStarted``), present when not
- ``attempted_at``: ISO 8601 UTC time the publish started, with microseconds
- ``expires_at``: epoch seconds, ``attempted_at`` plus ``SMS_LOG_RETENTION_DAYS``;
  DynamoDB's TTL deletes the item some time after it

A number whose first message failed has one record; the install message was not
attempted. Numbers that were never published to (invalid format, registered to
another domain, opted out, outside the domain's countries, over its daily limit,
not started before the deadline) have none.

Items are written with BatchWriteItem after sending. A write that fails never
changes the response; ``write`` returns the number of records it could not store.
"""

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from core.sender import INSTALL_MESSAGE, PLAY_STORE_MESSAGE, DeliveryResult

logger = Logger(child=True)

RECORD_TYPE = "sms_log"
# DynamoDB's limit of items in one BatchWriteItem call.
BATCH_WRITE_MAX_ITEMS = 25
# Attempts for a batch whose items DynamoDB keeps returning as unprocessed.
UNPROCESSED_MAX_ATTEMPTS = 6
UNPROCESSED_BASE_DELAY_SECONDS = 0.05
WRITE_CONCURRENCY = 8
MESSAGE_ORDER = {PLAY_STORE_MESSAGE: 1, INSTALL_MESSAGE: 2}

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True, slots=True)
class SmsLogRecord:
    """One Publish attempt: exactly one of ``message_id`` and ``error_code`` is set."""

    domain: str
    request_id: str
    # E.164 with "+".
    phone_number: str
    # PLAY_STORE_MESSAGE or INSTALL_MESSAGE.
    message: str
    attempted_at: datetime
    message_id: str | None = None
    error_code: str | None = None

    @property
    def digits(self) -> str:
        return self.phone_number.removeprefix("+")

    @property
    def order(self) -> int:
        return MESSAGE_ORDER[self.message]


def request_partition_key(domain: str, request_id: str) -> str:
    return f"SMSLOG#{domain}#REQUEST#{request_id}"


def phone_partition_key(domain: str, phone_number: str) -> str:
    """Return the partition of ``phone_number`` (E.164, with or without ``+``)."""
    return f"SMSLOG#{domain}#PHONE#{phone_number.removeprefix('+')}"


def records_for_delivery(
    domain: str, request_id: str, result: DeliveryResult
) -> list[SmsLogRecord]:
    """Return the records of the publishes that ``result`` made, in the order made."""
    return [
        SmsLogRecord(
            domain=domain,
            request_id=request_id,
            phone_number=result.phone_number,
            message=attempt.message,
            attempted_at=attempt.attempted_at,
            message_id=attempt.message_id,
            error_code=attempt.error_code,
        )
        for attempt in result.attempts
    ]


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _items_of(record: SmsLogRecord, retention_days: int) -> list[dict[str, Any]]:
    expires_at = record.attempted_at + timedelta(days=retention_days)
    attributes = {
        "type": RECORD_TYPE,
        "domain": record.domain,
        "request_id": record.request_id,
        "phone_number": record.phone_number,
        "message": record.message,
        "message_id": record.message_id,
        "error_code": record.error_code,
        "attempted_at": _timestamp(record.attempted_at),
        "expires_at": int(expires_at.timestamp()),
    }
    by_request = {
        "pk": request_partition_key(record.domain, record.request_id),
        "sk": f"{record.digits}#{record.order}",
        **attributes,
    }
    by_phone = {
        "pk": phone_partition_key(record.domain, record.digits),
        "sk": f"{attributes['attempted_at']}#{record.request_id}#{record.order}",
        **attributes,
    }
    return [by_request, by_phone]


def _serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _serializer.serialize(value)
        for name, value in item.items()
        if value is not None
    }


def _record_from_item(item: dict[str, Any]) -> SmsLogRecord:
    values = {name: _deserializer.deserialize(value) for name, value in item.items()}
    return SmsLogRecord(
        domain=values["domain"],
        request_id=values["request_id"],
        phone_number=values["phone_number"],
        message=values["message"],
        attempted_at=datetime.fromisoformat(values["attempted_at"]),
        message_id=values.get("message_id"),
        error_code=values.get("error_code"),
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class SmsLog:
    """Writes and reads SMS log records in the table ``table_name``."""

    def __init__(
        self,
        table_name: str,
        client: Any,
        retention_days: int,
        sleep: Any = time.sleep,
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.retention_days = retention_days
        self.sleep = sleep

    def write(self, records: Sequence[SmsLogRecord]) -> int:
        """Store ``records``; return how many could not be stored completely.

        Items go in BatchWriteItem calls of 25, several at once; unprocessed items
        are retried with exponential backoff. A failed call is logged and counted,
        never raised, because the SMS were sent whatever the log contains.
        """
        entries = [
            (index, item)
            for index, record in enumerate(records)
            for item in _items_of(record, self.retention_days)
        ]
        batches = list(_chunks(entries, BATCH_WRITE_MAX_ITEMS))
        if len(batches) <= 1:
            failed_batches = [self._write_batch(batch) for batch in batches]
        else:
            workers = min(WRITE_CONCURRENCY, len(batches))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                failed_batches = list(pool.map(self._write_batch, batches))

        failed_records = set().union(*failed_batches) if failed_batches else set()
        return len(failed_records)

    def _write_batch(self, batch: list[tuple[int, dict[str, Any]]]) -> set[int]:
        """Write up to 25 items; return the record indexes of items left unwritten."""
        pending = batch
        for attempt in range(UNPROCESSED_MAX_ATTEMPTS):
            request = {
                self.table_name: [
                    {"PutRequest": {"Item": _serialize(item)}} for _, item in pending
                ]
            }
            try:
                response = self.client.batch_write_item(RequestItems=request)
            except (ClientError, BotoCoreError):
                logger.exception(
                    "DynamoDB BatchWriteItem failed for the SMS log",
                    extra={"table": self.table_name, "items": len(pending)},
                )
                return {index for index, _ in pending}

            unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
            if not unprocessed:
                return set()
            keys = {
                (
                    entry["PutRequest"]["Item"]["pk"]["S"],
                    entry["PutRequest"]["Item"]["sk"]["S"],
                )
                for entry in unprocessed
            }
            pending = [
                (index, item)
                for index, item in pending
                if (item["pk"], item["sk"]) in keys
            ]
            logger.warning(
                "DynamoDB returned unprocessed SMS log items; retrying",
                extra={"attempt": attempt + 1, "items": len(pending)},
            )
            self.sleep(UNPROCESSED_BASE_DELAY_SECONDS * 2**attempt)

        logger.error(
            "SMS log items were still unprocessed after retries",
            extra={"table": self.table_name, "items": len(pending)},
        )
        return {index for index, _ in pending}

    def read_request(self, domain: str, request_id: str) -> list[SmsLogRecord]:
        """Return the records of one request, ordered by number, then message.

        Raises botocore's ClientError or BotoCoreError when DynamoDB fails.
        """
        return self._query(
            request_partition_key(domain, request_id), newest_first=False
        )

    def read_phone_number(
        self, domain: str, phone_number: str, limit: int | None = None
    ) -> list[SmsLogRecord]:
        """Return the records of one number (E.164, ``+`` optional), newest first.

        ``limit`` caps the number of records returned. Raises botocore's
        ClientError or BotoCoreError when DynamoDB fails.
        """
        return self._query(
            phone_partition_key(domain, phone_number), newest_first=True, limit=limit
        )

    def _query(
        self, partition_key: str, newest_first: bool, limit: int | None = None
    ) -> list[SmsLogRecord]:
        records: list[SmsLogRecord] = []
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": partition_key}},
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        while limit is None or len(records) < limit:
            if limit is not None:
                arguments["Limit"] = limit - len(records)
            response = self.client.query(**arguments)
            records += [_record_from_item(item) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return records
