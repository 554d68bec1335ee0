"""Generate the benchmark data set: 100 machines x 10,000 rows of logistic-regression data.

Design (Wang, Zhu and Zhu, "Byzantine-robust distributed one-step estimation",
Section 5.1.1, with more machines and rows): p = 30 features,
X ~ N(0, Sigma) with Toeplitz Sigma[i, k] = 0.5^|i-k|, no intercept,
y ~ Bernoulli(1 / (1 + exp(-X theta*))), where
theta*_k = p^(-1/2) * (p - k) / (p - 1) for k = 1..p, so theta* falls linearly
from p^(-1/2) to 0.

Draws, all from numpy.random.default_rng(SEED) in this order, machine by machine:
n x 30 standard normals (rows of Z), then n uniforms U, with n = 10,000 rows per
machine by default. Rows are X = Z L' with L the lower Cholesky factor of Sigma,
and y = 1 if U < mu else 0. With the same --rows, a smaller --machines writes the
first machines of the larger data set unchanged.

The output uses the Hive layout of scripts/hive_parquet.py (DIR/machine=00/part-0.parquet
to DIR/machine=99/part-0.parquet, columns x01..x30 and y) plus DIR/theta_star.json,
which is written last and so marks a complete data set.

Usage: python benches/make_bench_data.py [DIR] [--machines M] [--rows N]
DIR defaults to target/bench-data/logistic-100x10000; --machines and --rows exist for
the scaling measurements and default to 100 and 10,000.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from hive_parquet import write_hive  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "target" / "bench-data" / "logistic-100x10000"
SEED = 20240620
NUM_FEATURES = 30
DEFAULT_MACHINES = 100
DEFAULT_ROWS_PER_MACHINE = 10_000
TOEPLITZ_BASE = 0.5
METADATA_FILE = "theta_star.json"


def true_theta(num_features: int) -> np.ndarray:
    """Return theta* = p^(-1/2) * ((p-1)/(p-1), (p-2)/(p-1), ..., 0/(p-1))."""
    steps = np.arange(num_features - 1, -1, -1, dtype=np.float64) / (num_features - 1)
    return steps / np.sqrt(num_features)


def toeplitz_covariance(num_features: int, base: float) -> np.ndarray:
    """Return the covariance matrix with entries base^|i-k|."""
    index = np.arange(num_features)
    return base ** np.abs(index[:, None] - index[None, :])


def generate(out_dir: Path, num_machines: int, rows_per_machine: int) -> None:
    """Write the data set and its theta_star.json to `out_dir`."""
    theta_star = true_theta(NUM_FEATURES)
    cholesky = np.linalg.cholesky(toeplitz_covariance(NUM_FEATURES, TOEPLITZ_BASE))
    feature_names = [f"x{k:02d}" for k in range(1, NUM_FEATURES + 1)]

    # Remove the completion marker first, so an interrupted run leaves no marker behind.
    (out_dir / METADATA_FILE).unlink(missing_ok=True)

    rng = np.random.default_rng(SEED)
    parts = []
    for _ in range(num_machines):
        features = rng.standard_normal((rows_per_machine, NUM_FEATURES)) @ cholesky.T
        mean = 1.0 / (1.0 + np.exp(-(features @ theta_star)))
        y = (rng.random(rows_per_machine) < mean).astype(np.float64)
        parts.append((features, y))

    write_hive(out_dir, feature_names, parts)
    metadata = {
        "theta_star": theta_star.tolist(),
        "features": feature_names,
        "seed": SEED,
        "machines": num_machines,
        "rows_per_machine": rows_per_machine,
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--machines", type=int, default=DEFAULT_MACHINES, help="number of machines, 1 to 100")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS_PER_MACHINE, help="rows per machine")
    args = parser.parse_args()
    if not 1 <= args.machines <= 100:
        parser.error(f"--machines must be between 1 and 100 (two-digit machine ids), got {args.machines}")
    if args.rows < NUM_FEATURES:
        parser.error(f"--rows must be at least {NUM_FEATURES} so that each local fit is identifiable, got {args.rows}")
    generate(args.out, args.machines, args.rows)
    print(f"wrote {args.machines} machines x {args.rows} rows to {args.out}")


if __name__ == "__main__":
    main()
