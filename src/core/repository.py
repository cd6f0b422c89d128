"""The service's records in one DynamoDB table.

Every item has a string partition key ``pk`` and sort key ``sk``; the layout is
described in docs/data-model.md. Reads for a request use BatchGetItem so that a
request costs as few round trips as possible.
"""

import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import StorageUnavailableError
from core.models import ApiKey, App, Domain, PhoneRegistration, WebUser

logger = Logger(child=True)

# DynamoDB's limit of keys in one BatchGetItem call.
BATCH_GET_MAX_KEYS = 100
# Attempts for a batch whose keys DynamoDB keeps returning as unprocessed.
UNPROCESSED_MAX_ATTEMPTS = 6
UNPROCESSED_BASE_DELAY_SECONDS = 0.05
REGISTRY_FETCH_CONCURRENCY = 8
# DynamoDB's maximum sizes of a partition key and a sort key value, in UTF-8
# bytes. No stored item has a longer key, and a read with one fails with
# ValidationException, so such keys are left out of reads.
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

Key = dict[str, str]
Item = dict[str, Any]


def user_key(username: str) -> Key:
    return {"pk": f"USER#{username}", "sk": "USER"}


def domain_key(name: str) -> Key:
    return {"pk": f"DOMAIN#{name}", "sk": "DOMAIN"}


def app_key(domain: str, app_id: str) -> Key:
    return {"pk": f"DOMAIN#{domain}", "sk": f"APP#{app_id}"}


def phone_key(digits: str) -> Key:
    return {"pk": f"PHONE#{digits}", "sk": "PHONE"}


def api_key_pointer_key(key_id: str) -> Key:
    return {"pk": f"APIKEY#{key_id}", "sk": "APIKEY"}


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Records that authentication and the checks before sending need, read in one call."""

    user: WebUser | None
    domain: Domain | None
    app: App | None


def _serialize(item: Item) -> dict[str, Any]:
    return {
        name: _serializer.serialize(value)
        for name, value in item.items()
        if value is not None
    }


def _deserialize(item: dict[str, Any]) -> Item:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _plain(value: Any) -> Any:
    """Turn DynamoDB's Decimals into int or str, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {name: _plain(inner) for name, inner in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_plain(inner) for inner in value]
    return value


def _fits_dynamodb(key: Key) -> bool:
    return (
        len(key["pk"].encode("utf-8")) <= MAX_PARTITION_KEY_BYTES
        and len(key["sk"].encode("utf-8")) <= MAX_SORT_KEY_BYTES
    )


def _chunks(keys: Sequence[Key], size: int) -> Iterator[list[Key]]:
    for start in range(0, len(keys), size):
        yield list(keys[start : start + size])


def domain_from_item(item: Item) -> Domain:
    item = _plain(item)
    countries = item.get("allowed_countries")
    limit = item.get("daily_sms_limit")
    return Domain(
        name=item["name"],
        plan=item["plan"],
        sms_registration_enabled=bool(item.get("sms_registration_enabled", False)),
        default_language=item.get("default_language") or "en",
        translations=item.get("translations") or {},
        sms_sender_id=item.get("sms_sender_id"),
        sms_origination_number=item.get("sms_origination_number"),
        sms_max_price_usd=(
            str(item["sms_max_price_usd"]) if "sms_max_price_usd" in item else None
        ),
        allowed_countries=tuple(countries) if countries is not None else None,
        daily_sms_limit=int(limit) if limit is not None else None,
        delivery=item.get("delivery") or "direct",
    )


def domain_to_item(domain: Domain) -> Item:
    return {
        **domain_key(domain.name),
        "type": "domain",
        "name": domain.name,
        "plan": domain.plan,
        "sms_registration_enabled": domain.sms_registration_enabled,
        "default_language": domain.default_language,
        "translations": domain.translations,
        "sms_sender_id": domain.sms_sender_id,
        "sms_origination_number": domain.sms_origination_number,
        "sms_max_price_usd": domain.sms_max_price_usd,
        "allowed_countries": (
            list(domain.allowed_countries)
            if domain.allowed_countries is not None
            else None
        ),
        "daily_sms_limit": domain.daily_sms_limit,
        "delivery": domain.delivery,
    }


