"""The Lambda handler under moto, called with API Gateway REST (v1) proxy events.

Each test pins one rule of the endpoint: routing, the order of the checks, the
body, and the texts, recipients and attributes of the SMS. The tests share one
moto account, seeded once with tests/data/seed.json and EXTRA_SEED, because
seeding a table per test would cost most of the module's run time. So a test
must leave the table as it found it; the SNS outbox is emptied before each test.
Tests that change stored records live in test_storage.py.
"""

import base64
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import (
    CASES_SEED,
    REGION,
    TABLE_NAME,
    TEST_ENVIRONMENT,
    reset_cached_clients,
    response_header,
    response_json,
    sent_sms,
)
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends
from reinstall_api import (
    ADMIN,
    APP_ID,
    DEMO_FRENCH,
    DEMO_INSTALL,
    ENGLISH,
    ENTERPRISE_SWAHILI,
    LINK,
    PATH,
    PLAN_ERROR,
    SWITCH_ERROR,
    USAGE,
    VIEWER,
    body_for,
    buckets,
    install_sms,
    path_for,
    post,
    sms_by_number,
    validation_errors,
)

from core.models import Domain
from core.repository import Repository, domain_key
from core.seed import load_seed

OPERATOR = "ops@other.example:ops-key"
NUMBER = "16175551234"
E164 = "+16175551234"
TRANSACTIONAL = {
    "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
}

# Records the cases seed lacks: a domain with SMS sender settings, one below Pro
# with registration off, and a web user with edit_data in other-proj and in
# ghost-proj, a domain that does not exist.
EXTRA_SEED = {
    "domains": [
        {
            "name": "sender-proj",
            "plan": "advanced",
            "sms_registration_enabled": True,
            "sms_sender_id": "CommCare",
            "sms_origination_number": "+18005550100",
            "sms_max_price_usd": 0.05,
        },
        {"name": "low-off-proj", "plan": "standard", "sms_registration_enabled": False},
    ],
    "apps": [
        {"domain": "sender-proj", "app_id": "sender-app-0001"},
        {"domain": "low-off-proj", "app_id": "low-app-0001"},
    ],
    "users": [
        {
            "username": "ops@other.example",
            "api_key": "ops-key",
            "domains": {
                "other-proj": ["edit_data"],
                "sender-proj": ["edit_data"],
                "low-off-proj": ["edit_data"],
                "ghost-proj": ["edit_data"],
            },
        }
    ],
}


def sns_backend() -> Any:
    return sns_backends[DEFAULT_ACCOUNT_ID][REGION]


