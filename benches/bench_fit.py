"""Benchmark `rose fit` against statsmodels' pooled GLM(Binomial) fit and print a Markdown report.

One run:
1. generates target/bench-data/logistic-100x10000 with benches/make_bench_data.py
   unless its theta_star.json already exists,
2. reads every Parquet file once, untimed, so that all timed runs read from the page cache,
3. runs `rose fit DIR --no-intercept --family logistic --format json -q --estimator E`
   for each estimator, and benches/fit_statsmodels.py, each REPEATS times under
   `/usr/bin/time -v`, which reports the wall time, CPU time and peak resident set size,
4. prints the machine, the tool versions, a Markdown table of medians and the agreement
   between rose's estimate and the pooled fit. It ends with whether rose met the two
   targets: less wall time than statsmodels' read + fit, and a peak RSS no larger than
   the decoded data (rows x columns x 8 bytes).

The release binary is not built here: run `cargo build --release` first.

Usage: python benches/bench_fit.py [--data DIR] [--rose PATH] [--repeats N] [--estimators LIST]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "benches"
DEFAULT_DATA = REPO_ROOT / "target" / "bench-data" / "logistic-100x10000"
DEFAULT_ROSE = REPO_ROOT / "target" / "release" / "rose"
GNU_TIME = Path("/usr/bin/time")
MIB = 1024 * 1024
ROSE_FIT_OPTIONS = ["--no-intercept", "--family", "logistic", "--format", "json", "-q"]


@dataclass
class TimedRun:
    """One process run under GNU time: its standard output and resource use."""

    stdout: str
    wall_seconds: float
    cpu_seconds: float
    max_rss_bytes: int


def parse_clock(text: str) -> float:
    """Convert GNU time's elapsed time, `m:ss.cc` or `h:mm:ss`, to seconds."""
    seconds = 0.0
    for part in text.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def run_timed(command: list[str]) -> TimedRun:
    """Run `command` under `/usr/bin/time -v` and return its output and resource use.

    Exits with the command's standard error if the command fails.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        result = subprocess.run(
            [str(GNU_TIME), "-v", "-o", report.name, *command],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            sys.exit(f"error: {' '.join(command)} failed with exit code {result.returncode}:\n{result.stderr}")
        fields = {}
        for line in report.read().splitlines():
            name, _, value = line.strip().rpartition(": ")
            fields[name] = value
    return TimedRun(
        stdout=result.stdout,
        wall_seconds=parse_clock(fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"]),
        cpu_seconds=float(fields["User time (seconds)"]) + float(fields["System time (seconds)"]),
        max_rss_bytes=int(fields["Maximum resident set size (kbytes)"]) * 1024,
    )


def ensure_data(data_dir: Path) -> None:
    """Generate the data set unless its completion marker theta_star.json exists."""
    if (data_dir / "theta_star.json").exists():
        return
    print(f"generating {data_dir} ...", file=sys.stderr)
    subprocess.run([sys.executable, str(BENCH_DIR / "make_bench_data.py"), str(data_dir)], check=True)


def decoded_size(files: list[Path]) -> tuple[int, int, int]:
    """Return (rows, columns, bytes) of the data decoded to 8-byte values, from the Parquet footers."""
    rows = 0
    columns = 0
    for path in files:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
        if any(str(field.type) != "double" for field in schema):
            sys.exit(f"error: {path} has a column that is not float64, so its decoded size is not 8 bytes a value")
        rows += metadata.num_rows
        columns = max(columns, metadata.num_columns)
    return rows, columns, rows * columns * 8


def warm_page_cache(files: list[Path]) -> None:
    for path in files:
        path.read_bytes()


def command_version(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "not available"
    return result.stdout.strip()


def locked_version(crate: str) -> str:
    lock = tomllib.loads((REPO_ROOT / "Cargo.lock").read_text())
    versions = [package["version"] for package in lock["package"] if package["name"] == crate]
    return ", ".join(versions) or "not in Cargo.lock"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def total_memory() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            kib = int(line.split()[1])
            return f"{kib / MIB:.1f} GiB"
    return "unknown"


def os_name() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def display_path(path: Path) -> str:
    absolute = path.resolve()
    return str(absolute.relative_to(REPO_ROOT)) if absolute.is_relative_to(REPO_ROOT) else str(absolute)


def print_environment(rose: Path) -> None:
    import pyarrow
    import scipy
    import statsmodels

    print("## Machine and versions\n")
    print(f"- CPU: {cpu_model()}, `nproc` = {os.cpu_count()}")
    print(f"- Memory: {total_memory()}")
    print(f"- OS: {os_name()}, Linux {platform.release()}")
    print(f"- rose: {command_version([str(rose), '--version'])}, binary `{display_path(rose)}`")
    print(f"- rustc: {command_version(['rustc', '--version'])}; datafusion {locked_version('datafusion')}")
    print(
        f"- Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"pyarrow {pyarrow.__version__}, statsmodels {statsmodels.__version__}"
    )
    # Debian's GNU time prints "UNKNOWN" as its version, so ask the package manager.
    print(f"- GNU time: Debian package {command_version(['dpkg-query', '-W', '-f', '${Version}', 'time'])}")
    print()


def seconds_list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def table_row(label: str, wall: list[float], cpu: list[float] | None, rss: list[int] | None, decoded: int) -> str:
    cpu_cell = f"{statistics.median(cpu):.2f}" if cpu else "–"
    if rss:
        rss_median = statistics.median(rss)
        rss_cells = f"{rss_median / MIB:.0f} | {rss_median / decoded:.2f}"
    else:
        rss_cells = "– | –"
    return f"| {label} | {statistics.median(wall):.2f} | {seconds_list(wall)} | {cpu_cell} | {rss_cells} |"


def timed_runs_row(label: str, runs: list[TimedRun], decoded: int) -> str:
    wall = [r.wall_seconds for r in runs]
    cpu = [r.cpu_seconds for r in runs]
    rss = [r.max_rss_bytes for r in runs]
    return table_row(label, wall, cpu, rss, decoded)


def rose_estimate(stdout: str) -> dict[str, float]:
    summary = json.loads(stdout)
    return {c["name"]: c["estimate"] for c in summary["coefficients"]}


def max_abs_difference(a: dict[str, float], b: dict[str, float]) -> float:
    if a.keys() != b.keys():
        sys.exit(f"error: the estimates name different parameters: {sorted(a)} and {sorted(b)}")
    return max(abs(a[name] - b[name]) for name in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Hive data set directory")
    parser.add_argument("--rose", type=Path, default=DEFAULT_ROSE, help="rose binary to time")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each command")
    parser.add_argument(
        "--estimators", default="avg,rose,rose-rv", help="comma-separated rose estimators to time"
    )
    args = parser.parse_args()

    if not GNU_TIME.exists():
        sys.exit(f"error: {GNU_TIME} not found; install GNU time, e.g. `apt-get install -y time`")
    if not args.rose.exists():
        sys.exit(f"error: {args.rose} not found; build it with `cargo build --release`")
    if args.repeats < 1:
        sys.exit(f"error: --repeats must be at least 1, got {args.repeats}")
    estimators = [e.strip() for e in args.estimators.split(",") if e.strip()]

    ensure_data(args.data)
    files = sorted(args.data.glob("machine=*/part-0.parquet"))
    rows, columns, decoded = decoded_size(files)
    parquet_bytes = sum(path.stat().st_size for path in files)
    warm_page_cache(files)
    theta_star = json.loads((args.data / "theta_star.json").read_text())
    truth = dict(zip(theta_star["features"], theta_star["theta_star"]))

    rose_runs: dict[str, list[TimedRun]] = {}
    for estimator in estimators:
        command = [str(args.rose), "fit", str(args.data), *ROSE_FIT_OPTIONS, "--estimator", estimator]
        rose_runs[estimator] = []
        for repeat in range(args.repeats):
            print(f"rose --estimator {estimator}, run {repeat + 1}/{args.repeats}", file=sys.stderr)
            rose_runs[estimator].append(run_timed(command))

    statsmodels_runs: list[TimedRun] = []
    statsmodels_outputs: list[dict] = []
    for repeat in range(args.repeats):
        print(f"statsmodels, run {repeat + 1}/{args.repeats}", file=sys.stderr)
        run = run_timed([sys.executable, str(BENCH_DIR / "fit_statsmodels.py"), str(args.data)])
        statsmodels_runs.append(run)
        statsmodels_outputs.append(json.loads(run.stdout))

    print_environment(args.rose)
    print("## Results\n")
    print(
        f"Data: {args.data.name}, {len(files)} machines, {rows:,} rows, {columns} float64 columns; "
        f"Parquet (snappy) on disk {parquet_bytes / MIB:.0f} MiB; decoded {rows:,} x {columns} x 8 bytes "
        f"= {decoded:,} bytes ({decoded / MIB:.1f} MiB). Medians of {args.repeats} runs, warm page cache.\n"
    )
    print(
        "| command | wall time, median (s) | wall time, each run (s) | CPU user + sys, median (s) "
        "| peak RSS, median (MiB) | peak RSS / decoded data |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for estimator, runs in rose_runs.items():
        print(timed_runs_row(f"`rose fit --estimator {estimator}`", runs, decoded))
    print(timed_runs_row("statsmodels GLM(Binomial), whole process (imports, read, fit)", statsmodels_runs, decoded))
    for key, label in [
        ("read_seconds", "statsmodels: pyarrow read to NumPy (in-process timer)"),
        ("fit_seconds", "statsmodels: GLM fit (in-process timer)"),
        ("total_seconds", "statsmodels: read + fit (in-process timer)"),
    ]:
        print(table_row(label, [o[key] for o in statsmodels_outputs], None, None, decoded))
    print(f"| decoded data, {rows:,} x {columns} x 8 bytes | – | – | – | {decoded / MIB:.0f} | 1.00 |")
    print()

    pooled = statsmodels_outputs[0]["params"]
    iterations = statsmodels_outputs[0]["iterations"]
    print("## Estimates\n")
    print(
        f"- statsmodels pooled fit: converged = {statsmodels_outputs[0]['converged']}, {iterations} IRLS iterations, "
        f"max |theta_hat - theta*| = {max_abs_difference(pooled, truth):.4f}"
    )
    for estimator, runs in rose_runs.items():
        estimate = rose_estimate(runs[0].stdout)
        print(
            f"- rose --estimator {estimator}: max |theta_hat - theta*| = {max_abs_difference(estimate, truth):.4f}, "
            f"max |theta_hat - pooled statsmodels| = {max_abs_difference(estimate, pooled):.2e}"
        )
    print()

    statsmodels_total = statistics.median(o["total_seconds"] for o in statsmodels_outputs)
    print("## Targets\n")
    for estimator, runs in rose_runs.items():
        wall = statistics.median(r.wall_seconds for r in runs)
        rss = statistics.median(r.max_rss_bytes for r in runs)
        faster = "met" if wall < statsmodels_total else "MISSED"
        smaller = "met" if rss <= decoded else "MISSED"
        print(
            f"- `{estimator}`: faster than statsmodels read + fit: {faster} ({wall:.2f} s vs {statsmodels_total:.2f} s); "
            f"peak RSS <= decoded data: {smaller} ({rss / MIB:.0f} MiB vs {decoded / MIB:.0f} MiB)"
        )


if __name__ == "__main__":
    main()
