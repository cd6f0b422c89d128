"""API key authentication and domain authorization.

Keys are stored as ``sha256$<salt hex>$<digest hex>`` of salt + key. A fast
salted hash is enough because generated keys carry 256 bits of randomness. A
slow password hash would only add CPU time to every request.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from core.errors import AuthenticationError, PermissionDeniedError
from core.models import ApiKey, Domain, WebUser

EDIT_DATA = "edit_data"
HASH_SCHEME = "sha256"

INVALID_CREDENTIALS = "Invalid username or API key."
AUTH_HEADER_HELP = "Send the header 'Authorization: ApiKey <username>:<api_key>'."

# Compared against when the username is unknown, so that an unknown user and a
# wrong key take the same time.
_DUMMY_HASH = f"{HASH_SCHEME}${'00' * 16}${'00' * 32}"


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    api_key: str


def generate_api_key() -> str:
    """Return a new random API key (64 hex characters, 256 bits)."""
    return secrets.token_hex(32)


def hash_api_key(api_key: str, salt: bytes | None = None) -> str:
    """Return the salted hash of ``api_key`` in the stored format."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.sha256(salt + api_key.encode("utf-8")).hexdigest()
    return f"{HASH_SCHEME}${salt.hex()}${digest}"


def api_key_matches(api_key: str, stored_hash: str) -> bool:
    """Return whether ``api_key`` hashes to ``stored_hash``, in constant time."""
    try:
        scheme, salt_hex, digest_hex = stored_hash.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if scheme != HASH_SCHEME:
        return False
    candidate = hashlib.sha256(salt + api_key.encode("utf-8")).hexdigest()
    return hmac.compare_digest(candidate, digest_hex)


def parse_authorization(header: str | None) -> Credentials:
    """Parse ``ApiKey <username>:<api_key>``; the scheme is case-insensitive.

    Raises AuthenticationError when the header is missing or malformed.
    """
    if not header or not header.strip():
        raise AuthenticationError(f"Missing Authorization header. {AUTH_HEADER_HELP}")
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "apikey":
        raise AuthenticationError(
            f"Unsupported Authorization scheme. {AUTH_HEADER_HELP}"
        )
    username, separator, api_key = credentials.strip().rpartition(":")
    if not separator or not username or not api_key:
        raise AuthenticationError(f"Malformed Authorization header. {AUTH_HEADER_HELP}")
    return Credentials(username=username, api_key=api_key)


def authenticate(
    user: WebUser | None, credentials: Credentials, domain: str, now: datetime
) -> ApiKey:
    """Return the user's key that matches ``credentials`` and may be used in ``domain``.

    Raises AuthenticationError for an unknown or inactive user, a wrong or
    revoked key, an expired key, or a key restricted to another domain.
    """
    if user is None:
        api_key_matches(credentials.api_key, _DUMMY_HASH)
        raise AuthenticationError(INVALID_CREDENTIALS)

    matched = None
    for key in user.api_keys:
        # Every key is compared, so the time taken does not tell which matched.
        if api_key_matches(credentials.api_key, key.key_hash) and matched is None:
            matched = key
    if matched is None or matched.revoked or not user.active:
        raise AuthenticationError(INVALID_CREDENTIALS)

    if matched.expires is not None and _as_utc(matched.expires) <= now:
        raise AuthenticationError("API key has expired. Create a new API key.")
    if matched.domain is not None and matched.domain != domain:
        raise AuthenticationError(
            "API key is restricted to another project and cannot be used here."
        )
    return matched


def authorize(user: WebUser, domain_name: str, domain: Domain | None) -> None:
    """Check that ``user`` has edit_data in an existing domain.

    A domain that does not exist raises the same PermissionDeniedError as one the
    user is not a member of, so that project names cannot be probed.
    """
    granted = user.permissions.get(domain_name, ())
    if domain is None or EDIT_DATA not in granted:
        raise PermissionDeniedError(
            f"You do not have permission to send reinstall SMS in project "
            f"'{domain_name}'. The edit_data permission is required."
        )


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
