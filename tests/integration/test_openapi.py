"""The committed OpenAPI document: current, complete, and consistent with the code."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from core.idempotency import InvalidIdempotencyKeyError, validate_idempotency_key
from handler.openapi import render_document

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT_PATH = ROOT / "docs" / "openapi.json"
REINSTALL_PATH = "/a/{domain}/api/{version}/sms_user_registration_reinstall"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))


def operation(document: dict[str, Any], method: str = "post") -> dict[str, Any]:
    return document["paths"][REINSTALL_PATH][method]


def test_committed_document_is_current() -> None:
    committed = DOCUMENT_PATH.read_text(encoding="utf-8")

    assert render_document() == committed, (
        "docs/openapi.json is stale; run 'make openapi' and commit the result"
    )


def test_post_documents_every_status(document: dict[str, Any]) -> None:
    statuses = set(operation(document)["responses"])

    assert statuses == {
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "422",
        "500",
        "503",
    }


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "head", "options"])
def test_other_methods_document_405(document: dict[str, Any], method: str) -> None:
    responses = operation(document, method)["responses"]

    assert set(responses) == {"404", "405"}
    assert responses["405"]["headers"]["Allow"]["schema"] == {
        "type": "string",
        "enum": ["POST"],
    }


def test_path_parameters_documented(document: dict[str, Any]) -> None:
    operations = [
        operation
        for path_item in document["paths"].values()
        for operation in path_item.values()
    ]

    assert len(operations) == 14
    for operation in operations:
        parameters = {
            p["name"]: p for p in operation["parameters"] if p["in"] == "path"
        }
        assert parameters["domain"]["description"] == (
            "The CommCare project (domain) name."
        )
        assert parameters["domain"]["schema"]["examples"] == ["demo"]
        assert parameters["version"]["description"] == (
            "CommCare HQ API version. Other versions return 404."
        )
        assert parameters["version"]["schema"]["enum"] == [
            "v0.5",
            "v0.6",
            "v0_5",
            "v0_6",
            "v1",
        ]


def test_response_schemas_are_components(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    references = [
        content["schema"]["$ref"]
        for path_item in document["paths"].values()
        for operation in path_item.values()
        for response in operation["responses"].values()
        for content in response["content"].values()
    ]

    assert len(references) == 40
    for reference in references:
        assert reference.removeprefix("#/components/schemas/") in schemas


def test_retry_after_documented_for_409_and_503(document: dict[str, Any]) -> None:
    responses = operation(document)["responses"]

    assert responses["409"]["headers"]["Retry-After"]["required"] is True
    assert responses["503"]["headers"]["Retry-After"]["required"] is True


def test_request_example_matches_schema(document: dict[str, Any]) -> None:
    content = operation(document)["requestBody"]["content"]["application/json"]

    errors = list(
        Draft202012Validator(content["schema"]).iter_errors(content["example"])
    )

    assert errors == []


def test_idempotency_key_parameter_documented(document: dict[str, Any]) -> None:
    (parameter,) = [p for p in operation(document)["parameters"] if p["in"] == "header"]

    assert parameter["name"] == "Idempotency-Key"
    assert parameter["required"] is False
    assert parameter["schema"]["maxLength"] == 255
    assert validate_idempotency_key([parameter["example"]]) == parameter["example"]


def test_no_validation_error_schemas(document: dict[str, Any]) -> None:
    assert sorted(document["components"]["schemas"]) == [
        "ErrorResponse",
        "ReinstallResponse",
        "RequestStatusResponse",
        "ServerErrorResponse",
        "ValidationErrorResponse",
    ]


def test_document_declares_api_key_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "'ApiKey <username>:<api_key>'; the scheme name is "
        "case-insensitive.",
    }
    assert operation(document)["security"] == [{"ApiKey": []}]


def documented_key_is_valid(document: dict[str, Any], key: str) -> bool:
    (parameter,) = [p for p in operation(document)["parameters"] if p["in"] == "header"]
    schema = parameter["schema"]
    # JSON Schema patterns are ECMA-262 regular expressions, whose "$" does
    # not match before a final newline as Python's does, so match the whole
    # string instead.
    pattern = schema["pattern"].removeprefix("^").removesuffix("$")
    return (
        schema["minLength"] <= len(key) <= schema["maxLength"]
        and re.fullmatch(pattern, key) is not None
    )


@given(
    key=st.text(max_size=300)
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300)
)
@example(key="a\n")
@example(key=" a")
@example(key="k" * 255)
@example(key="k" * 256)
def test_key_schema_agrees_with_validator(document: dict[str, Any], key: str) -> None:
    try:
        validate_idempotency_key([key])
        accepted = True
    except InvalidIdempotencyKeyError:
        accepted = False

    assert documented_key_is_valid(document, key) == accepted
