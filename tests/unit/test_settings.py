"""Settings parsed from environment variables, with errors naming the variable."""

import pytest

from core.settings import Settings, SettingsError

DEFAULTS = {
    "table_name": "reinstall-sms",
    "idempotency_table_name": "reinstall-sms-idempotency",
    "hq_base_url": "https://www.commcarehq.org",
    "max_users_per_request": 1000,
    "max_body_bytes": 1048576,
    "sns_max_attempts": 5,
    "sms_send_concurrency": 16,
    "sms_max_send_rate": 20,
    "deadline_margin_ms": 3000,
    "sms_log_retention_days": 90,
    "idempotency_ttl_seconds": 86400,
    "queue_url": "",
    "queue_chunk_size": 50,
    "opt_out_check": "list",
    "opt_out_cache_seconds": 300,
}


def test_empty_environment_gives_defaults() -> None:
    settings = Settings.from_environ({})

    assert {name: getattr(settings, name) for name in DEFAULTS} == DEFAULTS
    assert settings == Settings()


def test_every_setting_has_documented_default() -> None:
    assert sorted(vars(Settings())) == sorted(DEFAULTS)


def test_environment_values_are_parsed() -> None:
    settings = Settings.from_environ(
        {
            "TABLE_NAME": "prod-table",
            "SMS_SEND_CONCURRENCY": "32",
            "SMS_MAX_SEND_RATE": "12.5",
            "DEADLINE_MARGIN_MS": "0",
            "QUEUE_CHUNK_SIZE": "200",
            "OPT_OUT_CHECK": "per_number",
            "OPT_OUT_CACHE_SECONDS": "0",
            "UNRELATED": "ignored",
        }
    )

    assert settings.table_name == "prod-table"
    assert settings.sms_send_concurrency == 32
    assert settings.sms_max_send_rate == 12.5
    assert settings.deadline_margin_ms == 0
    assert settings.queue_chunk_size == 200
    assert settings.opt_out_check == "per_number"
    assert settings.opt_out_cache_seconds == 0


def test_rate_zero_is_accepted() -> None:
    assert Settings.from_environ({"SMS_MAX_SEND_RATE": "0"}).sms_max_send_rate == 0


def test_empty_variable_keeps_default() -> None:
    settings = Settings.from_environ({"SMS_SEND_CONCURRENCY": "", "TABLE_NAME": ""})

    assert settings.sms_send_concurrency == 16
    assert settings.table_name == "reinstall-sms"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"SMS_SEND_CONCURRENCY": "many"},
            "SMS_SEND_CONCURRENCY='many' is not an integer",
        ),
        (
            {"SMS_SEND_CONCURRENCY": "1.5"},
            "SMS_SEND_CONCURRENCY='1.5' is not an integer",
        ),
        (
            {"SMS_SEND_CONCURRENCY": "0"},
            "SMS_SEND_CONCURRENCY=0 is below the minimum 1",
        ),
        ({"SMS_MAX_SEND_RATE": "fast"}, "SMS_MAX_SEND_RATE='fast' is not a number"),
        ({"SMS_MAX_SEND_RATE": "-1"}, "SMS_MAX_SEND_RATE=-1.0 is below the minimum 0"),
        ({"SMS_MAX_SEND_RATE": "nan"}, "SMS_MAX_SEND_RATE=nan is not a finite number"),
        ({"QUEUE_CHUNK_SIZE": "201"}, "QUEUE_CHUNK_SIZE=201 is above the maximum 200"),
        ({"DEADLINE_MARGIN_MS": "-5"}, "DEADLINE_MARGIN_MS=-5 is below the minimum 0"),
        (
            {"OPT_OUT_CHECK": "cached"},
            "OPT_OUT_CHECK='cached' is not one of list, per_number",
        ),
        (
            {"OPT_OUT_CHECK": "LIST"},
            "OPT_OUT_CHECK='LIST' is not one of list, per_number",
        ),
        (
            {"OPT_OUT_CACHE_SECONDS": "-1"},
            "OPT_OUT_CACHE_SECONDS=-1 is below the minimum 0",
        ),
        (
            {"OPT_OUT_CACHE_SECONDS": "5m"},
            "OPT_OUT_CACHE_SECONDS='5m' is not an integer",
        ),
    ],
)
def test_invalid_variable_is_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ(environ)

    assert str(caught.value) == "Invalid settings: " + message


def test_every_invalid_variable_is_reported() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({"MAX_BODY_BYTES": "0", "SNS_MAX_ATTEMPTS": "0"})

    assert str(caught.value) == (
        "Invalid settings: MAX_BODY_BYTES=0 is below the minimum 1; "
        "SNS_MAX_ATTEMPTS=0 is below the minimum 1"
    )


def test_keyword_values_are_checked() -> None:
    with pytest.raises(SettingsError, match="MAX_USERS_PER_REQUEST=0 is below"):
        Settings(max_users_per_request=0)
    with pytest.raises(SettingsError, match="SMS_SEND_CONCURRENCY=True is not an"):
        Settings(sms_send_concurrency=True)
    with pytest.raises(SettingsError, match="TABLE_NAME must be a string"):
        Settings(table_name=None)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="OPT_OUT_CHECK='both' is not one of"):
        Settings(opt_out_check="both")


def test_settings_are_frozen() -> None:
    settings = Settings()

    with pytest.raises(AttributeError):
        settings.table_name = "other"  # type: ignore[misc]


def test_settings_error_is_value_error() -> None:
    assert issubclass(SettingsError, ValueError)
