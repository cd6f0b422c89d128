"""reinstall-send and reinstall-admin as console scripts against the devserver.

The devserver runs as a subprocess with the multi-domain seed. In that seed
16175550101 is verified to another project, so it always ends in error, and
16175550100 is registered to ``demo`` itself, so it succeeds.
"""

import csv
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "data" / "seed.json"
BIN = Path(sys.executable).parent
REINSTALL_SEND = str(BIN / "reinstall-send")
REINSTALL_ADMIN = str(BIN / "reinstall-admin")
STARTUP_LIMIT_SECONDS = 120
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")

DOMAIN = "demo"
APP_ID = "abcd1234abcd1234"
API_KEY = "admin@demo.example:demo-admin-key"
REGISTERED_ELSEWHERE = "16175550101"

CLIENT_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Devserver:
    url: str

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def clear_outbox(self) -> None:
        request = urllib.request.Request(self.url + "/_dev/outbox", method="DELETE")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def outbox_counts(self) -> Counter[str]:
        """Return how many SMS each E.164 number received."""
        messages = self.get("/_dev/outbox")["messages"]
        return Counter(message["phone_number"] for message in messages)


def clean_environment(**extra: str) -> dict[str, str]:
    """Return os.environ without AWS endpoints or profile, with fake credentials."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_ENDPOINT_URL")
        and name not in ("AWS_PROFILE", "TABLE_NAME", "REINSTALL_API_KEY")
    }
    environment.update(CLIENT_ENVIRONMENT)
    environment.update(extra)
    return environment


@pytest.fixture(scope="module")
def devserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devserver]:
    logs = tmp_path_factory.mktemp("devserver")
    stdout_path = logs / "stdout.log"
    stderr_path = logs / "stderr.log"
    environment = clean_environment(
        # No pacing, so that 1000 SMS do not take 50 seconds.
        SMS_MAX_SEND_RATE="0",
        PYTHONUNBUFFERED="1",
    )
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "devserver", "--port", "0", "--seed", str(SEED)],
            cwd=ROOT,
            env=environment,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        url = wait_for_url(process, stdout_path, stderr_path)
        yield Devserver(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_url(
    process: subprocess.Popen[bytes], stdout_path: Path, stderr_path: Path
) -> str:
    """Return the URL from the devserver's first line, once it has printed it."""
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while time.monotonic() < deadline:
        match = LISTENING.search(stdout_path.read_text())
        if match:
            return match.group(1)
        if process.poll() is not None:
            pytest.fail(f"devserver exited early:\n{stderr_path.read_text()}")
        time.sleep(0.1)
    pytest.fail(f"devserver printed no URL:\n{stderr_path.read_text()}")


@pytest.fixture
def outbox(devserver: Devserver) -> Devserver:
    devserver.clear_outbox()
    return devserver


def run_send(
    devserver: Devserver, workdir: Path, *options: str, api_key: str | None = API_KEY
) -> subprocess.CompletedProcess[str]:
    extra = {"REINSTALL_API_KEY": api_key} if api_key is not None else {}
    command = [
        REINSTALL_SEND,
        "--url", devserver.url,
        "--domain", DOMAIN,
        "--app-id", APP_ID,
        "--csv", str(workdir / "numbers.csv"),
        "--out", str(workdir / "results.csv"),
        *options,
    ]  # fmt: skip
    return subprocess.run(
        command,
        check=False,
        cwd=workdir,
        env=clean_environment(**extra),
        capture_output=True,
        text=True,
        timeout=600,
    )


