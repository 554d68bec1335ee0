"""Reference solutions of L1-penalised logistic regression for tests/lasso.rs.

It computes scikit-learn's solution, independently of the Rust code, and writes
tests/reference/lasso_values.json.
Usage, from the repository root: python tests/reference/lasso_reference.py

Packages: Python 3.11.7, numpy 2.4.6, pyarrow 26.0.1 and scikit-learn 1.9.1
(pip install numpy==2.4.6 pyarrow==26.0.1 scikit-learn==1.9.1).
The JSON records these versions under `_versions`.

Problem
-------
Each feature column is standardised: z_il = (x_il - m_l) / s_l with the
column mean m_l and the standard deviation s_l with divisor n (numpy's
default ddof=0). For y_i in {0, 1} the fit minimises

    (1/n) sum_i [log(1 + exp(eta_i)) - y_i eta_i] + lam * sum_l |b_l|,
    eta_i = b0 + z_i' b,

with the intercept b0 unpenalised. scikit-learn's LogisticRegression with
an L1 penalty minimises C * sum_i loss_i + sum_l |b_l|, which is n * C times
the objective above when C = 1 / (n * lam).

Solver: scikit-learn's `saga` (l1_ratio=1.0, the spelling that replaces the
deprecated penalty='l1' since scikit-learn 1.8), tol=1e-12, random_state=0.
It leaves the intercept unpenalised. `liblinear` is not used: it treats the
intercept as an extra feature of value intercept_scaling and penalises its
weight, so its intercept gradient at the solution is lam / intercept_scaling
instead of 0 (measured: 1e-4 at lam = 0.1 with intercept_scaling = 1000 on
MNIST 6-9).

Check: the script computes the Karush-Kuhn-Tucker residual of each solution,
the maximum over l of |g_l + lam * sign(b_l)| for b_l != 0 and
max(|g_l| - lam, 0) for b_l = 0, with g the gradient of the mean loss, and
|mean(p - y)| for the intercept. It raises an error, and writes nothing,
when a residual exceeds 1e-9.

Data
----
- synthetic: n = 300, p = 8, numpy.random.default_rng(20240620). Columns
  have different means and scales, and columns 1 and 2 are correlated. The
  true coefficients of the original columns are TRUE_COEFFICIENTS, four of
  them 0, with intercept -0.3. The JSON stores X (row-major) and y.
- mnist-6-9: all 11,867 rows of data/mnist-6-9, the MNIST training images
  of digits 6 and 9 (machines 00 to 09 in order). A pixel is dropped when it
  is 0 in at least 75% of the images, that is when 4 * zeros >= 3 * n. The
  JSON stores the kept pixel names, not the design.

For each data set the JSON stores lambda_max = max_l |(1/n) sum_i z_il (y_i -
mean(y))| and, for each lam, scikit-learn's intercept and coefficients on
the standardised scale and transformed back to the original scale
(b_l / s_l and b0 - sum_l b_l m_l / s_l).
"""

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUT = REPO_ROOT / "tests" / "reference" / "lasso_values.json"

SEED = 20240620
TRUE_COEFFICIENTS = [0.8, -1.2, 0.0, 0.0, 0.5, 0.0, 0.0, -0.05]
TRUE_INTERCEPT = -0.3
# Fractions of lambda_max for the synthetic data: from 1 nonzero coefficient to all 8.
SYNTHETIC_FRACTIONS = [0.6, 0.3, 0.1, 0.02, 0.002]
# Penalties for MNIST 6-9, which give 5, 9, 8, 15, 30 and 40 nonzero coefficients. They
# lie away from the points where a coefficient enters or leaves. In saga's fits every zero
# coefficient has a gradient at least 0.05% below lambda in absolute value, and every
# nonzero one exceeds 0.001 in absolute value. Between 0.13 and 0.12 pixel r09_c18 leaves
# (at lambda = 0.12504, by bisection with saga) and no pixel enters, so the count falls
# from 9 to 8.
MNIST_LAMBDAS = [0.205, 0.13, 0.12, 0.092, 0.044, 0.03]
ZERO_SHARE_LIMIT = (3, 4)
SAGA_TOLERANCE = 1e-12
MAX_KKT_RESIDUAL = 1e-9


def make_synthetic() -> tuple[np.ndarray, np.ndarray]:
    """Draw the synthetic design and its 0/1 responses."""
    rng = np.random.default_rng(SEED)
    n, p = 300, len(TRUE_COEFFICIENTS)
    z = rng.standard_normal((n, p))
    z[:, 2] = 0.7 * z[:, 1] + np.sqrt(1 - 0.7**2) * z[:, 2]
    means = np.array([0.0, 5.0, -2.0, 10.0, 0.5, 0.0, 3.0, -1.0])
    scales = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.1, 4.0, 10.0])
    x = means + z * scales
    eta = TRUE_INTERCEPT + (x - means) @ np.array(TRUE_COEFFICIENTS)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    return x, y


