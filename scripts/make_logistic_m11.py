"""Generate data/logistic-m11: the logistic-regression design of Wang, Zhu and Zhu,
"Byzantine-robust distributed one-step estimation", Section 5.1.1.

Design: p = 30 features, X ~ N(0, Sigma) with Toeplitz Sigma[i, k] = 0.5^|i-k|,
no intercept, Y ~ Bernoulli(1 / (1 + exp(-X theta*))), where
theta*_k = p^(-1/2) * (p - k) / (p - 1) for k = 1..p, so theta* falls linearly
from p^(-1/2) to 0. There are m = 11 machines with n = 500 rows each.

Draws, all from numpy.random.default_rng(SEED) in this order, machine by machine:
500 x 30 standard normals (rows of Z), then 500 uniforms U. Rows are
X = Z L' with L the lower Cholesky factor of Sigma, and y = 1 if U < mu else 0.

Usage: python scripts/make_logistic_m11.py [--out DIR], default data/logistic-m11
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hive_parquet import write_hive

REPO_ROOT = Path(__file__).resolve().parents[1]

SEED = 20240611
NUM_FEATURES = 30
NUM_MACHINES = 11
ROWS_PER_MACHINE = 500
TOEPLITZ_BASE = 0.5


def true_theta(num_features: int) -> np.ndarray:
    """Return theta* = p^(-1/2) * ((p-1)/(p-1), (p-2)/(p-1), ..., 0/(p-1))."""
    steps = np.arange(num_features - 1, -1, -1, dtype=np.float64) / (num_features - 1)
    return steps / np.sqrt(num_features)


def toeplitz_covariance(num_features: int, base: float) -> np.ndarray:
    """Return the covariance matrix with entries base^|i-k|."""
    index = np.arange(num_features)
    return base ** np.abs(index[:, None] - index[None, :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "logistic-m11", help="output directory")
    args = parser.parse_args()

    theta_star = true_theta(NUM_FEATURES)
    cholesky = np.linalg.cholesky(toeplitz_covariance(NUM_FEATURES, TOEPLITZ_BASE))
    feature_names = [f"x{k:02d}" for k in range(1, NUM_FEATURES + 1)]

    rng = np.random.default_rng(SEED)
    parts = []
    for _ in range(NUM_MACHINES):
        features = rng.standard_normal((ROWS_PER_MACHINE, NUM_FEATURES)) @ cholesky.T
        mean = 1.0 / (1.0 + np.exp(-(features @ theta_star)))
        y = (rng.random(ROWS_PER_MACHINE) < mean).astype(np.float64)
        parts.append((features, y))

    write_hive(args.out, feature_names, parts)
    metadata = {"theta_star": theta_star.tolist(), "features": feature_names, "seed": SEED}
    (args.out / "theta_star.json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"wrote {NUM_MACHINES} machines x {ROWS_PER_MACHINE} rows to {args.out}")


if __name__ == "__main__":
    main()
