"""Show why one-step corrections fail in the MNIST 6-9 study without the t-statistic cap.

The input is the clean 20-machine cell that this command writes:
    cargo run -- mnist --study 6-9 --max-t 0 --machines 20 --alpha 0 --write-data /tmp/nocap -q

The script fits each machine's logistic regression (with intercept, on the
lasso-selected pixels) with statsmodels, independently of rose. At the
coordinate-wise median of the local estimates it computes every machine's Hessian
of the mean loss, H_j = X_j' W X_j / n_j with W = diag(mu (1 - mu)). It prints the
smallest eigenvalue of their entry-wise median, which a median-aggregated one-step
correction inverts, and of their mean, together with the spread of the local
estimates.

Run from the repository root: python docs/reproduction/mnist_median_hessian.py [DIR]
(numpy 2.4.6, pyarrow 26.0.1, statsmodels 0.15.0, as in scripts/requirements.txt).
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import statsmodels.api as sm


def read_machines(cell: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return (design with intercept, response) for every machine=<id> directory, in id order."""
    machines = []
    for directory in sorted(cell.glob("machine=*")):
        table = pq.read_table(directory / "part-0.parquet").to_pandas()
        y = table.pop("y").to_numpy()
        x = sm.add_constant(table.to_numpy(), has_constant="add")
        machines.append((x, y))
    return machines


def hessian(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    mu = 1.0 / (1.0 + np.exp(-(x @ theta)))
    return (x * (mu * (1.0 - mu))[:, None]).T @ x / len(x)


def main() -> None:
    cell = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/nocap/6-9/m20-alpha0.00")
    machines = read_machines(cell)
    estimates = []
    for x, y in machines:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sm.GLM(y, x, family=sm.families.Binomial()).fit(tol=1e-10, maxiter=100)
        estimates.append(result.params)
    estimates = np.array(estimates)
    median = np.median(estimates, axis=0)
    hessians = np.array([hessian(x, median) for x, _ in machines])
    median_hessian = np.median(hessians, axis=0)
    mean_hessian = hessians.mean(axis=0)
    spread = np.abs(estimates - median).max(axis=0)
    print(f"{len(machines)} machines, {estimates.shape[1]} parameters, rows {[len(y) for _, y in machines]}")
    print(f"largest |local estimate - median| per coordinate: max {spread.max():.3g}, median {np.median(spread):.3g}")
    print(f"smallest eigenvalue of the entry-wise median Hessian: {np.linalg.eigvalsh(median_hessian).min():.3g}")
    print(f"smallest eigenvalue of the mean Hessian:              {np.linalg.eigvalsh(mean_hessian).min():.3g}")
    print(f"condition number of the mean Hessian:                 {np.linalg.cond(mean_hessian):.3g}")


if __name__ == "__main__":
    main()
