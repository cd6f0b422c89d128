"""Records the service keeps: domains, apps, web users with API keys, phone numbers."""

from dataclasses import dataclass, field
from datetime import datetime

PLANS = ("community", "standard", "pro", "advanced", "enterprise")
DELIVERY_MODES = ("direct", "queued")


@dataclass(frozen=True, slots=True)
class Domain:
    """A CommCare project."""

    name: str
    plan: str
    sms_registration_enabled: bool
    default_language: str = "en"
    # language -> {"install_commcare": text with one {} placeholder}
    translations: dict[str, dict[str, str]] = field(default_factory=dict)
    sms_sender_id: str | None = None
    sms_origination_number: str | None = None
    sms_max_price_usd: str | None = None
    # ISO 3166-1 alpha-2 codes; None means every country.
    allowed_countries: tuple[str, ...] | None = None
    daily_sms_limit: int | None = None
    delivery: str = "direct"


@dataclass(frozen=True, slots=True)
class App:
    """A CommCare app of one domain."""

    domain: str
    app_id: str
    name: str = ""
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key of a web user, stored only as a salted hash."""

    key_id: str
    key_hash: str
    domain: str | None = None
    expires: datetime | None = None
    revoked: bool = False
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class WebUser:
    """A web user who calls the API, with keys and per-domain permissions."""

    username: str
    active: bool = True
    api_keys: tuple[ApiKey, ...] = ()
    # domain -> permissions such as "edit_data"
    permissions: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PhoneRegistration:
    """A mobile worker's number registered to a domain (E.164 digits, no ``+``)."""

    phone_number: str
    domain: str
    language: str | None = None
    verified: bool = True
