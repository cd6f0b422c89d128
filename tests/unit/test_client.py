"""reinstall-send's parts that need no server: CSV input, plan, state, headers."""

import json
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest

from client.api import backoff_seconds, describe_error_body, retry_after_seconds
from client.csvinput import InputFileError, detect_delimiter, read_phone_numbers
from client.plan import RunIdentity, build_plan, dry_run_results, idempotency_key
from client.results import align_buckets, row_results
from client.state import RunState, StateFileError, state_path

IDENTITY = RunIdentity(
    url="http://127.0.0.1:3000",
    domain="demo",
    app_id="abcd1234abcd1234",
    message=None,
    file_sha256="0" * 64,
    chunk_size=2,
)


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "numbers.csv"
    path.write_bytes(content)
    return path


# CSV input


def test_csv_phone_number_column(tmp_path: Path) -> None:
    path = write(tmp_path, b"name,Phone_Number\nA,+1 617 555 0100\nB,16175550101\n")
    phone_file = read_phone_numbers(path)
    assert phone_file.numbers == ["+1 617 555 0100", "16175550101"]
    assert phone_file.column == "phone_number"
    assert phone_file.delimiter == ","


def test_csv_byte_order_mark_and_semicolons(tmp_path: Path) -> None:
    content = "\ufeffname;phone_number\r\nA;+1 617 555 0100\r\nB;1,617\r\n"
    phone_file = read_phone_numbers(write(tmp_path, content.encode("utf-8")))
    assert phone_file.delimiter == ";"
    assert phone_file.numbers == ["+1 617 555 0100", "1,617"]


def test_csv_tab_separated(tmp_path: Path) -> None:
    path = write(tmp_path, b"phone_number\tname\n16175550100\tA\n")
    phone_file = read_phone_numbers(path)
    assert phone_file.delimiter == "\t"
    assert phone_file.numbers == ["16175550100"]


def test_csv_first_column_with_header(tmp_path: Path) -> None:
    path = write(tmp_path, b"Mobile,name\n16175550100,A\n16175550101,B\n")
    phone_file = read_phone_numbers(path)
    assert phone_file.numbers == ["16175550100", "16175550101"]
    assert phone_file.column == "column 1"


def test_csv_first_column_without_header(tmp_path: Path) -> None:
    path = write(tmp_path, b"16175550100\n+1 617 555 0101\n")
    assert read_phone_numbers(path).numbers == ["16175550100", "+1 617 555 0101"]


def test_csv_skips_blank_rows(tmp_path: Path) -> None:
    path = write(tmp_path, b"name;phone_number\n\nA;16175550100\n;;\nB;\n")
    # The row "B;" has a name but no number, so it stays and is sent as "".
    assert read_phone_numbers(path).numbers == ["16175550100", ""]


def test_csv_quoted_cells(tmp_path: Path) -> None:
    path = write(tmp_path, b'name,phone_number\n"Doe, Jane","+1 (617) 555-0100"\n')
    assert read_phone_numbers(path).numbers == ["+1 (617) 555-0100"]


def test_csv_hash_is_of_bytes(tmp_path: Path) -> None:
    first = read_phone_numbers(write(tmp_path, b"phone_number\n16175550100\n"))
    second = read_phone_numbers(write(tmp_path, b"phone_number\r\n16175550100\r\n"))
    assert first.numbers == second.numbers
    assert first.sha256 != second.sha256


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"phone_number\n\xff\xfe1617\n", "is not UTF-8 text"),
        (b"", "contains no rows"),
        (b"\n ; \n", "contains no rows"),
        (b"phone_number\n", "has a header but no phone numbers"),
    ],
)
def test_csv_rejects_unusable_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    with pytest.raises(InputFileError, match=message):
        read_phone_numbers(write(tmp_path, content))


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="Cannot read"):
        read_phone_numbers(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("phone_number", ","),
        ("a,b;c", ","),
        ("a;b;c", ";"),
        ("a;b,c;d", ";"),
        ("a\tb", "\t"),
        ('"x;y",z', ","),
    ],
)
def test_detect_delimiter(line: str, delimiter: str) -> None:
    assert detect_delimiter(line) == delimiter


# Plan


def test_plan_deduplicates_normalized_numbers() -> None:
    numbers = ["+1 617 555 0100", "16175550101", "1.617.555.0100", "", " ", "x"]
    plan = build_plan(numbers, chunk_size=2)
    assert plan.first_row == [0, 1, 0, 3, 3, 5]
    assert plan.chunks == [["+1 617 555 0100", "16175550101"], ["", "x"]]
    assert plan.duplicate_rows == 2
    assert plan.numbers_to_send == 4


def test_plan_dry_run_results() -> None:
    plan = build_plan(["16175550100", "1617JKL1234", "+1-617-555-0100"], chunk_size=10)
    assert dry_run_results(plan) == ["send", "invalid_format", "duplicate"]


