"""API key authentication, domain authorization and plan entitlements."""

from datetime import UTC, datetime, timedelta

import pytest

from core.auth import (
    Credentials,
    api_key_matches,
    authenticate,
    authorize,
    generate_api_key,
    hash_api_key,
    parse_authorization,
)
from core.entitlements import check_entitlements
from core.errors import (
    AuthenticationError,
    PermissionDeniedError,
    PlanNotEntitledError,
    RegistrationDisabledError,
)
from core.models import PLANS, ApiKey, Domain, WebUser

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
KEY = "s3cret-key"
USAGE = "Send the header 'Authorization: ApiKey <username>:<api_key>'."
INVALID = "Invalid username or API key."
NO_PERMISSION = (
    "You do not have permission to send reinstall SMS in project 'demo'. "
    "The edit_data permission is required."
)


def make_user(
    *,
    active: bool = True,
    permissions: tuple[str, ...] = ("edit_data",),
    domain: str | None = None,
    expires: datetime | None = None,
    revoked: bool = False,
) -> WebUser:
    api_key = ApiKey(
        key_id="k1",
        key_hash=hash_api_key(KEY),
        domain=domain,
        expires=expires,
        revoked=revoked,
    )
    return WebUser(
        username="admin@demo.example",
        active=active,
        api_keys=(api_key,),
        permissions={"demo": permissions},
    )


def login(user: WebUser | None, key: str = KEY, domain: str = "demo") -> ApiKey:
    return authenticate(user, Credentials("admin@demo.example", key), domain, NOW)


def auth_error(user: WebUser | None, key: str = KEY, domain: str = "demo") -> str:
    with pytest.raises(AuthenticationError) as raised:
        login(user, key, domain)
    assert raised.value.status_code == 401
    return raised.value.message


# Header parsing


@pytest.mark.parametrize("scheme", ["ApiKey", "apikey", "APIKEY", "apiKEY"])
def test_header_scheme_case_insensitive(scheme: str) -> None:
    credentials = parse_authorization(f"{scheme} admin@demo.example:{KEY}")

    assert credentials == Credentials("admin@demo.example", KEY)


def test_header_extra_spaces() -> None:
    credentials = parse_authorization(f"  ApiKey   admin@demo.example:{KEY}  ")

    assert credentials == Credentials("admin@demo.example", KEY)


def test_header_username_with_colon() -> None:
    # The key is what follows the last colon, because generated keys have none.
    assert parse_authorization("ApiKey a:b:c") == Credentials("a:b", "c")


@pytest.mark.parametrize("header", [None, "", "   "])
def test_header_missing(header: str | None) -> None:
    with pytest.raises(AuthenticationError) as raised:
        parse_authorization(header)

    assert raised.value.message == f"Missing Authorization header. {USAGE}"


@pytest.mark.parametrize(
    "header",
    [
        "ApiKey",
        "ApiKey admin@demo.example",
        f"ApiKey :{KEY}",
        "ApiKey admin@demo.example:",
        "ApiKey :",
    ],
)
def test_header_malformed(header: str) -> None:
    with pytest.raises(AuthenticationError) as raised:
        parse_authorization(header)

    assert raised.value.message == f"Malformed Authorization header. {USAGE}"


@pytest.mark.parametrize(
    "header",
    [
        "Basic YWRtaW46c2VjcmV0",
        f"Bearer {KEY}",
        f"Token admin@demo.example:{KEY}",
        f"admin@demo.example:{KEY}",
    ],
)
def test_header_other_scheme(header: str) -> None:
    with pytest.raises(AuthenticationError) as raised:
        parse_authorization(header)

    assert raised.value.message == f"Unsupported Authorization scheme. {USAGE}"


# Hashing


def test_hash_never_contains_key() -> None:
    stored = hash_api_key(KEY)

    assert stored != KEY
    assert KEY not in stored
    assert stored.startswith("sha256$")


def test_hash_differs_per_salt() -> None:
    first = hash_api_key(KEY, salt=b"\x01" * 16)
    second = hash_api_key(KEY, salt=b"\x02" * 16)

    assert first != second
    assert api_key_matches(KEY, first)
    assert api_key_matches(KEY, second)


def test_hash_random_salt() -> None:
    assert hash_api_key(KEY) != hash_api_key(KEY)


def test_hash_same_salt_same_hash() -> None:
    assert hash_api_key(KEY, salt=b"\x01" * 16) == hash_api_key(KEY, salt=b"\x01" * 16)


def test_hash_rejects_other_key() -> None:
    assert not api_key_matches("other-key", hash_api_key(KEY))


@pytest.mark.parametrize(
    "stored", ["", KEY, "sha256$zz$00", f"md5${'00' * 16}${'00' * 16}", "a$b$c$d"]
)
def test_hash_malformed_stored_value(stored: str) -> None:
    assert not api_key_matches(KEY, stored)


