"""Results of bench/run.py and their rendering as docs/benchmarks.md and a chart."""

import contextlib
import math
import os
import platform
import textwrap
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LATENCY_MS = 25.0
DEFAULT_CONCURRENCY = 16
DYNAMODB_READS = frozenset(
    {"BatchGetItem", "GetItem", "Query", "Scan", "TransactGetItems"}
)


@dataclass
class Measurement:
    """One request: its size, settings, times and the API calls it made."""

    count: int
    concurrency: int
    wall_seconds: float
    cpu_seconds: float
    dynamodb_calls: Counter[str]
    sns_calls: Counter[str]
    # Seconds from the first Publish call to the last, as the handler made them.
    publish_span_seconds: float

    @property
    def dynamodb_reads(self) -> int:
        reads = self.dynamodb_calls.items()
        return sum(n for name, n in reads if name in DYNAMODB_READS)

    @property
    def dynamodb_writes(self) -> int:
        return sum(self.dynamodb_calls.values()) - self.dynamodb_reads


def ideal_seconds(count: int, concurrency: int) -> float:
    """Return the time of ceil(count / concurrency) rounds of two publishes."""
    return math.ceil(count / concurrency) * 2 * LATENCY_MS / 1000


@dataclass
class ThroughputRow:
    measurement: Measurement
    # Wall time of the same list size at concurrency 1, from the same run.
    baseline_seconds: float

    @property
    def ideal_seconds(self) -> float:
        return ideal_seconds(self.measurement.count, self.measurement.concurrency)

    @property
    def efficiency(self) -> float:
        return self.ideal_seconds / self.measurement.wall_seconds

    @property
    def speedup(self) -> float:
        return self.baseline_seconds / self.measurement.wall_seconds


@dataclass
class RateResult:
    measurement: Measurement
    rate: float

    @property
    def expected_seconds(self) -> float:
        return 2 * self.measurement.count / self.rate

    @property
    def deviation(self) -> float:
        return self.measurement.wall_seconds / self.expected_seconds - 1

    @property
    def expected_span_seconds(self) -> float:
        """Time from the first start to the last at exactly ``rate`` starts per second."""
        return (2 * self.measurement.count - 1) / self.rate


@dataclass
class CpuResult:
    measurement: Measurement
    repetitions: int

    @property
    def microseconds_per_number(self) -> float:
        return self.measurement.cpu_seconds / self.measurement.count * 1e6


@dataclass
class ImportTiming:
    statement: str
    wall_seconds: float
    cpu_seconds: float


@dataclass
class ColdStart:
    boto3: ImportTiming
    handler: ImportTiming
    repetitions: int
    # handler.api's direct imports after boto3: (module, cumulative ms).
    largest_imports: list[tuple[str, float]]
    tracer_outside_lambda_ms: float
    tracer_in_lambda_ms: float

    @property
    def cpu_ratio(self) -> float:
        return self.handler.cpu_seconds / self.boto3.cpu_seconds

    @property
    def wall_ratio(self) -> float:
        return self.handler.wall_seconds / self.boto3.wall_seconds


@dataclass
class PackageSize:
    total_bytes: int
    code_bytes: int
    largest: list[tuple[str, int]]
    error: str | None = None


@dataclass
class Goal:
    name: str
    target: str
    measured: str
    met: bool
    # The cause the measurements point to, shown when the goal is missed.
    limited_by: str


@dataclass
class Results:
    throughput: list[ThroughputRow]
    rate: RateResult
    cpu: CpuResult
    cold_start: ColdStart
    package: PackageSize
    repetitions: int
    elapsed_seconds: float = 0.0


