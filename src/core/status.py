"""The status of a queued reinstall request, for the status endpoint."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core import auth
from core.entitlements import check_entitlements
from core.errors import PermissionDeniedError, ServiceError
from core.ledger import DeliveryLedger, NumberState, RequestLedger
from core.repository import Repository
from core.settings import Settings

QUEUED = "queued"
SENDING = "sending"
COMPLETE = "complete"
# API Gateway request ids and EventBridge event ids are UUIDs. An id far from
# that shape cannot name a request and is not looked up.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")


class RequestNotFoundError(ServiceError):
    """No queued request has this id in this domain."""

    status_code = 404


@dataclass(frozen=True, slots=True)
class RequestStatus:
    """Progress of a queued request; numbers are spelled as the client sent them."""

    request_id: str
    status: str
    sent_numbers: list[str] = field(default_factory=list)
    failed_numbers: list[str] = field(default_factory=list)
    pending: int = 0

    def to_body(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "status": self.status,
            "sent_numbers": self.sent_numbers,
            "failed_numbers": self.failed_numbers,
            "pending": self.pending,
        }


def summarize(ledger: RequestLedger) -> RequestStatus:
    """Return the status that a request's ledger shows.

    ``pending`` counts queued numbers that are neither sent nor failed: not
    claimed yet, being sent, or waiting for a retry. The request is
    ``queued`` while no number has been claimed, ``complete`` once none is
    pending, and ``sending`` in between.
    """
    sent = [e.submitted for e in ledger.numbers if e.state == NumberState.SENT]
    failed = [e.submitted for e in ledger.numbers if e.state == NumberState.FAILED]
    pending = max(0, ledger.request.expected - len(sent) - len(failed))
    if pending == 0:
        status = COMPLETE
    elif ledger.numbers:
        status = SENDING
    else:
        status = QUEUED
    return RequestStatus(ledger.request.request_id, status, sent, failed, pending)


class StatusService:
    """Reads request status after the same checks as a reinstall request."""

    def __init__(
        self,
        repository: Repository,
        ledger: DeliveryLedger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.repository = repository
        self.ledger = ledger
        self.clock = clock

    def status(
        self, domain_name: str, authorization: str | None, request_id: str
    ) -> RequestStatus:
        """Authenticate, authorize and check entitlements, then read the status.

        Raises the same errors as a reinstall request for the checks, and
        RequestNotFoundError when ``request_id`` was not queued in
        ``domain_name``, whether it is unknown or belongs to another domain.
        """
        credentials = auth.parse_authorization(authorization)
        context = self.repository.load_request_context(
            credentials.username, domain_name, None
        )
        auth.authenticate(context.user, credentials, domain_name, self.clock())
        assert context.user is not None
        auth.authorize(context.user, domain_name, context.domain)
        if context.domain is None:  # authorize() has already raised; for type checkers
            raise PermissionDeniedError(domain_name)
        check_entitlements(context.domain)

        ledger = None
        if REQUEST_ID_PATTERN.fullmatch(request_id):
            ledger = self.ledger.read(domain_name, request_id)
        if ledger is None:
            raise RequestNotFoundError(
                f"No queued reinstall request {request_id} in domain {domain_name}."
            )
        return summarize(ledger)


def build_status_service(settings: Settings, dynamodb: Any) -> StatusService:
    """Wire a status service from settings and a boto3 DynamoDB client."""
    return StatusService(
        Repository(settings.table_name, dynamodb),
        DeliveryLedger(settings.table_name, dynamodb, settings.sms_log_retention_days),
    )