def test_generated_keys_are_random() -> None:
    first = generate_api_key()

    assert len(first) == 64
    assert first != generate_api_key()


# Authentication


def test_valid_key_accepted() -> None:
    user = make_user()

    assert login(user) == user.api_keys[0]


def test_wrong_key_rejected() -> None:
    assert auth_error(make_user(), key="wrong-key") == INVALID


def test_unknown_user_rejected() -> None:
    assert auth_error(None) == INVALID


def test_revoked_key_rejected() -> None:
    assert auth_error(make_user(revoked=True)) == INVALID


def test_inactive_user_rejected() -> None:
    assert auth_error(make_user(active=False)) == INVALID


def test_expired_key_rejected() -> None:
    user = make_user(expires=NOW - timedelta(seconds=1))

    assert auth_error(user) == "API key has expired. Create a new API key."


def test_key_expiring_now_rejected() -> None:
    assert (
        auth_error(make_user(expires=NOW))
        == "API key has expired. Create a new API key."
    )


def test_naive_expiry_read_as_utc() -> None:
    expired = make_user(expires=(NOW - timedelta(minutes=1)).replace(tzinfo=None))

    assert auth_error(expired) == "API key has expired. Create a new API key."


def test_key_before_expiry_accepted() -> None:
    user = make_user(expires=NOW + timedelta(days=1))

    assert login(user) == user.api_keys[0]


def test_restricted_key_used_elsewhere() -> None:
    user = make_user(domain="demo")

    assert auth_error(user, domain="other-proj") == (
        "API key is restricted to another project and cannot be used here."
    )


def test_restricted_key_in_its_domain() -> None:
    user = make_user(domain="demo")

    assert login(user, domain="demo") == user.api_keys[0]


def test_second_key_of_user_accepted() -> None:
    keys = (
        ApiKey(key_id="k1", key_hash=hash_api_key("first")),
        ApiKey(key_id="k2", key_hash=hash_api_key("second")),
    )
    user = WebUser(username="admin@demo.example", api_keys=keys)

    assert login(user, key="second") == keys[1]


# Authorization


def test_member_with_edit_data_authorized() -> None:
    authorize(make_user(), "demo", Domain("demo", "pro", True))


def test_member_without_edit_data() -> None:
    with pytest.raises(PermissionDeniedError) as raised:
        authorize(make_user(permissions=()), "demo", Domain("demo", "pro", True))

    assert raised.value.status_code == 403
    assert raised.value.message == NO_PERMISSION


def test_non_member() -> None:
    user = WebUser(username="admin@demo.example", permissions={"other": ("edit_data",)})

    with pytest.raises(PermissionDeniedError) as raised:
        authorize(user, "demo", Domain("demo", "pro", True))

    assert raised.value.message == NO_PERMISSION


def test_unknown_domain_same_as_no_permission() -> None:
    with pytest.raises(PermissionDeniedError) as missing_domain:
        authorize(make_user(), "demo", None)
    with pytest.raises(PermissionDeniedError) as no_permission:
        authorize(make_user(permissions=()), "demo", Domain("demo", "pro", True))

    assert missing_domain.value.status_code == no_permission.value.status_code
    assert missing_domain.value.body() == no_permission.value.body()
    assert missing_domain.value.body() == {"error": NO_PERMISSION}


# Plans and the feature switch


def test_plan_order() -> None:
    assert PLANS == ("community", "standard", "pro", "advanced", "enterprise")


@pytest.mark.parametrize("plan", ["community", "standard", "free", ""])
def test_plan_below_pro_rejected(plan: str) -> None:
    with pytest.raises(PlanNotEntitledError) as raised:
        check_entitlements(Domain("demo", plan, sms_registration_enabled=True))

    assert raised.value.status_code == 401
    assert raised.value.body() == {
        "error": "Your current plan does not have access to this feature"
    }


@pytest.mark.parametrize("plan", ["pro", "advanced", "enterprise"])
def test_plan_pro_or_higher_accepted(plan: str) -> None:
    check_entitlements(Domain("demo", plan, sms_registration_enabled=True))


@pytest.mark.parametrize("plan", ["pro", "advanced", "enterprise"])
def test_registration_disabled_rejected(plan: str) -> None:
    with pytest.raises(RegistrationDisabledError) as raised:
        check_entitlements(Domain("demo", plan, sms_registration_enabled=False))

    assert raised.value.status_code == 403
    assert raised.value.body() == {
        "error": "Please first enable SMS mobile worker registration for your project."
    }


def test_plan_checked_before_switch() -> None:
    with pytest.raises(PlanNotEntitledError):
        check_entitlements(Domain("demo", "community", sms_registration_enabled=False))
