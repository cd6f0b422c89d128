"""API Gateway (REST) entry point for ``sms_user_registration_reinstall``."""

import base64
import binascii
import json
import os
import re
from functools import cache, lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.aws import dynamodb_client, sns_client, sqs_client
from core.errors import PayloadTooLargeError, RequestValidationError, ServiceError
from core.idempotency import (
    IDEMPOTENCY_KEY_HEADER,
    REPLAYED_HEADER,
    IdempotencyScope,
    IdempotencyStore,
    build_idempotency_store,
    validate_idempotency_key,
)
from core.repository import RequestContext
from core.service import ReinstallResult, ReinstallService, build_service
from core.settings import get_settings
from core.validation import NOT_A_JSON_OBJECT, parse_body
from handler import schemas
from handler.tracing import LazyTracer

# Powertools reads these variables itself; the defaults here serve local runs.
SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME", "reinstall-sms")
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CommCareReinstall")

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
# Created at the first invocation: building the X-Ray recorder is slow.
tracer = LazyTracer()
# Trailing slashes are optional: the REST resolver ignores them when matching.
app = APIGatewayRestResolver()

ROUTE = "/a/<domain>/api/<version>/sms_user_registration_reinstall"
# CommCare HQ registers the resource from API version 0.5 on.
SUPPORTED_VERSIONS = frozenset({"v0_5", "v0.5", "v0_6", "v0.6", "v1"})
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# The status of one queued request, named by the X-Request-Id of its POST.
STATUS_ROUTE = ROUTE + "/<request_id>"
STATUS_OTHER_METHODS = ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
JSON = "application/json"
# The RFC 7240 preference that requests queued delivery.
RESPOND_ASYNC = "respond-async"
# The allowed method of each endpoint path, for methods the resolver has no
# route for (TRACE, QUERY, ...), because any other method on a known path is 405.
ALLOWED_METHOD_BY_PATH = (
    (re.compile(r"^/a/[^/]+/api/([^/]+)/sms_user_registration_reinstall/*$"), "POST"),
    (
        re.compile(r"^/a/[^/]+/api/([^/]+)/sms_user_registration_reinstall/[^/]+/*$"),
        "GET",
    ),
)
SECURITY: list[dict[str, list[str]]] = [{schemas.SECURITY_SCHEME: []}]

# Descriptions that handler.openapi adds to the path parameters of every
# operation in the OpenAPI document. Annotating the handlers' arguments with
# Powertools' Path() would add them too, but importing Path loads pydantic,
# about 100 ms of each cold start.
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "domain": {
        "description": "The CommCare project (domain) name.",
        "schema": {"examples": ["demo"]},
    },
    "version": {
        "description": "CommCare HQ API version. Other versions return 404.",
        "schema": {"enum": sorted(SUPPORTED_VERSIONS), "examples": ["v0_5"]},
    },
}


@cache
def get_service() -> ReinstallService:
    """Build the service once per container, from the environment's settings."""
    return build_service(get_settings(), dynamodb_client(), sns_client(), sqs_client())


def get_idempotency_store() -> IdempotencyStore:
    """Return the idempotency store for the current DynamoDB client and settings."""
    settings = get_settings()
    return _idempotency_store(
        dynamodb_client(),
        settings.idempotency_table_name,
        settings.idempotency_ttl_seconds,
    )


# Keyed by the client so that a reset of core.aws's cached clients (as tests
# do between moto sessions) also builds a new store.
@lru_cache(maxsize=1)
def _idempotency_store(
    dynamodb: Any, table_name: str, ttl_seconds: int
) -> IdempotencyStore:
    return build_idempotency_store(table_name, dynamodb, ttl_seconds)


def json_response(
    status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        status_code=status_code,
        content_type=JSON,
        body=json.dumps(body),
        headers=headers or {},
    )


def request_id() -> str:
    return str(app.current_event.request_context.request_id or "")


def request_body() -> bytes | None:
    """Return the request body as bytes, decoding base64 when API Gateway used it.

    Returns None for invalid base64; send_reinstall reports it after the
    credential and entitlement checks, where body errors belong. Raises
    PayloadTooLargeError (413) for a body over MAX_BODY_BYTES. The size is
    checked before the body is decoded or parsed and before any DynamoDB call,
    so a huge body costs neither.
    """
    event = app.current_event
    body = event.body or ""
    limit = get_settings().max_body_bytes
    if not event.is_base64_encoded:
        data = body.encode("utf-8")
    else:
        # Base64 decodes 4 characters to 3 bytes, less up to 2 bytes of padding,
        # so the length alone shows a body too large to be worth decoding.
        least_size = len(body) // 4 * 3 - 2
        if least_size > limit:
            raise PayloadTooLargeError(
                f"Request body is at least {least_size} bytes; the maximum is "
                f"{limit} bytes."
            )
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"Request body is {len(data)} bytes; the maximum is {limit} bytes."
        )
    return data


