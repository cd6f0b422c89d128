"""Commands on domains, their apps and their translations, and seed loading."""

import argparse
import dataclasses
import json
from typing import Any

from admin.errors import AdminError
from admin.output import print_fields, print_json, print_table
from core.messages import (
    MAX_SMS_BYTES,
    PLAY_STORE_LINK,
    TRANSLATION_KEY,
    MessageTemplateError,
    split_template,
)
from core.models import App, Domain
from core.repository import Repository
from core.seed import load_seed


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


# Default of every ``domain set`` option, so that None can mean "clear the value".
UNSET: Any = _Unset()


# Options of ``domain set`` and the Domain field each one sets.
DOMAIN_OPTIONS = {
    "plan": "plan",
    "registration": "sms_registration_enabled",
    "default_language": "default_language",
    "sender_id": "sms_sender_id",
    "origination_number": "sms_origination_number",
    "max_price": "sms_max_price_usd",
    "allowed_countries": "allowed_countries",
    "daily_sms_limit": "daily_sms_limit",
    "delivery": "delivery",
}


def require_domain(repository: Repository, name: str) -> Domain:
    domain = repository.get_domain(name)
    if domain is None:
        raise AdminError(
            f"Domain {name!r} not found. Create it with: "
            f"reinstall-admin domain set {name} --plan PLAN"
        )
    return domain


def domain_record(domain: Domain) -> dict[str, Any]:
    record = dataclasses.asdict(domain)
    if domain.allowed_countries is not None:
        record["allowed_countries"] = list(domain.allowed_countries)
    return record


def show_domain(args: argparse.Namespace, repository: Repository) -> int:
    domain = require_domain(repository, args.name)
    if args.json:
        print_json(domain_record(domain))
        return 0
    print_fields(
        [
            ("name", domain.name),
            ("plan", domain.plan),
            ("registration", "on" if domain.sms_registration_enabled else "off"),
            ("default language", domain.default_language),
            ("sender ID", domain.sms_sender_id),
            ("origination number", domain.sms_origination_number),
            ("max price (USD)", domain.sms_max_price_usd),
            (
                "allowed countries",
                "all" if domain.allowed_countries is None else domain.allowed_countries,
            ),
            ("daily SMS limit", domain.daily_sms_limit),
            ("delivery", domain.delivery),
            ("translations", sorted(domain.translations)),
        ]
    )
    return 0


def set_domain(args: argparse.Namespace, repository: Repository) -> int:
    """Create the domain or change the given settings; unset options stay as stored."""
    changes = {
        field: getattr(args, option)
        for option, field in DOMAIN_OPTIONS.items()
        if getattr(args, option) is not UNSET
    }
    existing = repository.get_domain(args.name)
    if existing is None:
        if "plan" not in changes:
            raise AdminError(
                f"Domain {args.name!r} does not exist; pass --plan to create it."
            )
        # A new domain starts with SMS registration off unless --registration on.
        domain = Domain(
            name=args.name, plan=changes.pop("plan"), sms_registration_enabled=False
        )
        repository.put_domain(dataclasses.replace(domain, **changes))
        print(f"Created domain {args.name}.")
        return 0

    domain = dataclasses.replace(existing, **changes)
    if domain == existing:
        print(f"Domain {args.name} unchanged.")
        return 0
    repository.put_domain(domain)
    print(f"Updated domain {args.name}.")
    return 0


def add_app(args: argparse.Namespace, repository: Repository) -> int:
    """Add the app, or restore it if it was removed; ``--name`` renames it."""
    require_domain(repository, args.domain)
    existing = repository.get_app(args.domain, args.app_id)
    name = args.name
    if name is None:
        name = existing.name if existing else ""
    repository.put_app(App(domain=args.domain, app_id=args.app_id, name=name))
    if existing is None:
        action = "Added"
    elif existing.deleted:
        action = "Restored"
    else:
        action = "Updated"
    print(f"{action} app {args.app_id} in domain {args.domain}.")
    return 0


def remove_app(args: argparse.Namespace, repository: Repository) -> int:
    """Mark the app deleted, so that requests for it fail with ``Invalid app_id``."""
    require_domain(repository, args.domain)
    app = repository.get_app(args.domain, args.app_id)
    if app is None:
        raise AdminError(f"App {args.app_id!r} not found in domain {args.domain!r}.")
    if app.deleted:
        print(f"App {args.app_id} in domain {args.domain} was already removed.")
        return 0
    repository.put_app(dataclasses.replace(app, deleted=True))
    print(f"Removed app {args.app_id} from domain {args.domain}.")
    return 0


def list_apps(args: argparse.Namespace, repository: Repository) -> int:
    require_domain(repository, args.domain)
    apps = repository.list_apps(args.domain)
    if args.json:
        print_json([dataclasses.asdict(app) for app in apps])
        return 0
    print_table(
        ["APP_ID", "NAME", "STATE"],
        [
            [app.app_id, app.name, "deleted" if app.deleted else "active"]
            for app in apps
        ],
    )
    return 0


def set_translation(args: argparse.Namespace, repository: Repository) -> int:
    """Store the domain's default first message in one language.

    The text must contain exactly one ``{}`` placeholder for the Play Store link
    and fit in one SNS publish once the link is in place.
    """
    domain = require_domain(repository, args.domain)
    try:
        before, after = split_template(args.text)
    except MessageTemplateError as error:
        raise AdminError(f"The translation text {error}.") from None
    size = len((before + PLAY_STORE_LINK + after).encode("utf-8"))
    if size > MAX_SMS_BYTES:
        raise AdminError(
            f"The translation text is {size} bytes in UTF-8 with the link in place; "
            f"the maximum for one SMS is {MAX_SMS_BYTES} bytes."
        )

    translations = {
        language: dict(texts) for language, texts in domain.translations.items()
    }
    translations.setdefault(args.language, {})[TRANSLATION_KEY] = args.text
    repository.put_domain(dataclasses.replace(domain, translations=translations))
    print(f"Set the {args.language} translation of domain {domain.name}.")
    return 0


def list_translations(args: argparse.Namespace, repository: Repository) -> int:
    domain = require_domain(repository, args.domain)
    rows = [
        (language, texts.get(TRANSLATION_KEY))
        for language, texts in sorted(domain.translations.items())
    ]
    if args.json:
        print_json({language: text for language, text in rows})
        return 0
    print_table(["LANGUAGE", "TEXT"], rows)
    return 0


def load_seed_file(args: argparse.Namespace, repository: Repository) -> int:
    try:
        seed = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as error:
        raise AdminError(
            f"Cannot read seed file {args.file}: {error.strerror}."
        ) from None
    except json.JSONDecodeError as error:
        raise AdminError(f"Seed file {args.file} is not valid JSON: {error}.") from None

    if args.create_table:
        try:
            repository.client.describe_table(TableName=repository.table_name)
        except repository.client.exceptions.ResourceNotFoundException:
            repository.create_table()
            print(f"Created table {repository.table_name}.")
    try:
        counts = load_seed(seed, repository)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise AdminError(
            f"Seed file {args.file} has an invalid record ({type(error).__name__}: "
            f"{error}); records before it were loaded."
        ) from None
    summary = ", ".join(f"{count} {kind}" for kind, count in counts.items())
    print(f"Loaded {summary} into table {repository.table_name}.")
    return 0
