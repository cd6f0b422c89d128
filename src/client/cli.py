"""Command line of ``reinstall-send``: send reinstall SMS to the numbers of a CSV file.

Exit status: 0 when every chunk is done (whatever the per-number results),
1 when the server or the network stopped the run, 2 for invalid usage, input
or state file, 3 when ``--max-chunks`` stopped the run early, 130 when
interrupted. After 1, 3 or 130, the same command resumes the run.
"""

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from admin.arguments import positive_int
from client.api import ApiError, ReinstallApi
from client.csvinput import InputFileError, PhoneNumberFile, read_phone_numbers
from client.plan import (
    RunIdentity,
    SendPlan,
    build_plan,
    dry_run_results,
    idempotency_key,
)
from client.results import RESULT_NAMES, align_buckets, row_results, write_results
from client.state import BUCKETS, RunState, StateFileError, state_path
from core.messages import MessageTemplateError, custom_first_message

PROG = "reinstall-send"
API_KEY_VARIABLE = "REINSTALL_API_KEY"

EXIT_DONE = 0
EXIT_STOPPED = 1
EXIT_USAGE = 2
EXIT_STOPPED_EARLY = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """An invalid option or environment variable; the message explains the fix."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Send the CommCare reinstall SMS to every phone number of a CSV file, "
            "in chunks, resuming where an interrupted run stopped. The API key is "
            f"read from {API_KEY_VARIABLE} as username:key."
        ),
    )

    parser.add_argument(
        "--url",
        required=True,
        help="base URL of the service, such as https://api.example.org/prod",
    )
    parser.add_argument(
        "--domain", required=True, help="domain (CommCare project) name"
    )
    parser.add_argument("--app-id", required=True, help="id of the app to install")
    parser.add_argument(
        "--csv",
        required=True,
        type=Path,
        help="CSV file with a phone_number column (otherwise the first column is used)",
    )
    parser.add_argument(
        "--message",
        help="custom text of the first SMS, with {} where the Play Store link goes "
        "(default: the domain's default message)",
    )

    parser.add_argument(
        "--chunk-size",
        type=positive_int,
        default=200,
        help="numbers per request (default 200; the server's default maximum is 1000)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results.csv"),
        help="results file (default results.csv); the run's state is kept beside it "
        "in OUT.state.json",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the numbers offline and write what would be sent to "
        "OUT with .dry-run before the suffix; send nothing",
    )

    parser.add_argument(
        "--timeout",
        type=positive_int,
        default=60,
        help="seconds to wait for each response (default 60)",
    )
    parser.add_argument(
        "--max-attempts",
        type=positive_int,
        default=6,
        help="attempts per request when throttled or unreachable (default 6)",
    )

    # Stops after this many requests, as if interrupted; tests use it to resume.
    parser.add_argument("--max-chunks", type=positive_int, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    try:
        return run(args)
    except (UsageError, InputFileError, StateFileError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        # Writing the state or results file failed; finished chunks stay recorded.
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_STOPPED


def run(args: argparse.Namespace) -> int:
    base_url = checked_url(args.url)
    message = checked_message(args.message)
    phone_file = read_phone_numbers(args.csv)
    plan = build_plan(phone_file.numbers, args.chunk_size)
    if args.dry_run:
        return dry_run(args, phone_file, plan)

    api_key = checked_api_key(os.environ.get(API_KEY_VARIABLE))
    identity = RunIdentity(
        url=base_url,
        domain=args.domain,
        app_id=args.app_id,
        message=message,
        file_sha256=phone_file.sha256,
        chunk_size=args.chunk_size,
    )
    state = RunState.load(state_path(args.out), identity)
    api = ReinstallApi(
        base_url,
        args.domain,
        api_key,
        timeout_seconds=args.timeout,
        max_attempts=args.max_attempts,
    )

    status = ChunkSender(api, plan, state).send_all(args.max_chunks)
    if status != EXIT_DONE:
        return status

    results = row_results(plan, state.chunks)
    write_results(args.out, plan.numbers, results)
    print_summary(plan, results, args.out)
    if state.status_urls:
        print(
            f"The server queued {len(state.status_urls)} of the requests, so their "
            f"success means queued for sending. Their status URLs are in {state.path}."
        )
    return EXIT_DONE


class ChunkSender:
    """Sender of the chunks of a plan that ``state`` does not record yet, in order.

    Each chunk is recorded in the state file as soon as its response arrives,
    so that a rerun skips it. A progress bar on stderr shows the counts per
    bucket; it is hidden when stderr is not a terminal.
    """

    def __init__(self, api: ReinstallApi, plan: SendPlan, state: RunState) -> None:
        self.api = api
        self.plan = plan
        self.state = state
        self.index = 0
        self.counts: Counter[str] = Counter()
        for buckets in state.chunks.values():
            self.counts.update({bucket: len(buckets[bucket]) for bucket in BUCKETS})
        self.progress = tqdm(
            total=plan.numbers_to_send,
            initial=sum(len(plan.chunks[index]) for index in state.chunks),
            unit="number",
            desc="Sending",
            file=sys.stderr,
            disable=None,
        )
        self.progress.set_postfix(bucket_postfix(self.counts))
        api.on_retry = self.report_retry

    def send_all(self, max_chunks: int | None) -> int:
        """Send the remaining chunks and return the exit status."""
        try:
            return self._send_remaining(max_chunks)
        except ApiError as error:
            self.progress.close()
            total = len(self.plan.chunks)
            print(stop_message(error, self.index, total, self.state), file=sys.stderr)
            return EXIT_STOPPED
        except KeyboardInterrupt:
            self.progress.close()
            print(
                f"Interrupted. Finished chunks are recorded in {self.state.path}; "
                f"run the same command to resume. Chunk {self.index + 1} was being "
                f"sent and will be sent again.",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED

    def _send_remaining(self, max_chunks: int | None) -> int:
        sent_now = 0
        for index, chunk in enumerate(self.plan.chunks):
            if index in self.state.chunks:
                continue
            if max_chunks is not None and sent_now >= max_chunks:
                self.progress.close()
                print(
                    f"Stopped after {sent_now} request(s) because of --max-chunks; "
                    f"run the same command without it to continue.",
                    file=sys.stderr,
                )
                return EXIT_STOPPED_EARLY
            self.index = index
            self._send_chunk(index, chunk)
            sent_now += 1
        self.progress.close()
        return EXIT_DONE

    def _send_chunk(self, index: int, chunk: list[str]) -> None:
        identity = self.state.identity
        response = self.api.reinstall(
            identity.app_id, chunk, identity.message, idempotency_key(identity, index)
        )
        aligned, missing = align_buckets(chunk, response.buckets)
        if missing:
            self.progress.write(
                f"Chunk {index + 1}: the server returned no result for "
                f"{len(missing)} number(s); they are counted as error.",
                file=sys.stderr,
            )
        self.state.record_chunk(index, aligned, response.status_url)

        self.counts.update({bucket: len(aligned[bucket]) for bucket in BUCKETS})
        self.progress.set_postfix(bucket_postfix(self.counts))
        self.progress.update(len(chunk))

    def report_retry(self, reason: str, seconds: float) -> None:
        self.progress.write(
            f"Chunk {self.index + 1}/{len(self.plan.chunks)}: {reason}; "
            f"retrying in {seconds:.1f} s",
            file=sys.stderr,
        )


def stop_message(error: ApiError, index: int, total: int, state: RunState) -> str:
    """Return what stopped the run, what it means for the chunk and how to go on."""
    lines = [f"{PROG}: chunk {index + 1}/{total} failed: {error.message}"]
    if error.may_have_sent:
        lines.append(
            "Some numbers of this chunk may have received SMS. Running the same "
            "command sends the chunk again. A server that honours the "
            "Idempotency-Key header then skips what it already sent."
        )
    else:
        lines.append(
            "Nothing was sent for this chunk. Fix the problem, then run the same "
            "command to resume."
        )
    if state.chunks:
        lines.append(f"Finished chunks are recorded in {state.path}.")
    return "\n".join(lines)


def bucket_postfix(counts: Counter[str]) -> dict[str, int]:
    return {RESULT_NAMES[bucket]: counts[bucket] for bucket in BUCKETS}


def print_summary(plan: SendPlan, results: list[str], out: Path) -> None:
    counts = Counter(results)
    print(
        f"Done: {len(plan.numbers)} rows, {plan.numbers_to_send} numbers sent in "
        f"{len(plan.chunks)} request(s)."
    )
    print("Results per row:")
    for name in RESULT_NAMES.values():
        print(f"  {name:<15} {counts[name]:>7}")
    if plan.duplicate_rows:
        print(
            f"{plan.duplicate_rows} row(s) repeat an earlier number. Each number "
            f"was sent once and its rows share the result."
        )
    print(f"Results written to {out}.")


def dry_run(
    args: argparse.Namespace, phone_file: PhoneNumberFile, plan: SendPlan
) -> int:
    """Write what a run would do with each row, without sending anything."""
    results = dry_run_results(plan)
    out = dry_run_path(args.out)
    write_results(out, plan.numbers, results)

    counts = Counter(results)
    print(
        f"Dry run, nothing sent: {len(plan.numbers)} rows read from "
        f"{phone_file.column} of {args.csv}."
    )
    for name in ("send", "invalid_format", "duplicate"):
        print(f"  {name:<15} {counts[name]:>7}")
    print(
        f"A run would send {len(plan.chunks)} request(s) of up to {args.chunk_size} "
        f"numbers. Numbers marked send can still end in error on the server, for "
        f"example when they are registered to another project or opted out."
    )
    print(f"Plan written to {out}.")
    return EXIT_DONE


def dry_run_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.dry-run{out.suffix}")


def checked_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"invalid --url {value!r}; give the service's base URL, such as "
            f"https://api.example.org/prod"
        )
    return value.rstrip("/")


def checked_message(value: str | None) -> str | None:
    """Return ``value``; raise UsageError when the server would reject it."""
    if value is None or not value.strip():
        return value
    try:
        custom_first_message(value)
    except MessageTemplateError as error:
        raise UsageError(f"--message {error}") from None
    return value


def checked_api_key(value: str | None) -> str:
    if not value:
        raise UsageError(f"{API_KEY_VARIABLE} is not set; set it to username:key")
    username, _, key = value.rpartition(":")
    if not username or not key:
        raise UsageError(f"{API_KEY_VARIABLE} must have the form username:key")
    return value


if __name__ == "__main__":
    sys.exit(main())
