"""Build the OpenAPI document of the API: ``python -m handler.openapi [FILE]``.

The routes' metadata in handler.api describes almost everything. The
Idempotency-Key header is added here, because Powertools derives header
parameters only from handler arguments that its validation fills, and
validation is off.
"""

import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

from handler import schemas

TITLE = "CommCare reinstall SMS API"
DISTRIBUTION = "commcare-reinstall-sms"
DESCRIPTION = (
    "CommCare HQ's sms_user_registration_reinstall endpoint, served by an AWS "
    "Lambda function behind API Gateway. Every response body is JSON."
)


def build_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every route in handler.api as a dict."""
    from handler.api import app

    schema = app.get_openapi_schema(
        title=TITLE,
        version=version(DISTRIBUTION),
        description=DESCRIPTION,
        security_schemes={
            schemas.SECURITY_SCHEME: APIKey.model_validate(
                {
                    "in": APIKeyIn.header,
                    "name": "Authorization",
                    "description": "'ApiKey <username>:<api_key>'; the scheme "
                    "name is case-insensitive.",
                }
            )
        },
    )
    document: dict[str, Any] = schema.model_dump(
        mode="json", by_alias=True, exclude_none=True
    )

    for path_item in document["paths"].values():
        operation = path_item.get("post")
        if (
            operation
            and operation.get("operationId") == "sms_user_registration_reinstall"
        ):
            operation.setdefault("parameters", []).append(
                schemas.IDEMPOTENCY_KEY_PARAMETER
            )

    remove_unused_schemas(document)
    return document


def remove_unused_schemas(document: dict[str, Any]) -> None:
    """Drop component schemas that nothing refers to.

    Powertools always adds the schemas of its validation errors
    (HTTPValidationError and others), which this API never returns.
    """
    components = document.get("components", {}).get("schemas", {})
    text = json.dumps(document["paths"])
    used = {name for name in components if f'"#/components/schemas/{name}"' in text}

    # Schemas that a used schema refers to are used too.
    while True:
        nested = json.dumps([components[name] for name in used])
        more = {
            name
            for name in components
            if name not in used and f'"#/components/schemas/{name}"' in nested
        }
        if not more:
            break
        used |= more

    for name in list(components):
        if name not in used:
            del components[name]


def render_document() -> str:
    """Return the document as the JSON text that ``make openapi`` writes."""
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render_document()
    if not argv:
        sys.stdout.write(text)
        return 0
    Path(argv[0]).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
