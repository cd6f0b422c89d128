"""Per-domain daily SMS limit, counted per UTC day in the service's table.

One counter item per domain and day: pk ``SMSLIMIT#<domain>``, sk
``DAY#<YYYY-MM-DD>``, attribute ``messages`` (SMS reserved or published that
day) and ``expires_at`` (epoch seconds, COUNTER_KEEP_DAYS after the day ends).

A request reserves two messages per number before sending, with one UpdateItem
``ADD`` whose condition keeps the count within the limit. DynamoDB applies a
conditional update atomically, so concurrent requests of one domain never
reserve more than the limit together. After sending, the messages reserved but
not published are given back.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import StorageUnavailableError

logger = Logger(child=True)

MESSAGES_PER_NUMBER = 2
# Conditional updates tried before giving up under contention; each failed one
# means another request changed the count meanwhile.
RESERVE_MAX_ATTEMPTS = 8
COUNTER_KEEP_DAYS = 7
CONDITION_FAILED = "ConditionalCheckFailedException"


def counter_key(domain: str, day: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"SMSLIMIT#{domain}"}, "sk": {"S": f"DAY#{day}"}}


def utc_day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class Reservation:
    """Messages reserved for ``numbers`` numbers of ``domain`` on UTC ``day``."""

    domain: str
    day: str
    numbers: int

    @property
    def messages(self) -> int:
        return self.numbers * MESSAGES_PER_NUMBER


class DailySmsLimit:
    """Reserves and releases a domain's SMS for the day with conditional updates."""

    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self.client = client

    def reserve(
        self, domain: str, limit: int, numbers: int, now: datetime
    ) -> Reservation:
        """Reserve two messages for as many of ``numbers`` numbers as fit today.

        Returns the reservation, possibly for fewer numbers than requested, or
        for none. Raises StorageUnavailableError when DynamoDB fails.
        """
        day = utc_day(now)
        requested = min(numbers, limit // MESSAGES_PER_NUMBER)
        for _ in range(RESERVE_MAX_ATTEMPTS):
            if requested <= 0:
                return Reservation(domain, day, 0)
            used = self._try_reserve(domain, day, limit, requested)
            if used is None:
                return Reservation(domain, day, requested)
            requested = min(requested, (limit - used) // MESSAGES_PER_NUMBER)

        logger.warning(
            "Daily SMS limit reservation kept conflicting; nothing was reserved",
            extra={"domain": domain, "day": day, "attempts": RESERVE_MAX_ATTEMPTS},
        )
        return Reservation(domain, day, 0)

    def _try_reserve(
        self, domain: str, day: str, limit: int, numbers: int
    ) -> int | None:
        """Add ``numbers`` pairs if they fit; return None, or the count that blocked."""
        messages = numbers * MESSAGES_PER_NUMBER
        expires = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(
            days=1 + COUNTER_KEEP_DAYS
        )
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=counter_key(domain, day),
                UpdateExpression="ADD messages :add SET expires_at = :expires",
                ConditionExpression=(
                    "attribute_not_exists(messages) OR messages <= :room"
                ),
                ExpressionAttributeValues={
                    ":add": {"N": str(messages)},
                    ":room": {"N": str(limit - messages)},
                    ":expires": {"N": str(int(expires.timestamp()))},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != CONDITION_FAILED:
                raise self._unavailable(domain, error) from error
            item = error.response.get("Item")
            if item and "messages" in item:
                return int(item["messages"]["N"])
            return self.used(domain, day)
        except BotoCoreError as error:
            raise self._unavailable(domain, error) from error

    def release(self, reservation: Reservation, unused_messages: int) -> bool:
        """Give back ``unused_messages`` of ``reservation``; return whether it worked.

        A failed release is logged, not raised: the count stays too high, which
        only makes the rest of the day's limit stricter.
        """
        if unused_messages <= 0:
            return True
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=counter_key(reservation.domain, reservation.day),
                UpdateExpression="ADD messages :add",
                ExpressionAttributeValues={":add": {"N": str(-unused_messages)}},
            )
        except (ClientError, BotoCoreError):
            logger.exception(
                "Failed to give back unused SMS of the daily limit",
                extra={
                    "domain": reservation.domain,
                    "day": reservation.day,
                    "unused_messages": unused_messages,
                },
            )
            return False
        return True

    def used(self, domain: str, day: str) -> int:
        """Return the messages counted for ``domain`` on ``day`` (YYYY-MM-DD).

        Raises StorageUnavailableError when DynamoDB fails.
        """
        try:
            response = self.client.get_item(
                TableName=self.table_name,
                Key=counter_key(domain, day),
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as error:
            raise self._unavailable(domain, error) from error
        item = response.get("Item") or {}
        return int(item["messages"]["N"]) if "messages" in item else 0

    def _unavailable(self, domain: str, error: Exception) -> StorageUnavailableError:
        logger.error(
            "DynamoDB failed while counting the daily SMS limit",
            extra={"domain": domain, "table": self.table_name, "error": str(error)},
        )
        return StorageUnavailableError(
            "The service's storage is unavailable; retry later."
        )