def run_admin(info: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    command = [
        REINSTALL_ADMIN,
        "--endpoint-url", info["aws_endpoint_url"],
        "--table", info["table_name"],
        *argv,
    ]  # fmt: skip
    return subprocess.run(
        command,
        check=False,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def post_reinstall(
    devserver: Devserver, credentials: str, domain: str, body: Any
) -> int:
    request = urllib.request.Request(
        f"{devserver.url}/a/{domain}/api/v0_5/sms_user_registration_reinstall/",
        data=json.dumps(body).encode("utf-8"),
        headers={
            "Authorization": f"ApiKey {credentials}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def spreadsheet_rows() -> list[tuple[str, str, str]]:
    """Return 500 rows of (E.164 or "", number as typed, expected result).

    There are 484 distinct valid numbers in three spellings, 12 numbers with an
    invalid format, the number registered elsewhere, and three rows that repeat
    an earlier number in another spelling.
    """
    rows = []
    spellings = ("+1 617 555 {}", "1.617.555.{}", "1-617-555-{}")
    # moto reports numbers ending in 99 as opted out, so none is used here.
    lines = [f"{n:04d}" for n in range(2000, 3000) if n % 100 != 99][:483]
    for i, line in enumerate(lines):
        rows.append(("+1617555" + line, spellings[i % 3].format(line), "success"))
    rows.append(("+16175550100", "16175550100", "success"))
    rows.append(("+" + REGISTERED_ELSEWHERE, REGISTERED_ELSEWHERE, "error"))
    invalid = [
        "1617JKL1234",
        "12345",
        "",
        "not a number",
        "+1 617 555 20",
        "0016175552000",
        "+1 617 555 2001 ext 5",
        "16175551234567",
        "+999 1234",
        "1617555²001",
        "44",
        "N/A",
    ]
    rows += [("", number, "invalid_format") for number in invalid]
    rows.append(("+16175552000", "+1-617-555-2000", "success"))
    rows.append(("+16175552001", "+1 (617) 555-2001", "success"))
    rows.append(("", " ", "invalid_format"))
    assert len(rows) == 500
    return rows


def write_numbers_csv(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """Write the rows the way a spreadsheet in a comma-decimal locale saves them.

    The names include the folder's name, so that each test's file, and so its
    Idempotency-Keys, differ from other tests'. A server that honours the keys
    would otherwise replay another test's responses and send nothing.
    """
    lines = ["name;phone_number"]
    lines += [
        f"Worker {i} of {path.parent.name};{typed}"
        for i, (_, typed, _) in enumerate(rows)
    ]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n")


def read_results(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.reader(stream)
        assert next(reader) == ["phone_number", "result"]
        return [(number, result) for number, result in reader]


def expected_successes(rows: list[tuple[str, str, str]]) -> set[str]:
    return {e164 for e164, _, result in rows if result == "success"}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_numbers_csv(tmp_path / "numbers.csv", spreadsheet_rows())
    return tmp_path


def test_results_match_api_buckets(outbox: Devserver, workdir: Path) -> None:
    rows = spreadsheet_rows()
    completed = run_send(outbox, workdir, "--chunk-size", "200")
    assert completed.returncode == 0, completed.stderr

    results = read_results(workdir / "results.csv")
    assert results == [(typed, result) for _, typed, result in rows]
    assert "Done: 500 rows, 497 numbers sent in 3 request(s)." in completed.stdout
    assert "  success             486" in completed.stdout
    assert "  invalid_format       13" in completed.stdout
    assert "  error                 1" in completed.stdout

    received = outbox.outbox_counts()
    successes = expected_successes(rows)
    assert len(successes) == 484
    assert set(received) == successes
    assert set(received.values()) == {2}


def test_interrupted_run_resumes(outbox: Devserver, workdir: Path) -> None:
    rows = spreadsheet_rows()
    state_path = workdir / "results.csv.state.json"

    first = run_send(outbox, workdir, "--chunk-size", "200", "--max-chunks", "1")
    assert first.returncode == 3, first.stderr
    assert not (workdir / "results.csv").exists()
    state = json.loads(state_path.read_text(encoding="utf-8"))
    assert sorted(state["chunks"]) == ["0"]
    first_chunk = state["chunks"]["0"]
    assert len(first_chunk["success_numbers"]) == 200
    assert sum(outbox.outbox_counts().values()) == 400

    second = run_send(outbox, workdir, "--chunk-size", "200")
    assert second.returncode == 0, second.stderr
    state = json.loads(state_path.read_text(encoding="utf-8"))
    assert sorted(state["chunks"]) == ["0", "1", "2"]
    assert state["chunks"]["0"] == first_chunk

    received = outbox.outbox_counts()
    assert set(received) == expected_successes(rows)
    assert set(received.values()) == {2}
    assert read_results(workdir / "results.csv") == [
        (typed, result) for _, typed, result in rows
    ]

    third = run_send(outbox, workdir, "--chunk-size", "200")
    assert third.returncode == 0, third.stderr
    assert outbox.outbox_counts() == received


def test_changed_chunk_size_is_rejected(outbox: Devserver, workdir: Path) -> None:
    first = run_send(outbox, workdir, "--chunk-size", "200", "--max-chunks", "1")
    assert first.returncode == 3, first.stderr
    sent = outbox.outbox_counts()

    changed = run_send(outbox, workdir, "--chunk-size", "100")
    assert changed.returncode == 2
    assert "belongs to another run (different chunk_size)" in changed.stderr
    assert outbox.outbox_counts() == sent


def test_dry_run_sends_nothing(outbox: Devserver, workdir: Path) -> None:
    completed = run_send(outbox, workdir, "--dry-run", api_key=None)
    assert completed.returncode == 0, completed.stderr
    assert outbox.outbox_counts() == Counter()
    assert not (workdir / "results.csv").exists()
    assert not (workdir / "results.csv.state.json").exists()

    planned = read_results(workdir / "results.dry-run.csv")
    duplicates = {"+1-617-555-2000", "+1 (617) 555-2001", " "}
    expected = [
        (typed, "duplicate" if typed in duplicates else result)
        for _, typed, result in spreadsheet_rows()
    ]
    expected = [
        (typed, "send" if result in ("success", "error") else result)
        for typed, result in expected
    ]
    assert planned == expected
    assert "  send                485" in completed.stdout
    assert "  invalid_format       12" in completed.stdout
    assert "  duplicate             3" in completed.stdout


def test_rejected_key_stops_run(outbox: Devserver, workdir: Path) -> None:
    completed = run_send(outbox, workdir, api_key="admin@demo.example:wrong-key")
    assert completed.returncode == 1
    assert (
        "chunk 1/3 failed: HTTP 401: Invalid username or API key." in completed.stderr
    )
    assert "Nothing was sent for this chunk." in completed.stderr
    assert not (workdir / "results.csv").exists()
    assert outbox.outbox_counts() == Counter()


def test_devserver_reports_table(devserver: Devserver) -> None:
    info = devserver.get("/_dev/info")
    assert sorted(info) == ["aws_endpoint_url", "table_name"]
    assert info["table_name"] == "reinstall-sms-local"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", info["aws_endpoint_url"])


def test_admin_key_until_revoked(outbox: Devserver) -> None:
    info = outbox.get("/_dev/info")
    steps = [
        ["domain", "set", "e2e-proj", "--plan", "pro", "--registration", "on"],
        ["app", "add", "e2e-proj", "e2e-app-0001", "--name", "E2E app"],
        ["user", "add", "e2e@example.org"],
        ["user", "grant", "e2e@example.org", "e2e-proj", "edit_data"],
    ]
    for argv in steps:
        completed = run_admin(info, *argv)
        assert completed.returncode == 0, (argv, completed.stderr)

    created = run_admin(info, "key", "create", "e2e@example.org", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    credentials = f"{key['username']}:{key['api_key']}"
    body = {"app_id": "e2e-app-0001", "users": [{"phone_number": "+1 617 555 3000"}]}

    assert post_reinstall(outbox, credentials, "e2e-proj", body) == 200
    assert outbox.outbox_counts() == Counter({"+16175553000": 2})

    revoked = run_admin(info, "key", "revoke", key["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert post_reinstall(outbox, credentials, "e2e-proj", body) == 401
    assert outbox.outbox_counts() == Counter({"+16175553000": 2})