def idempotency_key_values() -> list[str]:
    """Return every value of the Idempotency-Key header, matching its name in any case."""
    event = app.current_event.raw_event
    header_name = IDEMPOTENCY_KEY_HEADER.lower()
    values = [
        value
        for name, name_values in (event.get("multiValueHeaders") or {}).items()
        if name.lower() == header_name
        for value in name_values or []
    ]
    if values:
        return values
    return [
        value
        for name, value in (event.get("headers") or {}).items()
        if name.lower() == header_name and value is not None
    ]


def ensure_supported_version(version: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise NotFoundError(f"API version {version} has no reinstall endpoint")


@app.post(
    ROUTE,
    summary="Send the CommCare reinstall SMS to mobile workers",
    description=schemas.REINSTALL_DESCRIPTION,
    operation_id="sms_user_registration_reinstall",
    responses=schemas.REINSTALL_RESPONSES,
    security=SECURITY,
    # Without the resolver's validation no Body() parameter is filled, so the
    # request body is described here instead.
    openapi_extensions={"requestBody": schemas.REINSTALL_REQUEST_BODY},
)
@tracer.capture_method
def reinstall(domain: str, version: str) -> Response[Any]:
    ensure_supported_version(version)
    logger.append_keys(domain=domain)
    body = request_body()
    authorization = app.current_event.headers.get("authorization")

    key_values = idempotency_key_values()
    if not key_values:
        result = send_reinstall(domain, authorization, body)
        headers = queued_headers(result, domain, version)
        return json_response(200, result.to_body(), headers)
    return idempotent_reinstall(domain, authorization, body, key_values, version)


def send_reinstall(
    domain: str,
    authorization: str | None,
    body: bytes | None,
    context: RequestContext | None = None,
) -> ReinstallResult:
    """Run the request through the service; ``body`` None means invalid base64.

    ``context`` is the caller's records when they were already authenticated.

    An undecodable body goes to the service empty, which is never a valid
    request, so the service runs every check before the body's and then
    rejects it. The rejection is replaced by one that names the base64.
    """
    try:
        result = get_service().reinstall(
            domain,
            authorization,
            body if body is not None else b"",
            remaining_time_ms=app.lambda_context.get_remaining_time_in_millis,
            request_id=request_id(),
            context=context,
            prefer_async=prefers_respond_async(),
        )
    except RequestValidationError as error:
        if body is not None:
            raise
        raise RequestValidationError(
            {"__all__": f"{NOT_A_JSON_OBJECT}; the base64 body could not be decoded"}
        ) from error
    record_metrics(result)
    return result


def idempotent_reinstall(
    domain: str,
    authorization: str | None,
    body: bytes | None,
    key_values: list[str],
    version: str,
) -> Response[Any]:
    """Run the request once per Idempotency-Key, or replay its stored response.

    The caller is authenticated and authorized before the key is even
    validated, so the record's scope contains the username and a stranger
    can neither read a stored response nor learn whether a key was used.
    """
    app_id = parse_body(body).app_id if body is not None else None
    context = get_service().authenticate(domain, authorization, app_id)
    assert context.user is not None
    key = validate_idempotency_key(key_values)

    # The first run's result, for the headers of a queued request.
    results: list[ReinstallResult] = []

    def run_once() -> dict[str, Any]:
        results.append(send_reinstall(domain, authorization, body, context))
        return results[0].to_body()

    response = get_idempotency_store().run(
        IdempotencyScope(domain=domain, username=context.user.username, key=key),
        body if body is not None else b"",
        run_once,
        app.lambda_context,
    )
    if not response.replayed:
        # NOTE: a replay has no X-Request-Id or Location, because the
        # idempotency record stores only the status and the body.
        headers = queued_headers(results[0], domain, version) if results else {}
        return Response(
            response.status_code, content_type=JSON, body=response.body, headers=headers
        )

    logger.info(
        "Replayed the stored response",
        extra={"idempotency_key": key, "status_code": response.status_code},
    )
    metrics.add_metric("IdempotentReplays", MetricUnit.Count, 1)
    return Response(
        response.status_code,
        content_type=JSON,
        body=response.body,
        headers={REPLAYED_HEADER: "true"},
    )


@app.route(
    ROUTE,
    method=OTHER_METHODS,
    summary="Any method but POST: 405",
    responses=schemas.method_not_allowed_responses("POST"),
)
def method_not_allowed(domain: str, version: str) -> Response[Any]:
    ensure_supported_version(version)
    return method_not_allowed_response("POST")


@app.get(
    STATUS_ROUTE,
    summary="Read the progress of a queued reinstall request",
    operation_id="sms_user_registration_reinstall_status",
    responses=schemas.STATUS_RESPONSES,
    security=SECURITY,
)
@tracer.capture_method
def request_status(domain: str, version: str, request_id: str) -> Response[Any]:
    # Imported here, as only this endpoint reads the delivery ledger.
    from core.status import build_status_service

    ensure_supported_version(version)
    logger.append_keys(domain=domain, status_request_id=request_id)
    status = build_status_service(get_settings(), dynamodb_client()).status(
        domain, app.current_event.headers.get("authorization"), request_id
    )
    return json_response(200, status.to_body())


@app.route(
    STATUS_ROUTE,
    method=STATUS_OTHER_METHODS,
    summary="Any method but GET: 405",
    responses=schemas.method_not_allowed_responses("GET"),
)
def status_method_not_allowed(
    domain: str, version: str, request_id: str
) -> Response[Any]:
    ensure_supported_version(version)
    return method_not_allowed_response("GET")


def prefers_respond_async() -> bool:
    """Return whether a ``Prefer`` header requests ``respond-async`` (RFC 7240).

    Preferences are comma-separated, may carry parameters after ``;``, and
    their names are case-insensitive. The header may appear more than once.
    """
    event = app.current_event.raw_event
    values = [
        value
        for name, name_values in (event.get("multiValueHeaders") or {}).items()
        if name.lower() == "prefer"
        for value in name_values or []
    ]
    if not values:
        values = [
            value
            for name, value in (event.get("headers") or {}).items()
            if name.lower() == "prefer" and value is not None
        ]
    preferences = (
        preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
        for value in values
        for preference in value.split(",")
    )
    return RESPOND_ASYNC in preferences


def queued_headers(
    result: ReinstallResult, domain: str, version: str
) -> dict[str, str]:
    """Return X-Request-Id and Location for a queued request, else nothing.

    Location is the status URL's path. On API Gateway's own host it starts
    with the stage, as the client's URL does.
    NOTE: behind a custom domain with a base path mapping, the base path is
    missing from Location.
    """
    if result.queue_reason is None:
        return {}
    event = app.current_event
    prefix = ""
    host = event.headers.get("host") or ""
    if host.endswith(".amazonaws.com") and event.request_context.stage:
        prefix = f"/{event.request_context.stage}"
    headers = {
        "X-Request-Id": result.request_id,
        "Location": (
            f"{prefix}/a/{domain}/api/{version}/sms_user_registration_reinstall/"
            f"{result.request_id}/"
        ),
    }
    if prefers_respond_async():
        headers["Preference-Applied"] = RESPOND_ASYNC
    return headers


def method_not_allowed_response(allowed: str) -> Response[Any]:
    return json_response(
        405,
        {
            "error": f"Method {app.current_event.http_method} is not allowed; "
            f"use {allowed}."
        },
        {"Allow": allowed},
    )


def record_metrics(result: ReinstallResult) -> None:
    metrics.add_metric("SuccessNumbers", MetricUnit.Count, len(result.success_numbers))
    metrics.add_metric(
        "InvalidFormatNumbers", MetricUnit.Count, len(result.invalid_format_numbers)
    )
    metrics.add_metric("ErrorNumbers", MetricUnit.Count, len(result.error_numbers))
    metrics.add_metric("SmsPublished", MetricUnit.Count, result.messages_published)
    metrics.add_metric("SmsLogWriteFailures", MetricUnit.Count, result.sms_log_failures)


@app.not_found
def not_found(error: NotFoundError) -> Response[Any]:
    path = app.current_event.path
    method = app.current_event.http_method
    for pattern, allowed in ALLOWED_METHOD_BY_PATH:
        match = pattern.match(path)
        # The allowed method itself lands here only when the route's parameter
        # pattern rejected the path (a domain with a backtick, say): a 404.
        if match and match.group(1) in SUPPORTED_VERSIONS and method != allowed:
            return method_not_allowed_response(allowed)
    return json_response(404, {"error": f"Not found: {app.current_event.path}"})


@app.exception_handler(ServiceError)
def service_error(error: ServiceError) -> Response[Any]:
    logger.info(
        "Request rejected",
        extra={"status_code": error.status_code, "error_type": type(error).__name__},
    )
    body = error.body()
    if error.status_code >= 500:  # the request id is the key to the failure's logs
        body["request_id"] = request_id()
    return json_response(error.status_code, body, error.headers())


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response[Any]:
    logger.exception("Unexpected error while handling the request")
    metrics.add_metric("UnexpectedErrors", MetricUnit.Count, 1)
    return json_response(
        500,
        {"error": "Internal server error", "request_id": request_id()},
    )


# clear_state drops keys appended during the previous invocation (domain, ids).
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
