"""Texts of the two SMS: the Play Store link and the install message."""

import base64
import string
from collections.abc import Mapping

PLAY_STORE_LINK = (
    "https://play.google.com/store/apps/details?id=org.commcare.dalvik&hl=en"
)
INSTALL_MESSAGE_PREFIX = "[commcare app - do not delete] "
TRANSLATION_KEY = "install_commcare"

# SNS accepts at most 1600 bytes in one SMS publish.
MAX_SMS_BYTES = 1600

# The English text is CommCare HQ's. The other built-in translations are this
# service's own; a domain's translations take precedence over all of them.
BUILT_IN_TEXTS = {
    "en": "To install CommCare, follow this link to the Google Play store: {}",
    "fr": "Pour installer CommCare, ouvrez ce lien vers Google Play : {}",
    "es": "Para instalar CommCare, abra este enlace de Google Play: {}",
    "pt": "Para instalar o CommCare, abra este link do Google Play: {}",
    "sw": "Ili kusakinisha CommCare, fungua kiungo hiki cha Google Play: {}",
}


class MessageTemplateError(ValueError):
    """A custom message whose placeholders do not follow the rules."""


def split_template(template: str) -> tuple[str, str]:
    """Split ``template`` into the text before and after its single link placeholder.

    The placeholder is ``{}`` or ``{0}`` exactly once. ``{{`` and ``}}`` are
    literal braces. Raises MessageTemplateError for no placeholder, more than
    one, any other field (``{name}``, ``{1}``, ``{0.x}``), a conversion or format
    spec (``{0!r}``, ``{:>5}``), or an unmatched brace.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        raise MessageTemplateError(
            f"has an unmatched brace ({error}); write {{{{ or }}}} for a literal brace"
        ) from error

    before: list[str] = []
    after: list[str] = []
    placeholders = 0
    for literal, field_name, format_spec, conversion in parts:
        (after if placeholders else before).append(literal)
        if field_name is None:
            continue
        if field_name not in ("", "0") or format_spec or conversion:
            placeholder = "{" + field_name + ("!" + conversion if conversion else "")
            placeholder += (":" + format_spec if format_spec else "") + "}"
            raise MessageTemplateError(
                f"has an unsupported placeholder {placeholder}; use {{}} for the link"
            )
        placeholders += 1
        if placeholders > 1:
            raise MessageTemplateError(
                "has more than one placeholder; use {} exactly once for the link"
            )
    if placeholders == 0:
        raise MessageTemplateError("must contain the placeholder {} for the link")
    return "".join(before), "".join(after)


def render_with_link(template: str) -> str:
    """Return ``template`` with the Play Store link in place of its placeholder."""
    before, after = split_template(template)
    return before + PLAY_STORE_LINK + after


def custom_first_message(reinstall_message: str) -> str:
    """Return the first SMS built from a client's custom text.

    Raises MessageTemplateError when the placeholders are wrong or the result is
    over MAX_SMS_BYTES in UTF-8.
    """
    text = render_with_link(reinstall_message.strip())
    size = len(text.encode("utf-8"))
    if size > MAX_SMS_BYTES:
        raise MessageTemplateError(
            f"is {size} bytes in UTF-8 with the link in place; "
            f"the maximum for one SMS is {MAX_SMS_BYTES} bytes"
        )
    return text


def default_first_message(
    domain_translations: Mapping[str, Mapping[str, str]],
    default_language: str | None,
    contact_language: str | None,
) -> str:
    """Return the default first SMS in the best language available.

    The order is CommCare HQ's: the domain's translation in the contact's
    language, then in the domain's default language, then the built-in text in
    the contact's language, then in the default language, then English.
    """
    languages = [lang for lang in (contact_language, default_language) if lang]
    candidates: list[str | None] = [
        domain_translations.get(lang, {}).get(TRANSLATION_KEY) for lang in languages
    ]
    candidates += [BUILT_IN_TEXTS.get(lang) for lang in languages]
    for template in candidates:
        if not template:
            continue
        try:
            return render_with_link(template)
        except MessageTemplateError:
            # Translations are checked when stored; a bad one left in the table
            # falls through to the next candidate rather than failing the send.
            continue
    return render_with_link(BUILT_IN_TEXTS["en"])


def install_message(hq_base_url: str, domain: str, app_id: str) -> str:
    """Return the install message that the CommCare app reads to set up ``app_id``."""
    url = f"{hq_base_url.rstrip('/')}/a/{domain}/sms/app_info/{app_id}/"
    encoded = base64.b64encode(url.encode("utf-8")).decode("ascii")
    return INSTALL_MESSAGE_PREFIX + encoded