@pytest.fixture(scope="module")
def shared_table() -> Iterator[Repository]:
    """Start moto once for the module, with both seeds loaded."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_ENDPOINT_URL") or name == "AWS_PROFILE":
                patch.delenv(name)
        for name, value in TEST_ENVIRONMENT.items():
            patch.setenv(name, value)
        reset_cached_clients()
        with mock_aws():
            client = boto3.client("dynamodb", region_name=REGION)
            repository = Repository(TABLE_NAME, client)
            repository.create_table()
            load_seed(json.loads(CASES_SEED.read_text(encoding="utf-8")), repository)
            load_seed(EXTRA_SEED, repository)
            yield repository
    reset_cached_clients()


@pytest.fixture
def api(shared_table: Repository) -> Repository:
    """Return the shared table, with an empty SNS outbox."""
    sns_backend().sms_messages.clear()
    return shared_table


@pytest.fixture
def environment(api: Repository) -> Iterator[Callable[..., None]]:
    """Yield a function that sets environment variables for one test.

    The handler's cached settings and clients are dropped when the variables
    change and again once they are restored.
    """
    with pytest.MonkeyPatch.context() as patch:

        def set_variables(**variables: str) -> None:
            for name, value in variables.items():
                patch.setenv(name, value)
            reset_cached_clients()

        yield set_variables
    reset_cached_clients()


PublishHook = Callable[[dict[str, Any]], None]


@pytest.fixture
def on_publish(api: Repository) -> Iterator[Callable[[PublishHook], None]]:
    """Yield a function that runs a hook with the parameters of each SNS Publish.

    A hook that raises stops the call before it reaches moto, as a rejection
    from SNS would. Hooks are removed after the test.
    """
    from core.aws import sns_client

    event_name = "provide-client-params.sns.Publish"
    registered: list[tuple[Any, Callable[..., None]]] = []

    def add_hook(hook: PublishHook) -> None:
        def handler(params: dict[str, Any], **kwargs: Any) -> None:
            hook(params)

        client = sns_client()
        client.meta.events.register(event_name, handler)
        registered.append((client, handler))

    yield add_hook
    for client, handler in registered:
        client.meta.events.unregister(event_name, handler)


def reject_with_invalid_parameter(params: dict[str, Any]) -> None:
    raise ClientError(
        {"Error": {"Code": "InvalidParameter", "Message": "rejected by the test"}},
        "Publish",
    )


# Routing


@pytest.mark.parametrize("version", ["v0_5", "v0.5", "v0_6", "v0.6", "v1"])
def test_supported_version(api: Repository, version: str) -> None:
    with_slash = post(body_for("16175551234"), path=path_for("demo", version, "/"))
    without_slash = post(body_for("16175551235"), path=path_for("demo", version, ""))

    assert with_slash["statusCode"] == 200
    assert response_json(with_slash) == buckets(success=["16175551234"])
    assert without_slash["statusCode"] == 200
    assert response_json(without_slash) == buckets(success=["16175551235"])
    assert sms_by_number() == {
        "+16175551234": [ENGLISH, DEMO_INSTALL],
        "+16175551235": [ENGLISH, DEMO_INSTALL],
    }


# Routing is decided before any storage is read, so these tests need no table.


@pytest.mark.parametrize("slash", ["/", ""], ids=["slash", "no-slash"])
@pytest.mark.parametrize("version", ["v0_4", "v0.4", "v0_1", "v2", "v1_0", "V1"])
def test_unsupported_version(api: Repository, version: str, slash: str) -> None:
    path = path_for("demo", version, slash)

    response = post(body_for(NUMBER), path=path)

    assert response["statusCode"] == 404
    assert response_header(response, "Content-Type") == "application/json"
    assert response_json(response) == {"error": f"Not found: {path}"}
    assert sent_sms() == []


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/a/demo/api/v0_5/other_resource/",
        "/a/demo/sms_user_registration_reinstall/",
        "/api/v0_5/sms_user_registration_reinstall/",
    ],
)
def test_unknown_path(api: Repository, path: str, method: str) -> None:
    response = post(body_for(NUMBER), path=path, method=method)

    assert response["statusCode"] == 404
    assert response_header(response, "Content-Type") == "application/json"
    assert response_json(response) == {"error": f"Not found: {path}"}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("slash", ["/", ""], ids=["slash", "no-slash"])
def test_other_method_405(api: Repository, method: str, slash: str) -> None:
    response = post(body_for(NUMBER), path=path_for("demo", "v1", slash), method=method)

    assert response["statusCode"] == 405
    assert response_header(response, "Allow") == "POST"
    assert response_header(response, "Content-Type") == "application/json"
    assert response_json(response) == {
        "error": f"Method {method} is not allowed; use POST."
    }
    assert sent_sms() == []


def test_other_method_unsupported_version(api: Repository) -> None:
    response = post(path=path_for("demo", "v2"), method="GET")

    assert response["statusCode"] == 404


def test_other_method_without_credentials(api: Repository) -> None:
    response = post(path=PATH, method="GET", api_key=None)

    assert response["statusCode"] == 405
    assert response_header(response, "Allow") == "POST"


RESPONSE_KINDS: dict[str, dict[str, Any]] = {
    "200": {"body": body_for(NUMBER)},
    "400": {"raw_body": "not json"},
    "401": {"body": body_for(NUMBER), "api_key": None},
    "403": {"body": body_for(NUMBER), "api_key": VIEWER},
    "404": {"body": body_for(NUMBER), "path": "/nowhere"},
    "405": {"body": body_for(NUMBER), "method": "PATCH"},
}


def test_every_response_json(api: Repository) -> None:
    for status, options in RESPONSE_KINDS.items():
        response = post(**options)

        assert response["statusCode"] == int(status)
        content_type = response_header(response, "Content-Type")
        assert content_type == "application/json", f"{status}: {content_type}"
        assert isinstance(response_json(response), dict), status


def test_authorization_header_name_any_case(api: Repository) -> None:
    response = post(
        body_for(NUMBER),
        api_key=None,
        headers={"AUTHORIZATION": f"apikey {ADMIN}"},
    )

    assert response["statusCode"] == 200


# Order of the checks: credentials, membership, plan, switch, body


def test_bad_body_bad_credentials_401(api: Repository) -> None:
    response = post(raw_body="{not json", api_key="admin@demo.example:wrong-key")

    assert response["statusCode"] == 401
    assert response_json(response) == {"error": "Invalid username or API key."}


def test_bad_body_no_credentials_401(api: Repository) -> None:
    response = post(raw_body="[]", api_key=None)

    assert response["statusCode"] == 401
    assert response_json(response) == {
        "error": f"Missing Authorization header. {USAGE}"
    }


def test_bad_base64_no_credentials_401(api: Repository) -> None:
    response = post(raw_body="%%% not base64 %%%", base64_encoded=True, api_key=None)

    assert response["statusCode"] == 401
    assert response_json(response) == {
        "error": f"Missing Authorization header. {USAGE}"
    }


def test_unknown_domain_bad_credentials_401(api: Repository) -> None:
    response = post(
        body_for(NUMBER),
        path=path_for("no-such-proj"),
        api_key="nobody@demo.example:wrong",
    )

    assert response["statusCode"] == 401
    assert response_json(response) == {"error": "Invalid username or API key."}


def test_unknown_domain_like_non_member(api: Repository) -> None:
    # The viewer is a member of neither. probe-proj exists only for the second call.
    missing = post(body_for(NUMBER), path=path_for("probe-proj"), api_key=VIEWER)
    api.put_domain(Domain("probe-proj", "pro", sms_registration_enabled=True))
    try:
        not_member = post(body_for(NUMBER), path=path_for("probe-proj"), api_key=VIEWER)
    finally:
        api.client.delete_item(
            TableName=TABLE_NAME,
            Key={
                name: {"S": value} for name, value in domain_key("probe-proj").items()
            },
        )

    assert missing["statusCode"] == 403
    assert not_member["statusCode"] == 403
    assert response_json(missing) == response_json(not_member)
    assert response_json(missing) == {
        "error": "You do not have permission to send reinstall SMS in project "
        "'probe-proj'. The edit_data permission is required."
    }


def test_unknown_domain_with_permission_403(api: Repository) -> None:
    response = post(body_for(NUMBER), path=path_for("ghost-proj"), api_key=OPERATOR)

    assert response["statusCode"] == 403
    assert response_json(response) == {
        "error": "You do not have permission to send reinstall SMS in project "
        "'ghost-proj'. The edit_data permission is required."
    }


def test_membership_before_plan(api: Repository) -> None:
    # The viewer is not a member of community-proj, whose plan is too low.
    response = post(
        body_for(NUMBER, app_id="comm-app-0001"),
        path=path_for("community-proj"),
        api_key=VIEWER,
    )

    assert response["statusCode"] == 403


def test_plan_before_switch(api: Repository) -> None:
    response = post(
        body_for(NUMBER, app_id="low-app-0001"),
        path=path_for("low-off-proj"),
        api_key=OPERATOR,
    )

    assert response["statusCode"] == 401
    assert response_json(response) == PLAN_ERROR


def test_plan_before_body(api: Repository) -> None:
    response = post(raw_body="{not json", path=path_for("standard-proj"))

    assert response["statusCode"] == 401
    assert response_json(response) == PLAN_ERROR


def test_switch_before_body(api: Repository) -> None:
    response = post({"users": "none"}, path=path_for("disabled-proj"))

    assert response["statusCode"] == 403
    assert response_json(response) == SWITCH_ERROR


PLAN_CASES = [
    # plan, domain, app, web user, status
    ("community", "community-proj", "comm-app-0001", ADMIN, 401),
    ("standard", "standard-proj", "std-app-0001", ADMIN, 401),
    ("pro", "demo", APP_ID, ADMIN, 200),
    ("advanced", "sender-proj", "sender-app-0001", OPERATOR, 200),
    ("enterprise", "enterprise-proj", "ent-app-0001", ADMIN, 200),
]


def test_plans(api: Repository) -> None:
    for plan, domain, app_id, credentials, status in PLAN_CASES:
        response = post(
            body_for(NUMBER, app_id=app_id), path=path_for(domain), api_key=credentials
        )

        assert response["statusCode"] == status, plan
        if status == 401:
            assert response_json(response) == PLAN_ERROR, plan


REJECTED_CREDENTIALS = {
    "expired@demo.example:expired-key": "API key has expired. Create a new API key.",
    "inactive@demo.example:inactive-key": "Invalid username or API key.",
    "admin@demo.example:demo-viewer-key": "Invalid username or API key.",
    "ghost@demo.example:demo-admin-key": "Invalid username or API key.",
    f"{ADMIN}:extra": "Invalid username or API key.",
}


def test_rejected_credentials(api: Repository) -> None:
    for credentials, error in REJECTED_CREDENTIALS.items():
        response = post(body_for(NUMBER), api_key=credentials)

        assert response["statusCode"] == 401, credentials
        assert response_json(response) == {"error": error}, credentials
    assert sent_sms() == []


def test_restricted_key_in_its_domain(api: Repository) -> None:
    response = post(body_for(NUMBER), api_key="scoped@demo.example:scoped-key")

    assert response["statusCode"] == 200


def test_restricted_key_elsewhere_401(api: Repository) -> None:
    response = post(
        body_for(NUMBER, app_id="other-app-0001"),
        path=path_for("other-proj"),
        api_key="scoped@demo.example:scoped-key",
    )

    assert response["statusCode"] == 401
    assert response_json(response) == {
        "error": "API key is restricted to another project and cannot be used here."
    }


# The body


def test_base64_body(api: Repository) -> None:
    encoded = base64.b64encode(json.dumps(body_for(NUMBER)).encode()).decode()

    response = post(raw_body=encoded, base64_encoded=True)

    assert response["statusCode"] == 200
    assert response_json(response) == buckets(success=[NUMBER])
    assert sms_by_number() == {E164: [ENGLISH, DEMO_INSTALL]}


def test_base64_body_with_bom(api: Repository) -> None:
    data = b"\xef\xbb\xbf" + json.dumps(body_for(NUMBER)).encode()

    response = post(raw_body=base64.b64encode(data).decode(), base64_encoded=True)

    assert response["statusCode"] == 200
    assert response_json(response) == buckets(success=[NUMBER])


def test_base64_invalid(api: Repository) -> None:
    response = post(raw_body="%%% not base64 %%%", base64_encoded=True)

    assert validation_errors(response) == {
        "__all__": "Request body must be a JSON object; the base64 body could not "
        "be decoded"
    }


def test_text_body_with_bom(api: Repository) -> None:
    response = post(raw_body="\ufeff" + json.dumps(body_for(NUMBER)))

    assert response["statusCode"] == 200
    assert response_json(response) == buckets(success=[NUMBER])


def test_unknown_fields_ignored(api: Repository) -> None:
    body = body_for(NUMBER, domain="other-proj", send=False, extra={"a": 1})

    response = post(body)

    assert response["statusCode"] == 200
    assert sms_by_number() == {E164: [ENGLISH, DEMO_INSTALL]}


def test_empty_users(api: Repository) -> None:
    response = post(body_for())

    assert response["statusCode"] == 200
    assert response_json(response) == buckets()
    assert sent_sms() == []


def test_all_errors_in_one_response(api: Repository) -> None:
    body = {"app_id": None, "users": [{"phone_number": 5}], "reinstall_message": "x"}

    response = post(body)

    assert validation_errors(response) == {
        "app_id": "Expected type: str, received null",
        "phone_number": "Expected type: str, received int (users[0])",
        "reinstall_message": "reinstall_message must contain the placeholder {} "
        "for the link",
    }
    assert sent_sms() == []


@pytest.mark.parametrize("app_id", ["deleted-app-0001", "other-app-0001", ""])
def test_app_id_invalid(api: Repository, app_id: str) -> None:
    response = post(body_for(NUMBER, app_id=app_id))

    assert validation_errors(response) == {"app_id": "Invalid app_id specified"}
    assert sent_sms() == []


def test_too_many_users(environment: Callable[..., None]) -> None:
    environment(MAX_USERS_PER_REQUEST="2")

    response = post(body_for("16175551234", "16175551235", "16175551236"))

    assert validation_errors(response) == {
        "users": "Too many users: 3 submitted, the maximum per request is 2. "
        "Split the list into several requests."
    }
    assert sent_sms() == []


def test_users_at_maximum(environment: Callable[..., None]) -> None:
    environment(MAX_USERS_PER_REQUEST="2")

    response = post(body_for("16175551234", "16175551235"))

    assert response["statusCode"] == 200


def test_invalid_message_sends_nothing(api: Repository) -> None:
    response = post(body_for(NUMBER, reinstall_message="Hi {name}, install: {}"))

    assert validation_errors(response) == {
        "reinstall_message": "reinstall_message has an unsupported placeholder "
        "{name}; use {} for the link"
    }
    assert sent_sms() == []


# The SMS


def test_null_message_sends_default(api: Repository) -> None:
    post(body_for(NUMBER, reinstall_message=None))

    assert sent_sms() == [(E164, ENGLISH), (E164, DEMO_INSTALL)]


def test_blank_message_sends_default(api: Repository) -> None:
    post(body_for(NUMBER, reinstall_message="   "))

    assert sent_sms() == [(E164, ENGLISH), (E164, DEMO_INSTALL)]


def test_custom_message_texts(api: Repository) -> None:
    post(body_for(NUMBER, reinstall_message="  Get {{CommCare}} here: {0}\n"))

    assert sent_sms() == [
        (E164, f"Get {{CommCare}} here: {LINK}"),
        (E164, DEMO_INSTALL),
    ]


def test_custom_message_overrides_language(api: Repository) -> None:
    post(body_for("16175550100", reinstall_message="Install: {}"))

    assert sent_sms() == [
        ("+16175550100", f"Install: {LINK}"),
        ("+16175550100", DEMO_INSTALL),
    ]


def test_domain_default_language_text(api: Repository) -> None:
    post(body_for(NUMBER, app_id="ent-app-0001"), path=path_for("enterprise-proj"))

    assert sent_sms() == [
        (E164, ENTERPRISE_SWAHILI),
        (E164, install_sms("enterprise-proj", "ent-app-0001")),
    ]


def test_languages_per_number(api: Repository) -> None:
    response = post(body_for("16175550100", NUMBER))

    assert response_json(response) == buckets(success=["16175550100", NUMBER])
    assert sms_by_number() == {
        "+16175550100": [DEMO_FRENCH, DEMO_INSTALL],
        E164: [ENGLISH, DEMO_INSTALL],
    }


def test_hq_base_url_setting(environment: Callable[..., None]) -> None:
    environment(HQ_BASE_URL="https://hq.example.org/")

    post(body_for(NUMBER))

    assert sent_sms() == [
        (E164, ENGLISH),
        (E164, install_sms("demo", APP_ID, "https://hq.example.org")),
    ]


def test_numbers_sent_in_e164(api: Repository) -> None:
    spellings = [
        "+1 (617) 555-1234",
        "1.617.555.1235",
        "١٦١٧٥٥٥١٢٣٦",
        "+44 (0)20 7946 0958",
    ]

    response = post(body_for(*spellings))

    assert response_json(response) == buckets(success=spellings)
    assert sorted(sms_by_number()) == [
        "+16175551234",
        "+16175551235",
        "+16175551236",
        "+442079460958",
    ]


def test_sms_type_transactional(on_publish: Callable[[PublishHook], None]) -> None:
    publish_calls: list[dict[str, Any]] = []
    on_publish(publish_calls.append)

    post(body_for(NUMBER))

    assert [call["PhoneNumber"] for call in publish_calls] == [E164, E164]
    assert [call["MessageAttributes"] for call in publish_calls] == [
        TRANSACTIONAL,
        TRANSACTIONAL,
    ]


def test_sender_settings_attributes(on_publish: Callable[[PublishHook], None]) -> None:
    publish_calls: list[dict[str, Any]] = []
    on_publish(publish_calls.append)
    expected = {
        **TRANSACTIONAL,
        "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "CommCare"},
        "AWS.MM.SMS.OriginationNumber": {
            "DataType": "String",
            "StringValue": "+18005550100",
        },
        "AWS.SNS.SMS.MaxPrice": {"DataType": "Number", "StringValue": "0.05"},
    }

    response = post(
        body_for(NUMBER, app_id="sender-app-0001"),
        path=path_for("sender-proj"),
        api_key=OPERATOR,
    )

    assert response["statusCode"] == 200
    assert [call["Message"] for call in publish_calls] == [
        ENGLISH,
        install_sms("sender-proj", "sender-app-0001"),
    ]
    assert [call["MessageAttributes"] for call in publish_calls] == [expected, expected]


def test_first_message_rejected(on_publish: Callable[[PublishHook], None]) -> None:
    def reject_second_number(params: dict[str, Any]) -> None:
        if params["PhoneNumber"] == "+16175551235":
            reject_with_invalid_parameter(params)

    on_publish(reject_second_number)

    response = post(body_for(NUMBER, "16175551235"))

    assert response_json(response) == buckets(success=[NUMBER], error=["16175551235"])
    assert sms_by_number() == {E164: [ENGLISH, DEMO_INSTALL]}


def test_second_message_rejected(on_publish: Callable[[PublishHook], None]) -> None:
    def reject_install_message(params: dict[str, Any]) -> None:
        if (
            params["PhoneNumber"] == "+16175551235"
            and params["Message"] == DEMO_INSTALL
        ):
            reject_with_invalid_parameter(params)

    on_publish(reject_install_message)

    response = post(body_for(NUMBER, "16175551235"))

    assert response_json(response) == buckets(success=[NUMBER], error=["16175551235"])
    assert sms_by_number() == {
        E164: [ENGLISH, DEMO_INSTALL],
        "+16175551235": [ENGLISH],
    }


# The registry of numbers and the opt-out list


def test_verified_elsewhere_is_error(api: Repository) -> None:
    response = post(body_for("+1 (617) 555-0101"))

    assert response_json(response) == buckets(error=["+1 (617) 555-0101"])
    assert sent_sms() == []


def test_verified_here_is_sent(api: Repository) -> None:
    response = post(
        body_for("16175550101", app_id="other-app-0001"),
        path=path_for("other-proj"),
        api_key=OPERATOR,
    )

    assert response_json(response) == buckets(success=["16175550101"])
    assert sms_by_number() == {
        "+16175550101": [ENGLISH, install_sms("other-proj", "other-app-0001")]
    }


def test_unverified_elsewhere_not_blocking(api: Repository) -> None:
    response = post(body_for("16175550102"))

    assert response_json(response) == buckets(success=["16175550102"])
    assert sms_by_number() == {"+16175550102": [ENGLISH, DEMO_INSTALL]}


def test_unverified_gives_no_language(api: Repository) -> None:
    # 16175550103 is pending in enterprise-proj with language fr. A pending number
    # gives no language, so the domain's default language (sw) applies.
    response = post(
        body_for("16175550103", app_id="ent-app-0001"), path=path_for("enterprise-proj")
    )

    assert response_json(response) == buckets(success=["16175550103"])
    assert sms_by_number() == {
        "+16175550103": [
            ENTERPRISE_SWAHILI,
            install_sms("enterprise-proj", "ent-app-0001"),
        ]
    }


def test_opted_out_is_error(api: Repository) -> None:
    # +447420500600 is in moto's fixed ListPhoneNumbersOptedOut response.
    response = post(body_for("447420500600", NUMBER))

    assert response_json(response) == buckets(success=[NUMBER], error=["447420500600"])
    assert sms_by_number() == {E164: [ENGLISH, DEMO_INSTALL]}


# Failures


def test_unexpected_error_500(api: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: Repository, phone_numbers: Any) -> None:
        raise RuntimeError("registry lookup failed in test")

    monkeypatch.setattr(Repository, "get_phone_registrations", fail)

    response = post(body_for(NUMBER), request_id="req-unexpected-0001")

    assert response["statusCode"] == 500
    assert response_header(response, "Content-Type") == "application/json"
    assert response_json(response) == {
        "error": "Internal server error",
        "request_id": "req-unexpected-0001",
    }
    assert sent_sms() == []
