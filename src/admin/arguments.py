"""Parsers for admin command-line values; each raises ArgumentTypeError when invalid.

argparse turns ArgumentTypeError into a usage error that names the option.
"""

import argparse
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import phonenumbers

from core.models import PLANS
from core.phone import to_e164_digits

# The value that clears an optional domain setting, such as ``--sender-id none``.
CLEAR = "none"
# The value of ``--allowed-countries`` that lifts the country restriction.
ALL_COUNTRIES = "all"

# Amazon SNS Developer Guide ("Publishing SMS messages to a mobile phone"): a
# sender ID is 3 to 11 alphanumeric characters with at least one letter.
_SENDER_ID = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9]{3,11}")
# Amazon SNS Developer Guide ("Origination identities"): short codes have
# between four and seven digits.
_SHORT_CODE = re.compile(r"[0-9]{4,7}")
# ISO 639 language codes, optionally with a region or script subtag ("pt-BR").
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
# App ids appear in URL paths and sort keys, so they are limited to URL-safe text.
_APP_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def plan(value: str) -> str:
    if value not in PLANS:
        raise argparse.ArgumentTypeError(
            f"invalid plan {value!r}; choose one of {', '.join(PLANS)}"
        )
    return value


def switch(value: str) -> bool:
    """Parse ``on`` or ``off``."""
    if value.lower() not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"invalid value {value!r}; use on or off")
    return value.lower() == "on"


def language(value: str) -> str:
    if not _LANGUAGE.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"invalid language code {value!r}; use an ISO 639 code such as en or fr"
        )
    return value


def sender_id(value: str) -> str | None:
    if value == CLEAR:
        return None
    if not _SENDER_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"invalid sender ID {value!r}; SNS accepts 3 to 11 letters and digits "
            f"with at least one letter ({CLEAR!r} removes the sender ID)"
        )
    return value


def origination_number(value: str) -> str | None:
    """Parse an E.164 number (stored with ``+``) or a short code of 4 to 7 digits."""
    if value == CLEAR:
        return None
    if _SHORT_CODE.fullmatch(value):
        return value
    digits = to_e164_digits(value)
    if digits is None:
        raise argparse.ArgumentTypeError(
            f"invalid origination number {value!r}; give an E.164 number such as "
            f"+14155550100 or a short code of 4 to 7 digits "
            f"({CLEAR!r} removes the origination number)"
        )
    return "+" + digits


def max_price(value: str) -> str | None:
    """Parse a positive amount in USD, kept as the decimal text SNS receives."""
    if value == CLEAR:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid maximum price {value!r}; give a positive amount in USD such "
            f"as 0.50 ({CLEAR!r} removes the maximum)"
        )
    return str(amount)


def daily_sms_limit(value: str) -> int | None:
    if value == CLEAR:
        return None
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise argparse.ArgumentTypeError(
            f"invalid daily SMS limit {value!r}; give a whole number of messages "
            f"of at least 1 ({CLEAR!r} removes the limit)"
        )
    return limit


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"invalid value {value!r}; give a whole number of at least 1"
        )
    return number


def countries(value: str) -> tuple[str, ...] | None:
    """Parse comma-separated ISO 3166-1 alpha-2 codes; ``all`` means no restriction.

    A code is accepted when the phonenumbers metadata has numbering rules for it,
    because the service finds a number's country from that metadata.
    """
    if value.strip().lower() == ALL_COUNTRIES:
        return None
    codes = [code.strip().upper() for code in value.split(",") if code.strip()]
    if not codes:
        raise argparse.ArgumentTypeError(
            f"no country codes given; list codes such as KE,UG or use {ALL_COUNTRIES!r}"
        )
    unknown = [code for code in codes if code not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown ISO 3166-1 alpha-2 country code(s): {', '.join(unknown)}"
        )
    return tuple(dict.fromkeys(codes))


def app_id(value: str) -> str:
    if not _APP_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"invalid app id {value!r}; use 1 to 128 letters, digits, '.', '_' or '-'"
        )
    return value


def expiry(value: str) -> datetime:
    """Parse an ISO 8601 time in the future; a time without zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid expiry {value!r}; use ISO 8601 such as 2027-06-30T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment <= datetime.now(UTC):
        raise argparse.ArgumentTypeError(
            f"expiry {value!r} is in the past; give a future time"
        )
    return moment
