"""Idempotent retries of a reinstall request, keyed by the client's Idempotency-Key.

A record is scoped to (domain, authenticated username, key). The first request
with a key runs. A repeat with the same JSON body while the record lives
(IDEMPOTENCY_TTL_SECONDS) gets the stored response and sends nothing. Records
are kept by Powertools' idempotency utility in a DynamoDB table of their own.

Only responses of requests that ran to the end (200) are stored. A request
rejected with a 4xx sent nothing, and one that failed with a 5xx may have sent
nothing, so both run again when retried.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.errors import RequestValidationError, ServiceError, StorageUnavailableError

# Powertools' idempotency utility is imported where it is used, because only
# requests with an Idempotency-Key need it.
if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
        DataRecord,
    )

logger = Logger(child=True)

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_KEY_MAX_LENGTH = 255
# Printable ASCII (space to tilde), neither starting nor ending with a space:
# HTTP strips spaces around a header value, so such a key could not arrive intact.
_IDEMPOTENCY_KEY_PATTERN = re.compile(r"[!-~](?:[ -~]{0,253}[!-~])?")
# Prefix of every record's key in the table. Fixed, so that renaming the
# function or its module does not orphan the records written before.
RECORD_KEY_PREFIX = "reinstall"
# Seconds a client should wait before retrying while the first request with
# its key still runs. The function's timeout (25 s) bounds the wait.
IN_PROGRESS_RETRY_AFTER_SECONDS = 5

_KEY_HELP = (
    f"An {IDEMPOTENCY_KEY_HEADER} must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} "
    "printable ASCII characters that neither start nor end with a space; a UUID "
    "works."
)


class InvalidIdempotencyKeyError(RequestValidationError):
    """The Idempotency-Key header is empty, too long, repeated or not printable ASCII."""

    def __init__(self, problem: str) -> None:
        message = f"Invalid {IDEMPOTENCY_KEY_HEADER} header: {problem}. {_KEY_HELP}"
        super().__init__({"__all__": message})


class IdempotencyKeyReusedError(ServiceError):
    """The key was already used by this web user in this domain with another body."""

    status_code = 422


class IdempotencyInProgressError(ServiceError):
    """The first request with this key has not finished yet."""

    status_code = 409

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(IN_PROGRESS_RETRY_AFTER_SECONDS)}


@dataclass(frozen=True, slots=True)
class IdempotencyScope:
    """Owner of a stored response: one key of one web user in one domain."""

    domain: str
    username: str
    key: str


@dataclass(frozen=True, slots=True)
class IdempotentResponse:
    """A response to send, either fresh or replayed from the record of an earlier run."""

    status_code: int
    # The JSON text of the body, stored as text so that a replay repeats the
    # first response byte for byte (Powertools re-serializes stored objects
    # with sorted keys).
    body: str
    replayed: bool


def validate_idempotency_key(values: Sequence[str]) -> str:
    """Return the one Idempotency-Key among the header's ``values``.

    Raises InvalidIdempotencyKeyError (400) when the header is repeated or its
    value breaks the format.
    """
    if len(values) != 1:
        raise InvalidIdempotencyKeyError(
            f"the header was sent {len(values)} times; send it once"
        )
    key = values[0]
    if not key:
        raise InvalidIdempotencyKeyError("the value is empty")
    if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise InvalidIdempotencyKeyError(f"the value is {len(key)} characters long")
    if not _IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise InvalidIdempotencyKeyError(
            "the value contains a character outside printable ASCII, or starts "
            "or ends with a space"
        )
    return key


def body_digest(body: bytes) -> str:
    """Return a SHA-256 digest that is equal for bodies with the same JSON value.

    Key order and whitespace do not count, so a client that re-serializes its
    request for a retry is not rejected. A body that is not JSON is digested
    as bytes; it is rejected with 400 and never stored, so only the
    comparison with a concurrent first request depends on it.
    """
    try:
        value = json.loads(body.decode("utf-8-sig"))
        # ASCII escapes keep a lone surrogate (valid in JSON text, not in
        # UTF-8) encodable.
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "bytes:" + hashlib.sha256(body).hexdigest()
    return "json:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:
    """Flag a response that Powertools read back from the table."""
    return {**response, "replayed": True}


class IdempotencyStore:
    """Store that runs a request once per scope while its record lives.

    A record left in progress past the invocation's deadline (a crash) is
    reused, so that request may run again.
    """

    def __init__(self, persistence: BasePersistenceLayer, ttl_seconds: int) -> None:
        self.persistence = persistence
        self.ttl_seconds = ttl_seconds

    def run(
        self,
        scope: IdempotencyScope,
        body: bytes,
        operation: Callable[[], dict[str, Any]],
        lambda_context: LambdaContext | None = None,
    ) -> IdempotentResponse:
        """Run ``operation`` (which returns a 200 body) or replay its stored result.

        Raises IdempotencyKeyReusedError (422) when the scope's record has a
        different body, IdempotencyInProgressError (409) while the first
        request still runs, StorageUnavailableError (503) when the table fails
        before ``operation`` ran, and whatever ``operation`` raises. Nothing is
        stored in those cases. ``lambda_context`` gives the invocation's
        deadline, after which a record left in progress by a crash is reused.
        """
        from aws_lambda_powertools.utilities.idempotency import (
            IdempotencyConfig,
            idempotent_function,
        )
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyInconsistentStateError,
            IdempotencyPersistenceLayerError,
            IdempotencyValidationError,
        )

        config = IdempotencyConfig(
            event_key_jmespath="[domain, username, key]",
            payload_validation_jmespath="body_digest",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=self.ttl_seconds,
            hash_function="sha256",
            lambda_context=lambda_context,
            response_hook=_mark_replayed,
        )
        fresh: list[dict[str, Any]] = []

        # Powertools deletes the in-progress record when this raises, so an
        # error response (4xx or 5xx) is never stored; errors must be raised,
        # not returned.
        # Powertools' decorator is untyped; run_once keeps its own signature.
        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="request",
            persistence_store=self.persistence,
            config=config,
            key_prefix=RECORD_KEY_PREFIX,
        )
        def run_once(request: dict[str, str]) -> dict[str, Any]:
            stored = {"status_code": 200, "body": json.dumps(operation())}
            fresh.append(stored)
            return stored

        request = {
            "domain": scope.domain,
            "username": scope.username,
            "key": scope.key,
            "body_digest": body_digest(body),
        }
        try:
            result = run_once(request=request)
        except IdempotencyValidationError as error:
            raise IdempotencyKeyReusedError(
                f"{IDEMPOTENCY_KEY_HEADER} '{scope.key}' was already used with a "
                "different request body. Use a new key for a new request."
            ) from error
        except (
            IdempotencyAlreadyInProgressError,
            IdempotencyInconsistentStateError,
        ) as error:
            raise IdempotencyInProgressError(
                f"A request with {IDEMPOTENCY_KEY_HEADER} '{scope.key}' is still "
                f"being processed. Retry after {IN_PROGRESS_RETRY_AFTER_SECONDS} "
                "seconds."
            ) from error
        except IdempotencyPersistenceLayerError as error:
            if fresh:
                # The SMS went out but the result could not be stored (for
                # example a response over DynamoDB's 400 KB item limit). The
                # client still learns what was sent.
                logger.exception(
                    "Idempotency record not saved; returning the fresh response",
                    extra={"domain": scope.domain, "idempotency_key": scope.key},
                )
                return IdempotentResponse(200, fresh[0]["body"], replayed=False)
            logger.exception("Idempotency table failed", extra={"domain": scope.domain})
            raise StorageUnavailableError(
                "The service's storage is unavailable; retry later."
            ) from error

        return IdempotentResponse(
            status_code=int(result["status_code"]),
            body=str(result["body"]),
            replayed=bool(result.get("replayed", False)),
        )


def build_idempotency_store(
    table_name: str, dynamodb: Any, ttl_seconds: int
) -> IdempotencyStore:
    """Wire an IdempotencyStore to the DynamoDB table ``table_name``."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb)
    return IdempotencyStore(persistence, ttl_seconds)


def create_idempotency_table(dynamodb: Any, table_name: str) -> None:
    """Create the idempotency table as template.yaml declares it, for local runs.

    The key attribute ``id`` and the TTL attribute ``expiration`` are the names
    DynamoDBPersistenceLayer uses by default.
    """
    dynamodb.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.get_waiter("table_exists").wait(TableName=table_name)
    dynamodb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
