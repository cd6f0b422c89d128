"""Body validation: every field error, with CommCare HQ's message prefixes."""

import json
from typing import Any

import pytest

from core.errors import RESOURCE_NAME, RequestValidationError
from core.messages import PLAY_STORE_LINK
from core.models import App
from core.settings import Settings
from core.validation import ReinstallRequest, parse_body, validate_request

APP_ID = "abcd1234abcd1234"
APP = App(domain="demo", app_id=APP_ID, name="Demo app")
USERS = [{"phone_number": "16175551234"}]


def validate(
    body: Any = None,
    *,
    raw: bytes | None = None,
    app: App | None = APP,
    max_users: int = 1000,
) -> ReinstallRequest:
    data = raw if raw is not None else json.dumps(body).encode("utf-8")
    return validate_request(parse_body(data), app, max_users)


def field_errors(
    body: Any = None,
    *,
    raw: bytes | None = None,
    app: App | None = APP,
    max_users: int = 1000,
) -> dict[str, str]:
    with pytest.raises(RequestValidationError) as raised:
        validate(body, raw=raw, app=app, max_users=max_users)
    assert raised.value.status_code == 400
    assert raised.value.body() == {RESOURCE_NAME: raised.value.field_errors}
    return raised.value.field_errors


def with_message(message: Any) -> dict[str, Any]:
    return {"app_id": APP_ID, "users": USERS, "reinstall_message": message}


# Valid bodies


def test_valid_body_keeps_spelling() -> None:
    users = [{"phone_number": "+1 (617) 555-1234"}, {"phone_number": "bad"}]

    request = validate({"app_id": APP_ID, "users": users})

    assert request == ReinstallRequest(APP_ID, ["+1 (617) 555-1234", "bad"], None)


def test_empty_users_list() -> None:
    assert validate({"app_id": APP_ID, "users": []}).phone_numbers == []


def test_unknown_fields_ignored() -> None:
    body = {"app_id": APP_ID, "users": USERS, "domain": "x", "extra": [1, 2]}

    assert validate(body) == ReinstallRequest(APP_ID, ["16175551234"], None)


def test_byte_order_mark_ignored() -> None:
    raw = b"\xef\xbb\xbf" + json.dumps({"app_id": APP_ID, "users": USERS}).encode()

    assert validate(raw=raw) == ReinstallRequest(APP_ID, ["16175551234"], None)


def test_null_message_not_given() -> None:
    assert validate(with_message(None)).custom_first_message is None


def test_blank_message_not_given() -> None:
    assert validate(with_message(" \n\t ")).custom_first_message is None


# Body not a JSON object


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (b"not json", "invalid JSON"),
        (b"", "invalid JSON"),
        (b"{", "invalid JSON"),
        (b"\xff\xfe{}", "invalid JSON"),
        (b"[]", "list"),
        (b'"text"', "str"),
        (b"42", "int"),
        (b"null", "null"),
    ],
)
def test_body_not_json_object(raw: bytes, found: str) -> None:
    assert field_errors(raw=raw) == {
        "__all__": f"Request body must be a JSON object; received {found}"
    }


# app_id


def test_app_id_missing() -> None:
    assert field_errors({"users": USERS}) == {"app_id": "This field is required"}


@pytest.mark.parametrize(
    ("value", "found"),
    [(None, "null"), (123, "int"), (["x"], "list"), (True, "bool")],
)
def test_app_id_not_string(value: Any, found: str) -> None:
    errors = field_errors({"app_id": value, "users": USERS})

    assert errors == {"app_id": f"Expected type: str, received {found}"}


def test_app_id_unknown() -> None:
    errors = field_errors({"app_id": "no-such-app", "users": USERS}, app=None)

    assert errors == {"app_id": "Invalid app_id specified"}


def test_app_id_deleted() -> None:
    deleted = App(domain="demo", app_id=APP_ID, deleted=True)

    errors = field_errors({"app_id": APP_ID, "users": USERS}, app=deleted)

    assert errors == {"app_id": "Invalid app_id specified"}


def test_app_id_empty() -> None:
    assert field_errors({"app_id": "", "users": USERS}) == {
        "app_id": "Invalid app_id specified"
    }


def test_app_id_other_than_stored() -> None:
    errors = field_errors({"app_id": "other-app-0001", "users": USERS})

    assert errors == {"app_id": "Invalid app_id specified"}


# users


def test_users_missing() -> None:
    assert field_errors({"app_id": APP_ID}) == {"users": "This field is required"}


@pytest.mark.parametrize(
    ("value", "found"),
    [
        (None, "null"),
        ("16175551234", "str"),
        ({"phone_number": "16175551234"}, "dict"),
        (5, "int"),
    ],
)
def test_users_not_list(value: Any, found: str) -> None:
    errors = field_errors({"app_id": APP_ID, "users": value})

    assert errors == {"users": f"Expected type: list, received {found}"}


