"""Settings read from the environment once per container.

The settings are a plain frozen dataclass rather than a pydantic model. Importing
pydantic and building the model took about 70 ms of each cold start under
``python -X importtime`` (machine in docs/benchmarks.md). A dozen numbers and
strings need only a type check, with bounds or a list of allowed values.
"""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any


class SettingsError(ValueError):
    """Error for invalid settings, whose message names each invalid variable."""


def _bounded(default: float, minimum: float, maximum: float | None = None) -> Any:
    return field(default=default, metadata={"minimum": minimum, "maximum": maximum})


def _one_of(default: str, choices: tuple[str, ...]) -> Any:
    return field(default=default, metadata={"choices": choices})


# Values of OPT_OUT_CHECK: how core.optout finds the numbers on the SNS opt-out
# list (docs/reliability.md, "Opt-outs").
OPT_OUT_CHECK_LIST = "list"
OPT_OUT_CHECK_PER_NUMBER = "per_number"


@dataclass(frozen=True)
class Settings:
    """Service settings. Each field comes from the upper-case environment variable.

    Raises SettingsError naming the variable when a value has the wrong type, is
    out of range or is not an allowed value, whether it came from the environment
    or from a keyword.
    """

    table_name: str = "reinstall-sms"
    idempotency_table_name: str = "reinstall-sms-idempotency"
    hq_base_url: str = "https://www.commcarehq.org"
    max_users_per_request: int = _bounded(1000, minimum=1)
    # Bytes.
    max_body_bytes: int = _bounded(1024 * 1024, minimum=1)
    sns_max_attempts: int = _bounded(5, minimum=1)
    sms_send_concurrency: int = _bounded(16, minimum=1)
    # Messages per second for one invocation; 0 turns the limit off.
    sms_max_send_rate: float = _bounded(20, minimum=0)
    deadline_margin_ms: int = _bounded(3000, minimum=0)
    sms_log_retention_days: int = _bounded(90, minimum=1)
    idempotency_ttl_seconds: int = _bounded(86400, minimum=1)
    # SQS queue for queued delivery; empty means every request is sent directly.
    queue_url: str = ""
    # Numbers per queue message. 200 keeps a message, texts included, far below
    # SQS's 256 KiB limit.
    queue_chunk_size: int = _bounded(50, minimum=1, maximum=200)
    # "list" reads the account's whole opt-out list into a per-container cache.
    # "per_number" calls CheckIfPhoneNumberIsOptedOut once per number.
    opt_out_check: str = _one_of(
        OPT_OUT_CHECK_LIST, choices=(OPT_OUT_CHECK_LIST, OPT_OUT_CHECK_PER_NUMBER)
    )
    # Seconds the cached opt-out list is used before it is read again. 0 reads
    # it for every request. Only the "list" check uses it.
    opt_out_cache_seconds: int = _bounded(300, minimum=0)

    def __post_init__(self) -> None:
        errors = [
            error
            for setting in fields(self)
            if (error := _check(setting.name, getattr(self, setting.name))) is not None
        ]
        if errors:
            raise SettingsError("Invalid settings: " + "; ".join(errors))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Settings":
        """Build settings from variables such as ``TABLE_NAME``; unset ones keep defaults.

        An empty variable counts as unset. Raises SettingsError naming every
        invalid variable.
        """
        values: dict[str, Any] = {}
        errors = []
        for setting in fields(cls):
            text = environ.get(setting.name.upper(), "")
            if text == "":
                continue
            try:
                values[setting.name] = _parse(setting.type, text)
            except ValueError:
                errors.append(
                    f"{setting.name.upper()}={text!r} is not {_type_name(setting.type)}"
                )
        if errors:
            raise SettingsError("Invalid settings: " + "; ".join(errors))
        return cls(**values)


def _type_name(declared: Any) -> str:
    return {int: "an integer", float: "a number"}.get(declared, "a string")


def _parse(declared: Any, text: str) -> Any:
    if declared is int:
        return int(text)
    if declared is float:
        return float(text)
    return text


def _check(name: str, value: Any) -> str | None:
    """Return a message naming the variable when ``value`` does not fit ``name``."""
    setting = _FIELDS[name]
    variable = name.upper()
    declared = setting.type

    if declared is str:
        if not isinstance(value, str):
            return f"{variable} must be a string"
        choices = setting.metadata.get("choices")
        if choices is not None and value not in choices:
            return f"{variable}={value!r} is not one of {', '.join(choices)}"
        return None
    numeric = int if declared is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric):
        return f"{variable}={value!r} is not {_type_name(declared)}"
    if not math.isfinite(value):
        return f"{variable}={value!r} is not a finite number"

    minimum = setting.metadata.get("minimum")
    maximum = setting.metadata.get("maximum")
    if minimum is not None and value < minimum:
        return f"{variable}={value!r} is below the minimum {minimum}"
    if maximum is not None and value > maximum:
        return f"{variable}={value!r} is above the maximum {maximum}"
    return None


_FIELDS = {setting.name: setting for setting in fields(Settings)}


@cache
def get_settings() -> Settings:
    """Return the settings, parsed from ``os.environ`` on first use."""
    return Settings.from_environ(os.environ)
