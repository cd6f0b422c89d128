"""Benchmark the reinstall handler and write docs/benchmarks.md and its chart.

Run it with ``make bench``. The Lambda handler runs in this process, called
directly with API Gateway events. DynamoDB is a moto server and SNS is the fake
SNS server (``python -m devserver.fake_sns``), each in its own subprocess on
127.0.0.1, so their CPU time is not counted as the handler's and they do not
compete with it for the GIL. Nothing leaves the machine: every endpoint is on
loopback and the credentials are fake.

Steps:

1. throughput: 1, 10, 100 and 1000 numbers at concurrency 1, 16 and 32, with
   25 ms of SNS Publish latency and the rate limit off;
2. rate limit: 200 numbers at SMS_MAX_SEND_RATE=100;
3. CPU time of the handler per number, with SNS responding at once;
4. cold start: ``import handler.api`` against ``import boto3`` in fresh
   interpreters, and the unzipped size of the deployment package.

The whole run takes about three minutes on two cores.
"""

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report import (
    DEFAULT_CONCURRENCY,
    LATENCY_MS,
    ColdStart,
    CpuResult,
    ImportTiming,
    Measurement,
    PackageSize,
    RateResult,
    Results,
    ThroughputRow,
    ideal_seconds,
    render,
    summary,
    write_chart,
)

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DOCS = ROOT / "docs"
DEMO_SEED = SRC / "devserver" / "demo_seed.json"
REQUIREMENTS = SRC / "requirements.txt"

SIZES = (1, 10, 100, 1000)
CONCURRENCIES = (1, 16, 32)
# Runs per throughput point; the median is reported. Points whose ideal time
# is LONG_RUN_SECONDS or more run once, to keep the run within five minutes.
REPETITIONS = 3
LONG_RUN_SECONDS = 5.0
RATE_LIMIT = 100
RATE_NUMBERS = 200
CPU_NUMBERS = 1000
COLD_START_REPETITIONS = 9
# Lambda's maximum timeout. The benchmark reports the time the work takes,
# so the deadline margin must never stop a number from being sent.
REMAINING_TIME_MS = 15 * 60 * 1000
STARTUP_TIMEOUT_SECONDS = 60

TABLE_NAME = "reinstall-bench"
DOMAIN = "demo"
APP_ID = "abcd1234abcd1234"
API_KEY = "admin@demo.example:demo-api-key"
PATH = f"/a/{DOMAIN}/api/v0_5/sms_user_registration_reinstall/"

BENCH_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "TABLE_NAME": TABLE_NAME,
    "POWERTOOLS_SERVICE_NAME": "reinstall-bench",
    "POWERTOOLS_TRACE_DISABLED": "1",
    # One log line and one metrics document per request would only clutter
    # the benchmark's output.
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
}


# Environment and servers


def prepare_environment() -> None:
    """Point this process at fake credentials and away from any real endpoint."""
    for name in list(os.environ):
        is_proxy = name.lower() in {"http_proxy", "https_proxy", "all_proxy"}
        if name.startswith("AWS_") or name == "LAMBDA_TASK_ROOT" or is_proxy:
            del os.environ[name]
    os.environ.update(BENCH_ENVIRONMENT)
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))


def child_environment(**extra: str) -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(SRC)
    environment.update(extra)
    return environment


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start in {STARTUP_TIMEOUT_SECONDS} s")


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Run ``python -m moto.server`` on a free loopback port; yield its URL."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(
        command,
        env=child_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/moto-api/", process)
        yield url
    finally:
        stop(process)


