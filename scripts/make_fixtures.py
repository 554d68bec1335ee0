"""Generate the small test fixtures in tests/data.

- poisson-m5: 5 machines x 300 rows. Features a, b, c are 0.5 * N(0, 1);
  y ~ Poisson(exp(0.3 + 0.4 a - 0.2 b + 0.1 c)).
- gaussian-m5: 5 machines x 200 rows. Features a, b, c ~ N(0, 1);
  y = 1 + 2 a - b + 0.5 c + N(0, 1).
- unequal-m7: logistic, 7 machines with 150, 200, 250, 300, 400, 500 and 800
  rows (machine=00 has 150). Features x1..x4 ~ N(0, 1);
  y ~ Bernoulli(1 / (1 + exp(-(-0.5 + x1 - 0.5 x2 + 0.25 x3 + 0 x4)))).

Each fixture has its own numpy.random.default_rng seed (see FIXTURE_SEEDS).
For every machine in turn, the generator draws the n x p feature matrix and
then the n noise draws (Poisson counts, normals or uniforms).

Usage: python scripts/make_fixtures.py [--out DIR], default tests/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hive_parquet import write_hive

REPO_ROOT = Path(__file__).resolve().parents[1]

FIXTURE_SEEDS = {"poisson-m5": 20240612, "gaussian-m5": 20240613, "unequal-m7": 20240614}


def make_poisson(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    parts = []
    for _ in range(5):
        features = 0.5 * rng.standard_normal((300, 3))
        rate = np.exp(0.3 + features @ np.array([0.4, -0.2, 0.1]))
        parts.append((features, rng.poisson(rate).astype(np.float64)))
    return parts


def make_gaussian(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    parts = []
    for _ in range(5):
        features = rng.standard_normal((200, 3))
        y = 1.0 + features @ np.array([2.0, -1.0, 0.5]) + rng.standard_normal(200)
        parts.append((features, y))
    return parts


def make_unequal_logistic(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    parts = []
    for rows in (150, 200, 250, 300, 400, 500, 800):
        features = rng.standard_normal((rows, 4))
        mean = 1.0 / (1.0 + np.exp(-(-0.5 + features @ np.array([1.0, -0.5, 0.25, 0.0]))))
        y = (rng.random(rows) < mean).astype(np.float64)
        parts.append((features, y))
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "data", help="output directory")
    args = parser.parse_args()

    fixtures = {
        "poisson-m5": (["a", "b", "c"], make_poisson),
        "gaussian-m5": (["a", "b", "c"], make_gaussian),
        "unequal-m7": (["x1", "x2", "x3", "x4"], make_unequal_logistic),
    }
    for name, (feature_names, generate) in fixtures.items():
        parts = generate(np.random.default_rng(FIXTURE_SEEDS[name]))
        write_hive(args.out / name, feature_names, parts)
        rows = [len(y) for _, y in parts]
        print(f"wrote {name}: {len(parts)} machines, rows {rows}")


if __name__ == "__main__":
    main()
