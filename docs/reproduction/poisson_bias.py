"""Isolate the error that Byzantine machines alone add to the averaging estimator in
Table 3 (Poisson, Byzantine responses drawn from Poisson(exp(-X theta*))).

With f of m machines Byzantine, the average of local estimates has expectation
(1 - f/m) E[theta_honest] + (f/m) E[theta_byzantine]. If every local maximum-likelihood
estimate were unbiased, E[theta_byzantine] = -theta* and the error would be
2 (f/m) |theta*|. This script estimates both expectations by Monte Carlo with
statsmodels' GLM (an implementation independent of rose) and prints the error that
the expectations alone imply, next to the unbiased value 2 (f/m) |theta*|.

Run from the repository root: python docs/reproduction/poisson_bias.py
(numpy 2.4.6, statsmodels 0.15.0, as in scripts/requirements.txt).
"""

import numpy as np
import statsmodels.api as sm

P = 30
THETA = np.array([(P - 1 - l) / (P - 1) for l in range(P)]) / np.sqrt(P)
REPLICATIONS = 400


def draw(rng: np.random.Generator, n: int, negate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Draw n rows of the Section 5.1 design with Toeplitz 0.5 covariance."""
    z = rng.standard_normal((n, P))
    x = np.empty_like(z)
    x[:, 0] = z[:, 0]
    for l in range(1, P):
        x[:, l] = 0.5 * x[:, l - 1] + np.sqrt(0.75) * z[:, l]
    eta = x @ THETA
    return x, rng.poisson(np.exp(-eta if negate else eta))


def mean_estimate(rng: np.random.Generator, n: int, negate: bool) -> np.ndarray:
    fits = [
        sm.GLM(y, x, family=sm.families.Poisson()).fit().params
        for x, y in (draw(rng, n, negate) for _ in range(REPLICATIONS))
    ]
    return np.mean(fits, axis=0)


def main() -> None:
    rng = np.random.default_rng(20241204)
    print("n, m, f, error from expectations alone, 2 f/m |theta*|, |E byzantine + theta*|")
    for n in (500, 1000):
        honest = mean_estimate(rng, n, False)
        byzantine = mean_estimate(rng, n, True)
        for m, f in ((11, 1), (11, 2), (31, 3), (31, 6), (101, 10), (101, 20)):
            share = f / m
            average = (1 - share) * honest + share * byzantine
            print(
                n, m, f,
                round(float(np.linalg.norm(average - THETA)), 4),
                round(float(2 * share * np.linalg.norm(THETA)), 4),
                round(float(np.linalg.norm(byzantine + THETA)), 4),
            )


if __name__ == "__main__":
    main()