@contextlib.contextmanager
def fake_sns_server(latency_ms: float) -> Iterator[str]:
    """Run the fake SNS on a free loopback port; yield its URL."""
    command = [
        sys.executable,
        "-m",
        "devserver.fake_sns",
        "--latency-ms",
        str(latency_ms),
    ]
    process = subprocess.Popen(
        command, env=child_environment(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"fake SNS did not print its URL; it printed {url!r}")
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class FakeSnsControl:
    """The fake SNS's control endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def configure(self, **knobs: Any) -> None:
        self._call("POST", "/_fake/config", knobs)

    def clear(self) -> None:
        self._call("DELETE", "/_fake/messages")

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = self._call("GET", "/_fake/stats")
        return stats


# The handler, called in this process


@dataclass
class BenchLambdaContext:
    """The parts of the Lambda context that the handler and Powertools read."""

    function_name: str = "reinstall-bench"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:reinstall-bench"
    )
    aws_request_id: str = "bench-request"

    def get_remaining_time_in_millis(self) -> int:
        return REMAINING_TIME_MS


def phone_numbers(count: int) -> list[str]:
    """Return ``count`` distinct valid US numbers that the demo seed does not know."""
    return [f"1617201{index:04d}" for index in range(count)]


def api_event(numbers: Sequence[str]) -> dict[str, Any]:
    body = json.dumps(
        {"app_id": APP_ID, "users": [{"phone_number": n} for n in numbers]}
    )
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"ApiKey {API_KEY}",
    }
    return {
        "resource": "/{proxy+}",
        "path": PATH,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": PATH.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": "POST",
            "path": "/bench" + PATH,
            "stage": "bench",
            "requestId": "bench-request",
            "accountId": "123456789012",
            "apiId": "bench",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


class CallCounter:
    """Counts API calls by operation name; botocore hooks call it from many threads.

    It also keeps the time of each Publish call, to measure the rate limiter.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.publish_times: list[float] = []
        self._lock = threading.Lock()

    def record(self, model: Any, **_: Any) -> None:
        now = time.perf_counter()
        with self._lock:
            self.calls[model.name] += 1
            if model.name == "Publish":
                self.publish_times.append(now)

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.publish_times.clear()

    def publish_span_seconds(self) -> float:
        with self._lock:
            if not self.publish_times:
                return 0.0
            return max(self.publish_times) - min(self.publish_times)


class Harness:
    """Configures the handler, sends requests to it and checks the responses."""

    def __init__(self, fake_sns: FakeSnsControl) -> None:
        self.fake_sns = fake_sns
        self.dynamodb_counter = CallCounter()
        self.sns_counter = CallCounter()
        self.context = BenchLambdaContext()

    def configure(self, concurrency: int, max_rate: float) -> None:
        """Apply settings as a new container would: fresh settings, clients, service."""
        from core import aws
        from handler import api

        os.environ["SMS_SEND_CONCURRENCY"] = str(concurrency)
        os.environ["SMS_MAX_SEND_RATE"] = str(max_rate)
        aws.reset_clients()
        api.get_service.cache_clear()

        aws.dynamodb_client().meta.events.register(
            "before-call.dynamodb", self.dynamodb_counter.record
        )
        aws.sns_client().meta.events.register(
            "before-call.sns", self.sns_counter.record
        )
        # A warm container has its settings, clients and first connections.
        self.send(phone_numbers(1))

    def send(self, numbers: Sequence[str]) -> Measurement:
        """Send one request for ``numbers``; raise RuntimeError unless all succeed."""
        from core.settings import get_settings
        from handler.api import lambda_handler

        event = api_event(numbers)
        self.fake_sns.clear()
        self.dynamodb_counter.clear()
        self.sns_counter.clear()

        started_cpu = time.process_time()
        started = time.perf_counter()
        response = lambda_handler(event, self.context)
        wall = time.perf_counter() - started
        cpu = time.process_time() - started_cpu

        check_response(response, numbers)
        accepted = self.fake_sns.stats()["accepted_calls"]
        if accepted != 2 * len(numbers):
            raise RuntimeError(
                f"fake SNS accepted {accepted} messages, expected {2 * len(numbers)}"
            )
        return Measurement(
            count=len(numbers),
            concurrency=get_settings().sms_send_concurrency,
            wall_seconds=wall,
            cpu_seconds=cpu,
            dynamodb_calls=Counter(self.dynamodb_counter.calls),
            sns_calls=Counter(self.sns_counter.calls),
            publish_span_seconds=self.sns_counter.publish_span_seconds(),
        )


def check_response(response: dict[str, Any], numbers: Sequence[str]) -> None:
    if response["statusCode"] != 200:
        raise RuntimeError(f"handler returned {response['statusCode']}: {response}")
    body = json.loads(response["body"])
    if body["success_numbers"] != list(numbers):
        raise RuntimeError(
            f"{len(body['success_numbers'])} of {len(numbers)} numbers succeeded; "
            f"errors: {body['error_numbers'][:5]}"
        )


def median_measurement(runs: list[Measurement]) -> Measurement:
    ordered = sorted(runs, key=lambda run: run.wall_seconds)
    return ordered[len(ordered) // 2]


# Steps


def run_throughput(harness: Harness) -> list[ThroughputRow]:
    measured: dict[tuple[int, int], Measurement] = {}
    for concurrency in CONCURRENCIES:
        harness.configure(concurrency, max_rate=0)
        for count in SIZES:
            long_run = ideal_seconds(count, concurrency) >= LONG_RUN_SECONDS
            repetitions = 1 if long_run else REPETITIONS
            runs = [harness.send(phone_numbers(count)) for _ in range(repetitions)]
            measurement = median_measurement(runs)
            measured[(count, concurrency)] = measurement
            progress(
                f"throughput: {count:5d} numbers, concurrency {concurrency:2d}: "
                f"{measurement.wall_seconds:.3f} s\n"
            )

    return [
        ThroughputRow(
            measured[key], baseline_seconds=measured[(key[0], 1)].wall_seconds
        )
        for concurrency in CONCURRENCIES
        for count in SIZES
        for key in [(count, concurrency)]
    ]


def run_rate_limit(harness: Harness) -> RateResult:
    harness.configure(DEFAULT_CONCURRENCY, max_rate=RATE_LIMIT)
    result = RateResult(harness.send(phone_numbers(RATE_NUMBERS)), RATE_LIMIT)
    progress(
        f"rate limit: {result.measurement.wall_seconds:.3f} s, "
        f"expected {result.expected_seconds:.1f} s\n"
    )
    return result


def run_cpu(harness: Harness, fake_sns: FakeSnsControl) -> CpuResult:
    """Measure handler CPU time per number with SNS responding at once."""
    fake_sns.configure(latency_ms=0)
    try:
        harness.configure(DEFAULT_CONCURRENCY, max_rate=0)
        runs = [harness.send(phone_numbers(CPU_NUMBERS)) for _ in range(REPETITIONS)]
        result = CpuResult(min(runs, key=lambda run: run.cpu_seconds), REPETITIONS)
    finally:
        fake_sns.configure(latency_ms=LATENCY_MS)
    progress(f"CPU: {result.microseconds_per_number:.0f} us per number\n")
    return result


# Cold start

IMPORT_TIMER = """
import sys, time
started_cpu = time.process_time()
started = time.perf_counter()
exec(sys.argv[1])
print(time.perf_counter() - started, time.process_time() - started_cpu)
"""


def time_import(statement: str, environment: dict[str, str]) -> tuple[float, float]:
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_TIMER, statement],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = completed.stdout.split()
    return float(wall), float(cpu)


def cold_import_environment() -> dict[str, str]:
    # The variables the deployed function has, without endpoints: importing
    # must not need them.
    environment = child_environment()
    for name in list(environment):
        if name.startswith(("AWS_ENDPOINT_URL", "SMS_")):
            del environment[name]
    environment.pop("POWERTOOLS_TRACE_DISABLED", None)
    return environment


def run_cold_start() -> ColdStart:
    """Time both imports in fresh interpreters, interleaved; keep the medians."""
    environment = cold_import_environment()
    statements = ("import boto3", "import handler.api")
    samples: dict[str, list[tuple[float, float]]] = {s: [] for s in statements}
    for _ in range(COLD_START_REPETITIONS):
        for statement in statements:
            samples[statement].append(time_import(statement, environment))

    boto3_timing, handler_timing = (
        ImportTiming(
            statement,
            statistics.median(wall for wall, _ in samples[statement]),
            statistics.median(cpu for _, cpu in samples[statement]),
        )
        for statement in statements
    )
    result = ColdStart(
        boto3=boto3_timing,
        handler=handler_timing,
        repetitions=COLD_START_REPETITIONS,
        largest_imports=largest_imports(),
        tracer_outside_lambda_ms=tracer_creation_ms(lambda_like=False),
        tracer_in_lambda_ms=tracer_creation_ms(lambda_like=True),
    )
    progress(f"cold start: {result.cpu_ratio:.2f} times import boto3 (CPU)\n")
    return result


def largest_imports(limit: int = 8) -> list[tuple[str, float]]:
    """Return ``handler.api``'s costliest direct imports, from ``-X importtime``.

    boto3 is imported first, so what it loads is not counted again. Each entry
    is a module that handler.api imports itself, with its cumulative time in
    ms, so a module's own imports count in its entry.
    """
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import boto3; import handler.api"],
        env=cold_import_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    seen_boto3 = False
    costs: list[tuple[str, float]] = []
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name_field = line.split("|")
        module = name_field.strip()
        # One space, then two more per level of nesting.
        depth = (len(name_field) - len(name_field.lstrip()) - 1) // 2
        if depth == 0 and module == "boto3":
            seen_boto3 = True
        elif seen_boto3 and depth == 1:
            costs.append((module, int(cumulative) / 1000))
    return sorted(costs, key=lambda cost: -cost[1])[:limit]


def directory_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def run_package_size() -> PackageSize:
    """Install src/requirements.txt into a temporary folder and measure it with src.

    The function's CodeUri is src/, so the whole folder is counted, less
    caches and the egg-info that the editable install leaves there. pip
    writes .pyc files, which count too, so a package built without them is
    smaller.
    """
    with tempfile.TemporaryDirectory(prefix="reinstall-package-") as folder:
        target = Path(folder)
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            "-r",
            str(REQUIREMENTS),
        ]
        completed = subprocess.run(command, check=False, capture_output=True, text=True)
        if completed.returncode != 0:
            return PackageSize(0, 0, [], error=completed.stderr.strip()[-500:])

        code_bytes = sum(
            item.stat().st_size
            for item in SRC.rglob("*")
            if item.is_file()
            and "__pycache__" not in item.parts
            and not any(part.endswith(".egg-info") for part in item.parts)
        )
        groups: Counter[str] = Counter()
        for entry in target.iterdir():
            name = (
                entry.name.split("-")[0] if entry.name.endswith("-info") else entry.name
            )
            size = directory_bytes(entry) if entry.is_dir() else entry.stat().st_size
            groups[name.removesuffix(".py")] += size
        total = sum(groups.values()) + code_bytes
        return PackageSize(total, code_bytes, groups.most_common(8))