def app_from_item(item: Item) -> App:
    return App(
        domain=item["domain"],
        app_id=item["app_id"],
        name=item.get("name", ""),
        deleted=bool(item.get("deleted", False)),
    )


def app_to_item(app: App) -> Item:
    return {
        **app_key(app.domain, app.app_id),
        "type": "app",
        "domain": app.domain,
        "app_id": app.app_id,
        "name": app.name,
        "deleted": app.deleted,
    }


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def user_from_item(item: Item) -> WebUser:
    keys = tuple(
        ApiKey(
            key_id=key_id,
            key_hash=stored["key_hash"],
            domain=stored.get("domain"),
            expires=_parse_time(stored.get("expires")),
            revoked=bool(stored.get("revoked", False)),
            created=_parse_time(stored.get("created")),
        )
        for key_id, stored in sorted((item.get("api_keys") or {}).items())
    )
    permissions = {
        domain: tuple(granted)
        for domain, granted in (item.get("permissions") or {}).items()
    }
    return WebUser(
        username=item["username"],
        active=bool(item.get("active", True)),
        api_keys=keys,
        permissions=permissions,
    )


def user_to_item(user: WebUser) -> Item:
    api_keys = {
        key.key_id: {
            name: value
            for name, value in {
                "key_hash": key.key_hash,
                "domain": key.domain,
                "expires": key.expires.isoformat() if key.expires else None,
                "revoked": key.revoked,
                "created": key.created.isoformat() if key.created else None,
            }.items()
            if value is not None
        }
        for key in user.api_keys
    }
    return {
        **user_key(user.username),
        "type": "user",
        "username": user.username,
        "active": user.active,
        "api_keys": api_keys,
        "permissions": {
            domain: list(granted) for domain, granted in user.permissions.items()
        },
    }


def phone_from_item(item: Item) -> PhoneRegistration:
    return PhoneRegistration(
        phone_number=item["phone_number"],
        domain=item["domain"],
        language=item.get("language"),
        verified=bool(item.get("verified", True)),
    )


def phone_to_item(registration: PhoneRegistration) -> Item:
    return {
        **phone_key(registration.phone_number),
        "type": "phone",
        "phone_number": registration.phone_number,
        "domain": registration.domain,
        "language": registration.language,
        "verified": registration.verified,
    }


