"""Check the cell count of each table in tables.csv, unique keys and positive means.

Usage: python data/paper/check_tables.py (it reads the tables.csv next to it).
"""
import csv
import sys
from collections import Counter
from pathlib import Path

# 3 machine counts x 4 local sample sizes x methods x alpha levels.
EXPECTED_CELLS = {
    "2": 3 * 4 * 6 * 3,
    "3": 3 * 4 * 6 * 3,
    "4": 3 * 4 * 2 * 2,
    "5": 3 * 4 * 2 * 2,
    "6": 3 * 4 * 3 * 2,
    "7": 3 * 4 * 2 * 2,
}

path = Path(__file__).resolve().parent / "tables.csv"
with path.open(newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))

errors = []
counts = Counter(row["table"] for row in rows)
for table, expected in EXPECTED_CELLS.items():
    print(f"table {table}: {counts[table]} cells (expected {expected})")
    if counts[table] != expected:
        errors.append(f"table {table} has {counts[table]} cells, expected {expected}")

keys = Counter((r["table"], r["machines"], r["rows"], r["alpha"], r["method"]) for r in rows)
errors += [f"duplicate cell {key}" for key, n in keys.items() if n > 1]

empty_means = 0
for row in rows:
    key = (row["table"], row["machines"], row["rows"], row["alpha"], row["method"])
    if row["starred"] not in ("0", "1"):
        errors.append(f"invalid starred value {row['starred']!r} in {key}")
    if row["mean"] == "":
        empty_means += 1
        if row["note"] == "":
            errors.append(f"empty mean without a note in {key}")
        continue
    if float(row["mean"]) <= 0:
        errors.append(f"non-positive mean {row['mean']} in {key}")

print(f"total: {len(rows)} cells, {empty_means} with an empty mean")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print("all checks passed")
