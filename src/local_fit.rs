//! The local M-estimator of one machine: Newton-Raphson with step halving.

use crate::family::Family;
use crate::linalg;
use crate::moments::{DerivativeMoments, Rows};

/// Settings of the local Newton-Raphson solver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewtonOptions {
    /// Convergence tolerance on the step: the fit stops when
    /// `max_l |Δθ_l| ≤ tolerance · max(1, max_l |θ_l|)`.
    pub tolerance: f64,
    /// Maximum number of Newton iterations.
    pub max_iterations: u32,
    /// Maximum number of step halvings within one iteration.
    pub max_halvings: u32,
}

impl Default for NewtonOptions {
    fn default() -> Self {
        NewtonOptions {
            tolerance: 1e-10,
            max_iterations: 100,
            max_halvings: 40,
        }
    }
}

/// Statistics a machine sends in the first round, or the reason it has none.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalFit {
    /// Rows `n_j`.
    pub rows: u64,
    /// Local M-estimate `θ̂_j`; empty when the fit failed.
    pub estimate: Vec<f64>,
    /// Local variance estimates `σ̂²_jl(θ̂_j)` of eq. (6); empty when the fit failed.
    pub variance: Vec<f64>,
    /// Whether Newton-Raphson met the tolerance.
    pub converged: bool,
    /// Newton iterations taken.
    pub iterations: u32,
    /// Reason the fit produced no usable estimate, if it did not.
    pub failure: Option<String>,
    /// Rows skipped for null or non-finite values (with `--drop-missing`).
    pub dropped: u64,
}

impl LocalFit {
    fn failed(rows: u64, iterations: u32, reason: String) -> Self {
        LocalFit {
            rows,
            estimate: Vec::new(),
            variance: Vec::new(),
            converged: false,
            iterations,
            failure: Some(reason),
            dropped: 0,
        }
    }

    /// Returns whether the fit produced an estimate.
    pub fn is_usable(&self) -> bool {
        self.failure.is_none() && !self.estimate.is_empty()
    }
}

/// Fits the model to one machine's rows by minimising the mean loss `F_j(θ)`.
///
/// Newton-Raphson starts at `θ = 0`. Each iteration solves `∇²F_j(θ)·d = ∇F_j(θ)` by
/// Cholesky factorization and halves the step `θ − t·d` until the loss does not
/// increase. After convergence the machine also computes the sandwich variances of
/// eq. (6),
///
/// ```text
/// σ̂²_jl(θ̂_j) = diag( ∇²F_j(θ̂_j)⁻¹ · J_j(θ̂_j) · ∇²F_j(θ̂_j)⁻¹ )_l,
/// J_j(θ) = (1/n_j) Σ_i (∇f_i(θ) − ∇F_j(θ))(∇f_i(θ) − ∇F_j(θ))ᵀ
/// ```
///
/// Fewer rows than parameters, a Hessian that is not positive definite, failure to
/// converge and perfect separation return a failed [`LocalFit`], not an error. The
/// coordinator then counts the machine as missing.
pub fn fit_local(
    family: Family,
    rows: Rows<'_>,
    n_params: usize,
    options: &NewtonOptions,
) -> LocalFit {
    let n = rows.len() as u64;
    if rows.len() <= n_params {
        return LocalFit::failed(
            n,
            0,
            format!(
                "{n} rows for {n_params} parameters: a machine needs more rows than parameters"
            ),
        );
    }

    let mut theta = vec![0.0; n_params];
    let mut current = DerivativeMoments::first_moments(family, &theta, rows);
    let mut converged = false;
    let mut iterations = 0;
    while iterations < options.max_iterations {
        iterations += 1;
        let Some(direction) = linalg::solve_spd(&current.hessian_mean, &current.gradient_mean)
        else {
            return LocalFit::failed(n, iterations, singular_reason(family));
        };

        // Step halving: accept the first step that does not increase the loss.
        let mut step = 1.0;
        let mut halvings = 0;
        let (candidate, moments) = loop {
            let candidate: Vec<f64> = theta
                .iter()
                .zip(&direction)
                .map(|(t, d)| t - step * d)
                .collect();
            let moments = DerivativeMoments::first_moments(family, &candidate, rows);
            let acceptable = moments.loss_mean.is_finite()
                && moments.loss_mean <= current.loss_mean + 1e-12 * current.loss_mean.abs();
            if acceptable || halvings >= options.max_halvings {
                break (candidate, moments);
            }
            step *= 0.5;
            halvings += 1;
        };
        if !moments.loss_mean.is_finite() {
            return LocalFit::failed(
                n,
                iterations,
                "the loss is not finite along the Newton direction".to_string(),
            );
        }

        let change = direction
            .iter()
            .map(|d| (step * d).abs())
            .fold(0.0, f64::max);
        let scale = candidate.iter().map(|t| t.abs()).fold(1.0, f64::max);
        theta = candidate;
        current = moments;
        if change <= options.tolerance * scale {
            converged = true;
            break;
        }
    }

    if !converged {
        let hint = if family == Family::Logistic {
            "; raise --max-iterations, or check whether the features perfectly separate the response"
        } else {
            "; raise --max-iterations"
        };
        return LocalFit::failed(
            n,
            iterations,
            format!(
                "Newton-Raphson did not converge in {} iterations{hint}",
                options.max_iterations
            ),
        );
    }

    if family == Family::Logistic {
        let saturated = saturated_fraction(rows, &theta);
        if saturated > SEPARATION_FRACTION {
            return LocalFit::failed(
                n,
                iterations,
                format!(
                    "the response is perfectly separated by the features: {:.0}% of the fitted \
                     probabilities are numerically 0 or 1",
                    100.0 * saturated
                ),
            );
        }
    }

    let derivatives = DerivativeMoments::from_rows(family, &theta, rows).finish();
    let Some(variance) = sandwich_diagonal(&derivatives.hessian, &derivatives.gradient_covariance)
    else {
        return LocalFit::failed(n, iterations, singular_reason(family));
    };
    if variance.iter().any(|v| !(*v > 0.0 && v.is_finite())) {
        return LocalFit::failed(
            n,
            iterations,
            "the local fit is exact (zero residual variance), so its variances are zero"
                .to_string(),
        );
    }
    LocalFit {
        rows: n,
        estimate: theta,
        variance,
        converged,
        iterations,
        failure: None,
        dropped: 0,
    }
}

