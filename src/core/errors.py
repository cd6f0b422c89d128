"""Typed errors raised by core; the handler maps each to an HTTP status and body."""

from typing import Any

RESOURCE_NAME = "sms_user_registration_reinstall"


class ServiceError(Exception):
    """An expected failure that becomes an HTTP response with ``status_code``."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.message}

    def headers(self) -> dict[str, str]:
        return {}


class AuthenticationError(ServiceError):
    """Missing, malformed, unknown, revoked or expired credentials."""

    status_code = 401


class PermissionDeniedError(ServiceError):
    """The web user lacks ``edit_data`` in the domain, or the domain does not exist."""

    status_code = 403


class PlanNotEntitledError(ServiceError):
    """The domain's software plan is below Pro (CommCare HQ returns 401)."""

    status_code = 401


class RegistrationDisabledError(ServiceError):
    """SMS mobile worker registration is switched off for the domain."""

    status_code = 403


class RequestValidationError(ServiceError):
    """The request body failed validation; ``field_errors`` maps field to message."""

    status_code = 400

    def __init__(self, field_errors: dict[str, str]) -> None:
        super().__init__(
            "; ".join(f"{key}: {text}" for key, text in field_errors.items())
        )
        self.field_errors = field_errors

    def body(self) -> dict[str, Any]:
        return {RESOURCE_NAME: dict(self.field_errors)}


class PayloadTooLargeError(ServiceError):
    """The request body is larger than ``MAX_BODY_BYTES``."""

    status_code = 413


class StorageUnavailableError(ServiceError):
    """DynamoDB failed while reading what the request needs; nothing was sent."""

    status_code = 503
    retry_after_seconds = 5

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}
