"""Reference implementation of the ROSE estimators, written independently of the Rust code.

It reads the shipped data sets and test fixtures and writes
tests/reference/values.json, which the Rust tests compare against.
Usage, from the repository root: python tests/reference/rose_reference.py

Source of the method: Wang, Zhu and Zhu, "Byzantine-robust distributed
one-step estimation" (ROSE). Equation numbers below refer to that paper.

Definitions
-----------
Machines j = 1..m are taken in natural sort order of their id, and machine 1
is the central machine. Machine j has n_j rows, N = sum_j n_j. Row i has
features x_i (with a leading 1 when an intercept is used) and response y_i,
and eta = x' theta.

Per-row loss f, gradient and Hessian (canonical GLMs):
  logistic: f = log(1 + e^eta) - y eta, grad = (mu - y) x with
            mu = 1 / (1 + e^-eta), hess = mu (1 - mu) x x'.
  Poisson:  f = e^eta - y eta, grad = (e^eta - y) x, hess = e^eta x x'.
  Gaussian: f = (y - eta)^2 / 2, grad = (eta - y) x, hess = x x'.

Local statistics of machine j at theta:
  gradF_j(theta) = (1/n_j) sum_i grad_i,  H_j(theta) = (1/n_j) sum_i hess_i.
  J_j(theta) = (1/n_j) sum_i (grad_i - gradF_j)(grad_i - gradF_j)'  (centred).
  U_j(theta) = (1/n_j) sum_i grad_i grad_i'  (uncentred, used only for the
  HC0 cross-check of statsmodels).
  Local fit theta_j = argmin of the mean loss. This script runs its own
  damped Newton iteration until the largest step is below 1e-12 and checks
  that statsmodels GLM(tol=1e-12) agrees.
  Local variances (eq. 6): s2_j = diag(H_j(theta_j)^-1 J_j(theta_j) H_j(theta_j)^-1).
  Gradient variances (eq. 14): diag(J_j(theta)).
  Hessian-entry variances (eq. 15): the p x p matrix
  (1/n_j) sum_i (hess_i[l1, l2] - H_j[l1, l2])^2.

median: the ordinary median; for an even count, the mean of the two middle values.

VRMOL(values v_1..v_m, scale sigma, row counts n_j, K):
  kappa_k = k / (K + 1), Delta_k = Phi^-1(kappa_k), k = 1..K; t0 = median(v);
  S = sum_k sum_j [1(v_j <= t0 + sigma Delta_k / sqrt(n_j)) - kappa_k];
  result = t0 - sigma S / ((sum_j sqrt(n_j)) (sum_k phi(Delta_k))).
  With fewer than 3 values it returns the median. With equal n_j this is
  eq. 8 of Wang, Zhu and Zhu, whose denominator is m sqrt(n) sum_k phi(Delta_k).
D_K = sum_{k1, k2} (min(kappa_k1, kappa_k2) - kappa_k1 kappa_k2) / (sum_k phi(Delta_k))^2  (eq. 9).

Estimators (K = 10 unless stated):
  avg:      theta_avg = sum_j n_j theta_j / N.
  med:      coordinate-wise median of the theta_j.
  vrmol:    sigma_l = sqrt(diag(H_c^-1 J_c H_c^-1)) with H_c, J_c of the central
            machine at theta_med (eq. 5); theta_vr,l = VRMOL({theta_jl}, sigma_l).
  onestep:  tbar = theta_avg; g = sum_j n_j gradF_j(tbar) / N;
            H = sum_j n_j H_j(tbar) / N; theta = tbar - H^-1 g.
  rose-med: t = theta_med; g_l = median_j gradF_j(t)_l;
            H[l1, l2] = median_j H_j(t)[l1, l2]; theta = t - H^-1 g.
  rose (Algorithm 1): t = theta_vr as in vrmol; g_l = VRMOL({gradF_j(t)_l})
            with sigma = sqrt(J_c(t)[l, l]) of the central machine;
            H[l1, l2] = VRMOL({H_j(t)[l1, l2]}) with sigma = sqrt of the
            central machine's eq. 15 variance at t; theta = t - H^-1 g.
  rose-rv (Algorithm 2): sigma'_l = sqrt(median_j s2_j[l]);
            t_l = VRMOL({theta_jl}, sigma'_l); g and H as in rose but with
            sigma = sqrt(median_j of the machines' eq. 14 or eq. 15 variances
            at t); theta = t - H^-1 g.

Byzantine case: a corrupted machine computes every statistic honestly and
sends it multiplied by a factor (local estimate, local variances, gradient,
Hessian, gradient and Hessian variances). Row counts are sent unchanged.
The central machine is always honest.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import statsmodels.api as sm
from scipy.stats import norm
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "tests/reference/rose_reference.py"
NEWTON_STEP_TOLERANCE = 1e-12
NEWTON_MAX_ITERATIONS = 200
# Local fits from this script's Newton iteration and from statsmodels must agree to this absolute tolerance.
STATSMODELS_AGREEMENT = 1e-9
ESTIMATOR_NAMES = ("avg", "med", "vrmol", "onestep", "rose-med", "rose", "rose-rv")


# ---------------------------------------------------------------------------
# Families


@dataclass(frozen=True)
class Family:
    """Canonical GLM family given by the per-row loss and its first two derivatives in eta."""

    name: str

    def loss(self, eta: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.name == "logistic":
            return np.logaddexp(0.0, eta) - y * eta
        if self.name == "poisson":
            return np.exp(eta) - y * eta
        return 0.5 * (y - eta) ** 2

    def first_derivative(self, eta: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Return d f / d eta, so that grad_i = first_derivative * x_i."""
        if self.name == "logistic":
            return 1.0 / (1.0 + np.exp(-eta)) - y
        if self.name == "poisson":
            return np.exp(eta) - y
        return eta - y

    def second_derivative(self, eta: np.ndarray) -> np.ndarray:
        """Return d^2 f / d eta^2, so that hess_i = second_derivative * x_i x_i'."""
        if self.name == "logistic":
            mu = 1.0 / (1.0 + np.exp(-eta))
            return mu * (1.0 - mu)
        if self.name == "poisson":
            return np.exp(eta)
        return np.ones_like(eta)

    def statsmodels_family(self) -> sm.families.Family:
        if self.name == "logistic":
            return sm.families.Binomial()
        if self.name == "poisson":
            return sm.families.Poisson()
        return sm.families.Gaussian()


