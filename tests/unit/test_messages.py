"""Texts of the two SMS: the default fallback chain and the install message."""

import base64

import pytest

from core.messages import (
    BUILT_IN_TEXTS,
    PLAY_STORE_LINK,
    custom_first_message,
    default_first_message,
    install_message,
)
from core.settings import Settings

LINK = "https://play.google.com/store/apps/details?id=org.commcare.dalvik&hl=en"
ENGLISH = f"To install CommCare, follow this link to the Google Play store: {LINK}"
BUILT_IN_FRENCH = f"Pour installer CommCare, ouvrez ce lien vers Google Play : {LINK}"
BUILT_IN_SPANISH = f"Para instalar CommCare, abra este enlace de Google Play: {LINK}"

DOMAIN_FRENCH = "Installez CommCare ici : {}"
DOMAIN_SWAHILI = "Sakinisha CommCare hapa: {}"


def translations(**texts: str) -> dict[str, dict[str, str]]:
    return {language: {"install_commcare": text} for language, text in texts.items()}


def test_play_store_link() -> None:
    assert PLAY_STORE_LINK == LINK


def test_built_in_english_text() -> None:
    assert BUILT_IN_TEXTS["en"] == (
        "To install CommCare, follow this link to the Google Play store: {}"
    )


# The default text: five steps, in CommCare HQ's order


def test_default_domain_text_in_contact_language() -> None:
    text = default_first_message(
        translations(fr=DOMAIN_FRENCH, sw=DOMAIN_SWAHILI),
        default_language="sw",
        contact_language="fr",
    )

    assert text == f"Installez CommCare ici : {LINK}"


def test_default_domain_text_in_default_language() -> None:
    # The built-in French text exists, but the domain's own text comes first.
    text = default_first_message(
        translations(sw=DOMAIN_SWAHILI), default_language="sw", contact_language="fr"
    )

    assert text == f"Sakinisha CommCare hapa: {LINK}"


def test_default_built_in_contact_language() -> None:
    text = default_first_message(
        translations(de="Installieren: {}"),
        default_language="es",
        contact_language="fr",
    )

    assert text == BUILT_IN_FRENCH


def test_default_built_in_default_language() -> None:
    text = default_first_message(
        translations(de="Installieren: {}"),
        default_language="es",
        contact_language="nl",
    )

    assert text == BUILT_IN_SPANISH


def test_default_built_in_english() -> None:
    text = default_first_message(
        translations(de="Installieren: {}"),
        default_language="nl",
        contact_language="ja",
    )

    assert text == ENGLISH


def test_default_unknown_contact_language() -> None:
    text = default_first_message(
        translations(fr=DOMAIN_FRENCH), default_language="fr", contact_language=None
    )

    assert text == f"Installez CommCare ici : {LINK}"


def test_default_without_any_language() -> None:
    assert default_first_message({}, default_language=None, contact_language=None) == (
        ENGLISH
    )


def test_default_skips_broken_translation() -> None:
    # A stored translation without a placeholder falls through to the next step.
    text = default_first_message(
        translations(fr="Installez CommCare"),
        default_language="en",
        contact_language="fr",
    )

    assert text == BUILT_IN_FRENCH


def test_default_skips_translation_without_key() -> None:
    text = default_first_message(
        {"fr": {"other_text": "Autre : {}"}},
        default_language="en",
        contact_language="fr",
    )

    assert text == BUILT_IN_FRENCH


# Custom text


def test_custom_text_stripped_and_linked() -> None:
    assert custom_first_message("  Click here: {0}\n") == f"Click here: {LINK}"


def test_custom_text_literal_braces() -> None:
    assert custom_first_message("{{app}} {}") == f"{{app}} {LINK}"


# The install message


EXAMPLE_INSTALL_MESSAGE = (
    "[commcare app - do not delete] "
    "aHR0cHM6Ly93d3cuY29tbWNhcmVocS5vcmcvYS9kZW1vL3Ntcy9hcHBfaW5mby9hYmNkMTIzNGFiY2QxMjM0Lw=="
)


def test_install_message_example() -> None:
    text = install_message("https://www.commcarehq.org", "demo", "abcd1234abcd1234")

    assert text == EXAMPLE_INSTALL_MESSAGE


def test_install_message_encodes_app_info_url() -> None:
    text = install_message("https://www.commcarehq.org", "demo", "abcd1234abcd1234")
    encoded = text.removeprefix("[commcare app - do not delete] ")

    assert base64.b64decode(encoded).decode("ascii") == (
        "https://www.commcarehq.org/a/demo/sms/app_info/abcd1234abcd1234/"
    )


def test_default_hq_base_url() -> None:
    settings = Settings.from_environ({})

    assert settings.hq_base_url == "https://www.commcarehq.org"
    assert install_message(settings.hq_base_url, "demo", "abcd1234abcd1234") == (
        EXAMPLE_INSTALL_MESSAGE
    )


@pytest.mark.parametrize(
    "base_url", ["https://hq.example.org", "https://hq.example.org/"]
)
def test_hq_base_url_trailing_slash(base_url: str) -> None:
    settings = Settings.from_environ({"HQ_BASE_URL": base_url})

    text = install_message(settings.hq_base_url, "demo", "abcd1234abcd1234")

    # base64 of https://hq.example.org/a/demo/sms/app_info/abcd1234abcd1234/
    assert text == (
        "[commcare app - do not delete] "
        "aHR0cHM6Ly9ocS5leGFtcGxlLm9yZy9hL2RlbW8vc21zL2FwcF9pbmZvL2FiY2QxMjM0YWJjZDEyMzQv"
    )
