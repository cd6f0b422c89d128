"""The delivery ledger of queued requests: what was queued and each number's state.

A queued request keeps one partition in the service's table,
``QUEUED#<domain>#<request_id>``, so a request id looked up under another
domain finds nothing. It holds:

- sk ``REQUEST``: the request record, written before the chunks are queued:
  ``app_id``, ``expected`` (numbers queued), ``chunk_count``, ``reason``,
  ``queued_at``.
- sk ``NUMBER#<E.164 digits>``: one entry per number, written by the queue
  consumer: ``state``, ``submitted`` (the number as the client spelled it),
  ``position`` (its place among the queued numbers), ``claim_token``,
  ``claimed_at``, ``updated_at``, and ``first_message_id``,
  ``second_message_id`` and ``error_code`` once known.

A number's entry is the claim that makes queued sends idempotent. The consumer
claims a number with a conditional write before publishing anything, and
settles it afterwards:

    (none) or retry --claim--> sending --settle--> sent | failed | retry

A number in ``sent`` or ``failed`` is never claimed again, so a redelivered
chunk publishes nothing for it. ``retry`` (a transient failure) may be claimed
again; if its Play Store message was already accepted, only the install
message is sent. A ``sending`` claim older than CLAIM_TIMEOUT_SECONDS belongs to
an invocation that died between claiming and settling. It becomes ``failed``
with DELIVERY_INTERRUPTED and is not sent again, because SNS may have accepted
its messages.

Every item carries ``expires_at`` (epoch seconds), ``SMS_LOG_RETENTION_DAYS``
after it was written, for DynamoDB's TTL.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import StorageUnavailableError

logger = Logger(child=True)

REQUEST_SORT_KEY = "REQUEST"
NUMBER_PREFIX = "NUMBER#"
# Longer than the consumer's timeout (120 s in template.yaml), so a live
# invocation's claim is never taken for a dead one, and shorter than the
# queue's visibility timeout (720 s), so a redelivered chunk finds its dead
# claims already stale.
CLAIM_TIMEOUT_SECONDS = 300
DELIVERY_INTERRUPTED = "DeliveryInterrupted"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class NumberState(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"


def partition_key(domain: str, request_id: str) -> str:
    return f"QUEUED#{domain}#{request_id}"


def number_sort_key(digits: str) -> str:
    return NUMBER_PREFIX + digits


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """The request record: what the API or an event queued."""

    domain: str
    request_id: str
    app_id: str
    expected: int
    chunk_count: int
    reason: str
    queued_at: datetime


@dataclass(frozen=True, slots=True)
class Claim:
    """The right to send one number once, and what its entry stores meanwhile."""

    token: str
    submitted: str
    position: int
    claimed_at: datetime
    # Set when an earlier attempt had the Play Store message accepted.
    first_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class NumberEntry:
    """A number's ledger entry as stored."""

    digits: str
    submitted: str
    position: int
    state: NumberState
    first_message_id: str | None = None
    second_message_id: str | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class RequestLedger:
    """The request record and its numbers' entries, ordered by position."""

    request: QueuedRequest
    numbers: list[NumberEntry] = field(default_factory=list)


def _value(item: dict[str, Any], name: str) -> Any:
    return _deserializer.deserialize(item[name]) if name in item else None


def _number_from_item(item: dict[str, Any]) -> NumberEntry:
    return NumberEntry(
        digits=_value(item, "sk").removeprefix(NUMBER_PREFIX),
        submitted=_value(item, "submitted"),
        position=int(_value(item, "position")),
        state=NumberState(_value(item, "state")),
        first_message_id=_value(item, "first_message_id"),
        second_message_id=_value(item, "second_message_id"),
        error_code=_value(item, "error_code"),
    )


