"""Normalization, format validation and masking of submitted phone numbers."""

import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.phone import MAX_PHONE_NUMBER_LENGTH, mask, normalize, to_e164_digits

US_NUMBER = "16175551234"

# Every space separator (Zs) and every dash punctuation (Pd) character of the
# Unicode version that this Python ships, so new characters are covered as
# the interpreter is upgraded.
UNICODE_SPACES = [
    chr(code)
    for code in range(sys.maxunicode + 1)
    if unicodedata.category(chr(code)) == "Zs"
]
UNICODE_DASHES = [
    chr(code)
    for code in range(sys.maxunicode + 1)
    if unicodedata.category(chr(code)) == "Pd"
]


def code_point(character: str) -> str:
    return f"U+{ord(character):04X}"


# Normalization


def test_normalize_ascii_spaces() -> None:
    assert normalize("1 617 555 1234") == US_NUMBER


def test_normalize_tabs_and_newlines() -> None:
    assert normalize("1\t617\n555\r\n1234") == US_NUMBER


def test_space_list_has_no_break_space() -> None:
    assert "\u00a0" in UNICODE_SPACES
    assert "\u202f" in UNICODE_SPACES
    assert "\u3000" in UNICODE_SPACES


@pytest.mark.parametrize("space", UNICODE_SPACES, ids=code_point)
def test_normalize_unicode_space(space: str) -> None:
    assert normalize(f"+1{space}617{space}555{space}1234") == US_NUMBER


def test_no_break_space_accepted() -> None:
    assert to_e164_digits("+1\u00a0617\u00a0555\u00a01234") == US_NUMBER


def test_normalize_dots() -> None:
    assert normalize("1.617.555.1234") == US_NUMBER


def test_normalize_brackets() -> None:
    assert normalize("1(617)5551234") == US_NUMBER


def test_dash_list_has_common_dashes() -> None:
    assert "-" in UNICODE_DASHES
    assert "\u2010" in UNICODE_DASHES  # hyphen
    assert "\u2013" in UNICODE_DASHES  # en dash
    assert "\u2014" in UNICODE_DASHES  # em dash
    assert "\uff0d" in UNICODE_DASHES  # fullwidth hyphen-minus


@pytest.mark.parametrize("dash", UNICODE_DASHES, ids=code_point)
def test_normalize_unicode_dash(dash: str) -> None:
    assert normalize(f"1{dash}617{dash}555{dash}1234") == US_NUMBER


def test_minus_sign_kept() -> None:
    # U+2212 is a math symbol (Sm), not dash punctuation, so it stays and the
    # number is invalid.
    assert normalize("1\u2212617") == "1\u2212617"
    assert to_e164_digits("1\u2212617\u2212555\u22121234") is None


def test_normalize_leading_plus() -> None:
    assert normalize("+16175551234") == US_NUMBER


def test_normalize_keeps_second_plus() -> None:
    assert normalize("++16175551234") == "+16175551234"


def test_normalize_plus_after_spaces() -> None:
    assert normalize(" +1 617 555 1234") == US_NUMBER


def test_normalize_keeps_inner_plus() -> None:
    assert normalize("1+6175551234") == "1+6175551234"


@pytest.mark.parametrize(
    "raw",
    [
        "١٦١٧٥٥٥١٢٣٤",  # Arabic-Indic
        "۱۶۱۷۵۵۵۱۲۳۴",  # Extended Arabic-Indic (Persian)
        "१६१७५५५१२३४",  # Devanagari
        "１６１７５５５１２３４",  # fullwidth
        "+١ (٦١٧) ٥٥٥-١٢٣٤",  # Arabic-Indic with punctuation
    ],
)
def test_normalize_unicode_decimal_digits(raw: str) -> None:
    assert normalize(raw) == US_NUMBER
    assert to_e164_digits(raw) == US_NUMBER


def test_normalize_keeps_letters() -> None:
    assert normalize("1-617-JKL-1234") == "1617JKL1234"


