"""The reinstall request from credentials to buckets, in CommCare HQ's check order."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from core import auth, messages
from core.dailylimit import DailySmsLimit, Reservation
from core.dispatch import Dispatcher, PairJob
from core.entitlements import check_entitlements
from core.errors import PayloadTooLargeError, PermissionDeniedError
from core.models import Domain
from core.optout import OptOutChecker, build_opt_out_checker
from core.phone import region_of, to_e164_digits
from core.repository import Repository, RequestContext
from core.sender import (
    DEADLINE_NOT_STARTED,
    DeliveryResult,
    SmsSender,
    message_attributes,
)
from core.settings import Settings
from core.smslog import SmsLog, SmsLogRecord, records_for_delivery
from core.validation import ReinstallRequest, parse_body, validate_request

# core.queueing and core.ledger serve only queued delivery, so the functions
# that build or use a queue import them, keeping them out of the cold start.
if TYPE_CHECKING:
    from core.queueing import QueuedDelivery, QueueReason

logger = Logger(child=True)

SUCCESS = "success_numbers"
INVALID_FORMAT = "invalid_format_numbers"
ERROR = "error_numbers"

# Reasons a number went to error_numbers without a publish, for the log line.
REGISTERED_ELSEWHERE = "registered_to_another_domain"
COUNTRY_NOT_ALLOWED = "country_not_allowed"
OPTED_OUT = "opted_out"
OPT_OUT_CHECK_FAILED = "opt_out_check_failed"
DAILY_LIMIT_REACHED = "daily_sms_limit_reached"
QUEUE_UNAVAILABLE = "queue_unavailable"


@dataclass(slots=True)
class ReinstallResult:
    """Every submitted number, as spelled by the client, in exactly one bucket."""

    success_numbers: list[str] = field(default_factory=list)
    invalid_format_numbers: list[str] = field(default_factory=list)
    error_numbers: list[str] = field(default_factory=list)
    messages_published: int = 0
    request_id: str = ""
    # SMS log records that could not be stored. The buckets do not depend on it.
    sms_log_failures: int = 0
    # Reason the numbers went to the queue (a QueueReason); None if sent directly.
    queue_reason: str | None = None

    def to_body(self) -> dict[str, list[str]]:
        return {
            SUCCESS: self.success_numbers,
            INVALID_FORMAT: self.invalid_format_numbers,
            ERROR: self.error_numbers,
        }


@dataclass(slots=True)
class _Recipient:
    """One submitted number on its way through the per-number checks."""

    raw: str
    digits: str | None = None
    language: str | None = None
    bucket: str | None = None
    reason: str | None = None

    @property
    def e164(self) -> str:
        return "+" + (self.digits or "")

    def fail(self, reason: str) -> None:
        self.bucket = ERROR
        self.reason = reason


class ReinstallService:
    """Runs the checks of a reinstall request and sends the SMS."""

    def __init__(
        self,
        repository: Repository,
        sender: SmsSender,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sms_log: SmsLog | None = None,
        opt_outs: OptOutChecker | None = None,
        daily_limit: DailySmsLimit | None = None,
        queue: QueuedDelivery | None = None,
    ) -> None:
        self.repository = repository
        self.sender = sender
        self.settings = settings
        self.clock = clock
        self.sms_log = sms_log or SmsLog(
            settings.table_name, repository.client, settings.sms_log_retention_days
        )
        self.opt_outs = opt_outs or build_opt_out_checker(settings, sender.sns_client)
        self.daily_limit = daily_limit or DailySmsLimit(
            settings.table_name, repository.client
        )
        self.dispatcher = Dispatcher(
            sender, settings.sms_send_concurrency, settings.sms_max_send_rate
        )
        self.queue = queue

    def reinstall(
        self,
        domain_name: str,
        authorization: str | None,
        body: bytes,
        remaining_time_ms: Callable[[], int] | None = None,
        request_id: str | None = None,
        context: RequestContext | None = None,
        prefer_async: bool = False,
    ) -> ReinstallResult:
        """Authenticate, authorize, check entitlements and the body, then send.

        Raises a core.errors.ServiceError subclass for every rejected request;
        nothing is sent in that case. ``remaining_time_ms`` reports the time left
        before the Lambda deadline; numbers are not started once it drops below
        DEADLINE_MARGIN_MS. ``request_id`` (API Gateway's) keys the SMS log; a
        random UUID is used when it is None or empty. ``context``, when given,
        is what ``authenticate`` returned for this domain, credentials and the
        body's app_id, and saves reading it again. ``prefer_async`` (the
        client sent ``Prefer: respond-async``) queues the sendable numbers
        instead of sending them, as do the domain's ``delivery: queued`` and
        numbers too many to send before the deadline.
        """
        request_id = request_id or str(uuid.uuid4())
        if len(body) > self.settings.max_body_bytes:
            raise PayloadTooLargeError(
                f"Request body is {len(body)} bytes; the maximum is "
                f"{self.settings.max_body_bytes} bytes."
            )
        parsed = parse_body(body)
        if context is None:
            context = self.authenticate(domain_name, authorization, parsed.app_id)
        if context.domain is None:  # authenticate() has already raised
            raise PermissionDeniedError(domain_name)
        check_entitlements(context.domain)

        request = validate_request(
            parsed, context.app, self.settings.max_users_per_request
        )
        return self._process(
            context.domain,
            request,
            request_id,
            remaining_time_ms,
            prefer_async=prefer_async,
        )

    def reinstall_from_event(
        self, domain_name: str, body: bytes, request_id: str
    ) -> ReinstallResult:
        """Check a request that IAM already authenticated, then queue its numbers.

        Every check from the plan on applies, as for ``reinstall``, and the
        sendable numbers are always queued under ``request_id``. Raises
        PermissionDeniedError for an unknown domain and the other ServiceError
        subclasses as ``reinstall`` does. Raises RuntimeError when no queue is
        configured, and botocore's errors when DynamoDB fails.
        """
        if self.queue is None:
            raise RuntimeError("QUEUE_URL is not set, so events cannot be queued")
        if len(body) > self.settings.max_body_bytes:
            raise PayloadTooLargeError(
                f"Request body is {len(body)} bytes; the maximum is "
                f"{self.settings.max_body_bytes} bytes."
            )
        parsed = parse_body(body)
        domain = self.repository.get_domain(domain_name)
        if domain is None:
            raise PermissionDeniedError(f"Domain {domain_name} does not exist.")
        check_entitlements(domain)

        app = (
            self.repository.get_app(domain_name, parsed.app_id)
            if parsed.app_id
            else None
        )
        request = validate_request(parsed, app, self.settings.max_users_per_request)
        return self._process(domain, request, request_id, None, force_queue=True)

    def authenticate(
        self, domain_name: str, authorization: str | None, app_id: str | None = None
    ) -> RequestContext:
        """Authenticate and authorize the caller; return the records read for it.

        One BatchGetItem reads the web user, the domain and (when ``app_id`` is
        given) the app. Raises AuthenticationError (401), PermissionDeniedError
        (403) or StorageUnavailableError (503). The plan and the feature switch
        are not checked here.
        """
        credentials = auth.parse_authorization(authorization)
        context = self.repository.load_request_context(
            credentials.username, domain_name, app_id
        )
        auth.authenticate(context.user, credentials, domain_name, self.clock())
        assert context.user is not None
        auth.authorize(context.user, domain_name, context.domain)
        return context

    def _process(
        self,
        domain: Domain,
        request: ReinstallRequest,
        request_id: str,
        remaining_time_ms: Callable[[], int] | None,
        prefer_async: bool = False,
        force_queue: bool = False,
    ) -> ReinstallResult:
        recipients = [_Recipient(raw) for raw in request.phone_numbers]
        self._check_format(recipients)
        self._check_countries(domain, recipients)
        self._check_registry(domain, recipients)
        self._check_opt_outs(recipients)
        reservation = self._reserve_daily_limit(domain, recipients)

        sendable = [recipient for recipient in recipients if recipient.bucket is None]
        reason = self._queue_reason(
            domain, len(sendable), prefer_async, force_queue, remaining_time_ms
        )
        results: list[DeliveryResult] = []
        if reason is None:
            results = self._deliver(domain, request, sendable, remaining_time_ms)
            used = sum(result.messages_published for result in results)
        else:
            from core.queueing import MESSAGES_PER_NUMBER

            queued = self._enqueue(domain, request, request_id, sendable, reason)
            # Queued messages keep their reservation, because the consumer sends
            # them. NOTE: a message the consumer then fails to send stays
            # counted against the day's limit.
            used = MESSAGES_PER_NUMBER * queued
        if reservation is not None:
            self.daily_limit.release(reservation, reservation.messages - used)
        log_failures = self._write_sms_log(domain, request_id, results)

        outcome = ReinstallResult(
            request_id=request_id,
            sms_log_failures=log_failures,
            queue_reason=str(reason) if reason else None,
        )
        for recipient in recipients:
            getattr(outcome, recipient.bucket or ERROR).append(recipient.raw)
        outcome.messages_published = sum(r.messages_published for r in results)
        not_started = sum(r.error_code == DEADLINE_NOT_STARTED for r in results)
        first_message_only = sum(
            r.first_message_id is not None and not r.succeeded for r in results
        )
        error_reasons = Counter(
            recipient.reason or "unknown"
            for recipient in recipients
            if recipient.bucket == ERROR
        )
        logger.info(
            "Reinstall request processed",
            extra={
                "request_id": request_id,
                "domain": domain.name,
                "app_id": request.app_id,
                "submitted": len(recipients),
                "success_count": len(outcome.success_numbers),
                "invalid_format_count": len(outcome.invalid_format_numbers),
                "error_count": len(outcome.error_numbers),
                "messages_published": outcome.messages_published,
                "first_message_only_count": first_message_only,
                "error_reasons": dict(error_reasons),
                "not_started_before_deadline": not_started,
                "sms_log_failures": log_failures,
                "queue_reason": outcome.queue_reason,
            },
        )
        return outcome

    def _queue_reason(
        self,
        domain: Domain,
        number_count: int,
        prefer_async: bool,
        force_queue: bool,
        remaining_time_ms: Callable[[], int] | None,
    ) -> QueueReason | None:
        if self.queue is None or number_count == 0:
            return None
        if force_queue:
            from core.queueing import QueueReason

            return QueueReason.EVENT
        return self.queue.reason(
            number_count,
            domain_delivery=domain.delivery,
            prefer_async=prefer_async,
            remaining_time_ms=remaining_time_ms,
        )

    def _enqueue(
        self,
        domain: Domain,
        request: ReinstallRequest,
        request_id: str,
        recipients: list[_Recipient],
        reason: QueueReason,
    ) -> int:
        """Queue the recipients' numbers; return how many were queued.

        Queued numbers go to success; numbers whose chunk SQS did not accept
        go to error, with nothing sent.
        """
        from core.queueing import QueuedNumber

        assert self.queue is not None
        jobs = self._jobs(domain, request, recipients)
        not_queued = self.queue.enqueue(
            request_id,
            domain.name,
            request.app_id,
            [QueuedNumber(r.raw, job) for r, job in zip(recipients, jobs, strict=True)],
            message_attributes(domain),
            reason,
        )
        for position, recipient in enumerate(recipients):
            if position in not_queued:
                recipient.fail(QUEUE_UNAVAILABLE)
            else:
                recipient.bucket = SUCCESS
        return len(recipients) - len(not_queued)

    def _write_sms_log(
        self, domain: Domain, request_id: str, results: list[DeliveryResult]
    ) -> int:
        """Store a log record per publish attempt; return how many were not stored."""
        records: list[SmsLogRecord] = []
        for result in results:
            records += records_for_delivery(domain.name, request_id, result)
        failures = self.sms_log.write(records)
        if failures:
            logger.error(
                "SMS log records were not stored; the SMS were sent regardless",
                extra={
                    "request_id": request_id,
                    "domain": domain.name,
                    "sms_log_failures": failures,
                    "sms_log_records": len(records),
                },
            )
        return failures

    def _check_format(self, recipients: list[_Recipient]) -> None:
        for recipient in recipients:
            recipient.digits = to_e164_digits(recipient.raw)
            if recipient.digits is None:
                recipient.bucket = INVALID_FORMAT

    def _check_countries(self, domain: Domain, recipients: list[_Recipient]) -> None:
        """Put numbers outside the domain's allowed countries, if it has a list, in error."""
        if domain.allowed_countries is None:
            return
        allowed = {country.upper() for country in domain.allowed_countries}
        for recipient in recipients:
            if recipient.bucket is not None or not recipient.digits:
                continue
            if region_of(recipient.digits) not in allowed:
                recipient.fail(COUNTRY_NOT_ALLOWED)

    def _check_registry(self, domain: Domain, recipients: list[_Recipient]) -> None:
        """Put numbers verified to another domain in error; note contacts' languages.

        Unverified registrations are ignored: they neither block a number nor
        give its language.
        """
        pending = [r for r in recipients if r.bucket is None and r.digits]
        registrations = self.repository.get_phone_registrations(
            r.digits for r in pending if r.digits
        )
        for recipient in pending:
            registration = registrations.get(recipient.digits or "")
            if registration is None or not registration.verified:
                continue
            if registration.domain != domain.name:
                recipient.fail(REGISTERED_ELSEWHERE)
            else:
                recipient.language = registration.language

    def _check_opt_outs(self, recipients: list[_Recipient]) -> None:
        """Put numbers on the SNS opt-out list, or whose check failed, in error."""
        pending = [recipient for recipient in recipients if recipient.bucket is None]
        if not pending:
            return
        statuses = self.opt_outs.check_all([recipient.e164 for recipient in pending])
        for recipient in pending:
            status = statuses[recipient.e164]
            if status is None:
                recipient.fail(OPT_OUT_CHECK_FAILED)
            elif status:
                recipient.fail(OPTED_OUT)

    def _reserve_daily_limit(
        self, domain: Domain, recipients: list[_Recipient]
    ) -> Reservation | None:
        """Reserve both messages of each remaining number within the daily limit.

        Numbers past the reservation, in request order, go to error. Returns
        None when the domain has no limit. Raises StorageUnavailableError when
        DynamoDB fails, before anything is sent.
        """
        if domain.daily_sms_limit is None:
            return None
        pending = [recipient for recipient in recipients if recipient.bucket is None]
        reservation = self.daily_limit.reserve(
            domain.name, domain.daily_sms_limit, len(pending), self.clock()
        )
        for recipient in pending[reservation.numbers :]:
            recipient.fail(DAILY_LIMIT_REACHED)
        return reservation

    def _deliver(
        self,
        domain: Domain,
        request: ReinstallRequest,
        recipients: list[_Recipient],
        remaining_time_ms: Callable[[], int] | None,
    ) -> list[DeliveryResult]:
        results = self.dispatcher.deliver_all(
            self._jobs(domain, request, recipients),
            message_attributes(domain),
            remaining_time_ms,
            self.settings.deadline_margin_ms,
        )
        for recipient, result in zip(recipients, results, strict=True):
            recipient.bucket = SUCCESS if result.succeeded else ERROR
            recipient.reason = result.error_code
        return results

    def _jobs(
        self,
        domain: Domain,
        request: ReinstallRequest,
        recipients: list[_Recipient],
    ) -> list[PairJob]:
        """Return each recipient's Play Store and install messages, in order."""
        second_text = messages.install_message(
            self.settings.hq_base_url, domain.name, request.app_id
        )
        first_texts: dict[str | None, str] = {}
        jobs = []
        for recipient in recipients:
            if recipient.language not in first_texts:
                first_texts[recipient.language] = request.custom_first_message or (
                    messages.default_first_message(
                        domain.translations, domain.default_language, recipient.language
                    )
                )
            jobs.append(
                PairJob(
                    "+" + (recipient.digits or ""),
                    first_texts[recipient.language],
                    second_text,
                )
            )
        return jobs


def build_service(
    settings: Settings, dynamodb: Any, sns: Any, sqs: Any = None
) -> ReinstallService:
    """Wire a service from settings and boto3 clients.

    Queued delivery needs both QUEUE_URL and an SQS client; without either,
    every request is sent directly.
    """
    queue = None
    if settings.queue_url and sqs is not None:
        from core.ledger import DeliveryLedger
        from core.queueing import DeliveryQueue, QueuedDelivery

        queue = QueuedDelivery(
            DeliveryQueue(sqs, settings.queue_url),
            DeliveryLedger(
                settings.table_name, dynamodb, settings.sms_log_retention_days
            ),
            settings,
        )
    return ReinstallService(
        Repository(settings.table_name, dynamodb),
        SmsSender(sns),
        settings,
        sms_log=SmsLog(settings.table_name, dynamodb, settings.sms_log_retention_days),
        opt_outs=build_opt_out_checker(settings, sns),
        daily_limit=DailySmsLimit(settings.table_name, dynamodb),
        queue=queue,
    )
