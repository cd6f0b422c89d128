"""The ``log show`` command: SMS log records of one request or one phone number."""

import argparse
from typing import Any

from admin.domains import require_domain
from admin.output import print_json, print_table
from admin.phones import stored_digits
from core.phone import mask
from core.repository import Repository
from core.settings import get_settings
from core.smslog import SmsLog, SmsLogRecord


def show_log(args: argparse.Namespace, repository: Repository) -> int:
    """Print the SNS publish attempts of a request or of a number in one domain.

    Phone numbers are masked (country code and last two digits) unless
    ``--show-numbers`` is given, so that output pasted into a ticket exposes none.
    """
    require_domain(repository, args.domain)
    sms_log = SmsLog(
        repository.table_name,
        repository.client,
        retention_days=get_settings().sms_log_retention_days,
    )
    if args.request_id is not None:
        records = sms_log.read_request(args.domain, args.request_id)
        subject = f"request {args.request_id}"
    else:
        digits = stored_digits(args.phone)
        records = sms_log.read_phone_number(args.domain, digits, limit=args.limit)
        subject = f"phone number {_shown(digits, args.show_numbers)}"

    rows = [_record_fields(record, args.show_numbers) for record in records]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"No SMS log records for {subject} in domain {args.domain}.")
        return 0
    columns = ["attempted_at", "request_id", "phone_number", "message"]
    columns += ["message_id", "error_code"]
    print_table(
        [column.upper() for column in columns],
        [[row[column] for column in columns] for row in rows],
    )
    return 0


def _shown(digits: str, show_numbers: bool) -> str:
    return "+" + digits if show_numbers else mask(digits)


def _record_fields(record: SmsLogRecord, show_numbers: bool) -> dict[str, Any]:
    return {
        "attempted_at": record.attempted_at.isoformat(),
        "request_id": record.request_id,
        "phone_number": _shown(record.digits, show_numbers),
        "message": record.message,
        "message_id": record.message_id,
        "error_code": record.error_code,
    }