def _request_from_item(item: dict[str, Any]) -> QueuedRequest:
    return QueuedRequest(
        domain=_value(item, "domain"),
        request_id=_value(item, "request_id"),
        app_id=_value(item, "app_id"),
        expected=int(_value(item, "expected")),
        chunk_count=int(_value(item, "chunk_count")),
        reason=_value(item, "reason"),
        queued_at=datetime.fromisoformat(_value(item, "queued_at")),
    )


def _is_condition_failure(error: ClientError) -> bool:
    code: str | None = error.response.get("Error", {}).get("Code")
    return code == "ConditionalCheckFailedException"


class DeliveryLedger:
    """Reads and writes ledger items in the table ``table_name``.

    Methods raise StorageUnavailableError when DynamoDB fails.
    """

    def __init__(
        self,
        table_name: str,
        client: Any,
        retention_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.retention_days = retention_days
        self.clock = clock

    def _expires_at(self, now: datetime) -> int:
        return int((now + timedelta(days=self.retention_days)).timestamp())

    def _call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**arguments)
        except ClientError as error:
            if _is_condition_failure(error):
                raise
            logger.exception("DynamoDB call failed for the delivery ledger")
            raise StorageUnavailableError(
                "The service's storage is unavailable; retry later."
            ) from error
        except BotoCoreError as error:
            logger.exception("DynamoDB call failed for the delivery ledger")
            raise StorageUnavailableError(
                "The service's storage is unavailable; retry later."
            ) from error
        return response

    # The request record

    def record_request(self, request: QueuedRequest) -> bool:
        """Store the request record; return False if it already existed.

        An existing record is kept unchanged, so an event delivered twice
        keeps its first record.
        """
        item = {
            "pk": partition_key(request.domain, request.request_id),
            "sk": REQUEST_SORT_KEY,
            "type": "queued_request",
            "domain": request.domain,
            "request_id": request.request_id,
            "app_id": request.app_id,
            "expected": request.expected,
            "chunk_count": request.chunk_count,
            "reason": request.reason,
            "queued_at": request.queued_at.isoformat(),
            "expires_at": self._expires_at(request.queued_at),
        }
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item={name: _serializer.serialize(v) for name, v in item.items()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError:
            return False
        return True

    def reduce_expected(self, domain: str, request_id: str, count: int) -> None:
        """Lower the request's expected count by ``count`` numbers not queued."""
        self._call(
            "update_item",
            TableName=self.table_name,
            Key=self._key(domain, request_id, REQUEST_SORT_KEY),
            UpdateExpression="SET expected = expected - :count",
            ExpressionAttributeValues={":count": {"N": str(count)}},
        )

    # Numbers

    def claim(
        self,
        domain: str,
        request_id: str,
        digits: str,
        submitted: str,
        position: int,
    ) -> Claim | None:
        """Claim ``digits`` for sending; return None when it must not be sent.

        None means the number is sent, failed, or claimed by another
        invocation that may still be running. A stale claim found here is
        settled as failed with DELIVERY_INTERRUPTED.
        """
        now = self.clock()
        claim = Claim(str(uuid.uuid4()), submitted, position, now)
        # A conditional PutItem, not UpdateItem: it is the cheaper write, and
        # ALL_OLD still returns the message id that an earlier attempt stored.
        try:
            response = self._call(
                "put_item",
                TableName=self.table_name,
                Item=self._number_item(
                    domain, request_id, digits, claim, NumberState.SENDING
                ),
                ConditionExpression="attribute_not_exists(pk) OR #state = :retry",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":retry": {"S": NumberState.RETRY}},
                ReturnValues="ALL_OLD",
            )
        except ClientError:
            self._settle_if_stale(domain, request_id, digits, now)
            return None
        first_id = _value(response.get("Attributes", {}), "first_message_id")
        if first_id is None:
            return claim
        return Claim(claim.token, submitted, position, now, first_id)

    def _settle_if_stale(
        self, domain: str, request_id: str, digits: str, now: datetime
    ) -> None:
        key = self._key(domain, request_id, number_sort_key(digits))
        item = self._call(
            "get_item", TableName=self.table_name, Key=key, ConsistentRead=True
        ).get("Item")
        if item is None or _value(item, "state") != NumberState.SENDING:
            return
        claimed_at = datetime.fromisoformat(_value(item, "claimed_at"))
        if now - claimed_at < timedelta(seconds=CLAIM_TIMEOUT_SECONDS):
            return
        logger.warning(
            "A number's claim outlived its invocation; it is failed, not sent again",
            extra={"request_id": request_id, "claimed_at": claimed_at.isoformat()},
        )
        stale = Claim(
            _value(item, "claim_token"),
            _value(item, "submitted"),
            int(_value(item, "position")),
            claimed_at,
        )
        self.settle(
            domain,
            request_id,
            digits,
            stale,
            NumberState.FAILED,
            first_message_id=_value(item, "first_message_id"),
            second_message_id=_value(item, "second_message_id"),
            error_code=DELIVERY_INTERRUPTED,
        )

    def settle(
        self,
        domain: str,
        request_id: str,
        digits: str,
        claim: Claim,
        state: NumberState,
        *,
        first_message_id: str | None = None,
        second_message_id: str | None = None,
        error_code: str | None = None,
    ) -> bool:
        """Record the outcome of ``claim``; return False if the claim was lost.

        The entry is replaced whole, so it keeps only the message ids given
        here and ``claim.first_message_id``.
        """
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item=self._number_item(
                    domain,
                    request_id,
                    digits,
                    claim,
                    state,
                    first_message_id=first_message_id or claim.first_message_id,
                    second_message_id=second_message_id,
                    error_code=error_code,
                ),
                ConditionExpression="claim_token = :token",
                ExpressionAttributeValues={":token": {"S": claim.token}},
            )
        except ClientError:
            logger.error(
                "A number's claim was taken over before its outcome was stored",
                extra={"request_id": request_id, "state": str(state)},
            )
            return False
        return True

    def _number_item(
        self,
        domain: str,
        request_id: str,
        digits: str,
        claim: Claim,
        state: NumberState,
        *,
        first_message_id: str | None = None,
        second_message_id: str | None = None,
        error_code: str | None = None,
    ) -> dict[str, Any]:
        now = self.clock()
        item = {
            "pk": partition_key(domain, request_id),
            "sk": number_sort_key(digits),
            "type": "queued_number",
            "state": str(state),
            "submitted": claim.submitted,
            "position": claim.position,
            "claim_token": claim.token,
            "claimed_at": claim.claimed_at.isoformat(),
            "updated_at": now.isoformat(),
            "first_message_id": first_message_id,
            "second_message_id": second_message_id,
            "error_code": error_code,
            "expires_at": self._expires_at(now),
        }
        return {
            name: _serializer.serialize(value)
            for name, value in item.items()
            if value is not None
        }

    # Reading

    def read(self, domain: str, request_id: str) -> RequestLedger | None:
        """Return the request's record and entries, or None if it was never queued."""
        request: QueuedRequest | None = None
        numbers: list[NumberEntry] = []
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {
                ":pk": {"S": partition_key(domain, request_id)}
            },
            "ConsistentRead": True,
        }
        while True:
            response = self._call("query", **arguments)
            for item in response.get("Items", []):
                sort_key = _value(item, "sk")
                if sort_key == REQUEST_SORT_KEY:
                    request = _request_from_item(item)
                elif sort_key.startswith(NUMBER_PREFIX):
                    numbers.append(_number_from_item(item))
            if "LastEvaluatedKey" not in response:
                break
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if request is None:
            return None
        numbers.sort(key=lambda entry: entry.position)
        return RequestLedger(request, numbers)

    def _key(self, domain: str, request_id: str, sort_key: str) -> dict[str, Any]:
        return {
            "pk": {"S": partition_key(domain, request_id)},
            "sk": {"S": sort_key},
        }