def tracer_creation_ms(lambda_like: bool) -> float:
    """Return the median time to create a Powertools Tracer in a fresh interpreter.

    With ``lambda_like`` the interpreter has LAMBDA_TASK_ROOT set and tracing
    on, as in a deployed function with Tracing: Active.
    """
    environment = cold_import_environment()
    if lambda_like:
        environment["LAMBDA_TASK_ROOT"] = str(SRC)
    statement = "import boto3\nfrom aws_lambda_powertools import Tracer"
    code = (
        f"{statement}\nimport time\nstarted = time.perf_counter()\nTracer()\n"
        "print(time.perf_counter() - started)"
    )
    samples = []
    for _ in range(5):
        completed = subprocess.run(
            [sys.executable, "-c", code],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(float(completed.stdout.split()[-1]))
    return statistics.median(samples) * 1000


# Main


def progress(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the reinstall handler and write docs/benchmarks.md."
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DOCS / "benchmarks.md",
        help="report to write; the chart goes beside it as .png "
        "(default: docs/benchmarks.md)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    started = time.monotonic()
    prepare_environment()

    with moto_server() as moto_url, fake_sns_server(LATENCY_MS) as sns_url:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = moto_url
        os.environ["AWS_ENDPOINT_URL_SNS"] = sns_url
        seed_table()
        fake_sns = FakeSnsControl(sns_url)
        harness = Harness(fake_sns)

        throughput = run_throughput(harness)
        rate = run_rate_limit(harness)
        cpu = run_cpu(harness, fake_sns)

    cold_start = run_cold_start()
    package = run_package_size()
    results = Results(throughput, rate, cpu, cold_start, package, REPETITIONS)
    results.elapsed_seconds = time.monotonic() - started

    chart = arguments.output.with_suffix(".png")
    write_chart(throughput, chart)
    arguments.output.write_text(render(results, chart.name), encoding="utf-8")
    print(summary(results))
    print(f"\nWrote {arguments.output} and {chart}")
    return 0


def seed_table() -> None:
    from core.aws import dynamodb_client
    from core.repository import Repository
    from core.seed import load_seed

    repository = Repository(TABLE_NAME, dynamodb_client())
    repository.create_table()
    load_seed(json.loads(DEMO_SEED.read_text(encoding="utf-8")), repository)


if __name__ == "__main__":
    sys.exit(main())
