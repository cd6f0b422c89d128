"""Commands on web users, their permissions and their API keys."""

import argparse
import dataclasses
import secrets
from datetime import UTC, datetime
from typing import Any

from admin.domains import require_domain
from admin.errors import AdminError
from admin.output import print_fields, print_json, print_table
from core import auth
from core.models import ApiKey, WebUser
from core.repository import Repository

# Number of random bytes in a new key id. Key ids are public, so they need to be
# unique but not secret.
KEY_ID_BYTES = 8


def require_user(repository: Repository, username: str) -> WebUser:
    user = repository.get_user(username)
    if user is None:
        raise AdminError(
            f"Web user {username!r} not found. Create it with: "
            f"reinstall-admin user add {username}"
        )
    return user


def add_user(args: argparse.Namespace, repository: Repository) -> int:
    if repository.get_user(args.username) is not None:
        raise AdminError(f"Web user {args.username!r} already exists.")
    repository.put_user(WebUser(username=args.username))
    print(f"Added web user {args.username}.")
    return 0


def show_user(args: argparse.Namespace, repository: Repository) -> int:
    """Show the web user's state and permissions; keys are listed by ``key list``."""
    user = require_user(repository, args.username)
    permissions = {
        domain: list(granted) for domain, granted in user.permissions.items()
    }
    if args.json:
        print_json(
            {
                "username": user.username,
                "active": user.active,
                "permissions": permissions,
                "api_keys": len(user.api_keys),
            }
        )
        return 0
    print_fields(
        [
            ("username", user.username),
            ("active", user.active),
            ("api keys", len(user.api_keys)),
        ]
    )
    print()
    print_table(
        ["DOMAIN", "PERMISSIONS"],
        [[domain, granted] for domain, granted in sorted(permissions.items())],
    )
    return 0


def grant_permission(args: argparse.Namespace, repository: Repository) -> int:
    user = require_user(repository, args.username)
    require_domain(repository, args.domain)
    granted = user.permissions.get(args.domain, ())
    if args.permission in granted:
        print(f"{args.username} already has {args.permission} in {args.domain}.")
        return 0
    permissions = {**user.permissions, args.domain: (*granted, args.permission)}
    repository.put_user(dataclasses.replace(user, permissions=permissions))
    print(f"Granted {args.permission} in {args.domain} to {args.username}.")
    return 0


def revoke_permission(args: argparse.Namespace, repository: Repository) -> int:
    user = require_user(repository, args.username)
    granted = user.permissions.get(args.domain, ())
    if args.domain not in user.permissions:
        # Permissions in a domain that no longer exists can still be revoked.
        require_domain(repository, args.domain)
    if args.permission not in granted:
        print(f"{args.username} does not have {args.permission} in {args.domain}.")
        return 0
    permissions = dict(user.permissions)
    remaining = tuple(name for name in granted if name != args.permission)
    if remaining:
        permissions[args.domain] = remaining
    else:
        del permissions[args.domain]
    repository.put_user(dataclasses.replace(user, permissions=permissions))
    print(f"Revoked {args.permission} in {args.domain} from {args.username}.")
    return 0


def create_key(args: argparse.Namespace, repository: Repository) -> int:
    """Create an API key, store only its salted hash and print the key once."""
    user = require_user(repository, args.username)
    if args.domain is not None:
        require_domain(repository, args.domain)

    key_id = _new_key_id(repository)
    secret = auth.generate_api_key()
    key = ApiKey(
        key_id=key_id,
        key_hash=auth.hash_api_key(secret),
        domain=args.domain,
        expires=args.expires,
        created=datetime.now(UTC),
    )
    repository.put_user(dataclasses.replace(user, api_keys=(*user.api_keys, key)))

    if args.json:
        print_json({"key_id": key_id, "username": user.username, "api_key": secret})
        return 0
    print(f"Created API key {key_id} for {user.username}.")
    print(f"API key: {secret}")
    print(f"Clients send: Authorization: ApiKey {user.username}:{secret}")
    print("The key is not stored and cannot be shown again; keep it now.")
    if not user.active:
        print(f"Warning: web user {user.username} is inactive, so the key fails.")
    return 0


def revoke_key(args: argparse.Namespace, repository: Repository) -> int:
    username = repository.get_api_key_owner(args.key_id)
    user = repository.get_user(username) if username else None
    key = None
    if user is not None:
        key = next((k for k in user.api_keys if k.key_id == args.key_id), None)
    if user is None or key is None:
        raise AdminError(
            f"API key {args.key_id!r} not found. "
            f"List a web user's keys with: reinstall-admin key list USERNAME"
        )
    if key.revoked:
        print(f"API key {args.key_id} of {user.username} was already revoked.")
        return 0
    keys = tuple(
        dataclasses.replace(k, revoked=True) if k.key_id == args.key_id else k
        for k in user.api_keys
    )
    repository.put_user(dataclasses.replace(user, api_keys=keys))
    print(f"Revoked API key {args.key_id} of {user.username}.")
    return 0


def list_keys(args: argparse.Namespace, repository: Repository) -> int:
    """List key ids, domain restriction, expiry and state; never keys or hashes."""
    user = require_user(repository, args.username)
    now = datetime.now(UTC)
    records = [_key_record(key, user, now) for key in user.api_keys]
    if args.json:
        print_json(records)
        return 0
    print_table(
        ["KEY_ID", "DOMAIN", "EXPIRES", "CREATED", "STATE"],
        [
            [r["key_id"], r["domain"], r["expires"], r["created"], r["state"]]
            for r in records
        ],
    )
    return 0


def key_state(key: ApiKey, user: WebUser, now: datetime) -> str:
    """Return revoked, expired, user-inactive or active, the first that applies."""
    if key.revoked:
        return "revoked"
    expires = key.expires
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if expires is not None and expires <= now:
        return "expired"
    if not user.active:
        return "user-inactive"
    return "active"


def _key_record(key: ApiKey, user: WebUser, now: datetime) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "domain": key.domain,
        "expires": key.expires.isoformat() if key.expires else None,
        "created": key.created.isoformat() if key.created else None,
        "state": key_state(key, user, now),
    }


def _new_key_id(repository: Repository) -> str:
    while True:
        key_id = secrets.token_hex(KEY_ID_BYTES)
        if repository.get_api_key_owner(key_id) is None:
            return key_id