def goals(results: Results) -> list[Goal]:
    big = next(
        row
        for row in results.throughput
        if row.measurement.count == 1000 and row.measurement.concurrency == 32
    )
    rate = results.rate
    cpu = results.cpu
    cold = results.cold_start
    cpu_bound = (
        f"handler CPU time {big.measurement.cpu_seconds:.2f} s against an ideal "
        f"wall time of {big.ideal_seconds:.2f} s"
    )
    rate_overhead = (
        rate.measurement.wall_seconds - rate.measurement.publish_span_seconds
    )
    api_calls = sum(cpu.measurement.sns_calls.values()) + sum(
        cpu.measurement.dynamodb_calls.values()
    )
    largest_module, largest_ms = cold.largest_imports[0]
    return [
        Goal(
            "1000 numbers, concurrency 32: efficiency",
            "≥ 0.80",
            f"{big.efficiency:.2f}",
            big.efficiency >= 0.8,
            cpu_bound,
        ),
        Goal(
            "1000 numbers, concurrency 32: speed-up over concurrency 1",
            "≥ 20×",
            f"{big.speedup:.1f}×",
            big.speedup >= 20,
            cpu_bound,
        ),
        Goal(
            f"{rate.measurement.count} numbers at {rate.rate:.0f}/s: "
            f"time against {rate.expected_seconds:.0f} s",
            "within 5 %",
            f"{rate.measurement.wall_seconds:.2f} s ({rate.deviation:+.1%})",
            abs(rate.deviation) <= 0.05,
            f"first to last Publish {rate.measurement.publish_span_seconds:.3f} s "
            f"against {rate.expected_span_seconds:.3f} s; {rate_overhead:.2f} s "
            "of work before and after",
        ),
        Goal(
            "handler CPU time per number",
            "≤ 100 µs",
            f"{cpu.microseconds_per_number:.0f} µs",
            cpu.microseconds_per_number <= 100,
            f"{api_calls / cpu.measurement.count:.2f} API calls per number at "
            f"{cpu.measurement.cpu_seconds / api_calls * 1e6:.0f} µs each",
        ),
        Goal(
            "cold import of handler.api against import boto3 (CPU time)",
            "≤ 1.6×",
            f"{cold.cpu_ratio:.2f}×",
            cold.cpu_ratio <= 1.6,
            f"largest import after boto3: `{largest_module}`, {largest_ms:.0f} ms",
        ),
    ]


# Markdown