LOGISTIC = Family("logistic")
POISSON = Family("poisson")
GAUSSIAN = Family("gaussian")


# ---------------------------------------------------------------------------
# Data


@dataclass
class MachineData:
    machine_id: str
    design: np.ndarray
    y: np.ndarray


def read_machines(data_dir: Path, features: list[str] | None, intercept: bool) -> tuple[list[MachineData], list[str]]:
    """Read `machine=<id>/part-0.parquet` files sorted by numeric id.

    `features=None` takes every column except y, in file order. Returns the
    machines and the parameter names (with "intercept" first when used).
    """
    machine_dirs = sorted(data_dir.glob("machine=*"), key=lambda path: int(path.name.split("=", 1)[1]))
    if not machine_dirs:
        raise FileNotFoundError(f"no machine=<id> directories in {data_dir}")
    machines = []
    feature_names: list[str] | None = features
    for machine_dir in machine_dirs:
        table = pq.read_table(machine_dir / "part-0.parquet")
        if feature_names is None:
            feature_names = [name for name in table.column_names if name != "y"]
        columns = [table.column(name).to_numpy() for name in feature_names]
        design = np.column_stack(columns).astype(np.float64)
        if intercept:
            design = np.column_stack([np.ones(design.shape[0]), design])
        y = table.column("y").to_numpy().astype(np.float64)
        machines.append(MachineData(machine_dir.name.split("=", 1)[1], design, y))
    assert feature_names is not None
    parameter_names = (["intercept"] if intercept else []) + list(feature_names)
    return machines, parameter_names


def read_feature_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# Local statistics


def mean_gradient(family: Family, data: MachineData, theta: np.ndarray) -> np.ndarray:
    eta = data.design @ theta
    return data.design.T @ family.first_derivative(eta, data.y) / len(data.y)


def mean_hessian(family: Family, data: MachineData, theta: np.ndarray) -> np.ndarray:
    eta = data.design @ theta
    weights = family.second_derivative(eta)
    return (data.design * weights[:, None]).T @ data.design / len(data.y)


