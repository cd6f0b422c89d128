"""The SNS opt-out check in both strategies: retries, the cached list, moto's responses.

moto's SNS (5.2) has two quirks that these tests pin explicitly.
CheckIfPhoneNumberIsOptedOut reports every number ending in 99 as opted out,
and ListPhoneNumbersOptedOut returns a fixed list of UK numbers, whatever
CheckIfPhoneNumberIsOptedOut returns for them. The per-number strategy
(OPT_OUT_CHECK=per_number) sees only the first, the list strategy (the
default) only the second.

Tests of the list strategy that need pages, changes to the list or counted
calls use the fake SNS of devserver.fake_sns on loopback, which answers both
actions from one configurable list.
"""

import io
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff
from conftest import (
    REGION,
    FakeLambdaContext,
    api_event,
    reset_cached_clients,
    response_json,
    sent_sms,
)

from core import optout
from core.optout import (
    ListOptOutChecker,
    OptOutListCache,
    PerNumberOptOutChecker,
    build_opt_out_checker,
    reset_list_caches,
    shared_list_cache,
)
from core.repository import Repository
from core.settings import Settings
from devserver.fake_sns import FakeSns

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
    checker = PerNumberOptOutChecker(
        scripted_client, concurrency=1, max_attempts=3, sleep=no_sleep
    )

    assert checker.check("+16175551234") is False
    assert script.attempts == 3


