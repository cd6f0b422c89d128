"""OpenAPI descriptions of the reinstall endpoint's request, responses and headers.

The resolver's request validation stays off, because it rejects bad input with
its own 422 body that CommCare clients do not expect. These schemas therefore
only document the API; core.validation enforces the rules.

Everything here is plain JSON Schema, because handler.api imports this module
at each cold start, where importing pydantic for models would add roughly
100 ms (``python -X importtime``). The response bodies are component schemas,
which handler.openapi adds to the document.
"""

from typing import Any

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from core.errors import RESOURCE_NAME
from core.idempotency import (
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENCY_KEY_MAX_LENGTH,
    IN_PROGRESS_RETRY_AFTER_SECONDS,
    REPLAYED_HEADER,
)

SECURITY_SCHEME = "ApiKey"
EXAMPLE_APP_ID = "abcd1234abcd1234"
COMPONENT_SCHEMA_PREFIX = "#/components/schemas/"

_STRING = {"type": "string"}
_STRING_LIST = {"items": {"type": "string"}, "type": "array"}


def _closed_object(
    title: str, description: str, properties: dict[str, Any]
) -> dict[str, Any]:
    """Return the schema of an object with exactly ``properties``, all required."""
    return {
        "properties": properties,
        "additionalProperties": False,
        "type": "object",
        "required": list(properties),
        "title": title,
        "description": description,
    }


# The response bodies, by component name.
RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "ErrorResponse": _closed_object(
        "ErrorResponse",
        "A rejected request, with a message that names the problem and the fix.",
        {"error": _STRING},
    ),
    "ReinstallResponse": _closed_object(
        "ReinstallResponse",
        "Every submitted number in exactly one list, spelled as sent, in "
        "request order.",
        {
            "success_numbers": {
                **_STRING_LIST,
                "description": "Numbers that were sent both SMS.",
            },
            "invalid_format_numbers": {
                **_STRING_LIST,
                "description": "Numbers that are not a valid phone number once "
                "normalized.",
            },
            "error_numbers": {
                **_STRING_LIST,
                "description": "Numbers registered to another project, opted "
                "out, or whose SMS SNS did not accept.",
            },
        },
    ),
    "RequestStatusResponse": _closed_object(
        "RequestStatusResponse",
        "Progress of a queued request; numbers are spelled as the client sent them.",
        {
            "request_id": _STRING,
            "status": {"type": "string", "enum": ["queued", "sending", "complete"]},
            "sent_numbers": _STRING_LIST,
            "failed_numbers": _STRING_LIST,
            "pending": {
                "type": "integer",
                "minimum": 0,
                "description": "Queued numbers neither sent nor failed yet.",
            },
        },
    ),
    "ServerErrorResponse": _closed_object(
        "ServerErrorResponse",
        "A failure on the service's side. The request id locates its log lines.",
        {
            "error": _STRING,
            "request_id": {
                "type": "string",
                "description": "API Gateway's id of the request.",
            },
        },
    ),
    # The property is the resource name that core.errors puts in the body.
    "ValidationErrorResponse": _closed_object(
        "ValidationErrorResponse",
        "Field errors in CommCare HQ's (tastypie's) shape, keyed by field name.",
        {
            RESOURCE_NAME: {
                "additionalProperties": _STRING,
                "type": "object",
                "description": "Message per field: app_id, users, phone_number, "
                "reinstall_message, or __all__ for the body as a whole and the "
                f"{IDEMPOTENCY_KEY_HEADER} header.",
            }
        },
    ),
}

_DIGITS = {"type": "string", "pattern": "^[0-9]+$"}

RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": _DIGITS,
}

REINSTALL_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["app_id", "users"],
                "properties": {
                    "app_id": {
                        "type": "string",
                        "description": "The app to install; it must belong to "
                        "the project in the path.",
                    },
                    "users": {
                        "type": "array",
                        "description": "The mobile workers' numbers, at most "
                        "MAX_USERS_PER_REQUEST (default 1000). Two entries "
                        "with the same number once normalized are rejected.",
                        "items": {
                            "type": "object",
                            "required": ["phone_number"],
                            "properties": {
                                "phone_number": {
                                    "type": "string",
                                    "description": "In international format, "
                                    "with or without '+'. Spaces, dots, "
                                    "brackets and dashes are ignored.",
                                }
                            },
                        },
                    },
                    "reinstall_message": {
                        "anyOf": [{"type": "string"}, {"type": "null"}],
                        "description": "Text of the first SMS, with one '{}' "
                        "where the Play Store link goes. Null or blank "
                        "sends the default text in the recipient's language.",
                    },
                },
            },
            "example": {
                "app_id": EXAMPLE_APP_ID,
                "users": [{"phone_number": "+1 617 555 1234"}],
            },
        }
    },
}

IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": IDEMPOTENCY_KEY_HEADER,
    "in": "header",
    "required": False,
    "description": "Makes retries safe: a repeat of a request that returned 200, "
    "with the same key and the same JSON body, returns the stored response "
    f"with '{REPLAYED_HEADER}: true' and sends nothing. Scoped to the project "
    "and the web user, kept IDEMPOTENCY_TTL_SECONDS (default 86400).",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
        "pattern": "^[!-~]([ -~]*[!-~])?$",
    },
    "example": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
}


def _json(description: str, schema_name: str, **extra: Any) -> OpenAPIResponse:
    """Return a JSON response whose body is the component schema ``schema_name``."""
    if schema_name not in RESPONSE_SCHEMAS:
        raise KeyError(
            f"Unknown response schema {schema_name!r}; add it to RESPONSE_SCHEMAS."
        )
    schema = {"$ref": COMPONENT_SCHEMA_PREFIX + schema_name}
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    response.update(extra)
    return response  # type: ignore[return-value]


REINSTALL_RESPONSES: dict[int, OpenAPIResponse] = {
    200: _json(
        "The numbers, each in one list.",
        "ReinstallResponse",
        headers={
            REPLAYED_HEADER: {
                "description": "Present, and 'true', when the response was "
                f"stored for this {IDEMPOTENCY_KEY_HEADER} and nothing was sent.",
                "schema": {"type": "string", "enum": ["true"]},
            }
        },
    ),
    400: _json(
        f"The body or the {IDEMPOTENCY_KEY_HEADER} header is invalid.",
        "ValidationErrorResponse",
    ),
    401: _json(
        "Missing, invalid, expired or revoked credentials, a key restricted to "
        "another project, or a plan below Pro.",
        "ErrorResponse",
    ),
    403: _json(
        "Not a member of the project with edit_data (or no such project), or "
        "SMS mobile worker registration is off.",
        "ErrorResponse",
    ),
    404: _json("The API version has no reinstall endpoint.", "ErrorResponse"),
    409: _json(
        f"The first request with this {IDEMPOTENCY_KEY_HEADER} is still running.",
        "ErrorResponse",
        headers={"Retry-After": RETRY_AFTER_HEADER},
    ),
    413: _json("The body is larger than MAX_BODY_BYTES.", "ErrorResponse"),
    422: _json(
        f"The {IDEMPOTENCY_KEY_HEADER} was already used with a different body.",
        "ErrorResponse",
    ),
    500: _json(
        "An unexpected error. Some SMS may have been sent before it.",
        "ServerErrorResponse",
    ),
    503: _json(
        "DynamoDB is unavailable; retry after Retry-After seconds.",
        "ServerErrorResponse",
        headers={"Retry-After": RETRY_AFTER_HEADER},
    ),
}

STATUS_RESPONSES: dict[int, OpenAPIResponse] = {
    200: _json("The request's progress.", "RequestStatusResponse"),
    401: REINSTALL_RESPONSES[401],
    403: REINSTALL_RESPONSES[403],
    404: _json(
        "The API version has no status endpoint, or no queued request has "
        "this id in this project.",
        "ErrorResponse",
    ),
    500: REINSTALL_RESPONSES[500],
    503: REINSTALL_RESPONSES[503],
}


def method_not_allowed_responses(allowed: str) -> dict[int, OpenAPIResponse]:
    """Return the responses of a path to a method other than ``allowed``."""
    return {
        404: _json("The API version has no such endpoint.", "ErrorResponse"),
        405: _json(
            f"Only {allowed} is allowed.",
            "ErrorResponse",
            headers={
                "Allow": {
                    "description": "The allowed method.",
                    "required": True,
                    "schema": {"type": "string", "enum": [allowed]},
                }
            },
        ),
    }


REINSTALL_DESCRIPTION = f"""\
Sends each mobile worker two SMS through Amazon SNS: a link to CommCare on \
the Google Play store, then the message the CommCare app reads to install the \
app. Behaves like CommCare HQ's endpoint of the same name.

Checks run in this order, and the first failure decides the response: body \
size (413), credentials (401), membership with edit_data (403), the \
{IDEMPOTENCY_KEY_HEADER} header (400), its stored record (replay, 409 or \
422), plan (401), SMS registration switch (403), body (400).

A request whose {IDEMPOTENCY_KEY_HEADER} is in use by an unfinished request \
gets 409 with Retry-After ({IN_PROGRESS_RETRY_AFTER_SECONDS} s). Only 200 \
responses are stored: a retry after any 4xx or 5xx runs again.
"""