def row_gradients(family: Family, data: MachineData, theta: np.ndarray) -> np.ndarray:
    eta = data.design @ theta
    return data.design * family.first_derivative(eta, data.y)[:, None]


def centred_gradient_covariance(family: Family, data: MachineData, theta: np.ndarray) -> np.ndarray:
    """Return J_j(theta): covariance of the row gradients around their mean, divisor n_j."""
    gradients = row_gradients(family, data, theta)
    centred = gradients - gradients.mean(axis=0)
    return centred.T @ centred / len(data.y)


def uncentred_gradient_covariance(family: Family, data: MachineData, theta: np.ndarray) -> np.ndarray:
    """Return U_j(theta) = (1/n_j) sum_i grad_i grad_i'."""
    gradients = row_gradients(family, data, theta)
    return gradients.T @ gradients / len(data.y)


def hessian_entry_variances(family: Family, data: MachineData, theta: np.ndarray) -> np.ndarray:
    """Return the eq. 15 matrix (1/n_j) sum_i (hess_i[l1, l2] - H_j[l1, l2])^2."""
    eta = data.design @ theta
    weights = family.second_derivative(eta)
    row_hessians = np.einsum("i,ik,il->ikl", weights, data.design, data.design)
    deviations = row_hessians - row_hessians.mean(axis=0)
    return (deviations**2).mean(axis=0)


def sandwich_diagonal(hessian: np.ndarray, middle: np.ndarray) -> np.ndarray:
    """Return diag(H^-1 M H^-1)."""
    inverse = np.linalg.inv(hessian)
    return np.diag(inverse @ middle @ inverse).copy()


def newton_fit(family: Family, data: MachineData) -> np.ndarray:
    """Minimise the mean loss by Newton's method with step halving, starting from zero.

    Stops when the largest absolute Newton step is at most NEWTON_STEP_TOLERANCE.
    """
    theta = np.zeros(data.design.shape[1])

    def mean_loss(candidate: np.ndarray) -> float:
        return float(family.loss(data.design @ candidate, data.y).mean())

    current_loss = mean_loss(theta)
    for _ in range(NEWTON_MAX_ITERATIONS):
        step = np.linalg.solve(mean_hessian(family, data, theta), mean_gradient(family, data, theta))
        if np.max(np.abs(step)) <= NEWTON_STEP_TOLERANCE:
            return theta - step
        scale = 1.0
        # Halve the step while it increases the loss. Close to the optimum, rounding can
        # make every step look like a tiny increase, so after 30 halvings the full step is taken.
        for _ in range(30):
            candidate = theta - scale * step
            candidate_loss = mean_loss(candidate)
            if candidate_loss <= current_loss + 1e-15 * abs(current_loss):
                break
            scale *= 0.5
        else:
            candidate = theta - step
            candidate_loss = mean_loss(candidate)
        theta, current_loss = candidate, candidate_loss
    raise RuntimeError(f"machine {data.machine_id}: Newton did not converge in {NEWTON_MAX_ITERATIONS} iterations")


def statsmodels_fit(family: Family, design: np.ndarray, y: np.ndarray):
    """Fit statsmodels GLM with tol=1e-12 and return (nonrobust result, HC0 result)."""
    model = sm.GLM(y, design, family=family.statsmodels_family())
    with warnings.catch_warnings():
        # Separation, non-convergence and overflow are errors for a reference value.
        for category in (ConvergenceWarning, PerfectSeparationWarning, RuntimeWarning):
            warnings.simplefilter("error", category)
        nonrobust = model.fit(tol=1e-12, maxiter=200)
        robust = model.fit(tol=1e-12, maxiter=200, cov_type="HC0")
    if not (nonrobust.converged and robust.converged):
        raise RuntimeError("statsmodels GLM did not converge")
    return nonrobust, robust


# ---------------------------------------------------------------------------
# Machines as seen by the central machine