def paragraph(*parts: str) -> list[str]:
    """Join ``parts`` into one paragraph wrapped at 76 columns, then a blank line."""
    text = " ".join(parts)
    lines = textwrap.wrap(
        text, width=76, break_long_words=False, break_on_hyphens=False
    )
    return [*lines, ""]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def table(header: list[str], align: str, rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def render(results: Results, chart_name: str) -> str:
    """Return docs/benchmarks.md for ``results``; the chart is ``chart_name``."""
    lines = [
        "# Benchmarks",
        "",
        *paragraph(
            "Measured by `make bench` (bench/run.py), which rewrites this page and",
            f"{chart_name}. Times on a shared machine vary from run to run by 10 %",
            "or more, so compare runs of one machine only.",
        ),
        f"- machine: `{platform.machine()}`, {cpu_model()}, {os.cpu_count()} cores",
        f"- load average at the end of the run: {load_average()}",
        f"- Python {platform.python_version()}",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- duration of the whole run: {results.elapsed_seconds:.0f} s",
        "",
        *_setup(results),
        *_goals(results),
        *_throughput(results, chart_name),
        *_rate(results.rate),
        *_cpu(results.cpu),
        *_cold_start(results.cold_start),
        *_package(results.package),
        *_dynamodb(results.throughput),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _setup(results: Results) -> list[str]:
    return [
        "## Set-up",
        "",
        *paragraph(
            "The Lambda handler runs in the benchmark's process and is called with",
            "API Gateway events, as Lambda calls it. DynamoDB is a moto server and",
            "SNS is the fake SNS server (`python -m devserver.fake_sns`), each in",
            "its own subprocess on 127.0.0.1, so neither competes with the handler",
            "for the GIL and their CPU time is not counted as the handler's. The",
            f"fake SNS responds to each Publish after {LATENCY_MS:.0f} ms and to",
            "the opt-out check at once.",
        ),
        *paragraph(
            "Settings, clients and the service are reset before each configuration,",
            "as a new container would read them, and one warm-up request follows.",
            "The Lambda context reports 15 minutes left, so the deadline margin",
            f"never stops a number. Each point is the median of {results.repetitions}",
            "requests, except points whose ideal time is 5 s or more, which run",
            "once.",
        ),
    ]


def _goals(results: Results) -> list[str]:
    rows = [
        [
            goal.name,
            goal.target,
            goal.measured,
            "yes" if goal.met else "no",
            "" if goal.met else goal.limited_by,
        ]
        for goal in goals(results)
    ]
    header = ["goal", "target", "measured", "met", "limited by"]
    return [
        "## Goals",
        "",
        *table(header, "lllll", rows),
    ]


def _throughput(results: Results, chart_name: str) -> list[str]:
    rows = []
    for row in results.throughput:
        m = row.measurement
        rows.append(
            [
                str(m.count),
                str(m.concurrency),
                f"{m.wall_seconds:.3f}",
                f"{row.ideal_seconds:.3f}",
                f"{row.efficiency:.2f}",
                f"{row.speedup:.1f}×",
                f"{m.cpu_seconds:.3f}",
            ]
        )
    header = [
        "numbers",
        "concurrency",
        "wall (s)",
        "ideal (s)",
        "efficiency",
        "speed-up",
        "handler CPU (s)",
    ]
    return [
        "## Throughput, rate limit off",
        "",
        *paragraph(
            "Ideal time is ceil(N / concurrency) × 2 × latency: each thread sends",
            "its numbers' two messages back to back with no other cost.",
            "Efficiency is ideal / wall. Speed-up is the wall time at concurrency 1",
            "divided by the wall time at this concurrency, from the same run.",
        ),
        *table(header, "rrrrrrr", rows),
        f"![Wall time against list size]({chart_name})",
        "",
        *_cpu_bound(results.throughput),
    ]


def _cpu_bound(rows: list[ThroughputRow]) -> list[str]:
    biggest = max(
        rows, key=lambda row: (row.measurement.count, row.measurement.concurrency)
    )
    m = biggest.measurement
    return paragraph(
        f"At {m.count} numbers and concurrency {m.concurrency} the handler used",
        f"{m.cpu_seconds:.2f} s of CPU time against an ideal wall time of",
        f"{biggest.ideal_seconds:.2f} s. Its threads share one GIL, so once the",
        "CPU time exceeds the ideal, CPU and not SNS latency sets the wall time;",
        "the CPU section says where that time goes.",
    )


def _rate(rate: RateResult) -> list[str]:
    m = rate.measurement
    return [
        "## Rate limit",
        "",
        *paragraph(
            f"{m.count} numbers at `SMS_MAX_SEND_RATE={rate.rate:.0f}`,",
            f"concurrency {m.concurrency}: {2 * m.count} messages in",
            f"{m.wall_seconds:.3f} s against 2 × {m.count} / {rate.rate:.0f} =",
            f"{rate.expected_seconds:.1f} s ({rate.deviation:+.1%}).",
            f"The first Publish started {m.publish_span_seconds:.3f} s before the",
            f"last, against {rate.expected_span_seconds:.3f} s at exactly",
            f"{rate.rate:.0f} per second, so the limiter itself is",
            f"{m.publish_span_seconds / rate.expected_span_seconds - 1:+.1%} off.",
            "The rest is the work before the first Publish (registry read, opt-out",
            "checks) and after the last (its latency, the SMS log).",
        ),
    ]


def _cpu(cpu: CpuResult) -> list[str]:
    m = cpu.measurement
    sns_calls = sum(m.sns_calls.values())
    dynamodb_calls = sum(m.dynamodb_calls.values())
    lines = [
        "## CPU time per number",
        "",
        *paragraph(
            f"{m.count} numbers with SNS answering at once, concurrency",
            f"{m.concurrency}: {m.cpu_seconds * 1000:.0f} ms of handler CPU time,",
            f"{cpu.microseconds_per_number:.0f} µs per number (`time.process_time`",
            "of the benchmark process, which runs only the handler; best of",
            f"{cpu.repetitions}). The request made {sns_calls} SNS calls",
            f"({_calls(m.sns_calls)}) and {dynamodb_calls} DynamoDB calls",
            f"({_calls(m.dynamodb_calls)}), so"
            f" {m.cpu_seconds / (sns_calls + dynamodb_calls) * 1e6:.0f} µs per API call",
            "on average. Each is a full botocore request: parameter validation,",
            "serialization, SigV4 signing, an HTTP exchange through urllib3 and",
            "response parsing.",
        ),
    ]
    return lines


def _calls(calls: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(calls.items()))


def _cold_start(cold: ColdStart) -> list[str]:
    rows = [
        [
            f"`{timing.statement}`",
            f"{timing.wall_seconds * 1000:.0f}",
            f"{timing.cpu_seconds * 1000:.0f}",
        ]
        for timing in (cold.boto3, cold.handler)
    ]
    imports = [[f"`{module}`", f"{ms:.0f}"] for module, ms in cold.largest_imports]
    return [
        "## Cold start",
        "",
        *paragraph(
            f"Fresh interpreters, median of {cold.repetitions} interleaved runs,",
            "with the deployed function's variables less its endpoints:",
        ),
        *table(["import", "wall (ms)", "CPU (ms)"], "lrr", rows),
        *paragraph(
            f"Ratio handler / boto3: {cold.cpu_ratio:.2f}× in CPU time,",
            f"{cold.wall_ratio:.2f}× in wall time. The goal uses CPU time because",
            "the wall time of a shared machine includes waiting for a core.",
        ),
        *paragraph(
            "Largest direct imports of `handler.api` after boto3, from one",
            "`python -X importtime` run (cumulative, so a module's own imports",
            "count in its row):",
        ),
        *table(["module", "ms"], "lr", imports),
        *paragraph(
            "Creating the Powertools Tracer, which `handler.tracing.LazyTracer`",
            "defers to the first invocation, took",
            f"{cold.tracer_outside_lambda_ms:.0f} ms outside Lambda (the X-Ray",
            "SDK's default sampler creates botocore clients) and",
            f"{cold.tracer_in_lambda_ms:.0f} ms with `LAMBDA_TASK_ROOT` set and",
            "tracing on (it patches botocore and http.client).",
        ),
    ]


def _package(package: PackageSize) -> list[str]:
    if package.error:
        return [
            "## Deployment package",
            "",
            *paragraph(f"Not measured, because `pip install` failed: {package.error}"),
        ]
    rows = [[name, megabytes(size)] for name, size in package.largest]
    return [
        "## Deployment package",
        "",
        *paragraph(
            "`pip install -r src/requirements.txt` into an empty folder, plus",
            f"src/: {megabytes(package.total_bytes)} unzipped, of which src/ is",
            f"{megabytes(package.code_bytes)}. Largest parts:",
        ),
        *table(["package", "size"], "lr", rows),
    ]


def _dynamodb(rows: list[ThroughputRow]) -> list[str]:
    table_rows = []
    for row in rows:
        m = row.measurement
        if m.concurrency != DEFAULT_CONCURRENCY:
            continue
        table_rows.append(
            [
                str(m.count),
                str(m.dynamodb_reads),
                str(m.dynamodb_writes),
                str(m.dynamodb_reads + m.dynamodb_writes),
                str(2 + math.ceil(m.count / 100)),
                _calls(m.dynamodb_calls),
            ]
        )
    header = ["numbers", "reads", "writes", "total", "2 + ceil(N/100)", "calls"]
    return [
        "## DynamoDB calls per request",
        "",
        *paragraph(
            f"From the throughput run at concurrency {DEFAULT_CONCURRENCY}, counted",
            "with a `before-call.dynamodb` hook on the client. The reads are one",
            "BatchGetItem for the web user, domain and app and one per 100 numbers",
            "for the phone registry. The writes are the SMS log's BatchWriteItem",
            "calls, 25 items each with two items per message, so four per number.",
        ),
        *table(header, "rrrrrl", table_rows),
    ]


# Chart


def write_chart(rows: list[ThroughputRow], path: Path) -> None:
    """Plot wall time against list size per concurrency, with the ideal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concurrencies = sorted({row.measurement.concurrency for row in rows})
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for index, concurrency in enumerate(concurrencies):
        points = [row for row in rows if row.measurement.concurrency == concurrency]
        sizes = [row.measurement.count for row in points]
        color = f"C{index}"
        axes.plot(
            sizes,
            [row.measurement.wall_seconds for row in points],
            marker="o",
            color=color,
            label=f"concurrency {concurrency}",
        )
        axes.plot(
            sizes,
            [row.ideal_seconds for row in points],
            linestyle="--",
            color=color,
            label=f"concurrency {concurrency}, ideal",
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("numbers in the request")
    axes.set_ylabel("wall time (s)")
    axes.set_title(f"Request time with {LATENCY_MS:.0f} ms SNS Publish latency")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def summary(results: Results) -> str:
    """Return the throughput table and the goals as plain text for the terminal."""
    lines = ["numbers  concurrency   wall s  ideal s  efficiency  speed-up"]
    for row in results.throughput:
        m = row.measurement
        lines.append(
            f"{m.count:7d}  {m.concurrency:11d}  {m.wall_seconds:7.3f}  "
            f"{row.ideal_seconds:7.3f}  {row.efficiency:10.2f}  {row.speedup:7.1f}x"
        )
    lines.append("")
    for goal in goals(results):
        status = "met" if goal.met else "MISSED"
        lines.append(
            f"{status:6s}  {goal.name}: {goal.measured} (target {goal.target})"
        )
    return "\n".join(lines)
