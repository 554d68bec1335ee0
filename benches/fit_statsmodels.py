"""Fit statsmodels' GLM(Binomial) on all rows of a Hive data set pooled, as the benchmark baseline.

Reads every DIR/machine=*/part-0.parquet with pyarrow, stacks the feature columns
(every column except `y`, in file order) into one float64 matrix, fits a logistic
regression without intercept by IRLS, and prints one JSON object to standard output:
read_seconds, fit_seconds, total_seconds, rows, converged, iterations and params
(feature name to estimate). The Arrow table is released before the fit, so the
process's peak memory holds the NumPy arrays and the fit, not a second copy of the data.

Usage: python benches/fit_statsmodels.py DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import statsmodels.api as sm

RESPONSE = "y"


def read_pooled(data_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read all machines' rows and return (feature names, X, y)."""
    files = sorted(data_dir.glob("machine=*/part-0.parquet"))
    if not files:
        sys.exit(f"error: no machine=*/part-0.parquet files found under {data_dir}")
    table = pa.concat_tables([pq.read_table(path) for path in files])
    features = [name for name in table.column_names if name != RESPONSE]
    x = np.column_stack([table.column(name).to_numpy() for name in features])
    y = table.column(RESPONSE).to_numpy()
    return features, x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="Hive data set directory")
    args = parser.parse_args()

    start = time.perf_counter()
    features, x, y = read_pooled(args.dir)
    read_done = time.perf_counter()
    result = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    fit_done = time.perf_counter()

    output = {
        "read_seconds": read_done - start,
        "fit_seconds": fit_done - read_done,
        "total_seconds": fit_done - start,
        "rows": int(x.shape[0]),
        "converged": bool(result.converged),
        "iterations": int(result.fit_history["iteration"]),
        "params": dict(zip(features, result.params.tolist())),
    }
    print(json.dumps(output))


if __name__ == "__main__":
    main()
