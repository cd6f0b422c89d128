"""Load domains, apps, web users and phone numbers from a seed file.

Usage: ``python -m core.seed FILE [--create-table]`` against the table named by
``TABLE_NAME``. Loading the same file twice leaves the same records and the
same valid keys: a stored key hash that already matches the seed's key is kept.
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import auth
from core.models import ApiKey, App, Domain, PhoneRegistration, WebUser
from core.phone import to_e164_digits
from core.repository import Repository

# The id of the key a seed file gives a user; keys made by operators get random ids.
SEED_KEY_ID_PREFIX = "seed-"


def _domain(record: dict[str, Any]) -> Domain:
    countries = record.get("allowed_countries")
    price = record.get("sms_max_price_usd")
    return Domain(
        name=record["name"],
        plan=record["plan"],
        sms_registration_enabled=bool(record.get("sms_registration_enabled", False)),
        default_language=record.get("default_language") or "en",
        translations=record.get("translations") or {},
        sms_sender_id=record.get("sms_sender_id"),
        sms_origination_number=record.get("sms_origination_number"),
        sms_max_price_usd=str(price) if price is not None else None,
        allowed_countries=(
            tuple(code.upper() for code in countries) if countries is not None else None
        ),
        daily_sms_limit=record.get("daily_sms_limit"),
        delivery=record.get("delivery") or "direct",
    )


def _parse_expiry(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)  # Python 3.11 reads a trailing Z itself
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _user(record: dict[str, Any], existing: WebUser | None) -> WebUser:
    username = record["username"]
    key_id = SEED_KEY_ID_PREFIX + username
    kept_keys = [
        key for key in (existing.api_keys if existing else ()) if key.key_id != key_id
    ]
    if record.get("api_key"):
        previous = (
            next((key for key in existing.api_keys if key.key_id == key_id), None)
            if existing
            else None
        )
        key_hash = (
            previous.key_hash
            if previous and auth.api_key_matches(record["api_key"], previous.key_hash)
            else auth.hash_api_key(record["api_key"])
        )
        kept_keys.append(
            ApiKey(
                key_id=key_id,
                key_hash=key_hash,
                domain=record.get("api_key_domain"),
                expires=_parse_expiry(record.get("api_key_expires")),
                created=previous.created if previous else datetime.now(UTC),
            )
        )
    return WebUser(
        username=username,
        active=bool(record.get("active", True)),
        api_keys=tuple(kept_keys),
        permissions={
            domain: tuple(granted)
            for domain, granted in (record.get("domains") or {}).items()
        },
    )


def _registry_digits(position: int, value: Any) -> str:
    """Return the E.164 digits that requests look up for a seeded phone number.

    Raises ValueError when the value is not a valid number, because a record
    stored under any other key would never match a request.
    """
    digits = to_e164_digits(str(value))
    if digits is None:
        raise ValueError(
            f"phone_numbers[{position}]: {value!r} is not a valid phone number. "
            "Write it with its country code, such as 16175550100."
        )
    return digits


def load_seed(seed: dict[str, Any], repository: Repository) -> dict[str, int]:
    """Store every record of ``seed``; return how many of each kind were loaded.

    Phone numbers are stored as E.164 digits, so ``+1 (617) 555-0100`` and
    ``16175550100`` are the same record. Raises ValueError for an invalid phone
    number, after the records before it were stored.
    """
    for record in seed.get("domains", []):
        repository.put_domain(_domain(record))
    for record in seed.get("apps", []):
        repository.put_app(
            App(
                domain=record["domain"],
                app_id=record["app_id"],
                name=record.get("name", ""),
                deleted=bool(record.get("deleted", False)),
            )
        )
    for record in seed.get("users", []):
        existing = repository.get_user(record["username"])
        repository.put_user(_user(record, existing))
    for position, record in enumerate(seed.get("phone_numbers", [])):
        repository.put_phone(
            PhoneRegistration(
                phone_number=_registry_digits(position, record["phone_number"]),
                domain=record["domain"],
                language=record.get("language"),
                verified=bool(record.get("verified", True)),
            )
        )
    return {
        kind: len(seed.get(kind, []))
        for kind in ("domains", "apps", "users", "phone_numbers")
    }


def main(argv: list[str] | None = None) -> int:
    from core.aws import dynamodb_client
    from core.settings import get_settings

    parser = argparse.ArgumentParser(
        prog="python -m core.seed",
        description="Load a seed file into the table named by TABLE_NAME.",
    )
    parser.add_argument("file", type=Path, help="seed file (JSON)")
    parser.add_argument(
        "--create-table",
        action="store_true",
        help="create the table first if it does not exist",
    )
    args = parser.parse_args(argv)

    seed = json.loads(args.file.read_text(encoding="utf-8"))
    client = dynamodb_client()
    repository = Repository(get_settings().table_name, client)
    if args.create_table:
        try:
            client.describe_table(TableName=repository.table_name)
        except client.exceptions.ResourceNotFoundException:
            repository.create_table()
    counts = load_seed(seed, repository)
    summary = ", ".join(f"{count} {kind}" for kind, count in counts.items())
    print(f"Loaded {summary} into table {repository.table_name}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