class Repository:
    """Reads and writes the service's records in the table ``table_name``."""

    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self.client = client

    def create_table(self) -> None:
        """Create the table (on-demand billing) and wait until it exists."""
        self.client.create_table(
            TableName=self.table_name,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        self.client.get_waiter("table_exists").wait(TableName=self.table_name)

    # Reads for a request

    def load_request_context(
        self, username: str, domain: str, app_id: str | None
    ) -> RequestContext:
        """Read the web user, the domain and the app in one BatchGetItem.

        A name too long for a DynamoDB key reads as a missing record, because
        the request comes from a client and must not look like a storage
        failure. Raises StorageUnavailableError when DynamoDB fails.
        """
        keys = [user_key(username), domain_key(domain)]
        if app_id:
            keys.append(app_key(domain, app_id))
        readable = [key for key in keys if _fits_dynamodb(key)]
        items = {(item["pk"], item["sk"]): item for item in self._batch_get(readable)}

        user_item = items.get((keys[0]["pk"], keys[0]["sk"]))
        domain_item = items.get((keys[1]["pk"], keys[1]["sk"]))
        app_item = items.get((keys[2]["pk"], keys[2]["sk"])) if app_id else None
        return RequestContext(
            user=user_from_item(user_item) if user_item else None,
            domain=domain_from_item(domain_item) if domain_item else None,
            app=app_from_item(app_item) if app_item else None,
        )

    def get_phone_registrations(
        self, phone_numbers: Iterable[str]
    ) -> dict[str, PhoneRegistration]:
        """Return the registrations of ``phone_numbers`` (E.164 digits) that exist.

        Chunks of 100 keys are fetched concurrently. Raises
        StorageUnavailableError when DynamoDB fails.
        """
        keys = [phone_key(digits) for digits in dict.fromkeys(phone_numbers)]
        chunks = list(_chunks(keys, BATCH_GET_MAX_KEYS))
        if len(chunks) <= 1:
            results = [self._batch_get(chunk) for chunk in chunks]
        else:
            workers = min(REGISTRY_FETCH_CONCURRENCY, len(chunks))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(self._batch_get, chunks))
        registrations = {}
        for items in results:
            for item in items:
                registration = phone_from_item(item)
                registrations[registration.phone_number] = registration
        return registrations

    def _batch_get(self, keys: list[Key]) -> list[Item]:
        """Return the items of up to 100 ``keys``, retrying unprocessed keys."""
        if not keys:
            return []
        request = {self.table_name: {"Keys": [_serialize(key) for key in keys]}}
        found: list[Item] = []
        for attempt in range(UNPROCESSED_MAX_ATTEMPTS):
            try:
                response = self.client.batch_get_item(RequestItems=request)
            except (ClientError, BotoCoreError) as error:
                logger.exception(
                    "DynamoDB BatchGetItem failed", extra={"table": self.table_name}
                )
                raise StorageUnavailableError(
                    "The service's storage is unavailable; retry later."
                ) from error
            found += [
                _deserialize(item)
                for item in response.get("Responses", {}).get(self.table_name, [])
            ]
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
            logger.warning(
                "DynamoDB returned unprocessed keys; retrying",
                extra={"attempt": attempt + 1, "table": self.table_name},
            )
            time.sleep(UNPROCESSED_BASE_DELAY_SECONDS * 2**attempt)
        raise StorageUnavailableError(
            "The service's storage is throttling reads; retry later."
        )

    # Single-item reads and writes, for the seed loader and operators

    def get_item(self, key: Key) -> Item | None:
        response = self.client.get_item(
            TableName=self.table_name, Key=_serialize(key), ConsistentRead=True
        )
        item = response.get("Item")
        return _deserialize(item) if item else None

    def put_item(self, item: Item) -> None:
        self.client.put_item(TableName=self.table_name, Item=_serialize(item))

    def get_domain(self, name: str) -> Domain | None:
        item = self.get_item(domain_key(name))
        return domain_from_item(item) if item else None

    def put_domain(self, domain: Domain) -> None:
        self.put_item(domain_to_item(domain))

    def get_app(self, domain: str, app_id: str) -> App | None:
        item = self.get_item(app_key(domain, app_id))
        return app_from_item(item) if item else None

    def put_app(self, app: App) -> None:
        self.put_item(app_to_item(app))

    def get_user(self, username: str) -> WebUser | None:
        item = self.get_item(user_key(username))
        return user_from_item(item) if item else None

    def put_user(self, user: WebUser) -> None:
        """Store ``user`` and a pointer from each key id to the username."""
        self.put_item(user_to_item(user))
        for key in user.api_keys:
            self.put_item(
                {
                    **api_key_pointer_key(key.key_id),
                    "type": "api_key",
                    "username": user.username,
                }
            )

    def get_phone(self, digits: str) -> PhoneRegistration | None:
        item = self.get_item(phone_key(digits))
        return phone_from_item(item) if item else None

    def put_phone(self, registration: PhoneRegistration) -> None:
        self.put_item(phone_to_item(registration))

    # Lookups and deletions for operator tooling

    def list_apps(self, domain: str) -> list[App]:
        """Return every app of ``domain``, deleted ones included, ordered by app_id."""
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": domain_key(domain)["pk"]},
                ":prefix": {"S": "APP#"},
            },
            ConsistentRead=True,
        )
        return [
            app_from_item(_deserialize(item))
            for page in pages
            for item in page.get("Items", [])
        ]

    def get_api_key_owner(self, key_id: str) -> str | None:
        """Return the username that the API key ``key_id`` belongs to, or None."""
        item = self.get_item(api_key_pointer_key(key_id))
        return item["username"] if item else None

    def delete_phone(self, digits: str) -> bool:
        """Delete the registration of ``digits``; return whether one existed."""
        response = self.client.delete_item(
            TableName=self.table_name,
            Key=_serialize(phone_key(digits)),
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))