def test_idempotency_key_per_chunk() -> None:
    first = idempotency_key(IDENTITY, 0)
    assert first == idempotency_key(IDENTITY, 0)
    assert len(first) == 64
    assert first != idempotency_key(IDENTITY, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"domain": "other"},
        {"app_id": "other"},
        {"message": "Install: {}"},
        {"file_sha256": "1" * 64},
        {"chunk_size": 3},
    ],
)
def test_idempotency_key_covers_request(change: dict[str, object]) -> None:
    changed = RunIdentity(**{**IDENTITY.as_dict(), **change})  # type: ignore[arg-type]
    assert idempotency_key(changed, 0) != idempotency_key(IDENTITY, 0)


def test_idempotency_key_ignores_url() -> None:
    moved = RunIdentity(**{**IDENTITY.as_dict(), "url": "https://api.example.org"})  # type: ignore[arg-type]
    assert idempotency_key(moved, 0) == idempotency_key(IDENTITY, 0)


# Results


def test_align_buckets_follows_chunk() -> None:
    buckets = {
        "success_numbers": ["b", "stray"],
        "invalid_format_numbers": ["a"],
        "error_numbers": [],
    }
    aligned, missing = align_buckets(["a", "b", "c"], buckets)
    assert aligned == {
        "success_numbers": ["b"],
        "invalid_format_numbers": ["a"],
        "error_numbers": ["c"],
    }
    assert missing == ["c"]


def test_row_results_share_first_result() -> None:
    plan = build_plan(["16175550100", "1617JKL1234", "+1 617 555 0100"], chunk_size=1)
    chunks = {
        0: {
            "success_numbers": ["16175550100"],
            "invalid_format_numbers": [],
            "error_numbers": [],
        },
        1: {
            "success_numbers": [],
            "invalid_format_numbers": ["1617JKL1234"],
            "error_numbers": [],
        },
    }
    assert row_results(plan, chunks) == ["success", "invalid_format", "success"]


# State file


def test_state_round_trip(tmp_path: Path) -> None:
    path = state_path(tmp_path / "results.csv")
    assert path.name == "results.csv.state.json"
    state = RunState.load(path, IDENTITY)
    assert state.chunks == {}
    assert not path.exists()

    buckets = {
        "success_numbers": ["16175550100"],
        "invalid_format_numbers": ["x"],
        "error_numbers": [],
    }
    state.record_chunk(1, buckets)
    state.record_chunk(0, buckets, status_url="https://api.example.org/status/r-1/")
    loaded = RunState.load(path, IDENTITY)
    assert loaded.chunks == {0: buckets, 1: buckets}
    assert loaded.status_urls == {0: "https://api.example.org/status/r-1/"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv.state.json"]


def test_state_of_other_run_rejected(tmp_path: Path) -> None:
    path = state_path(tmp_path / "results.csv")
    RunState.load(path, IDENTITY).save()
    changed = RunIdentity(**{**IDENTITY.as_dict(), "domain": "x", "chunk_size": 5})  # type: ignore[arg-type]
    with pytest.raises(StateFileError, match=r"different domain, chunk_size\)"):
        RunState.load(path, changed)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"format": 99, "run": {}, "chunks": {}}),
        json.dumps({"format": 1, "run": {}, "chunks": {"x": {}}}),
        json.dumps([1, 2]),
    ],
)
def test_state_corrupt_rejected(tmp_path: Path, content: str) -> None:
    path = tmp_path / "results.csv.state.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(StateFileError, match="cannot be read"):
        RunState.load(path, IDENTITY)


# HTTP details


def headers(**values: str) -> Message:
    message = Message()
    for name, value in values.items():
        message[name.replace("_", "-")] = value
    return message


def test_retry_after_seconds_forms() -> None:
    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(headers(Retry_After="7"), now) == 7.0
    date = "Fri, 04 Dec 2026 12:00:30 GMT"
    assert retry_after_seconds(headers(Retry_After=date), now) == 30.0
    past = "Fri, 04 Dec 2026 11:00:00 GMT"
    assert retry_after_seconds(headers(Retry_After=past), now) == 0.0
    assert retry_after_seconds(headers(Retry_After="soon"), now) is None
    assert retry_after_seconds(headers(), now) is None


def test_backoff_doubles_within_bounds() -> None:
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (20, 60.0)]:
        wait = backoff_seconds(attempt)
        assert ceiling / 2 <= wait <= ceiling, (attempt, wait)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"error": "Invalid username or API key."}', "Invalid username or API key."),
        (
            b'{"sms_user_registration_reinstall": {"app_id": "Invalid app_id specified"}}',
            "app_id: Invalid app_id specified",
        ),
        (b"<html>Bad gateway</html>", "<html>Bad gateway</html>"),
        (b"", "(empty body)"),
        (b'{"message": "Forbidden", "x": 1}', '{"message": "Forbidden", "x": 1}'),
    ],
)
def test_describe_error_body(body: bytes, text: str) -> None:
    assert describe_error_body(body) == text
