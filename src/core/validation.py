"""Validation of the request body, reporting every field's errors at once.

Messages start with CommCare HQ's texts (tastypie's), because clients match on
them. What follows a message's prefix, such as the position ``users[3]``, is
this service's own.
"""

import json
from dataclasses import dataclass
from typing import Any

from core.errors import RequestValidationError
from core.messages import MessageTemplateError, custom_first_message
from core.models import App
from core.phone import normalize, to_e164_digits

REQUIRED = "This field is required"
NOT_A_JSON_OBJECT = "Request body must be a JSON object"


class _Missing:
    pass


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """The JSON value of the body, or None with ``error`` set when it is not JSON."""

    value: Any
    error: str | None = None

    @property
    def app_id(self) -> str | None:
        """The ``app_id`` if the body is an object with a string there, for lookups."""
        app_id = self.value.get("app_id") if isinstance(self.value, dict) else None
        return app_id if isinstance(app_id, str) else None


@dataclass(frozen=True, slots=True)
class ReinstallRequest:
    """A validated request. ``phone_numbers`` are as submitted, in order."""

    app_id: str
    phone_numbers: list[str]
    # The first SMS built from the client's text, or None for the default text.
    custom_first_message: str | None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(body: bytes) -> ParsedBody:
    """Decode ``body`` as UTF-8 JSON, ignoring a byte order mark before it.

    Besides malformed text, these count as not JSON: ``NaN`` and ``Infinity``
    (Python's extensions), integers too long to convert, nesting too deep to
    parse, and strings with an unpaired UTF-16 surrogate (``"\ud800"``), which
    no UTF-8 text, SMS or DynamoDB key can carry.
    """
    try:
        value = json.loads(body.decode("utf-8-sig"), parse_constant=_reject_constant)
        # A lone surrogate survives json.loads; encoding the value finds it.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError, ValueError) as error:
        # ValueError covers json.JSONDecodeError and over-long integers.
        return ParsedBody(None, error=str(error))
    except RecursionError:
        # json.loads recurses once per nesting level, so a small body of
        # thousands of brackets exhausts the interpreter's recursion limit.
        return ParsedBody(None, error="JSON nested too deeply")
    return ParsedBody(value)


class _FieldErrors:
    """Errors per key. The first problem is reported and later ones counted."""

    def __init__(self) -> None:
        self._errors: dict[str, list[str]] = {}

    def add(self, key: str, message: str) -> None:
        self._errors.setdefault(key, []).append(message)

    def __contains__(self, key: str) -> bool:
        return key in self._errors

    def render(self) -> dict[str, str]:
        rendered = {}
        for key, messages in self._errors.items():
            more = len(messages) - 1
            suffix = (
                f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
            )
            rendered[key] = messages[0] + suffix
        return rendered


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def validate_request(
    parsed: ParsedBody, app: App | None, max_users: int
) -> ReinstallRequest:
    """Return the validated request, or raise RequestValidationError with all errors.

    ``app`` is the stored app for the body's ``app_id`` in this domain, or None.
    """
    errors = _FieldErrors()
    body = parsed.value
    if parsed.error is not None or not isinstance(body, dict):
        found = "invalid JSON" if parsed.error is not None else _type_name(body)
        errors.add("__all__", f"{NOT_A_JSON_OBJECT}; received {found}")
        raise RequestValidationError(errors.render())

    app_id = _check_app_id(body.get("app_id", MISSING), app, errors)
    phone_numbers = _check_users(body.get("users", MISSING), max_users, errors)
    first_message = _check_reinstall_message(body.get("reinstall_message"), errors)

    if errors.render():
        raise RequestValidationError(errors.render())
    assert app_id is not None and phone_numbers is not None
    return ReinstallRequest(app_id, phone_numbers, first_message)


def _check_app_id(value: Any, app: App | None, errors: _FieldErrors) -> str | None:
    if value is MISSING:
        errors.add("app_id", REQUIRED)
        return None
    if not isinstance(value, str):
        errors.add("app_id", f"Expected type: str, received {_type_name(value)}")
        return None
    if not value or app is None or app.deleted or app.app_id != value:
        errors.add("app_id", "Invalid app_id specified")
        return None
    return value


def _check_users(value: Any, max_users: int, errors: _FieldErrors) -> list[str] | None:
    if value is MISSING:
        errors.add("users", REQUIRED)
        return None
    if not isinstance(value, list):
        errors.add("users", f"Expected type: list, received {_type_name(value)}")
        return None
    if len(value) > max_users:
        errors.add(
            "users",
            f"Too many users: {len(value)} submitted, the maximum per request is "
            f"{max_users}. Split the list into several requests.",
        )
        return None

    phone_numbers: list[str] = []
    first_position: dict[str, int] = {}
    # Spellings that normalize differently can still be one number once the
    # trunk prefix is dropped ("+44 (0)20 ..." and "+44 20 ..."); they are
    # rejected too, so that no phone gets the SMS twice.
    first_e164_position: dict[str, int] = {}
    for position, user in enumerate(value):
        where = f"users[{position}]"
        if not isinstance(user, dict):
            errors.add(
                "users",
                f"Expected a list of dictionaries; {where} is {_type_name(user)}",
            )
            continue
        if "phone_number" not in user:
            errors.add("phone_number", f"{REQUIRED} ({where})")
            continue
        raw = user["phone_number"]
        if not isinstance(raw, str):
            errors.add(
                "phone_number",
                f"Expected type: str, received {_type_name(raw)} ({where})",
            )
            continue
        normalized = normalize(raw)
        if normalized in first_position:
            errors.add(
                "users",
                f"phone_number cannot be reused within a request: {normalized} "
                f"(users[{first_position[normalized]}] and {where})",
            )
            continue
        e164 = to_e164_digits(raw)
        if e164 is not None and e164 in first_e164_position:
            errors.add(
                "users",
                f"phone_number cannot be reused within a request: {normalized} "
                f"(users[{first_e164_position[e164]}] is the same number, +{e164})",
            )
            continue
        first_position[normalized] = position
        if e164 is not None:
            first_e164_position[e164] = position
        phone_numbers.append(raw)
    return phone_numbers


def _check_reinstall_message(value: Any, errors: _FieldErrors) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(
            "reinstall_message", f"Expected type: str, received {_type_name(value)}"
        )
        return None
    if not value.strip():
        return None
    try:
        return custom_first_message(value)
    except MessageTemplateError as error:
        errors.add("reinstall_message", f"reinstall_message {error}")
        return None