class HonestMachine:
    """Machine that sends its statistics unchanged."""

    def __init__(self, family: Family, data: MachineData, statsmodels_check: list[float]):
        self.family = family
        self.data = data
        self.row_count = len(data.y)
        self._theta = newton_fit(family, data)
        reference, _ = statsmodels_fit(family, data.design, data.y)
        difference = float(np.max(np.abs(reference.params - self._theta)))
        if difference > STATSMODELS_AGREEMENT:
            raise RuntimeError(f"machine {data.machine_id}: Newton and statsmodels differ by {difference}")
        statsmodels_check.append(difference)

    def local_estimate(self) -> np.ndarray:
        return self._theta

    def local_variances(self) -> np.ndarray:
        """Return s2_j of eq. 6 at the local estimate."""
        hessian = mean_hessian(self.family, self.data, self._theta)
        middle = centred_gradient_covariance(self.family, self.data, self._theta)
        return sandwich_diagonal(hessian, middle)

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        return mean_gradient(self.family, self.data, theta)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        return mean_hessian(self.family, self.data, theta)

    def gradient_variances(self, theta: np.ndarray) -> np.ndarray:
        """Return diag(J_j(theta)) (eq. 14)."""
        return np.diag(centred_gradient_covariance(self.family, self.data, theta)).copy()

    def hessian_variances(self, theta: np.ndarray) -> np.ndarray:
        return hessian_entry_variances(self.family, self.data, theta)

    def sandwich_variances(self, theta: np.ndarray) -> np.ndarray:
        """Return diag(H_j^-1 J_j H_j^-1) at theta (the central machine's eq. 5 scale)."""
        hessian = mean_hessian(self.family, self.data, theta)
        middle = centred_gradient_covariance(self.family, self.data, theta)
        return sandwich_diagonal(hessian, middle)


class ScaledMachine:
    """Byzantine machine that multiplies every statistic it sends by `factor`."""

    def __init__(self, honest: HonestMachine, factor: float):
        self.honest = honest
        self.factor = factor
        self.row_count = honest.row_count
        self.data = honest.data

    def local_estimate(self) -> np.ndarray:
        return self.factor * self.honest.local_estimate()

    def local_variances(self) -> np.ndarray:
        return self.factor * self.honest.local_variances()

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        return self.factor * self.honest.gradient(theta)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        return self.factor * self.honest.hessian(theta)

    def gradient_variances(self, theta: np.ndarray) -> np.ndarray:
        return self.factor * self.honest.gradient_variances(theta)

    def hessian_variances(self, theta: np.ndarray) -> np.ndarray:
        return self.factor * self.honest.hessian_variances(theta)


# ---------------------------------------------------------------------------
# VRMOL