def test_checker_gives_up_unknown(scripted_client: Any) -> None:
    script = ScriptedSns("CheckIfPhoneNumberIsOptedOut", [(429, THROTTLED_BODY)] * 3)
    script.attach(scripted_client)
    delays: list[float] = []
    checker = PerNumberOptOutChecker(
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
    checker = PerNumberOptOutChecker(sns, concurrency=4, max_attempts=3, sleep=no_sleep)

    statuses = checker.check_all(
        ["+16175551234", "+16175550199", "+16175551234", "+447420500600"]
    )

    # moto: opted out exactly when the number ends in 99.
    assert statuses == {
        "+16175551234": False,
        "+16175550199": True,
        "+447420500600": False,
    }


# moto's responses, and the handler in each mode

# Numbers of moto 5.2's fixed ListPhoneNumbersOptedOut response. The others in
# it are not valid by the phonenumbers metadata, so only these two can be sent.
MOTO_LISTED_VALID = ["+447420500600", "+447420505401"]


def test_moto_list_is_fixed(aws: None) -> None:
    sns = boto3.client("sns", region_name=REGION)

    response = sns.list_phone_numbers_opted_out()

    assert response["phoneNumbers"][:2] == MOTO_LISTED_VALID
    assert "nextToken" not in response


def test_per_number_ignores_moto_list(aws: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    listed = sns.list_phone_numbers_opted_out()["phoneNumbers"]
    checker = PerNumberOptOutChecker(sns, concurrency=1, max_attempts=1)

    # moto lists this UK number as opted out, yet its check returns false,
    # and the per-number checker follows the check.
    assert "+447420500600" in listed
    assert checker.check("+447420500600") is False


def test_list_ignores_moto_99_quirk(aws: None) -> None:
    sns = boto3.client("sns", region_name=REGION)
    checker = ListOptOutChecker(sns, max_attempts=1, cache_seconds=300)

    statuses = checker.check_all(["+16175550199", "+447420500600", "+447420505401"])

    assert statuses == {
        "+16175550199": False,
        "+447420500600": True,
        "+447420505401": True,
    }


def post_numbers(numbers: list[str]) -> dict[str, Any]:
    from handler.api import lambda_handler

    body = {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]}
    return lambda_handler(api_event(PATH, body), FakeLambdaContext())


def test_per_number_mode_skips_99_numbers(
    seeded: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPT_OUT_CHECK", "per_number")
    reset_cached_clients()

    response = post_numbers(["16175550199", "16175551234", "447420500600"])

    # moto's check opts out the 99 number, and ignores its own list.
    assert response_json(response) == {
        "success_numbers": ["16175551234", "447420500600"],
        "invalid_format_numbers": [],
        "error_numbers": ["16175550199"],
    }
    assert sorted(number for number, _ in sent_sms()) == [
        "+16175551234",
        "+16175551234",
        "+447420500600",
        "+447420500600",
    ]


def test_listed_number_gets_nothing(seeded: Repository) -> None:
    response = post_numbers(["447420500600", "16175550199", "16175551234"])

    # The default list mode follows moto's list, not its 99 quirk.
    assert response_json(response) == {
        "success_numbers": ["16175550199", "16175551234"],
        "invalid_format_numbers": [],
        "error_numbers": ["447420500600"],
    }
    assert sorted(number for number, _ in sent_sms()) == [
        "+16175550199",
        "+16175550199",
        "+16175551234",
        "+16175551234",
    ]


def test_setting_selects_strategy(aws: None) -> None:
    sns = boto3.client("sns", region_name=REGION)

    default = build_opt_out_checker(Settings(), sns)
    per_number = build_opt_out_checker(Settings(opt_out_check="per_number"), sns)

    assert isinstance(default, ListOptOutChecker)
    assert default.cache is shared_list_cache(sns)
    assert default.cache_seconds == 300
    assert isinstance(per_number, PerNumberOptOutChecker)


# The list strategy against the fake SNS


class ManualClock:
    """Monotonic seconds that move only when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count_calls(client: Any, operation: str) -> list[dict[str, Any]]:
    """Record the parameters of each ``operation`` call the client makes.

    botocore emits ``provide-client-params`` once per API call, before its
    retries, so the list counts calls, not HTTP attempts.
    """
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        calls.append(dict(params))

    client.meta.events.register(f"provide-client-params.sns.{operation}", record)
    return calls


@pytest.fixture
def fake_sns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSns]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with FakeSns(random_seed=7) as fake:
        yield fake


def fake_client(fake: FakeSns) -> Any:
    return boto3.client("sns", region_name=REGION, endpoint_url=fake.url)


def uk_numbers(count: int) -> list[str]:
    return [f"+4420794601{index:02d}" for index in range(count)]


def test_list_reads_every_page(fake_sns: FakeSns) -> None:
    listed = uk_numbers(5)
    fake_sns.configure(opted_out_numbers=listed, opt_out_page_size=2)
    client = fake_client(fake_sns)
    calls = count_calls(client, "ListPhoneNumbersOptedOut")
    checker = ListOptOutChecker(client, max_attempts=3, cache_seconds=300)

    statuses = checker.check_all([listed[0], listed[4], "+16175551234"])

    assert statuses == {listed[0]: True, listed[4]: True, "+16175551234": False}
    assert len(calls) == 3
    assert "nextToken" not in calls[0]
    assert calls[1]["nextToken"] != calls[2]["nextToken"]


def test_list_page_tokens_followed(fake_sns: FakeSns) -> None:
    listed = uk_numbers(7)
    fake_sns.configure(opted_out_numbers=listed, opt_out_page_size=3)
    checker = ListOptOutChecker(
        fake_client(fake_sns), max_attempts=3, cache_seconds=300
    )

    assert checker.load() == frozenset(listed)


def test_list_reused_within_ttl(fake_sns: FakeSns) -> None:
    first, second = uk_numbers(2)
    fake_sns.configure(opted_out_numbers=[first])
    client = fake_client(fake_sns)
    calls = count_calls(client, "ListPhoneNumbersOptedOut")
    clock = ManualClock()
    checker = ListOptOutChecker(client, max_attempts=3, cache_seconds=300, clock=clock)

    before = checker.check_all([first, second])
    fake_sns.configure(opted_out_numbers=[first, second])
    clock.now += 299.0
    after = checker.check_all([first, second])

    assert before == {first: True, second: False}
    # Still the cached list: the new opt-out is not seen yet.
    assert after == {first: True, second: False}
    assert len(calls) == 1


def test_list_refreshed_after_ttl(fake_sns: FakeSns) -> None:
    first, second = uk_numbers(2)
    fake_sns.configure(opted_out_numbers=[first])
    client = fake_client(fake_sns)
    calls = count_calls(client, "ListPhoneNumbersOptedOut")
    clock = ManualClock()
    checker = ListOptOutChecker(client, max_attempts=3, cache_seconds=300, clock=clock)

    checker.check_all([first, second])
    fake_sns.configure(opted_out_numbers=[second])
    clock.now += 300.0
    refreshed = checker.check_all([first, second])
    clock.now += 299.0
    reused = checker.check_all([first, second])

    assert refreshed == {first: False, second: True}
    assert reused == {first: False, second: True}
    assert len(calls) == 2


def test_zero_ttl_loads_every_call(fake_sns: FakeSns) -> None:
    client = fake_client(fake_sns)
    calls = count_calls(client, "ListPhoneNumbersOptedOut")
    checker = ListOptOutChecker(
        client, max_attempts=3, cache_seconds=0, clock=ManualClock()
    )

    checker.check_all(["+16175551234"])
    checker.check_all(["+16175551234"])

    assert len(calls) == 2


def test_empty_request_skips_load(fake_sns: FakeSns) -> None:
    client = fake_client(fake_sns)
    calls = count_calls(client, "ListPhoneNumbersOptedOut")
    checker = ListOptOutChecker(client, max_attempts=3, cache_seconds=300)

    assert checker.check_all([]) == {}
    assert calls == []


def test_checkers_share_client_cache(fake_sns: FakeSns) -> None:
    listed = uk_numbers(1)
    fake_sns.configure(opted_out_numbers=listed)
    client = fake_client(fake_sns)
    calls = count_calls(client, "ListPhoneNumbersOptedOut")
    settings = Settings()

    first = build_opt_out_checker(settings, client).check_all(listed)
    second = build_opt_out_checker(settings, client).check_all(listed)
    other_client = fake_client(fake_sns)
    other = build_opt_out_checker(settings, other_client).check_all(listed)

    assert first == second == other == {listed[0]: True}
    assert len(calls) == 1
    assert shared_list_cache(other_client) is not shared_list_cache(client)


def test_reset_forgets_shared_lists(fake_sns: FakeSns) -> None:
    client = fake_client(fake_sns)
    calls = count_calls(client, "ListPhoneNumbersOptedOut")
    checker = build_opt_out_checker(Settings(), client)

    checker.check_all(["+16175551234"])
    reset_list_caches()
    checker.check_all(["+16175551234"])
    build_opt_out_checker(Settings(), client).check_all(["+16175551234"])

    assert len(calls) == 3


class GatedListClient:
    """An SNS client double whose first ListPhoneNumbersOptedOut waits for a gate."""

    def __init__(self, numbers: list[str]) -> None:
        self.numbers = numbers
        self.calls = 0
        self.first_call_started = threading.Event()
        self.gate = threading.Event()
        self._lock = threading.Lock()

    def list_phone_numbers_opted_out(self, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            self.first_call_started.set()
            assert self.gate.wait(timeout=30), "the test never opened the gate"
        return {"phoneNumbers": list(self.numbers)}


def test_concurrent_first_use_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    waiters = 7
    listed = uk_numbers(1)
    client = GatedListClient(listed)
    cache = OptOutListCache()
    all_waiting = threading.Barrier(waiters + 1, timeout=30)

    class WaitingFuture(Future[frozenset[str]]):
        """A load in progress that counts the threads waiting for its result."""

        def result(self, timeout: float | None = None) -> frozenset[str]:
            all_waiting.wait()
            return super().result(timeout)

    monkeypatch.setattr(optout, "Future", WaitingFuture)
    results: list[dict[str, bool | None]] = []
    results_lock = threading.Lock()

    def check() -> None:
        checker = ListOptOutChecker(
            client, max_attempts=1, cache_seconds=300, cache=cache
        )
        statuses = checker.check_all([listed[0], "+16175551234"])
        with results_lock:
            results.append(statuses)

    loader = threading.Thread(target=check)
    loader.start()
    assert client.first_call_started.wait(timeout=30)
    others = [threading.Thread(target=check) for _ in range(waiters)]
    for thread in others:
        thread.start()
    # Every other thread is now blocked on the one load in progress.
    all_waiting.wait()
    client.gate.set()
    for thread in [loader, *others]:
        thread.join(timeout=30)

    assert client.calls == 1
    assert len(results) == waiters + 1
    assert all(
        statuses == {listed[0]: True, "+16175551234": False} for statuses in results
    )


# Failures of the list strategy


LIST_PAGE_BODY = (
    '<ListPhoneNumbersOptedOutResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
    "<ListPhoneNumbersOptedOutResult><phoneNumbers>"
    "<member>+447420500600</member></phoneNumbers>{token}"
    "</ListPhoneNumbersOptedOutResult><ResponseMetadata>"
    "<RequestId>00000000-0000-0000-0000-000000000003</RequestId></ResponseMetadata>"
    "</ListPhoneNumbersOptedOutResponse>"
)
INTERNAL_ERROR_BODY = (
    '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
    "<Error><Type>Receiver</Type><Code>InternalError</Code>"
    "<Message>Internal error</Message></Error>"
    "<RequestId>00000000-0000-0000-0000-000000000004</RequestId></ErrorResponse>"
)
AUTHORIZATION_ERROR_BODY = (
    '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
    "<Error><Type>Sender</Type><Code>AuthorizationError</Code>"
    "<Message>not authorized</Message></Error>"
    "<RequestId>00000000-0000-0000-0000-000000000005</RequestId></ErrorResponse>"
)
LAST_PAGE = (200, LIST_PAGE_BODY.format(token=""))
NOT_LAST_PAGE = (200, LIST_PAGE_BODY.format(token="<nextToken>page-2</nextToken>"))


def record_warnings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Record core.optout's warnings as (message, extra)."""
    calls: list[tuple[str, Any]] = []

    def record(message: str, *args: Any, **kwargs: Any) -> None:
        calls.append((message, kwargs.get("extra", {})))

    monkeypatch.setattr(optout.logger, "warning", record)
    return calls


def test_botocore_skips_throttled_list(scripted_client: Any) -> None:
    script = ScriptedSns("ListPhoneNumbersOptedOut", [(429, THROTTLED_BODY)] * 3)
    script.attach(scripted_client)

    with pytest.raises(ClientError) as raised:
        scripted_client.list_phone_numbers_opted_out()

    assert raised.value.response["Error"]["Code"] == "Throttled"
    assert script.attempts == 1


def test_list_retries_throttled_page(scripted_client: Any) -> None:
    script = ScriptedSns(
        "ListPhoneNumbersOptedOut",
        [NOT_LAST_PAGE, (429, THROTTLED_BODY), (429, THROTTLED_BODY), LAST_PAGE],
    )
    script.attach(scripted_client)
    checker = ListOptOutChecker(
        scripted_client, max_attempts=3, cache_seconds=300, sleep=no_sleep
    )

    statuses = checker.check_all(["+447420500600", "+16175551234"])

    assert statuses == {"+447420500600": True, "+16175551234": False}
    assert script.attempts == 4


@pytest.mark.parametrize(
    ("responses", "error_code", "attempts", "http_attempts"),
    [
        # Throttled: this module's three attempts, one HTTP request each.
        ([(429, THROTTLED_BODY)] * 3, "Throttled", 3, 3),
        # InternalError: one attempt here, in which botocore makes four requests
        # (max_attempts=3 counts retries after the first).
        ([(500, INTERNAL_ERROR_BODY)] * 4, "InternalError", 1, 4),
        # A failure on the second page loses the first page too.
        ([NOT_LAST_PAGE, (403, AUTHORIZATION_ERROR_BODY)], "AuthorizationError", 1, 2),
    ],
)
def test_list_failure_gives_all_unknown(
    scripted_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    responses: list[tuple[int, str]],
    error_code: str,
    attempts: int,
    http_attempts: int,
) -> None:
    script = ScriptedSns("ListPhoneNumbersOptedOut", [*responses, LAST_PAGE])
    script.attach(scripted_client)
    warnings = record_warnings(monkeypatch)
    checker = ListOptOutChecker(
        scripted_client, max_attempts=3, cache_seconds=300, sleep=no_sleep
    )

    failed = checker.check_all(["+447420500600", "+16175551234", "+447420500600"])

    assert failed == {"+447420500600": None, "+16175551234": None}
    assert script.attempts == http_attempts
    assert len(warnings) == 1
    message, extra = warnings[0]
    assert message.startswith("SNS opt-out list could not be loaded")
    assert extra == {
        "error_code": error_code,
        "attempts": attempts,
        "phone_number_count": 2,
    }

    # The failure was not cached: the next request loads the list again.
    recovered = checker.check_all(["+447420500600", "+16175551234"])

    assert recovered == {"+447420500600": True, "+16175551234": False}
    assert script.attempts == http_attempts + 1
    assert len(warnings) == 1


def test_failed_refresh_not_cached(scripted_client: Any) -> None:
    script = ScriptedSns(
        "ListPhoneNumbersOptedOut",
        [LAST_PAGE, (403, AUTHORIZATION_ERROR_BODY), LAST_PAGE],
    )
    script.attach(scripted_client)
    clock = ManualClock()
    checker = ListOptOutChecker(
        scripted_client, max_attempts=1, cache_seconds=300, clock=clock
    )

    loaded = checker.check_all(["+447420500600"])
    clock.now += 300.0
    failed = checker.check_all(["+447420500600"])
    again = checker.check_all(["+447420500600"])

    assert loaded == {"+447420500600": True}
    # An expired list is not used once its refresh fails.
    assert failed == {"+447420500600": None}
    assert again == {"+447420500600": True}
    assert script.attempts == 3