def read_mnist(data_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pool all machines of data_dir and drop pixels that are mostly 0."""
    files = sorted(data_dir.glob("machine=*/part-0.parquet"))
    tables = [pq.read_table(f) for f in files]
    names = [c for c in tables[0].schema.names if c != "y"]
    x = np.vstack([np.column_stack([t.column(c).to_numpy() for c in names]) for t in tables])
    y = np.concatenate([t.column("y").to_numpy() for t in tables])
    zeros = (x == 0).sum(axis=0)
    numerator, denominator = ZERO_SHARE_LIMIT
    kept_mask = denominator * zeros < numerator * len(y)
    return x[:, kept_mask], y, [name for name, kept in zip(names, kept_mask) if kept]


def kkt_residual(z: np.ndarray, y: np.ndarray, intercept: float, coef: np.ndarray, lam: float) -> float:
    """Return the largest violation of the optimality conditions."""
    probability = 1 / (1 + np.exp(-(intercept + z @ coef)))
    gradient = z.T @ (probability - y) / len(y)
    nonzero = coef != 0
    residual = np.where(
        nonzero,
        np.abs(gradient + lam * np.sign(coef)),
        np.maximum(np.abs(gradient) - lam, 0.0),
    )
    return float(max(residual.max(), abs((probability - y).mean())))


def fit_case(x: np.ndarray, y: np.ndarray, lambdas: list[float]) -> dict:
    """Fit scikit-learn's L1 logistic regression at each lam on standardised x."""
    n = len(y)
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    z = (x - means) / scales
    lambda_max = float(np.abs(z.T @ (y - y.mean()) / n).max())
    fits = []
    for lam in lambdas:
        model = LogisticRegression(
            l1_ratio=1.0,
            solver="saga",
            C=1 / (n * lam),
            tol=SAGA_TOLERANCE,
            max_iter=1_000_000,
            random_state=0,
        ).fit(z, y)
        intercept = float(model.intercept_[0])
        coef = model.coef_[0]
        residual = kkt_residual(z, y, intercept, coef, lam)
        if residual > MAX_KKT_RESIDUAL:
            sys.exit(f"saga at lambda = {lam}: KKT residual {residual} exceeds {MAX_KKT_RESIDUAL}")
        original = coef / scales
        fits.append(
            {
                "lambda": lam,
                "intercept": intercept,
                "standardized": coef.tolist(),
                "intercept_original": float(intercept - original @ means),
                "coefficients": original.tolist(),
                "nonzero": int((coef != 0).sum()),
                "kkt_residual": residual,
                "saga_epochs": int(model.n_iter_[0]),
            }
        )
        print(f"lambda {lam:.6g}: {fits[-1]['nonzero']} nonzero, KKT residual {residual:.2e}")
    return {"n": n, "p": x.shape[1], "lambda_max": lambda_max, "fits": fits}


def main() -> None:
    x, y = make_synthetic()
    means = x.mean(axis=0)
    z = (x - means) / x.std(axis=0)
    lambda_max = float(np.abs(z.T @ (y - y.mean()) / len(y)).max())
    synthetic = fit_case(x, y, [f * lambda_max for f in SYNTHETIC_FRACTIONS])
    synthetic["_source"] = (
        "tests/reference/lasso_reference.py: make_synthetic(), then sklearn "
        "LogisticRegression(l1_ratio=1.0, solver='saga') on the standardised columns"
    )
    synthetic["seed"] = SEED
    synthetic["true_coefficients"] = TRUE_COEFFICIENTS
    synthetic["x"] = x.tolist()
    synthetic["y"] = y.tolist()

    x, y, kept_features = read_mnist(REPO_ROOT / "data" / "mnist-6-9")
    mnist = fit_case(x, y, MNIST_LAMBDAS)
    mnist["_source"] = (
        "tests/reference/lasso_reference.py: read_mnist(), then sklearn "
        "LogisticRegression(l1_ratio=1.0, solver='saga') on the standardised kept pixels"
    )
    mnist["data"] = "data/mnist-6-9"
    mnist["kept_features"] = kept_features

    values = {
        "_about": (
            "Reference lasso logistic regression fits for tests/lasso.rs, written by "
            "tests/reference/lasso_reference.py, whose docstring defines the problem. "
            "'standardized' and 'intercept' are on the standardised scale, "
            "'coefficients' and 'intercept_original' on the original scale."
        ),
        "_versions": {
            "python": sys.version.split()[0],
            "numpy": version("numpy"),
            "pyarrow": version("pyarrow"),
            "scikit-learn": version("scikit-learn"),
        },
        "synthetic": synthetic,
        "mnist-6-9": mnist,
    }
    OUTPUT.write_text(json.dumps(values, indent=1, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
