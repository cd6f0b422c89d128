"""reinstall-admin against a moto table, called in-process through ``main(argv)``."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import CASES_SEED, TABLE_NAME, api_event

from admin.cli import main
from core import auth
from core.messages import TRANSLATION_KEY
from core.models import App, Domain, PhoneRegistration
from core.repository import Repository
from core.sender import INSTALL_MESSAGE, PLAY_STORE_MESSAGE
from core.smslog import SmsLog, SmsLogRecord
from handler.api import lambda_handler

TABLE = ["--table", TABLE_NAME]
PATH = "/a/field-proj/api/v0_5/sms_user_registration_reinstall/"


class Run:
    """The exit status and output of one reinstall-admin command."""

    def __init__(self, status: int, out: str, err: str) -> None:
        self.status = status
        self.out = out
        self.err = err

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def admin(repository: Repository, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run reinstall-admin with ``--table`` on the moto table; return a Run."""

    def run(*argv: str) -> Run:
        capsys.readouterr()
        status = main([*TABLE, *argv])
        captured = capsys.readouterr()
        return Run(status, captured.out, captured.err)

    return run


@pytest.fixture
def field_proj(admin: Any) -> Any:
    """A domain ``field-proj`` (pro, registration on) with one app and one user."""
    assert (
        admin(
            "domain", "set", "field-proj", "--plan", "pro", "--registration", "on"
        ).status
        == 0
    )
    assert (
        admin("app", "add", "field-proj", "app-0001", "--name", "Field app").status == 0
    )
    assert admin("user", "add", "ops@example.org").status == 0
    assert (
        admin("user", "grant", "ops@example.org", "field-proj", "edit_data").status == 0
    )
    return admin


def scan_table(repository: Repository) -> list[dict[str, Any]]:
    response = repository.client.scan(TableName=repository.table_name)
    return response["Items"]


# Table selection and AWS errors


