"""Sending SMS through Amazon SNS Publish."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from core.models import Domain
from core.phone import mask

logger = Logger(child=True)

PLAY_STORE_MESSAGE = "play_store_link"
INSTALL_MESSAGE = "install_message"
# Error code of a number that was not started because the deadline was near.
DEADLINE_NOT_STARTED = "DeadlineNotStarted"


def _no_wait() -> None:
    return None


def _always() -> bool:
    return True


class SmsPublishError(Exception):
    """SNS did not accept a message, after botocore's retries."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True, slots=True)
class PublishAttempt:
    """One Publish call, after botocore's retries: a message id or an error code."""

    # PLAY_STORE_MESSAGE or INSTALL_MESSAGE.
    message: str
    attempted_at: datetime
    message_id: str | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Outcome of sending one number's two messages, the second only after the first."""

    phone_number: str
    first_message_id: str | None = None
    second_message_id: str | None = None
    error_code: str | None = None
    # Which message failed: PLAY_STORE_MESSAGE, INSTALL_MESSAGE or None.
    failed_message: str | None = None
    # The publishes made, in order: none, the first, or both.
    attempts: tuple[PublishAttempt, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.second_message_id is not None

    @property
    def messages_published(self) -> int:
        return (self.first_message_id is not None) + (
            self.second_message_id is not None
        )


def message_attributes(domain: Domain) -> dict[str, dict[str, str]]:
    """Return SNS SMS attributes: Transactional, plus the domain's sender settings."""
    attributes = {
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
    }
    if domain.sms_sender_id:
        attributes["AWS.SNS.SMS.SenderID"] = {
            "DataType": "String",
            "StringValue": domain.sms_sender_id,
        }
    if domain.sms_origination_number:
        attributes["AWS.MM.SMS.OriginationNumber"] = {
            "DataType": "String",
            "StringValue": domain.sms_origination_number,
        }
    if domain.sms_max_price_usd:
        attributes["AWS.SNS.SMS.MaxPrice"] = {
            "DataType": "Number",
            "StringValue": domain.sms_max_price_usd,
        }
    return attributes


class SmsSender:
    """Publishes SMS with one shared SNS client; botocore retries throttling and 5xx."""

    def __init__(
        self,
        sns_client: Any,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sns_client = sns_client
        self.clock = clock

    def publish(
        self, phone_number: str, text: str, attributes: dict[str, dict[str, str]]
    ) -> str:
        """Publish ``text`` to E.164 ``phone_number`` (with ``+``); return the message id.

        Raises SmsPublishError when SNS rejects it or keeps failing.
        """
        try:
            response = self.sns_client.publish(
                PhoneNumber=phone_number, Message=text, MessageAttributes=attributes
            )
        except ClientError as error:
            details = error.response.get("Error", {})
            raise SmsPublishError(
                details.get("Code", "Unknown"), details.get("Message", "")
            ) from error
        except BotoCoreError as error:
            raise SmsPublishError(type(error).__name__, str(error)) from error
        return str(response["MessageId"])

    def deliver(
        self,
        phone_number: str,
        first_text: str,
        second_text: str,
        attributes: dict[str, dict[str, str]],
        pace: Callable[[], None] = _no_wait,
        may_start: Callable[[], bool] = _always,
    ) -> DeliveryResult:
        """Send the Play Store message, then the install message if the first succeeded.

        ``pace`` is called before each publish (a rate limiter blocks there).
        When ``may_start()`` is false before or after the first wait, nothing is
        sent and the result carries DEADLINE_NOT_STARTED.
        """
        # Checked before and after the rate limiter's wait: numbers past the
        # deadline return at once instead of each waiting for a send slot.
        if not may_start():
            return DeliveryResult(phone_number, error_code=DEADLINE_NOT_STARTED)
        pace()
        if not may_start():
            return DeliveryResult(phone_number, error_code=DEADLINE_NOT_STARTED)
        first_at = self.clock()
        try:
            first_id = self.publish(phone_number, first_text, attributes)
        except SmsPublishError as error:
            logger.warning(
                "SNS rejected the Play Store message; the install message was not sent",
                extra={"phone_number": mask(phone_number), "error_code": error.code},
            )
            return DeliveryResult(
                phone_number,
                error_code=error.code,
                failed_message=PLAY_STORE_MESSAGE,
                attempts=(
                    PublishAttempt(PLAY_STORE_MESSAGE, first_at, error_code=error.code),
                ),
            )
        first = PublishAttempt(PLAY_STORE_MESSAGE, first_at, message_id=first_id)

        pace()
        second_at = self.clock()
        try:
            second_id = self.publish(phone_number, second_text, attributes)
        except SmsPublishError as error:
            logger.error(
                "SNS rejected the install message after the Play Store message was sent",
                extra={
                    "phone_number": mask(phone_number),
                    "error_code": error.code,
                    "first_message_id": first_id,
                },
            )
            return DeliveryResult(
                phone_number,
                first_message_id=first_id,
                error_code=error.code,
                failed_message=INSTALL_MESSAGE,
                attempts=(
                    first,
                    PublishAttempt(INSTALL_MESSAGE, second_at, error_code=error.code),
                ),
            )
        second = PublishAttempt(INSTALL_MESSAGE, second_at, message_id=second_id)
        return DeliveryResult(
            phone_number, first_id, second_id, attempts=(first, second)
        )
