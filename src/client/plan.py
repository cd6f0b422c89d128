"""Split a file's numbers into the requests that a run sends."""

import hashlib
import json
from dataclasses import dataclass

from core.phone import normalize, to_e164_digits

# Results of a dry run, one per row.
WOULD_SEND = "send"
INVALID_FORMAT = "invalid_format"
DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """The parameters of a run, to which its state file and Idempotency-Keys belong."""

    url: str
    domain: str
    app_id: str
    message: str | None
    file_sha256: str
    chunk_size: int

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "url": self.url,
            "domain": self.domain,
            "app_id": self.app_id,
            "message": self.message,
            "file_sha256": self.file_sha256,
            "chunk_size": self.chunk_size,
        }


@dataclass(frozen=True, slots=True)
class SendPlan:
    """The rows of a file and the deduplicated numbers to send, in chunks."""

    numbers: list[str]
    # For each row, the index of the first row with the same normalized number.
    first_row: list[int]
    chunks: list[list[str]]

    @property
    def duplicate_rows(self) -> int:
        return sum(1 for row, first in enumerate(self.first_row) if row != first)

    @property
    def numbers_to_send(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


def build_plan(numbers: list[str], chunk_size: int) -> SendPlan:
    """Keep the first row of each normalized number and split those into chunks.

    The server rejects a whole request that contains two numbers with the same
    normalized value, and numbers repeated in different requests would get
    their SMS twice, so each normalized number is sent once per file.
    """
    first_by_normalized: dict[str, int] = {}
    first_row = []
    unique = []
    for row, raw in enumerate(numbers):
        first = first_by_normalized.setdefault(normalize(raw), row)
        first_row.append(first)
        if first == row:
            unique.append(raw)
    chunks = [
        unique[start : start + chunk_size]
        for start in range(0, len(unique), chunk_size)
    ]
    return SendPlan(numbers=numbers, first_row=first_row, chunks=chunks)


def dry_run_results(plan: SendPlan) -> list[str]:
    """Return what a run would do with each row: send, invalid_format or duplicate.

    Only the format and duplicate checks run offline. Numbers that the server
    puts in error (registered to another domain, opted out) show as ``send``.
    """
    results = []
    for row, raw in enumerate(plan.numbers):
        if plan.first_row[row] != row:
            results.append(DUPLICATE)
        elif to_e164_digits(raw) is None:
            results.append(INVALID_FORMAT)
        else:
            results.append(WOULD_SEND)
    return results


def idempotency_key(identity: RunIdentity, chunk_index: int) -> str:
    """Return the Idempotency-Key of one chunk: a SHA-256 hex digest.

    It covers the file content, domain, app, message, chunk size and chunk
    index, so the same chunk of the same run always gets the same key and any
    other request gets another. The URL is left out because the same server
    can be reached under several names.
    """
    material = json.dumps(
        [
            identity.file_sha256,
            identity.domain,
            identity.app_id,
            identity.message,
            identity.chunk_size,
            chunk_index,
        ]
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