def test_normalize_keeps_superscripts() -> None:
    assert normalize("1617555123\u2074") == "1617555123\u2074"


def test_normalize_empty() -> None:
    assert normalize("") == ""


# Valid numbers


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("16175551234", US_NUMBER),
        ("+16175551234", US_NUMBER),
        ("+1 (617) 555-1234", US_NUMBER),
        ("1.617.555.1234", US_NUMBER),
        ("1 617 555 1234", US_NUMBER),
        ("+1 212 555 0199", "12125550199"),
        ("+44 20 7946 0958", "442079460958"),
        ("442079460958", "442079460958"),
        ("+44 7911 123456", "447911123456"),
    ],
)
def test_e164_digits_us_and_uk(raw: str, digits: str | None) -> None:
    assert to_e164_digits(raw) == digits


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("+44 (0)20 7946 0958", "442079460958"),
        ("+33 0 1 42 68 53 00", "33142685300"),
    ],
)
def test_e164_digits_drop_trunk_prefix(raw: str, digits: str) -> None:
    assert to_e164_digits(raw) == digits


def test_e164_digits_length_limit() -> None:
    at_limit = US_NUMBER.ljust(MAX_PHONE_NUMBER_LENGTH)
    over_limit = US_NUMBER.ljust(MAX_PHONE_NUMBER_LENGTH + 1)

    assert MAX_PHONE_NUMBER_LENGTH == 64
    assert to_e164_digits(at_limit) == US_NUMBER
    assert to_e164_digits(over_limit) is None


# Invalid numbers


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("1617JKL1234", id="letters"),
        pytest.param("16175551234 ext 5", id="extension-ext"),
        pytest.param("16175551234x5", id="extension-x"),
        pytest.param("16175551234;ext=5", id="extension-rfc3966"),
        pytest.param("1617555123\u2074", id="superscript-last"),
        pytest.param("\u00b96175551234", id="superscript-first"),
        pytest.param(
            "\u2460\u2465\u2460\u2466\u2464\u2464\u2464\u2460\u2461", id="circled"
        ),
        pytest.param("", id="empty"),
        pytest.param("   ", id="spaces-only"),
        pytest.param("+", id="plus-only"),
        pytest.param("0016175551234", id="leading-00"),
        pytest.param("00442079460958", id="leading-00-uk"),
        pytest.param("++16175551234", id="two-pluses"),
        pytest.param("1+6175551234", id="inner-plus"),
        pytest.param("6175551234", id="no-country-code"),
        pytest.param("16170551234", id="invalid-exchange"),
        pytest.param("1234", id="too-short"),
        pytest.param("1" * 20, id="too-long-digits"),
        pytest.param(US_NUMBER + " " * 60, id="over-64-characters"),
        pytest.param("bad", id="word"),
    ],
)
def test_e164_digits_invalid(raw: str) -> None:
    assert to_e164_digits(raw) is None


# Masking


@pytest.mark.parametrize(
    ("digits", "masked"),
    [
        (US_NUMBER, "+1********34"),
        ("+16175551234", "+1********34"),
        ("442079460958", "+44********58"),
        ("919876543210", "+91********10"),
    ],
)
def test_mask_keeps_code_and_end(digits: str, masked: str) -> None:
    assert mask(digits) == masked


def test_mask_hides_short_input() -> None:
    assert mask("123") == "+***"


# Properties


@given(st.text())
def test_normalize_never_raises(raw: str) -> None:
    assert isinstance(normalize(raw), str)


@given(st.text())
def test_e164_digits_never_raises(raw: str) -> None:
    digits = to_e164_digits(raw)

    if digits is not None:
        assert digits.isascii()
        assert digits.isdigit()
        assert to_e164_digits("+" + digits) == digits


@given(st.text(alphabet="0123456789+-.() \u00a0\u2013\u0660\u0661\uff11", max_size=30))
def test_e164_digits_digit_alphabet(raw: str) -> None:
    digits = to_e164_digits(raw)

    if digits is not None:
        assert digits.isascii()
        assert digits.isdigit()
