"""Commands on mobile workers' phone number registrations."""

import argparse

from admin.domains import require_domain
from admin.errors import AdminError
from admin.output import print_fields, print_json
from core.models import PhoneRegistration
from core.phone import normalize, to_e164_digits
from core.repository import Repository


def stored_digits(raw: str) -> str:
    """Return the digits under which ``raw`` would be stored.

    Valid numbers give their E.164 digits. Other digit strings are returned
    normalized, so that records loaded without validation can still be found.
    """
    digits = to_e164_digits(raw)
    if digits is not None:
        return digits
    normalized = normalize(raw)
    if not normalized.isascii() or not normalized.isdigit():
        raise AdminError(f"Invalid phone number {raw!r}: it must contain digits only.")
    return normalized


def register_phone(args: argparse.Namespace, repository: Repository) -> int:
    """Register a number to a domain; moving a number verified elsewhere needs --force."""
    digits = to_e164_digits(args.number)
    if digits is None:
        raise AdminError(
            f"Invalid phone number {args.number!r}; give it in international "
            f"format with the country code, such as +14155550100."
        )
    require_domain(repository, args.domain)

    existing = repository.get_phone(digits)
    if (
        existing is not None
        and existing.verified
        and existing.domain != args.domain
        and not args.force
    ):
        raise AdminError(
            f"+{digits} is verified to domain {existing.domain!r}; pass --force "
            f"to register it to {args.domain!r} instead."
        )
    registration = PhoneRegistration(
        phone_number=digits,
        domain=args.domain,
        language=args.language,
        verified=not args.unverified,
    )
    repository.put_phone(registration)
    state = "unverified" if args.unverified else "verified"
    print(f"Registered +{digits} to domain {args.domain} ({state}).")
    return 0


def unregister_phone(args: argparse.Namespace, repository: Repository) -> int:
    digits = stored_digits(args.number)
    if not repository.delete_phone(digits):
        raise AdminError(f"Phone number +{digits} is not registered.")
    print(f"Unregistered +{digits}.")
    return 0


def show_phone(args: argparse.Namespace, repository: Repository) -> int:
    digits = stored_digits(args.number)
    registration = repository.get_phone(digits)
    if registration is None:
        raise AdminError(f"Phone number +{digits} is not registered.")
    if args.json:
        print_json(
            {
                "phone_number": registration.phone_number,
                "domain": registration.domain,
                "language": registration.language,
                "verified": registration.verified,
            }
        )
        return 0
    print_fields(
        [
            ("phone number", "+" + registration.phone_number),
            ("domain", registration.domain),
            ("language", registration.language),
            ("verified", registration.verified),
        ]
    )
    return 0