def test_user_not_object() -> None:
    errors = field_errors({"app_id": APP_ID, "users": ["16175551234"]})

    assert errors == {"users": "Expected a list of dictionaries; users[0] is str"}


def test_user_without_phone_number() -> None:
    users = [{"phone_number": "16175551234"}, {"number": "16175551235"}]

    errors = field_errors({"app_id": APP_ID, "users": users})

    assert errors == {"phone_number": "This field is required (users[1])"}


@pytest.mark.parametrize(
    ("value", "found"),
    [(16175551234, "int"), (1.5, "float"), (None, "null"), (["1"], "list")],
)
def test_phone_number_not_string(value: Any, found: str) -> None:
    errors = field_errors({"app_id": APP_ID, "users": [{"phone_number": value}]})

    assert errors == {
        "phone_number": f"Expected type: str, received {found} (users[0])"
    }


def test_duplicate_after_normalization() -> None:
    users = [{"phone_number": "+1 (617) 555-1234"}, {"phone_number": "16175551234"}]

    errors = field_errors({"app_id": APP_ID, "users": users})

    assert errors == {
        "users": "phone_number cannot be reused within a request: 16175551234 "
        "(users[0] and users[1])"
    }


def test_duplicate_unicode_digits() -> None:
    users = [{"phone_number": "16175551234"}, {"phone_number": "١٦١٧٥٥٥١٢٣٤"}]

    errors = field_errors({"app_id": APP_ID, "users": users})

    assert errors == {
        "users": "phone_number cannot be reused within a request: 16175551234 "
        "(users[0] and users[1])"
    }


def test_duplicate_invalid_numbers() -> None:
    users = [
        {"phone_number": "16175551234"},
        {"phone_number": "1-617-JKL"},
        {"phone_number": "1617 JKL"},
    ]

    errors = field_errors({"app_id": APP_ID, "users": users})

    assert errors == {
        "users": "phone_number cannot be reused within a request: 1617JKL "
        "(users[1] and users[2])"
    }


def test_distinct_numbers_not_duplicates() -> None:
    users = [{"phone_number": "16175551234"}, {"phone_number": "16175551235"}]

    request = validate({"app_id": APP_ID, "users": users})

    assert request.phone_numbers == ["16175551234", "16175551235"]


def test_users_over_maximum() -> None:
    users = [{"phone_number": f"1617555{index:04d}"} for index in range(4)]

    errors = field_errors({"app_id": APP_ID, "users": users}, max_users=3)

    assert errors == {
        "users": "Too many users: 4 submitted, the maximum per request is 3. "
        "Split the list into several requests."
    }


def test_users_at_maximum() -> None:
    users = [{"phone_number": f"1617555{index:04d}"} for index in range(3)]

    assert (
        len(validate({"app_id": APP_ID, "users": users}, max_users=3).phone_numbers)
        == 3
    )


def test_users_over_default_maximum() -> None:
    maximum = Settings().max_users_per_request
    users = [{"phone_number": f"1617{index:07d}"} for index in range(maximum + 1)]

    errors = field_errors({"app_id": APP_ID, "users": users}, max_users=maximum)

    assert maximum == 1000
    assert errors == {
        "users": "Too many users: 1001 submitted, the maximum per request is 1000. "
        "Split the list into several requests."
    }


# Several problems


def test_all_field_errors_at_once() -> None:
    body = {"app_id": 7, "users": "16175551234", "reinstall_message": "no link"}

    errors = field_errors(body)

    assert errors == {
        "app_id": "Expected type: str, received int",
        "users": "Expected type: list, received str",
        "reinstall_message": "reinstall_message must contain the placeholder {} "
        "for the link",
    }


def test_errors_on_users_and_phone_number() -> None:
    users = [5, {"phone_number": 6}, {}]

    errors = field_errors({"users": users})

    assert errors == {
        "app_id": "This field is required",
        "users": "Expected a list of dictionaries; users[0] is int",
        "phone_number": "Expected type: str, received int (users[1]) "
        "(and 1 more problem)",
    }


def test_extra_problems_counted() -> None:
    errors = field_errors({"app_id": APP_ID, "users": [1, "x", None]})

    assert errors == {
        "users": "Expected a list of dictionaries; users[0] is int "
        "(and 2 more problems)"
    }


def test_other_problem_kind_counted() -> None:
    users = [
        "x",
        {"phone_number": "16175551234"},
        {"phone_number": "+16175551234"},
    ]

    errors = field_errors({"app_id": APP_ID, "users": users})

    assert errors == {
        "users": "Expected a list of dictionaries; users[0] is str (and 1 more problem)"
    }


# reinstall_message placeholders


@pytest.mark.parametrize(
    ("value", "found"), [(5, "int"), (["{}"], "list"), ({"a": 1}, "dict")]
)
def test_reinstall_message_not_string(value: Any, found: str) -> None:
    assert field_errors(with_message(value)) == {
        "reinstall_message": f"Expected type: str, received {found}"
    }


