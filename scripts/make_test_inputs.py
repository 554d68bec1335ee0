"""Write the small Parquet directories that the command-line tests read.

Each directory exercises one layout or one kind of bad input. The data are
tiny and deterministic (seed 20241204), so the files are committed and the
tests never need Python. Run from any directory:

    python scripts/make_test_inputs.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "inputs"
RNG = np.random.default_rng(20241204)


def logistic_rows(n: int, p: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Draw n rows of a logistic model with p standard normal features."""
    x = RNG.standard_normal((n, p))
    beta = np.array([0.8, -0.5, 0.3][:p])
    prob = 1.0 / (1.0 + np.exp(-(0.2 + x @ beta)))
    y = (RNG.random(n) < prob).astype(np.float64)
    return x, y


def table(x: np.ndarray, y: np.ndarray, **extra: pa.Array) -> pa.Table:
    columns = {f"x{k + 1}": pa.array(x[:, k]) for k in range(x.shape[1])}
    columns["y"] = pa.array(y)
    columns.update(extra)
    return pa.table(columns)


def write(path: Path, t: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(t, path)


def flat(name: str, machines: int = 5, n: int = 120) -> list[tuple[np.ndarray, np.ndarray]]:
    """Write a flat directory of clean machines and return their rows."""
    rows = [logistic_rows(n) for _ in range(machines)]
    for j, (x, y) in enumerate(rows):
        write(OUT / name / f"m{j + 1}.parquet", table(x, y))
    return rows


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)

    # The same rows in three layouts: results must agree.
    rows = [logistic_rows(n) for n in (90, 110, 130, 150, 170)]
    for j, (x, y) in enumerate(rows):
        write(OUT / "layout-hive" / f"machine={j + 1}" / "part-0.parquet", table(x, y))
        write(OUT / "layout-flat" / f"m{j + 1}.parquet", table(x, y))
    # Column layout: every machine's rows are spread over two files.
    for half in range(2):
        parts = []
        for j, (x, y) in enumerate(rows):
            k = len(y) // 2
            sl = slice(0, k) if half == 0 else slice(k, None)
            parts.append(table(x[sl], y[sl], site=pa.array([f"site-{j + 1}"] * len(y[sl]))))
        write(OUT / "layout-column" / f"part-{half}.parquet", pa.concat_tables(parts))

    # Bad data values, each in the third machine of a flat directory.
    for name, column, value in [
        ("null-feature", "x2", None),
        ("nan-feature", "x1", float("nan")),
        ("inf-response", "y", float("inf")),
        ("response-two", "y", 2.0),
    ]:
        machines = flat(name)
        x, y = machines[2]
        cols = {f"x{k + 1}": list(x[:, k]) for k in range(3)}
        cols["y"] = list(y)
        cols[column][7] = value
        write(OUT / name / "m3.parquet", pa.table({k: pa.array(v, type=pa.float64()) for k, v in cols.items()}))

    # Poisson responses that are negative or fractional.
    for name, value in [("poisson-negative", -1.0), ("poisson-fraction", 2.5)]:
        machines = flat(name)
        x, y = machines[1]
        y = y.copy()
        y[3] = value
        write(OUT / name / "m2.parquet", table(x, y))

    # A text column named as a feature; an integer column in one file only.
    machines = flat("string-feature")
    x, y = machines[0]
    write(OUT / "string-feature" / "m1.parquet", table(x, y, label=pa.array(["a"] * len(y))))
    machines = flat("int-and-float")
    x, y = machines[4]
    t = table(x, y).set_column(0, "x1", pa.array(np.round(x[:, 0] * 3).astype(np.int64)))
    write(OUT / "int-and-float" / "m5.parquet", t)

    # A file that lacks a column the others have.
    machines = flat("missing-in-one")
    x, y = machines[3]
    write(OUT / "missing-in-one" / "m4.parquet", table(x, y).drop_columns(["x3"]))

    # Garbage in a .parquet file; a directory without Parquet files.
    flat("corrupt-file")
    (OUT / "corrupt-file" / "m2.parquet").write_bytes(b"this is not parquet")
    (OUT / "no-parquet").mkdir(parents=True)
    (OUT / "no-parquet" / "readme.txt").write_text("no data here\n")

    # Three of five machines perfectly separated: fewer than half usable.
    machines = flat("mostly-separated")
    for j in range(3):
        x, _ = machines[j]
        write(OUT / "mostly-separated" / f"m{j + 1}.parquet", table(x, (x[:, 0] > 0).astype(np.float64)))

    # One machine separated out of seven: reported, outvoted.
    machines = flat("one-separated", machines=7)
    x, _ = machines[4]
    write(OUT / "one-separated" / "m5.parquet", table(x, (x[:, 0] > 0).astype(np.float64)))

    # Two machines, and one machine.
    flat("two-machines", machines=2)
    flat("one-machine", machines=1)

    # The central machine has no rows.
    machines = [logistic_rows(150) for _ in range(7)]
    for j, (x, y) in enumerate(machines):
        t = table(x, y)
        if j == 0:
            t = t.slice(0, 0)
        write(OUT / "empty-central" / f"machine={j:02d}" / "part-0.parquet", t)

    # Machine ids with percent escapes, hidden files, a linked duplicate, mixed and
    # nested layouts, files without rows.
    for name in ["1", "2", "3", "a%2Cb"]:
        x, y = logistic_rows(100)
        write(OUT / "hive-escaped" / f"machine={name}" / "part-0.parquet", table(x, y))
    for name in ["1", "2", "3"]:
        x, y = logistic_rows(100)
        write(OUT / "hive-hidden" / f"machine={name}" / "part-0.parquet", table(x, y))
    x, y = logistic_rows(100)
    write(OUT / "hive-hidden" / "machine=1" / "_tmp.parquet", table(x, y))
    write(OUT / "hive-hidden" / "machine=1" / ".partial.parquet", table(x, y))
    flat("linked-duplicate", machines=3)
    (OUT / "linked-duplicate" / "m9.parquet").symlink_to("m1.parquet")
    flat("mixed-layout", machines=2)
    x, y = logistic_rows(100)
    write(OUT / "mixed-layout" / "machine=3" / "part-0.parquet", table(x, y))
    x, y = logistic_rows(100)
    write(OUT / "nested" / "region=eu" / "machine=0" / "part-0.parquet", table(x, y))
    x, y = logistic_rows(100)
    for j in range(3):
        write(OUT / "all-empty" / f"m{j + 1}.parquet", table(x, y).slice(0, 0))

    # Machines with as many rows as parameters, and one with a constant feature.
    for j in range(4):
        x = RNG.standard_normal((4, 3))
        write(OUT / "rows-equal-params" / f"m{j + 1}.parquet", table(x, x @ np.array([1.0, 2.0, 3.0])))
    machines = flat("constant-feature")
    x, y = machines[1]
    x = x.copy()
    x[:, 1] = 2.0
    write(OUT / "constant-feature" / "m2.parquet", table(x, y))

    # The central machine's features are scaled by 10 (anomalous central data).
    machines = [logistic_rows(300) for _ in range(11)]
    for j, (x, y) in enumerate(machines):
        scale = 10.0 if j == 0 else 1.0
        write(OUT / "scaled-central" / f"machine={j:02d}" / "part-0.parquet", table(x * scale, y))
        write(OUT / "scaled-central-clean" / f"machine={j:02d}" / "part-0.parquet", table(x, y))


if __name__ == "__main__":
    main()