/// Linear predictor beyond which a logistic probability is numerically 0 or 1
/// (`e^−30 ≈ 1e−13`).
const SATURATED_ETA: f64 = 30.0;

/// Share of rows with saturated probabilities above which a logistic fit counts as
/// separated. Under (quasi-)complete separation Newton-Raphson can meet a relative step
/// tolerance while the coefficients run off to infinity, so convergence alone does not
/// detect it. R's `glm` only warns in this case; rose drops the machine instead.
const SEPARATION_FRACTION: f64 = 0.05;

fn saturated_fraction(rows: Rows<'_>, theta: &[f64]) -> f64 {
    let p = theta.len();
    let saturated = (0..rows.len())
        .filter(|&i| {
            let x = &rows.x[i * p..(i + 1) * p];
            let eta: f64 = x.iter().zip(theta).map(|(a, b)| a * b).sum();
            eta.abs() > SATURATED_ETA
        })
        .count();
    saturated as f64 / rows.len().max(1) as f64
}

/// Returns the diagonal of `H⁻¹·J·H⁻¹`, or `None` when `H` is not positive definite.
pub fn sandwich_diagonal(hessian: &[f64], meat: &[f64]) -> Option<Vec<f64>> {
    let p = (hessian.len() as f64).sqrt() as usize;
    let inverse = linalg::inverse_spd(hessian, p)?;
    let full = linalg::sandwich(&inverse, meat, p);
    Some((0..p).map(|l| full[l * p + l]).collect())
}

fn singular_reason(family: Family) -> String {
    let hint = match family {
        Family::Logistic => "collinear or constant features, or perfect separation",
        _ => "collinear or constant features",
    };
    format!("the Hessian is singular or not positive definite ({hint})")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ordinary least squares has the closed form `θ = (XᵀX)⁻¹Xᵀy`; the solver must
    /// reach it in one Newton step and confirm it with a second.
    #[test]
    fn gaussian_fit_is_least_squares() {
        let x = [1.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0];
        let y = [1.0, 3.0, 4.0, 8.0];
        let fit = fit_local(
            Family::Gaussian,
            Rows { x: &x, y: &y },
            2,
            &NewtonOptions::default(),
        );
        // XᵀX = [[4, 6], [6, 14]], Xᵀy = [16, 35]: θ = [0.7, 2.2].
        assert!(fit.converged);
        assert!((fit.estimate[0] - 0.7).abs() < 1e-12);
        assert!((fit.estimate[1] - 2.2).abs() < 1e-12);
        assert!(fit.iterations <= 2);
    }

    #[test]
    fn separated_logistic_data_fail_cleanly() {
        let x = [1.0, -2.0, 1.0, -1.0, 1.0, 1.0, 1.0, 2.0];
        let y = [0.0, 0.0, 1.0, 1.0];
        let fit = fit_local(
            Family::Logistic,
            Rows { x: &x, y: &y },
            2,
            &NewtonOptions::default(),
        );
        assert!(!fit.is_usable());
        assert!(fit.failure.unwrap().contains("separat"));
    }

    #[test]
    fn too_few_rows_fail_cleanly() {
        let x = [1.0, 0.5];
        let y = [1.0];
        let fit = fit_local(
            Family::Poisson,
            Rows { x: &x, y: &y },
            2,
            &NewtonOptions::default(),
        );
        assert_eq!(
            fit.failure.as_deref(),
            Some("1 rows for 2 parameters: a machine needs more rows than parameters")
        );
    }

    /// Poisson with one binary feature has the closed form θ = (log ȳ₀, log ȳ₁ − log ȳ₀).
    #[test]
    fn poisson_two_group_fit_matches_closed_form() {
        let x = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let y = [1.0, 2.0, 3.0, 4.0, 6.0, 5.0];
        let fit = fit_local(
            Family::Poisson,
            Rows { x: &x, y: &y },
            2,
            &NewtonOptions::default(),
        );
        let (mean0, mean1) = (2.0f64, 5.0f64);
        assert!((fit.estimate[0] - mean0.ln()).abs() < 1e-10);
        assert!((fit.estimate[1] - (mean1.ln() - mean0.ln())).abs() < 1e-10);
    }
}
