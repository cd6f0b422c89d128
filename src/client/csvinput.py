"""Read the phone numbers of a CSV file exported from a spreadsheet."""

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

PHONE_NUMBER_COLUMN = "phone_number"
# Separators that spreadsheets write: "," by default, ";" where the decimal mark
# is a comma, tab for "text" exports.
DELIMITERS = (",", ";", "\t")


class InputFileError(Exception):
    """The CSV file cannot be used; the message gives the reason and the fix."""


@dataclass(frozen=True, slots=True)
class PhoneNumberFile:
    """The numbers of a CSV file, one per data row, spelled as in the file."""

    numbers: list[str]
    # SHA-256 of the file's bytes, which ties a run's state to this content.
    sha256: str
    delimiter: str
    # Source of the numbers: the header name, or "column 1".
    column: str


def detect_delimiter(header_line: str) -> str:
    """Return the separator that splits ``header_line`` into the most fields.

    A tie, including a line with one field, gives ``,``.
    """
    best, best_count = ",", 1
    for delimiter in DELIMITERS:
        fields = next(csv.reader([header_line], delimiter=delimiter), [])
        if len(fields) > best_count:
            best, best_count = delimiter, len(fields)
    return best


def read_phone_numbers(path: Path) -> PhoneNumberFile:
    """Read the numbers of ``path``, tolerating a UTF-8 byte order mark.

    The numbers come from the column headed ``phone_number`` (any case). When
    there is no such column they come from the first column, and the first row
    is taken as a header when its first cell contains no digit. Rows whose
    cells are all blank are skipped. Raises InputFileError when the file cannot
    be read, is not UTF-8 or has no data rows.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputFileError(f"Cannot read {path}: {error.strerror}.") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputFileError(
            f"{path} is not UTF-8 text (invalid byte at offset {error.start}). "
            f"Save the sheet as 'CSV UTF-8' and try again."
        ) from None

    header_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = detect_delimiter(header_line)
    rows = [
        row
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        if any(cell.strip() for cell in row)
    ]
    if not rows:
        raise InputFileError(f"{path} contains no rows.")

    header = [cell.strip().lower() for cell in rows[0]]
    if PHONE_NUMBER_COLUMN in header:
        index = header.index(PHONE_NUMBER_COLUMN)
        column = PHONE_NUMBER_COLUMN
        data_rows = rows[1:]
    else:
        index = 0
        column = "column 1"
        has_header = not any(character.isdigit() for character in rows[0][0])
        data_rows = rows[1:] if has_header else rows

    numbers = [row[index] if index < len(row) else "" for row in data_rows]
    if not numbers:
        raise InputFileError(f"{path} has a header but no phone numbers.")
    return PhoneNumberFile(
        numbers=numbers,
        sha256=hashlib.sha256(data).hexdigest(),
        delimiter=delimiter,
        column=column,
    )