@pytest.mark.parametrize(
    ("message", "first_sms"),
    [
        ("Install: {}", f"Install: {PLAY_STORE_LINK}"),
        ("Install: {0}", f"Install: {PLAY_STORE_LINK}"),
        ("{} is the link", f"{PLAY_STORE_LINK} is the link"),
        ("Use {{braces}}: {}", f"Use {{braces}}: {PLAY_STORE_LINK}"),
        ("{{}} {}", f"{{}} {PLAY_STORE_LINK}"),
        ("  Install: {}  \n", f"Install: {PLAY_STORE_LINK}"),
    ],
)
def test_reinstall_message_valid(message: str, first_sms: str) -> None:
    assert validate(with_message(message)).custom_first_message == first_sms


@pytest.mark.parametrize(
    ("message", "error"),
    [
        pytest.param(
            "Install CommCare",
            "reinstall_message must contain the placeholder {} for the link",
            id="none",
        ),
        pytest.param(
            "Literal {{}} only",
            "reinstall_message must contain the placeholder {} for the link",
            id="only-literal-braces",
        ),
        pytest.param(
            "First {} then {}",
            "reinstall_message has more than one placeholder; "
            "use {} exactly once for the link",
            id="two",
        ),
        pytest.param(
            "First {} then {0}",
            "reinstall_message has more than one placeholder; "
            "use {} exactly once for the link",
            id="two-mixed",
        ),
        pytest.param(
            "Hello {name}: {}",
            "reinstall_message has an unsupported placeholder {name}; "
            "use {} for the link",
            id="named",
        ),
        pytest.param(
            "Install: {1}",
            "reinstall_message has an unsupported placeholder {1}; use {} for the link",
            id="numbered",
        ),
        pytest.param(
            "Install: {0!r}",
            "reinstall_message has an unsupported placeholder {0!r}; "
            "use {} for the link",
            id="conversion",
        ),
        pytest.param(
            "Install: {:>5}",
            "reinstall_message has an unsupported placeholder {:>5}; "
            "use {} for the link",
            id="format-spec",
        ),
        pytest.param(
            "Install: {0.x}",
            "reinstall_message has an unsupported placeholder {0.x}; "
            "use {} for the link",
            id="attribute",
        ),
        pytest.param(
            "Install {} now {",
            "reinstall_message has an unmatched brace (Single '{' encountered in "
            "format string); write {{ or }} for a literal brace",
            id="unmatched-open",
        ),
        pytest.param(
            "Install {} now }",
            "reinstall_message has an unmatched brace (Single '}' encountered in "
            "format string); write {{ or }} for a literal brace",
            id="unmatched-close",
        ),
        pytest.param(
            "Install {",
            "reinstall_message has an unmatched brace (Single '{' encountered in "
            "format string); write {{ or }} for a literal brace",
            id="unmatched-open-only",
        ),
        pytest.param(
            "Install {0",
            "reinstall_message has an unmatched brace (expected '}' before end of "
            "string); write {{ or }} for a literal brace",
            id="unclosed-field",
        ),
    ],
)
def test_reinstall_message_invalid(message: str, error: str) -> None:
    assert field_errors(with_message(message)) == {"reinstall_message": error}


# reinstall_message size, counted in UTF-8 with the link in place


def sized_message(size: int) -> str:
    """Return a template that is ``size`` UTF-8 bytes once the link is in place.

    Most characters are two-byte ``é``, so the text stays far below 1600
    characters even where it is over 1600 bytes.
    """
    room = size - len(PLAY_STORE_LINK.encode("utf-8"))
    return "é" * (room // 2) + "x" * (room % 2) + "{}"


def test_sized_message_helper() -> None:
    rendered = sized_message(1601).replace("{}", PLAY_STORE_LINK)

    assert len(rendered.encode("utf-8")) == 1601
    assert len(rendered) < 1000


def test_reinstall_message_at_byte_limit() -> None:
    request = validate(with_message(sized_message(1600)))

    assert request.custom_first_message is not None
    assert len(request.custom_first_message.encode("utf-8")) == 1600


def test_reinstall_message_over_byte_limit() -> None:
    assert field_errors(with_message(sized_message(1601))) == {
        "reinstall_message": "reinstall_message is 1601 bytes in UTF-8 with the link "
        "in place; the maximum for one SMS is 1600 bytes"
    }


def test_byte_limit_after_stripping() -> None:
    request = validate(with_message("   " + sized_message(1600) + "\n\n"))

    assert request.custom_first_message is not None
    assert len(request.custom_first_message.encode("utf-8")) == 1600


def test_reinstall_message_limit_counts_link() -> None:
    # The 1590 bytes of text are under 1600, but not once the link is in place.
    message = "x" * 1590 + "{}"

    errors = field_errors(with_message(message))

    assert errors == {
        "reinstall_message": f"reinstall_message is {1590 + len(PLAY_STORE_LINK)} "
        "bytes in UTF-8 with the link in place; the maximum for one SMS is 1600 bytes"
    }