def test_no_table_is_usage_error(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TABLE_NAME")
    status = main(["domain", "show", "demo"])
    assert status == 2
    assert "pass --table or set TABLE_NAME" in capsys.readouterr().err


def test_table_name_from_environment(
    repository: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["domain", "set", "env-proj", "--plan", "pro"])
    assert status == 0
    assert repository.get_domain("env-proj") is not None


def test_missing_table_is_reported(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--table", "no-such-table", "domain", "show", "demo"])
    err = capsys.readouterr().err
    assert status == 1
    assert "Table 'no-such-table' not found" in err


def test_unknown_command_is_usage_error(admin: Any) -> None:
    run = admin("domain", "rename", "demo")
    assert run.status == 2
    assert "invalid choice: 'rename'" in run.err


# load-seed


def test_load_seed_stores_records(admin: Any, repository: Repository) -> None:
    run = admin("load-seed", str(CASES_SEED))
    assert run.status == 0
    assert run.out == (
        f"Loaded 6 domains, 7 apps, 5 users, 4 phone_numbers into table {TABLE_NAME}.\n"
    )
    assert repository.get_domain("enterprise-proj") is not None
    assert repository.get_phone("16175550101") == PhoneRegistration(
        phone_number="16175550101", domain="other-proj", verified=True
    )


def test_load_seed_creates_missing_table(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["--table", "fresh-table", "load-seed", str(CASES_SEED), "--create-table"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("Created table fresh-table.\n")


def test_load_seed_rejects_invalid_json(admin: Any, tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text("{not json", encoding="utf-8")
    run = admin("load-seed", str(seed))
    assert run.status == 1
    assert f"Seed file {seed} is not valid JSON" in run.err


def test_load_seed_reports_missing_file(admin: Any, tmp_path: Path) -> None:
    run = admin("load-seed", str(tmp_path / "absent.json"))
    assert run.status == 1
    assert "Cannot read seed file" in run.err


def test_load_seed_rejects_incomplete_record(admin: Any, tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"domains": [{"plan": "pro"}]}), encoding="utf-8")
    run = admin("load-seed", str(seed))
    assert run.status == 1
    assert "has an invalid record (KeyError: 'name')" in run.err


# domain


def test_domain_set_creates_domain(admin: Any, repository: Repository) -> None:
    run = admin(
        "domain", "set", "new-proj",
        "--plan", "advanced",
        "--registration", "on",
        "--default-language", "fr",
        "--sender-id", "CommCare",
        "--origination-number", "+1 (415) 555-0100",
        "--max-price", "0.50",
        "--allowed-countries", "ke, ug",
        "--daily-sms-limit", "5000",
        "--delivery", "queued",
    )  # fmt: skip
    assert run.status == 0
    assert run.out == "Created domain new-proj.\n"
    assert repository.get_domain("new-proj") == Domain(
        name="new-proj",
        plan="advanced",
        sms_registration_enabled=True,
        default_language="fr",
        sms_sender_id="CommCare",
        sms_origination_number="+14155550100",
        sms_max_price_usd="0.50",
        allowed_countries=("KE", "UG"),
        daily_sms_limit=5000,
        delivery="queued",
    )


def test_domain_set_new_domain_needs_plan(admin: Any, repository: Repository) -> None:
    run = admin("domain", "set", "new-proj", "--registration", "on")
    assert run.status == 1
    assert "Domain 'new-proj' does not exist; pass --plan to create it." in run.err
    assert repository.get_domain("new-proj") is None


def test_domain_set_new_domain_registration_off(
    admin: Any, repository: Repository
) -> None:
    assert admin("domain", "set", "new-proj", "--plan", "pro").status == 0
    domain = repository.get_domain("new-proj")
    assert domain is not None
    assert domain.sms_registration_enabled is False
    assert domain.delivery == "direct"
    assert domain.allowed_countries is None


def test_domain_set_changes_only_given(admin: Any, repository: Repository) -> None:
    admin(
        "domain",
        "set",
        "p",
        "--plan",
        "pro",
        "--sender-id",
        "Clinic1",
        "--daily-sms-limit",
        "10",
    )
    run = admin("domain", "set", "p", "--plan", "enterprise", "--registration", "on")
    assert run.status == 0
    assert run.out == "Updated domain p.\n"
    domain = repository.get_domain("p")
    assert domain is not None
    assert domain.plan == "enterprise"
    assert domain.sms_registration_enabled is True
    assert domain.sms_sender_id == "Clinic1"
    assert domain.daily_sms_limit == 10


def test_domain_set_clears_settings(admin: Any, repository: Repository) -> None:
    admin(
        "domain", "set", "p", "--plan", "pro",
        "--sender-id", "Clinic1",
        "--origination-number", "12345",
        "--max-price", "1",
        "--daily-sms-limit", "10",
        "--allowed-countries", "KE",
    )  # fmt: skip
    run = admin(
        "domain", "set", "p",
        "--sender-id", "none",
        "--origination-number", "none",
        "--max-price", "none",
        "--daily-sms-limit", "none",
        "--allowed-countries", "all",
    )  # fmt: skip
    assert run.status == 0
    assert repository.get_domain("p") == Domain(
        name="p", plan="pro", sms_registration_enabled=False
    )


def test_domain_set_unchanged(admin: Any) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    run = admin("domain", "set", "p", "--plan", "pro")
    assert run.status == 0
    assert run.out == "Domain p unchanged.\n"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--plan", "gold", "invalid plan 'gold'"),
        ("--registration", "yes", "invalid value 'yes'; use on or off"),
        ("--default-language", "english!", "invalid language code 'english!'"),
        ("--sender-id", "A Clinic", "invalid sender ID 'A Clinic'"),
        ("--sender-id", "12345", "invalid sender ID '12345'"),
        ("--sender-id", "TooLongSenderId", "invalid sender ID 'TooLongSenderId'"),
        ("--origination-number", "+1555", "invalid origination number '+1555'"),
        ("--max-price", "-1", "invalid maximum price '-1'"),
        ("--max-price", "cheap", "invalid maximum price 'cheap'"),
        ("--max-price", "NaN", "invalid maximum price 'NaN'"),
        (
            "--allowed-countries",
            "KE,XX,ZZ",
            "unknown ISO 3166-1 alpha-2 country code(s): XX, ZZ",
        ),
        ("--allowed-countries", ",", "no country codes given"),
        ("--daily-sms-limit", "0", "invalid daily SMS limit '0'"),
        ("--daily-sms-limit", "many", "invalid daily SMS limit 'many'"),
        ("--delivery", "later", "invalid choice: 'later'"),
    ],
)
def test_domain_set_rejects_invalid_value(
    admin: Any, repository: Repository, option: str, value: str, message: str
) -> None:
    run = admin("domain", "set", "p", "--plan", "pro", option, value)
    assert run.status == 2
    assert message in run.err
    assert repository.get_domain("p") is None


def test_domain_show_table(admin: Any) -> None:
    admin("load-seed", str(CASES_SEED))
    run = admin("domain", "show", "demo")
    assert run.status == 0
    assert run.out.splitlines() == [
        "name:               demo",
        "plan:               pro",
        "registration:       on",
        "default language:   en",
        "sender ID:          -",
        "origination number: -",
        "max price (USD):    -",
        "allowed countries:  all",
        "daily SMS limit:    -",
        "delivery:           direct",
        "translations:       fr",
    ]


def test_domain_show_json(admin: Any) -> None:
    admin("domain", "set", "p", "--plan", "pro", "--allowed-countries", "KE,UG")
    run = admin("domain", "show", "p", "--json")
    assert run.status == 0
    assert run.json() == {
        "name": "p",
        "plan": "pro",
        "sms_registration_enabled": False,
        "default_language": "en",
        "translations": {},
        "sms_sender_id": None,
        "sms_origination_number": None,
        "sms_max_price_usd": None,
        "allowed_countries": ["KE", "UG"],
        "daily_sms_limit": None,
        "delivery": "direct",
    }


def test_domain_show_unknown(admin: Any) -> None:
    run = admin("domain", "show", "nope")
    assert run.status == 1
    assert run.out == ""
    assert "Domain 'nope' not found." in run.err


# app


def test_app_add_list_remove(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    assert admin("app", "add", "p", "b-app", "--name", "Second").status == 0
    assert admin("app", "add", "p", "a-app").status == 0
    assert admin("app", "add", "q-other", "x").status == 1

    run = admin("app", "remove", "p", "b-app")
    assert run.status == 0
    assert run.out == "Removed app b-app from domain p.\n"
    assert repository.get_app("p", "b-app") == App(
        domain="p", app_id="b-app", name="Second", deleted=True
    )

    listing = admin("app", "list", "p", "--json")
    assert listing.status == 0
    assert listing.json() == [
        {"domain": "p", "app_id": "a-app", "name": "", "deleted": False},
        {"domain": "p", "app_id": "b-app", "name": "Second", "deleted": True},
    ]
    assert admin("app", "list", "p").out.splitlines() == [
        "APP_ID  NAME    STATE",
        "a-app   -       active",
        "b-app   Second  deleted",
    ]


def test_app_list_excludes_domain_record(admin: Any) -> None:
    admin("load-seed", str(CASES_SEED))
    listing = admin("app", "list", "demo", "--json")
    assert [app["app_id"] for app in listing.json()] == [
        "abcd1234abcd1234",
        "deleted-app-0001",
    ]


def test_app_add_restores_removed_app(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    admin("app", "add", "p", "a-app", "--name", "First")
    admin("app", "remove", "p", "a-app")
    run = admin("app", "add", "p", "a-app")
    assert run.status == 0
    assert run.out == "Restored app a-app in domain p.\n"
    assert repository.get_app("p", "a-app") == App(
        domain="p", app_id="a-app", name="First", deleted=False
    )


def test_app_remove_unknown_app(admin: Any) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    run = admin("app", "remove", "p", "missing-app")
    assert run.status == 1
    assert "App 'missing-app' not found in domain 'p'." in run.err


def test_app_list_unknown_domain(admin: Any) -> None:
    run = admin("app", "list", "nope")
    assert run.status == 1
    assert "Domain 'nope' not found." in run.err


def test_app_add_rejects_invalid_app_id(admin: Any) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    run = admin("app", "add", "p", "app/../x")
    assert run.status == 2
    assert "invalid app id 'app/../x'" in run.err


# user


def test_user_add_grant_revoke(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    assert admin("user", "add", "ops@example.org").status == 0
    assert admin("user", "grant", "ops@example.org", "p", "edit_data").status == 0
    user = repository.get_user("ops@example.org")
    assert user is not None
    assert user.permissions == {"p": ("edit_data",)}

    shown = admin("user", "show", "ops@example.org", "--json")
    assert shown.json() == {
        "username": "ops@example.org",
        "active": True,
        "permissions": {"p": ["edit_data"]},
        "api_keys": 0,
    }

    run = admin("user", "revoke", "ops@example.org", "p", "edit_data")
    assert run.status == 0
    assert run.out == "Revoked edit_data in p from ops@example.org.\n"
    user = repository.get_user("ops@example.org")
    assert user is not None
    assert user.permissions == {}


def test_user_grant_twice_keeps_one(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    admin("user", "add", "ops@example.org")
    admin("user", "grant", "ops@example.org", "p", "edit_data")
    run = admin("user", "grant", "ops@example.org", "p", "edit_data")
    assert run.status == 0
    assert run.out == "ops@example.org already has edit_data in p.\n"
    user = repository.get_user("ops@example.org")
    assert user is not None
    assert user.permissions == {"p": ("edit_data",)}


def test_user_add_existing(admin: Any) -> None:
    admin("user", "add", "ops@example.org")
    run = admin("user", "add", "ops@example.org")
    assert run.status == 1
    assert "Web user 'ops@example.org' already exists." in run.err


def test_user_grant_unknown_names(admin: Any) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    admin("user", "add", "ops@example.org")

    unknown_user = admin("user", "grant", "nobody@example.org", "p", "edit_data")
    assert unknown_user.status == 1
    assert "Web user 'nobody@example.org' not found." in unknown_user.err

    unknown_domain = admin("user", "grant", "ops@example.org", "nope", "edit_data")
    assert unknown_domain.status == 1
    assert "Domain 'nope' not found." in unknown_domain.err

    unknown_permission = admin("user", "grant", "ops@example.org", "p", "admin")
    assert unknown_permission.status == 2
    assert "invalid choice: 'admin'" in unknown_permission.err


def test_user_revoke_unknown_domain(admin: Any) -> None:
    admin("user", "add", "ops@example.org")
    run = admin("user", "revoke", "ops@example.org", "nope", "edit_data")
    assert run.status == 1
    assert "Domain 'nope' not found." in run.err


def test_user_show_unknown(admin: Any) -> None:
    run = admin("user", "show", "nobody@example.org")
    assert run.status == 1
    assert "Web user 'nobody@example.org' not found." in run.err


# key


def test_key_create_stores_hash_only(admin: Any, repository: Repository) -> None:
    admin("user", "add", "ops@example.org")
    run = admin("key", "create", "ops@example.org", "--json")
    assert run.status == 0
    created = run.json()
    assert sorted(created) == ["api_key", "key_id", "username"]
    assert created["username"] == "ops@example.org"
    secret = created["api_key"]
    assert len(secret) == 64

    user = repository.get_user("ops@example.org")
    assert user is not None
    assert [key.key_id for key in user.api_keys] == [created["key_id"]]
    assert user.api_keys[0].key_hash.startswith("sha256$")
    assert auth.api_key_matches(secret, user.api_keys[0].key_hash)
    assert repository.get_api_key_owner(created["key_id"]) == "ops@example.org"

    stored = json.dumps(scan_table(repository))
    assert secret not in stored


def test_key_create_text_output(admin: Any, repository: Repository) -> None:
    admin("user", "add", "ops@example.org")
    run = admin("key", "create", "ops@example.org")
    assert run.status == 0
    lines = run.out.splitlines()
    user = repository.get_user("ops@example.org")
    assert user is not None
    key_id = user.api_keys[0].key_id
    secret = lines[1].removeprefix("API key: ")
    assert lines[0] == f"Created API key {key_id} for ops@example.org."
    assert lines[2] == f"Clients send: Authorization: ApiKey ops@example.org:{secret}"
    assert auth.api_key_matches(secret, user.api_keys[0].key_hash)


def test_key_create_restrictions(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    admin("user", "add", "ops@example.org")
    run = admin(
        "key", "create", "ops@example.org",
        "--domain", "p", "--expires", "2099-06-30T12:00:00Z", "--json",
    )  # fmt: skip
    assert run.status == 0
    user = repository.get_user("ops@example.org")
    assert user is not None
    key = user.api_keys[0]
    assert key.domain == "p"
    assert key.expires == datetime(2099, 6, 30, 12, tzinfo=UTC)


def test_key_create_errors(admin: Any) -> None:
    admin("user", "add", "ops@example.org")

    unknown_user = admin("key", "create", "nobody@example.org")
    assert unknown_user.status == 1
    assert "Web user 'nobody@example.org' not found." in unknown_user.err

    unknown_domain = admin("key", "create", "ops@example.org", "--domain", "nope")
    assert unknown_domain.status == 1
    assert "Domain 'nope' not found." in unknown_domain.err

    past = admin("key", "create", "ops@example.org", "--expires", "2020-01-01")
    assert past.status == 2
    assert "expiry '2020-01-01' is in the past" in past.err

    garbled = admin("key", "create", "ops@example.org", "--expires", "next week")
    assert garbled.status == 2
    assert "invalid expiry 'next week'" in garbled.err


def test_key_list_never_shows_secrets(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    admin("user", "add", "ops@example.org")
    first = admin("key", "create", "ops@example.org", "--json").json()
    second = admin("key", "create", "ops@example.org", "--domain", "p", "--json").json()
    admin("key", "revoke", first["key_id"])

    run = admin("key", "list", "ops@example.org", "--json")
    assert run.status == 0
    records = {record["key_id"]: record for record in run.json()}
    assert sorted(records) == sorted([first["key_id"], second["key_id"]])
    assert records[first["key_id"]]["state"] == "revoked"
    assert records[first["key_id"]]["domain"] is None
    assert records[second["key_id"]]["state"] == "active"
    assert records[second["key_id"]]["domain"] == "p"
    assert sorted(records[second["key_id"]]) == [
        "created", "domain", "expires", "key_id", "state"
    ]  # fmt: skip

    table = admin("key", "list", "ops@example.org").out
    for text in (run.out, table):
        assert first["api_key"] not in text
        assert second["api_key"] not in text
        assert "sha256$" not in text
    assert table.splitlines()[0].split() == [
        "KEY_ID", "DOMAIN", "EXPIRES", "CREATED", "STATE"
    ]  # fmt: skip


def test_key_list_seed_states(admin: Any) -> None:
    admin("load-seed", str(CASES_SEED))
    expired = admin("key", "list", "expired@demo.example", "--json").json()
    inactive = admin("key", "list", "inactive@demo.example", "--json").json()
    assert [record["state"] for record in expired] == ["expired"]
    assert [record["state"] for record in inactive] == ["user-inactive"]
    assert expired[0]["key_id"] == "seed-expired@demo.example"


def test_key_revoke_unknown(admin: Any) -> None:
    run = admin("key", "revoke", "0123456789abcdef")
    assert run.status == 1
    assert "API key '0123456789abcdef' not found." in run.err


def test_key_revoke_twice(admin: Any) -> None:
    admin("user", "add", "ops@example.org")
    created = admin("key", "create", "ops@example.org", "--json").json()
    assert admin("key", "revoke", created["key_id"]).status == 0
    again = admin("key", "revoke", created["key_id"])
    assert again.status == 0
    assert again.out == (
        f"API key {created['key_id']} of ops@example.org was already revoked.\n"
    )


def test_key_works_until_revoked(field_proj: Any, lambda_context: Any) -> None:
    created = field_proj("key", "create", "ops@example.org", "--json").json()
    credentials = f"ops@example.org:{created['api_key']}"
    body = {"app_id": "app-0001", "users": []}

    accepted = lambda_handler(
        api_event(PATH, body, api_key=credentials), lambda_context
    )
    assert accepted["statusCode"] == 200

    assert field_proj("key", "revoke", created["key_id"]).status == 0
    rejected = lambda_handler(
        api_event(PATH, body, api_key=credentials), lambda_context
    )
    assert rejected["statusCode"] == 401


def test_removed_app_is_rejected(field_proj: Any, lambda_context: Any) -> None:
    created = field_proj("key", "create", "ops@example.org", "--json").json()
    field_proj("app", "remove", "field-proj", "app-0001")
    event = api_event(
        PATH,
        {"app_id": "app-0001", "users": []},
        api_key=f"ops@example.org:{created['api_key']}",
    )
    response = lambda_handler(event, lambda_context)
    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {
        "sms_user_registration_reinstall": {"app_id": "Invalid app_id specified"}
    }


# phone


def test_phone_register_show_unregister(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    run = admin("phone", "register", "+1 (617) 555-0199", "p", "--language", "fr")
    assert run.status == 0
    assert run.out == "Registered +16175550199 to domain p (verified).\n"
    assert repository.get_phone("16175550199") == PhoneRegistration(
        phone_number="16175550199", domain="p", language="fr", verified=True
    )

    shown = admin("phone", "show", "16175550199", "--json")
    assert shown.json() == {
        "phone_number": "16175550199",
        "domain": "p",
        "language": "fr",
        "verified": True,
    }

    removed = admin("phone", "unregister", "+16175550199")
    assert removed.status == 0
    assert removed.out == "Unregistered +16175550199.\n"
    assert repository.get_phone("16175550199") is None


def test_phone_register_unverified(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    assert admin("phone", "register", "16175550199", "p", "--unverified").status == 0
    registration = repository.get_phone("16175550199")
    assert registration is not None
    assert registration.verified is False


def test_phone_register_rejects_invalid(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    for number in ("1617JKL1234", "12345", "0016175550199", ""):
        run = admin("phone", "register", number, "p")
        assert run.status == 1, number
        assert f"Invalid phone number {number!r}" in run.err
    assert [item["pk"]["S"] for item in scan_table(repository)] == ["DOMAIN#p"]


def test_phone_register_unknown_domain(admin: Any) -> None:
    run = admin("phone", "register", "16175550199", "nope")
    assert run.status == 1
    assert "Domain 'nope' not found." in run.err


def test_phone_register_verified_elsewhere(admin: Any, repository: Repository) -> None:
    admin("load-seed", str(CASES_SEED))
    blocked = admin("phone", "register", "16175550101", "demo")
    assert blocked.status == 1
    assert (
        "+16175550101 is verified to domain 'other-proj'; pass --force" in blocked.err
    )
    registration = repository.get_phone("16175550101")
    assert registration is not None
    assert registration.domain == "other-proj"

    moved = admin("phone", "register", "16175550101", "demo", "--force")
    assert moved.status == 0
    registration = repository.get_phone("16175550101")
    assert registration is not None
    assert registration.domain == "demo"


def test_phone_register_over_unverified(admin: Any, repository: Repository) -> None:
    admin("load-seed", str(CASES_SEED))
    run = admin("phone", "register", "16175550102", "demo")
    assert run.status == 0
    registration = repository.get_phone("16175550102")
    assert registration is not None
    assert registration.domain == "demo"


def test_phone_unknown_number(admin: Any) -> None:
    shown = admin("phone", "show", "16175550199")
    assert shown.status == 1
    assert "Phone number +16175550199 is not registered." in shown.err
    removed = admin("phone", "unregister", "16175550199")
    assert removed.status == 1
    assert "Phone number +16175550199 is not registered." in removed.err
    garbled = admin("phone", "show", "call me")
    assert garbled.status == 1
    assert "Invalid phone number 'call me'" in garbled.err


# translation


def test_translation_set_and_list(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    text = "Ili kusakinisha CommCare, fuata kiungo: {}"
    run = admin("translation", "set", "p", "sw", text)
    assert run.status == 0
    assert run.out == "Set the sw translation of domain p.\n"
    admin("translation", "set", "p", "fr", "Installez CommCare : {0}")
    domain = repository.get_domain("p")
    assert domain is not None
    assert domain.translations == {
        "sw": {TRANSLATION_KEY: text},
        "fr": {TRANSLATION_KEY: "Installez CommCare : {0}"},
    }

    listing = admin("translation", "list", "p", "--json")
    assert listing.json() == {"fr": "Installez CommCare : {0}", "sw": text}
    assert admin("translation", "list", "p").out.splitlines() == [
        "LANGUAGE  TEXT",
        "fr        Installez CommCare : {0}",
        "sw        " + text,
    ]


def test_translation_set_replaces_text(admin: Any, repository: Repository) -> None:
    admin("load-seed", str(CASES_SEED))
    admin("translation", "set", "demo", "fr", "Nouveau texte : {}")
    domain = repository.get_domain("demo")
    assert domain is not None
    assert domain.translations == {"fr": {TRANSLATION_KEY: "Nouveau texte : {}"}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("No link here", "must contain the placeholder {} for the link"),
        ("Two {} links {}", "has more than one placeholder"),
        ("Named {link}", "has an unsupported placeholder {link}"),
        ("Open { brace", "has an unmatched brace"),
        ("x" * 1600 + " {}", "bytes in UTF-8 with the link in place"),
    ],
)
def test_translation_set_rejects_template(
    admin: Any, repository: Repository, text: str, message: str
) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    run = admin("translation", "set", "p", "en", text)
    assert run.status == 1
    assert message in run.err
    domain = repository.get_domain("p")
    assert domain is not None
    assert domain.translations == {}


def test_translation_unknown_domain(admin: Any) -> None:
    run = admin("translation", "list", "nope")
    assert run.status == 1
    assert "Domain 'nope' not found." in run.err


# log


def write_sms_log(repository: Repository) -> None:
    """Store two requests' records: one number sent in full, one failed at first."""
    sms_log = SmsLog(repository.table_name, repository.client, retention_days=90)
    sent_at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    retried_at = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    records = [
        SmsLogRecord("p", "req-1", "+16175550199", PLAY_STORE_MESSAGE, sent_at, "m-1"),
        SmsLogRecord("p", "req-1", "+16175550199", INSTALL_MESSAGE, sent_at, "m-2"),
        SmsLogRecord(
            "p", "req-1", "+16175550142", PLAY_STORE_MESSAGE, sent_at,
            error_code="InvalidParameter",
        ),
        SmsLogRecord("p", "req-2", "+16175550199", PLAY_STORE_MESSAGE, retried_at, "m-3"),
        SmsLogRecord("p", "req-2", "+16175550199", INSTALL_MESSAGE, retried_at, "m-4"),
    ]  # fmt: skip
    assert sms_log.write(records) == 0


def test_log_show_request_masks_numbers(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    write_sms_log(repository)
    run = admin("log", "show", "--domain", "p", "--request-id", "req-1", "--json")
    assert run.status == 0
    assert run.json() == [
        {
            "attempted_at": "2026-12-01T09:30:00+00:00",
            "request_id": "req-1",
            "phone_number": "+1********42",
            "message": "play_store_link",
            "message_id": None,
            "error_code": "InvalidParameter",
        },
        {
            "attempted_at": "2026-12-01T09:30:00+00:00",
            "request_id": "req-1",
            "phone_number": "+1********99",
            "message": "play_store_link",
            "message_id": "m-1",
            "error_code": None,
        },
        {
            "attempted_at": "2026-12-01T09:30:00+00:00",
            "request_id": "req-1",
            "phone_number": "+1********99",
            "message": "install_message",
            "message_id": "m-2",
            "error_code": None,
        },
    ]
    assert "6175550199" not in run.out


def test_log_show_phone_newest_first(admin: Any, repository: Repository) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    write_sms_log(repository)
    run = admin(
        "log", "show", "--domain", "p", "--phone", "+1 617 555 0199", "--show-numbers"
    )
    assert run.status == 0
    lines = run.out.splitlines()
    assert lines[0].split() == [
        "ATTEMPTED_AT", "REQUEST_ID", "PHONE_NUMBER", "MESSAGE", "MESSAGE_ID",
        "ERROR_CODE",
    ]  # fmt: skip
    assert [line.split() for line in lines[1:]] == [
        ["2026-12-02T09:30:00+00:00", "req-2", "+16175550199", "install_message", "m-4", "-"],
        ["2026-12-02T09:30:00+00:00", "req-2", "+16175550199", "play_store_link", "m-3", "-"],
        ["2026-12-01T09:30:00+00:00", "req-1", "+16175550199", "install_message", "m-2", "-"],
        ["2026-12-01T09:30:00+00:00", "req-1", "+16175550199", "play_store_link", "m-1", "-"],
    ]  # fmt: skip

    limited = admin(
        "log",
        "show",
        "--domain",
        "p",
        "--phone",
        "16175550199",
        "--limit",
        "1",
        "--json",
    )
    assert [record["message_id"] for record in limited.json()] == ["m-4"]


def test_log_show_no_records(admin: Any) -> None:
    admin("domain", "set", "p", "--plan", "pro")
    run = admin("log", "show", "--domain", "p", "--request-id", "req-none")
    assert run.status == 0
    assert run.out == "No SMS log records for request req-none in domain p.\n"
    as_json = admin("log", "show", "--domain", "p", "--phone", "16175550199", "--json")
    assert as_json.json() == []


def test_log_show_errors(admin: Any) -> None:
    unknown = admin("log", "show", "--domain", "nope", "--request-id", "req-1")
    assert unknown.status == 1
    assert "Domain 'nope' not found." in unknown.err

    neither = admin("log", "show", "--domain", "p")
    assert neither.status == 2
    assert "one of the arguments --request-id --phone is required" in neither.err

    both = admin("log", "show", "--domain", "p", "--request-id", "r", "--phone", "1")
    assert both.status == 2
    assert "not allowed with argument" in both.err
