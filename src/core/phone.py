"""Normalization, validation and masking of phone numbers.

CommCare HQ strips spaces, dots, brackets, dashes and one leading ``+`` from a
submitted number and accepts any digit string that remains. This service applies
the same leniency (widened to Unicode spaces and dashes) and then requires the
digits to form a number that the ``phonenumbers`` metadata calls valid.
"""

import unicodedata
from functools import lru_cache

# Longer input is rejected before any parsing: no valid E.164 number comes close,
# and phonenumbers raises on input over 250 characters.
MAX_PHONE_NUMBER_LENGTH = 64

_REMOVED_PUNCTUATION = frozenset(".()")


def _is_removed(character: str) -> bool:
    return (
        character.isspace()
        or character in _REMOVED_PUNCTUATION
        or unicodedata.category(character) == "Pd"
    )


def _ascii_digit(character: str) -> str:
    # Only decimal digits (category Nd) map to ASCII; superscripts and other
    # numerals stay as they are and make the number invalid.
    if character.isascii() or unicodedata.category(character) != "Nd":
        return character
    return str(unicodedata.decimal(character))


def normalize(raw: str) -> str:
    """Return ``raw`` without whitespace, ``.``, ``(``, ``)``, dashes and one leading ``+``.

    Unicode decimal digits become ASCII digits. The result is what the duplicate
    check compares; it is not necessarily a valid number.
    """
    kept = "".join(character for character in raw if not _is_removed(character))
    kept = kept.removeprefix("+")
    return "".join(_ascii_digit(character) for character in kept)


# Validation and the per-number checks both ask for each number of a request.
@lru_cache(maxsize=4096)
def to_e164_digits(raw: str) -> str | None:
    """Return the E.164 digits (no ``+``) of ``raw``, or None when its format is invalid.

    A number is valid when, after ``normalize``, it is ASCII digits only and
    ``+<digits>`` is a valid number by the phonenumbers metadata. Letters,
    extensions and a leading ``00`` are therefore invalid. The digits returned
    are phonenumbers' E.164 form, which drops a national trunk prefix written
    after the country code: ``+44 (0)20 7946 0958`` gives ``442079460958``.
    """
    # Imported here, not at the top: the import costs 15 to 30 ms of a cold
    # start, which requests rejected before the number checks never need.
    import phonenumbers

    if len(raw) > MAX_PHONE_NUMBER_LENGTH:
        return None
    digits = normalize(raw)
    if not digits.isascii() or not digits.isdigit():
        return None
    try:
        parsed = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    # The registry is keyed by E.164 and SNS expects it, so "+44 0 20 ..." must
    # become "+44 20 ..." rather than be passed on with its trunk 0.
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164.removeprefix("+")


def region_of(digits: str) -> str | None:
    """Return the ISO 3166-1 alpha-2 region of valid E.164 ``digits``, or None."""
    import phonenumbers

    parsed = phonenumbers.parse("+" + digits)
    return phonenumbers.region_code_for_number(parsed)


def mask(digits: str) -> str:
    """Return ``+<country code>`` and the last two digits, with stars between, for logs."""
    import phonenumbers

    digits = digits.lstrip("+")
    try:
        country_code = str(phonenumbers.parse("+" + digits).country_code)
    except phonenumbers.NumberParseException:
        country_code = ""
    if len(digits) <= len(country_code) + 2:
        return "+" + "*" * len(digits)
    hidden = len(digits) - len(country_code) - 2
    return "+" + country_code + "*" * hidden + digits[-2:]
