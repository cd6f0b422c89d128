"""The SNS opt-out check: its retries, and what moto's SNS returns for it.

moto's SNS (5.2) has two quirks that these tests pin explicitly.
CheckIfPhoneNumberIsOptedOut reports every number ending in 99 as opted out,
and ListPhoneNumbersOptedOut returns a fixed list of UK numbers, whatever
CheckIfPhoneNumberIsOptedOut returns for them. The service uses only the first.
"""

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff
from conftest import REGION, FakeLambdaContext, api_event, response_json, sent_sms

from core.optout import OptOutChecker
from core.repository import Repository

APP_ID = "abcd1234abcd1234"
PATH = "/a/demo/api/v0_5/sms_user_registration_reinstall/"
THROTTLED_BODY = (
    '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
    "<Error><Type>Sender</Type><Code>Throttled</Code>"
    "<Message>Rate exceeded</Message></Error>"
    "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
)
OPTED_IN_BODY = (
    '<CheckIfPhoneNumberIsOptedOutResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
    "<CheckIfPhoneNumberIsOptedOutResult><isOptedOut>false</isOptedOut>"
    "</CheckIfPhoneNumberIsOptedOutResult><ResponseMetadata>"
    "<RequestId>00000000-0000-0000-0000-000000000001</RequestId></ResponseMetadata>"
    "</CheckIfPhoneNumberIsOptedOutResponse>"
)
PUBLISHED_BODY = (
    '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
    "<PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata>"
    "<RequestId>00000000-0000-0000-0000-000000000002</RequestId></ResponseMetadata>"
    "</PublishResponse>"
)


class RawBody(io.BytesIO):
    """The raw HTTP body botocore reads from, as urllib3 provides it."""

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


class ScriptedSns:
    """Returns scripted (status, body) responses to an SNS operation, before any send.

    botocore emits ``before-send`` inside its retry loop, so each attempt,
    retries included, takes the next response; nothing leaves the process.
    """

    def __init__(self, operation: str, responses: list[tuple[int, str]]) -> None:
        self.operation = operation
        self.responses = list(responses)
        self.attempts = 0

    def attach(self, client: Any) -> None:
        client.meta.events.register(f"before-send.sns.{self.operation}", self.respond)

    def respond(self, request: Any, **kwargs: Any) -> AWSResponse:
        self.attempts += 1
        status, body = self.responses.pop(0)
        return AWSResponse(
            request.url, status, {"Content-Type": "text/xml"}, RawBody(body.encode())
        )


@pytest.fixture
def scripted_client(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An SNS client in standard retry mode, 3 attempts, without retry delays.

    Its endpoint is a closed loopback port, because every response comes from a script.
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    return boto3.client(
        "sns",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def test_botocore_skips_throttled_opt_out(scripted_client: Any) -> None:
    # SNS models ThrottledException (code Throttled, HTTP 429) for this
    # operation without marking it retryable, so standard mode gives up at once.
    script = ScriptedSns("CheckIfPhoneNumberIsOptedOut", [(429, THROTTLED_BODY)] * 3)
    script.attach(scripted_client)

    with pytest.raises(ClientError) as raised:
        scripted_client.check_if_phone_number_is_opted_out(phoneNumber="+16175551234")

    assert raised.value.response["Error"]["Code"] == "Throttled"
    assert script.attempts == 1


def test_botocore_retries_throttled_publish(scripted_client: Any) -> None:
    # Publish does not model Throttled, so a 429 is retried as throttling.
    script = ScriptedSns(
        "Publish", [(429, THROTTLED_BODY), (429, THROTTLED_BODY), (200, PUBLISHED_BODY)]
    )
    script.attach(scripted_client)

    response = scripted_client.publish(PhoneNumber="+16175551234", Message="hi")

    assert response["MessageId"] == "m-1"
    assert script.attempts == 3


def no_sleep(seconds: float) -> None:
    return None


def test_checker_retries_throttled(scripted_client: Any) -> None:
    script = ScriptedSns(
        "CheckIfPhoneNumberIsOptedOut",
        [(429, THROTTLED_BODY), (429, THROTTLED_BODY), (200, OPTED_IN_BODY)],
    )
    script.attach(scripted_client)
    checker = OptOutChecker(
        scripted_client, concurrency=1, max_attempts=3, sleep=no_sleep
    )

    assert checker.check("+16175551234") is False
    assert script.attempts == 3


def test_checker_gives_up_unknown(scripted_client: Any) -> None:
    script = ScriptedSns("CheckIfPhoneNumberIsOptedOut", [(429, THROTTLED_BODY)] * 3)
    script.attach(scripted_client)
    delays: list[float] = []
    checker = OptOutChecker(
        scripted_client,
        concurrency=1,
        max_attempts=3,
        sleep=delays.append,
        jitter=lambda: 1.0,
    )

    assert checker.check("+16175551234") is None
    assert script.attempts == 3
    # Full jitter at its ceiling: 0.1 s, then 0.2 s.
    assert delays == [0.1, 0.2]


def test_checker_maps_each_number(aws: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    checker = OptOutChecker(sns, concurrency=4, max_attempts=3, sleep=no_sleep)

    statuses = checker.check_all(
        ["+16175551234", "+16175550199", "+16175551234", "+447420500600"]
    )

    # moto: opted out exactly when the number ends in 99.
    assert statuses == {
        "+16175551234": False,
        "+16175550199": True,
        "+447420500600": False,
    }


def test_moto_list_not_consulted(aws: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    listed = sns.list_phone_numbers_opted_out()["phoneNumbers"]
    checker = OptOutChecker(sns, concurrency=1, max_attempts=1)

    # moto lists this UK number as opted out, yet its check returns false,
    # and the service follows the check.
    assert "+447420500600" in listed
    assert checker.check("+447420500600") is False


def test_moto_99_numbers_get_nothing(seeded: Repository) -> None:
    from handler.api import lambda_handler

    numbers = ["16175550199", "16175551234"]
    body = {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]}

    response = lambda_handler(api_event(PATH, body), FakeLambdaContext())

    assert response_json(response) == {
        "success_numbers": ["16175551234"],
        "invalid_format_numbers": [],
        "error_numbers": ["16175550199"],
    }
    assert [number for number, _ in sent_sms()] == ["+16175551234", "+16175551234"]
