"""Build the OpenAPI document of the API: ``python -m handler.openapi [FILE]``.

The routes' metadata in handler.api describes almost everything. Three parts
are added here, to keep pydantic out of the Lambda function's cold start:

- the response body schemas (handler.schemas.RESPONSE_SCHEMAS), which the
  routes' responses refer to by component name;
- the path parameters' descriptions, examples and the version enum
  (handler.api.PATH_PARAMETERS);
- the Idempotency-Key header, because Powertools derives header parameters
  only from handler arguments that its validation fills, and validation is
  off.
"""

import copy
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
    from handler import api

    schema = api.app.get_openapi_schema(
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
        for operation in path_item.values():
            describe_path_parameters(operation, api.PATH_PARAMETERS)
        operation = path_item.get("post")
        if (
            operation
            and operation.get("operationId") == "sms_user_registration_reinstall"
        ):
            operation.setdefault("parameters", []).append(
                schemas.IDEMPOTENCY_KEY_PARAMETER
            )

    add_component_schemas(document, schemas.RESPONSE_SCHEMAS)
    remove_unused_schemas(document)
    return document


def describe_path_parameters(
    operation: dict[str, Any], descriptions: dict[str, dict[str, Any]]
) -> None:
    """Add the description and schema keywords of each documented path parameter.

    ``descriptions`` maps a parameter's name to its ``description`` and to
    keywords that are merged into its ``schema``.
    """
    for parameter in operation.get("parameters", []):
        documented = descriptions.get(parameter["name"])
        if parameter["in"] != "path" or documented is None:
            continue
        parameter["description"] = documented["description"]
        parameter["schema"].update(copy.deepcopy(documented.get("schema", {})))


def add_component_schemas(
    document: dict[str, Any], component_schemas: dict[str, dict[str, Any]]
) -> None:
    """Add ``component_schemas`` to the document's components, sorted by name."""
    components = document.setdefault("components", {})
    merged = {**components.get("schemas", {}), **copy.deepcopy(component_schemas)}
    components["schemas"] = dict(sorted(merged.items()))


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