def vrmol_levels(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (kappa_k, Delta_k) for k = 1..K."""
    kappa = np.arange(1, k + 1, dtype=np.float64) / (k + 1)
    return kappa, norm.ppf(kappa)


def vrmol(values: np.ndarray, sigma: np.ndarray | float, row_counts: np.ndarray, k: int) -> np.ndarray:
    """Apply VRMOL along axis 0 of `values` (shape (m, ...)), elementwise over the other axes.

    `sigma` broadcasts against values[0], and `row_counts` has length m.
    """
    values = np.asarray(values, dtype=np.float64)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), values.shape[1:])
    row_counts = np.asarray(row_counts, dtype=np.float64)
    median = np.median(values, axis=0)
    if values.shape[0] < 3:
        return median
    kappa, delta = vrmol_levels(k)
    root_n = np.sqrt(row_counts).reshape((-1,) + (1,) * (values.ndim - 1))
    total = np.zeros(values.shape[1:])
    for kappa_k, delta_k in zip(kappa, delta):
        threshold = median + sigma * delta_k / root_n
        total = total + ((values <= threshold).astype(np.float64) - kappa_k).sum(axis=0)
    denominator = np.sqrt(row_counts).sum() * norm.pdf(delta).sum()
    return median - sigma * total / denominator


def vrmol_eq8_literal(values: list[float], sigma: float, rows_per_machine: int, k: int) -> float:
    """Evaluate eq. 8 for equal row counts n, written out with scalar loops and m sqrt(n)."""
    m = len(values)
    ordered = sorted(values)
    median = ordered[m // 2] if m % 2 == 1 else 0.5 * (ordered[m // 2 - 1] + ordered[m // 2])
    total = 0.0
    density_sum = 0.0
    for index in range(1, k + 1):
        kappa = index / (k + 1)
        delta = float(norm.ppf(kappa))
        density_sum += math.exp(-0.5 * delta * delta) / math.sqrt(2.0 * math.pi)
        for value in values:
            total += (1.0 if value <= median + sigma * delta / math.sqrt(rows_per_machine) else 0.0) - kappa
    return median - sigma * total / (m * math.sqrt(rows_per_machine) * density_sum)


def d_k(k: int) -> float:
    """Return D_K of eq. 9."""
    kappa, delta = vrmol_levels(k)
    covariance = np.minimum.outer(kappa, kappa) - np.outer(kappa, kappa)
    return float(covariance.sum() / norm.pdf(delta).sum() ** 2)


# ---------------------------------------------------------------------------
# Estimators


def sqrt_of_median_variance(variances: np.ndarray, label: str) -> np.ndarray:
    """Return sqrt(median over machines), raising on a negative or non-finite median."""
    median = np.median(variances, axis=0)
    if not np.all(np.isfinite(median)) or np.any(median < 0):
        raise ValueError(f"{label}: median variance is negative or not finite: {median}")
    return np.sqrt(median)


def newton_update(theta: np.ndarray, gradient: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    return theta - np.linalg.solve(hessian, gradient)


def run_estimators(machines: list, k: int, names: tuple[str, ...] = ESTIMATOR_NAMES) -> tuple[dict, dict]:
    """Compute the requested estimators; machines[0] is the honest central machine.

    Returns (estimates, details), where details holds intermediate values.
    """
    central = machines[0]
    row_counts = np.array([machine.row_count for machine in machines], dtype=np.float64)
    total_rows = row_counts.sum()
    local = np.array([machine.local_estimate() for machine in machines])

    theta_avg = (row_counts[:, None] * local).sum(axis=0) / total_rows
    theta_med = np.median(local, axis=0)
    vrmol_sigma = np.sqrt(central.sandwich_variances(theta_med))
    theta_vr = vrmol(local, vrmol_sigma, row_counts, k)

    estimates: dict[str, np.ndarray] = {}
    details: dict[str, object] = {
        "row_counts": row_counts,
        "local_estimates": local,
        "theta_med": theta_med,
        "vrmol_sigma": vrmol_sigma,
        "theta_vr": theta_vr,
    }

    if "avg" in names:
        estimates["avg"] = theta_avg
    if "med" in names:
        estimates["med"] = theta_med
    if "vrmol" in names:
        estimates["vrmol"] = theta_vr

    if "onestep" in names:
        gradient = sum(n * machine.gradient(theta_avg) for n, machine in zip(row_counts, machines)) / total_rows
        hessian = sum(n * machine.hessian(theta_avg) for n, machine in zip(row_counts, machines)) / total_rows
        estimates["onestep"] = newton_update(theta_avg, gradient, hessian)

    if "rose-med" in names:
        gradients = np.array([machine.gradient(theta_med) for machine in machines])
        hessians = np.array([machine.hessian(theta_med) for machine in machines])
        estimates["rose-med"] = newton_update(theta_med, np.median(gradients, axis=0), np.median(hessians, axis=0))

    if "rose" in names:
        gradients = np.array([machine.gradient(theta_vr) for machine in machines])
        hessians = np.array([machine.hessian(theta_vr) for machine in machines])
        gradient_sigma = np.sqrt(central.gradient_variances(theta_vr))
        hessian_sigma = np.sqrt(central.hessian_variances(theta_vr))
        gradient = vrmol(gradients, gradient_sigma, row_counts, k)
        hessian = vrmol(hessians, hessian_sigma, row_counts, k)
        estimates["rose"] = newton_update(theta_vr, gradient, hessian)
        details["rose"] = {
            "gradient_sigma": gradient_sigma,
            "hessian_sigma": hessian_sigma,
            "gradient": gradient,
            "hessian": hessian,
        }

    if "rose-rv" in names:
        local_variances = np.array([machine.local_variances() for machine in machines])
        theta_sigma = sqrt_of_median_variance(local_variances, "rose-rv local variances")
        start = vrmol(local, theta_sigma, row_counts, k)
        gradients = np.array([machine.gradient(start) for machine in machines])
        hessians = np.array([machine.hessian(start) for machine in machines])
        gradient_sigma = sqrt_of_median_variance(
            np.array([machine.gradient_variances(start) for machine in machines]), "rose-rv gradient variances"
        )
        hessian_sigma = sqrt_of_median_variance(
            np.array([machine.hessian_variances(start) for machine in machines]), "rose-rv Hessian variances"
        )
        gradient = vrmol(gradients, gradient_sigma, row_counts, k)
        hessian = vrmol(hessians, hessian_sigma, row_counts, k)
        estimates["rose-rv"] = newton_update(start, gradient, hessian)
        details["rose-rv"] = {
            "local_variances": local_variances,
            "theta_sigma": theta_sigma,
            "start": start,
            "gradient_sigma": gradient_sigma,
            "hessian_sigma": hessian_sigma,
            "gradient": gradient,
            "hessian": hessian,
        }

    return estimates, details


# ---------------------------------------------------------------------------
# Output helpers


def to_json(value):
    """Convert numpy values to lists of floats, which json writes with repr (full double precision)."""
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return value


def library_versions() -> dict[str, str]:
    names = ("numpy", "scipy", "pandas", "pyarrow", "statsmodels")
    versions = {name: importlib.metadata.version(name) for name in names}
    versions["python"] = sys.version.split()[0]
    return versions


def glm_summary(family: Family, machines: list[MachineData], parameter_names: list[str], source: str) -> dict:
    """Fit statsmodels GLM on the rows of all given machines and cross-check it against this script."""
    design = np.vstack([machine.design for machine in machines])
    y = np.concatenate([machine.y for machine in machines])
    nonrobust, robust = statsmodels_fit(family, design, y)

    pooled = MachineData("pooled", design, y)
    theta = newton_fit(family, pooled)
    params_difference = float(np.max(np.abs(theta - nonrobust.params)))
    hessian = mean_hessian(family, pooled, theta)
    sandwich = sandwich_diagonal(hessian, uncentred_gradient_covariance(family, pooled, theta))
    hc0 = np.sqrt(sandwich / len(y))
    hc0_relative_difference = float(np.max(np.abs(hc0 / robust.bse - 1.0)))
    if params_difference > STATSMODELS_AGREEMENT or hc0_relative_difference > 1e-7:
        raise RuntimeError(f"{source}: statsmodels and this script disagree ({params_difference}, {hc0_relative_difference})")

    summary = {
        "_source": source,
        "family": family.name,
        "machines": [machine.machine_id for machine in machines],
        "n_rows": int(len(y)),
        "parameter_names": parameter_names,
        "params": nonrobust.params,
        "bse": nonrobust.bse,
        "bse_hc0": robust.bse,
        "check_max_abs_params_difference_to_own_newton": params_difference,
        "check_max_relative_bse_hc0_difference_to_own_sandwich": hc0_relative_difference,
    }
    if family is GAUSSIAN:
        summary["scale"] = float(nonrobust.scale)
        summary["scale_note"] = "bse uses statsmodels' Gaussian scale estimate, Pearson chi2 / (n - p); bse_hc0 does not depend on it"
    return summary


# ---------------------------------------------------------------------------
# Main


@dataclass(frozen=True)
class DataSet:
    name: str
    path: Path
    family: Family
    intercept: bool
    features_file: Path | None = None

    def load(self) -> tuple[list[MachineData], list[str]]:
        features = read_feature_list(self.features_file) if self.features_file else None
        return read_machines(self.path, features, self.intercept)


def relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def vrmol_unit_cases() -> list[dict]:
    cases = [
        ([1.0, 1.2, 0.9, 5.0, 1.1], 0.5, [100] * 5, 3),
        ([1.0, 1.2, 0.9, 5.0, 1.1], 0.5, [100] * 5, 10),
        ([1.0, 1.2, 0.9, 5.0, 1.1], 2.0, [100] * 5, 10),
        ([0.3, -0.1, 0.25, 0.1, 2.0, 0.2], 1.5, [50, 100, 150, 200, 250, 300], 10),
        ([2.0, 4.0], 1.0, [10, 10], 10),
    ]
    output = []
    for values, sigma, row_counts, k in cases:
        result = float(vrmol(np.array(values), sigma, np.array(row_counts), k))
        entry = {
            "_source": f"{SCRIPT}: vrmol()",
            "values": values,
            "sigma": sigma,
            "row_counts": row_counts,
            "k": k,
            "result": result,
        }
        if len(set(row_counts)) == 1 and len(values) >= 3:
            literal = vrmol_eq8_literal(values, sigma, row_counts[0], k)
            if abs(literal - result) > 1e-14:
                raise RuntimeError(f"VRMOL and literal eq. 8 differ: {result} vs {literal}")
            entry["eq8_literal"] = literal
        if len(values) < 3:
            entry["note"] = "fewer than 3 values: VRMOL returns the median"
        elif result == float(np.median(values)):
            entry["note"] = "the indicator sum S is exactly 0 here, so VRMOL returns the median"
        output.append(entry)
    return output


def check_vrmol_against_eq8(rng: np.random.Generator) -> float:
    """Return the largest difference between vrmol() and the literal eq. 8 over random equal-n inputs."""
    largest = 0.0
    for _ in range(500):
        m = int(rng.integers(3, 30))
        k = int(rng.integers(1, 60))
        rows = int(rng.integers(1, 2000))
        sigma = float(rng.uniform(0.01, 5.0))
        values = rng.normal(0.0, sigma / math.sqrt(rows), size=m)
        if rng.random() < 0.3:
            values[: m // 4] += 10.0
        fast = float(vrmol(values, sigma, np.full(m, rows), k))
        literal = vrmol_eq8_literal(values.tolist(), sigma, rows, k)
        largest = max(largest, abs(fast - literal))
    if largest > 1e-12:
        raise RuntimeError(f"VRMOL differs from literal eq. 8 by {largest}")
    return largest


def main() -> None:
    data = REPO_ROOT / "data"
    fixtures = REPO_ROOT / "tests" / "data"
    data_sets = {
        "logistic-m11": DataSet("logistic-m11", data / "logistic-m11", LOGISTIC, intercept=False),
        "poisson-m5": DataSet("poisson-m5", fixtures / "poisson-m5", POISSON, intercept=True),
        "gaussian-m5": DataSet("gaussian-m5", fixtures / "gaussian-m5", GAUSSIAN, intercept=True),
        "unequal-m7": DataSet("unequal-m7", fixtures / "unequal-m7", LOGISTIC, intercept=True),
        "mnist-6-9": DataSet(
            "mnist-6-9", data / "mnist-6-9", LOGISTIC, intercept=True, features_file=data / "mnist-6-9" / "features.txt"
        ),
        "mnist-8-9": DataSet(
            "mnist-8-9", data / "mnist-8-9", LOGISTIC, intercept=True, features_file=data / "mnist-8-9" / "features.txt"
        ),
    }
    loaded = {name: data_set.load() for name, data_set in data_sets.items()}

    def describe(data_set: DataSet) -> dict:
        description = {"data": relative(data_set.path), "family": data_set.family.name, "intercept": data_set.intercept}
        if data_set.features_file:
            description["features_file"] = relative(data_set.features_file)
        return description

    values: dict[str, object] = {
        "_about": (
            "Reference values for the rose tests, written by " + SCRIPT + ". Its module docstring "
            "defines every estimator. Parameter vectors follow parameter_names; matrices are lists of rows; "
            "machine lists follow the machine ids in numeric order."
        ),
        "_versions": library_versions(),
    }

    values["d_k"] = {
        "_source": f"{SCRIPT}: d_k(), eq. 9, rounded to 10 decimal places",
        "values": {str(k): round(d_k(k), 10) for k in (3, 5, 7, 10, 15, 20, 30, 50, 100)},
    }
    values["vrmol_cases"] = vrmol_unit_cases()

    pooled = {}
    for name, data_set in data_sets.items():
        machines, parameter_names = loaded[name]
        source = f"{SCRIPT}: statsmodels GLM({data_set.family.name}) on all rows, fit(tol=1e-12), cov_type nonrobust and HC0"
        pooled[name] = describe(data_set) | glm_summary(data_set.family, machines, parameter_names, source)
    values["pooled_fits"] = pooled

    single = {}
    for name in ("logistic-m11", "poisson-m5", "gaussian-m5"):
        data_set = data_sets[name]
        machines, parameter_names = loaded[name]
        source = f"{SCRIPT}: statsmodels GLM({data_set.family.name}) on machine=00 alone, fit(tol=1e-12), cov_type nonrobust and HC0"
        single[name] = describe(data_set) | glm_summary(data_set.family, machines[:1], parameter_names, source)
    values["single_machine_fits"] = single

    statsmodels_differences: list[float] = []
    honest_machines = {}
    estimators = {}
    for name, k in (("logistic-m11", 10), ("unequal-m7", 10), ("poisson-m5", 5), ("mnist-6-9", 10)):
        data_set = data_sets[name]
        machine_data, parameter_names = loaded[name]
        machines = [HonestMachine(data_set.family, item, statsmodels_differences) for item in machine_data]
        honest_machines[name] = machines
        estimates, details = run_estimators(machines, k)
        estimators[name] = describe(data_set) | {
            "_source": f"{SCRIPT}: run_estimators() with numpy/scipy; local fits by own Newton, checked against statsmodels",
            "central_machine": machine_data[0].machine_id,
            "machines": [item.machine_id for item in machine_data],
            "k": k,
            "parameter_names": parameter_names,
            "estimates": estimates,
            "details": details,
        }
    values["estimators"] = estimators

    byzantine_ids = ("09", "10")
    factor = -3.0
    clean = honest_machines["logistic-m11"]
    attacked = [ScaledMachine(machine, factor) if machine.data.machine_id in byzantine_ids else machine for machine in clean]
    attack_names = ("avg", "onestep", "rose-med", "rose", "rose-rv")
    attack_estimates, attack_details = run_estimators(attacked, 10, attack_names)
    values["byzantine"] = {
        "logistic-m11-scale-minus-3": {
            "_source": f"{SCRIPT}: run_estimators() with machines 09 and 10 wrapped in ScaledMachine(factor=-3)",
            "data": relative(data_sets["logistic-m11"].path),
            "family": "logistic",
            "intercept": False,
            "central_machine": "00",
            "byzantine_machines": list(byzantine_ids),
            "factor": factor,
            "corrupted_statistics": [
                "local estimate",
                "local variances (eq. 6)",
                "gradient",
                "Hessian",
                "gradient variances (eq. 14)",
                "Hessian-entry variances (eq. 15)",
            ],
            "k": 10,
            "parameter_names": loaded["logistic-m11"][1],
            "note": (
                "The corrupted variances are negative, but only 2 of 11 machines are corrupted, so every "
                "median of variances over machines is the median of mostly honest non-negative values and "
                "is non-negative; the script raises an error if a median is negative or not finite."
            ),
            "estimates": attack_estimates,
            "details": {key: attack_details[key] for key in ("local_estimates", "theta_med", "vrmol_sigma", "theta_vr")},
        }
    }

    pooled_theta = np.asarray(pooled["logistic-m11"]["params"])
    theta_star = np.array(json.loads((data / "logistic-m11" / "theta_star.json").read_text())["theta_star"])
    clean_estimates = estimators["logistic-m11"]["estimates"]
    distances = {
        "_source": f"{SCRIPT}: Euclidean distances on logistic-m11",
        "clean_to_pooled": {name: float(np.linalg.norm(estimate - pooled_theta)) for name, estimate in clean_estimates.items()},
        "clean_to_theta_star": {name: float(np.linalg.norm(estimate - theta_star)) for name, estimate in clean_estimates.items()},
        "attack_to_pooled": {name: float(np.linalg.norm(estimate - pooled_theta)) for name, estimate in attack_estimates.items()},
        "pooled_to_theta_star": float(np.linalg.norm(pooled_theta - theta_star)),
    }
    values["checks"] = {
        "_source": f"{SCRIPT}: self-checks",
        "vrmol_vs_literal_eq8_max_abs_difference": check_vrmol_against_eq8(np.random.default_rng(7)),
        "local_fit_newton_vs_statsmodels_max_abs_difference": max(statsmodels_differences),
        "distances_logistic_m11": distances,
    }

    out_path = Path(__file__).resolve().parent / "values.json"
    out_path.write_text(json.dumps(to_json(values), indent=1, allow_nan=False) + "\n")
    print(json.dumps(values["checks"], indent=1, default=float))


if __name__ == "__main__":
    main()
