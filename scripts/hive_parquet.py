"""Write data sets in the Hive layout that rose reads.

A data set is a directory with one subdirectory per machine, named
`machine=<id>` with a two-digit zero-padded id, each holding one file
`part-0.parquet`. The Parquet files contain only float64 columns (features
and the response `y`), no index column and no `machine` column, because the
machine id comes from the directory name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def machine_id(index: int) -> str:
    """Format a zero-based machine index as the two-digit directory id."""
    if not 0 <= index < 100:
        raise ValueError(f"machine index {index} is outside 0..99, so it has no two-digit id")
    return f"{index:02d}"


def write_hive(
    out_dir: Path,
    feature_names: list[str],
    parts: list[tuple[np.ndarray, np.ndarray]],
    compression: str = "snappy",
) -> None:
    """Write one Parquet file per machine under `out_dir`.

    `parts[j]` is the pair (features, y) of machine j, with features of shape
    (n_j, len(feature_names)). Existing `machine=*` subdirectories are removed
    first, so a machine count that shrinks leaves no stale files behind.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("machine=*"):
        shutil.rmtree(stale)

    for index, (features, y) in enumerate(parts):
        features = np.asarray(features, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(feature_names):
            raise ValueError(
                f"machine {index}: features have shape {features.shape}, expected (n, {len(feature_names)})"
            )
        if y.shape != (features.shape[0],):
            raise ValueError(f"machine {index}: y has shape {y.shape}, expected ({features.shape[0]},)")

        columns = {name: pa.array(features[:, k], type=pa.float64()) for k, name in enumerate(feature_names)}
        columns["y"] = pa.array(y, type=pa.float64())
        table = pa.table(columns)

        machine_dir = out_dir / f"machine={machine_id(index)}"
        machine_dir.mkdir()
        pq.write_table(table, machine_dir / "part-0.parquet", compression=compression)

