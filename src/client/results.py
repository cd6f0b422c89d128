"""The results file: one ``phone_number,result`` row per row of the input."""

import csv
from pathlib import Path

from client.plan import SendPlan
from client.state import BUCKETS, Buckets

# Result written for each bucket of the server's response.
RESULT_NAMES = {
    "success_numbers": "success",
    "invalid_format_numbers": "invalid_format",
    "error_numbers": "error",
}


def row_results(plan: SendPlan, chunks: dict[int, Buckets]) -> list[str]:
    """Return each row's result; a repeated number shares its first row's result.

    Every chunk of ``plan`` must be in ``chunks``. A number that the server left
    out of all buckets counts as ``error``.
    """
    result_by_number: dict[str, str] = {}
    for buckets in chunks.values():
        for bucket, numbers in buckets.items():
            for number in numbers:
                result_by_number[number] = RESULT_NAMES[bucket]
    first_results = {
        row: result_by_number.get(plan.numbers[row], "error")
        for row in set(plan.first_row)
    }
    return [first_results[first] for first in plan.first_row]


def write_results(path: Path, numbers: list[str], results: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["phone_number", "result"])
        writer.writerows(zip(numbers, results, strict=True))


def align_buckets(chunk: list[str], buckets: Buckets) -> tuple[Buckets, list[str]]:
    """Return the buckets of ``chunk``'s numbers in chunk order, and those missing.

    A number that the response puts in no bucket goes to ``error_numbers`` and
    is also returned in the second list. Numbers the chunk did not contain are
    dropped.
    """
    bucket_of: dict[str, str] = {}
    for bucket in BUCKETS:
        for number in buckets[bucket]:
            bucket_of.setdefault(number, bucket)
    aligned: Buckets = {bucket: [] for bucket in BUCKETS}
    missing: list[str] = []
    for number in chunk:
        found = bucket_of.get(number)
        if found is None:
            missing.append(number)
            found = "error_numbers"
        aligned[found].append(number)
    return aligned, missing
