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
    /// Whether a machine whose fit diverges still sends statistics, as R's `glm` returns
    /// a fit with a warning, instead of being left out. See [`fit_local`].
    pub keep_diverged: bool,
}

impl Default for NewtonOptions {
    fn default() -> Self {
        NewtonOptions {
            tolerance: 1e-10,
            max_iterations: 100,
            max_halvings: 40,
            keep_diverged: false,
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
///
/// With `options.keep_diverged`, a machine whose fit diverges (separation, a Hessian
/// that is not positive definite, no convergence) sends statistics anyway, as R's `glm`
/// returns a fit with a warning. It sends the last Newton-Raphson iterate with
/// `converged = false`, and the sandwich variances there with the linear predictor
/// bounded as R's links bound it (see [`bounded_sandwich_diagonal`]). Too few rows, a
/// column that is zero on every row, and an exact fit (zero variances) still fail.
pub fn fit_local(
    family: Family,
    rows: Rows<'_>,
    n_params: usize,
    options: &NewtonOptions,
) -> LocalFit {
    let mut last = Vec::new();
    let fit = fit_local_tracking(family, rows, n_params, options, &mut last);
    if fit.is_usable() || !options.keep_diverged || last.len() != n_params {
        return fit;
    }
    diverged_fit(family, rows, last, fit)
}

/// Returns the statistics that a machine whose fit `failed` sends under
/// [`NewtonOptions::keep_diverged`]: the last Newton-Raphson iterate `last` with the
/// bounded sandwich variances there. It returns `failed` itself when a column is zero on
/// every row, because R's `glm` reports such an aliased coefficient as `NA` and a filler
/// value would enter the aggregates as if it were an estimate, and when the variances are
/// not all positive.
fn diverged_fit(family: Family, rows: Rows<'_>, last: Vec<f64>, failed: LocalFit) -> LocalFit {
    let p = last.len();
    let aliased = (0..p).any(|c| rows.x.chunks_exact(p).all(|x| x[c] == 0.0));
    if aliased {
        return failed;
    }
    let Some(variance) = bounded_sandwich_diagonal(family, rows, &last) else {
        return failed;
    };
    LocalFit {
        estimate: last,
        variance,
        converged: false,
        failure: None,
        ..failed
    }
}

/// Returns the diagonal of the sandwich `H⁻¹ J H⁻¹` of eq. (6) at `theta`, with the
/// linear predictor bounded by [`Family::bound_linear_predictor`]. At a logistic fit that
/// ran off towards infinity the Hessian then stays invertible and the variances finite.
/// Returns `None` when `H` is still singular, as for collinear columns, or when a
/// variance is not positive, as for an exact fit.
fn bounded_sandwich_diagonal(family: Family, rows: Rows<'_>, theta: &[f64]) -> Option<Vec<f64>> {
    let p = theta.len();
    let derivatives = DerivativeMoments::from_rows_bounded(family, theta, rows).finish();
    // The fitted probabilities can be as close to 0 or 1 as 1e-16, so Cholesky may fail
    // where a pivoted LU still inverts.
    let inverse = linalg::inverse_spd(&derivatives.hessian, p)
        .or_else(|| linalg::inverse_general(&derivatives.hessian, p))?;
    let full = linalg::sandwich(&inverse, &derivatives.gradient_covariance, p);
    let diagonal: Vec<f64> = (0..p).map(|l| full[l * p + l]).collect();
    diagonal
        .iter()
        .all(|v| v.is_finite() && *v > 0.0)
        .then_some(diagonal)
}

fn fit_local_tracking(
    family: Family,
    rows: Rows<'_>,
    n_params: usize,
    options: &NewtonOptions,
    last: &mut Vec<f64>,
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
    last.clone_from(&theta);
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
        last.clone_from(&theta);
        if change <= options.tolerance * scale {
            converged = true;
            break;
        }
    }

    if !converged {
        // A constant 0/1 logistic response, or an all-zero Poisson one, has its supremum at
        // infinity, so more iterations cannot help.
        let first = rows.y.first().copied().unwrap_or(0.0);
        let constant = rows.y.iter().all(|&y| y == first);
        let hint = match family {
            Family::Logistic | Family::Poisson
                if constant && (family == Family::Logistic || first == 0.0) =>
            {
                format!("; the response is {first} on every row, so the likelihood has no maximum")
            }
            Family::Logistic => "; raise the iteration limit (--max-iterations, max_iterations \
                                 in SQL), or check whether the features perfectly separate the \
                                 response"
                .to_string(),
            _ => {
                "; raise the iteration limit (--max-iterations, max_iterations in SQL)".to_string()
            }
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

    if family == Family::Logistic
        && let Some(shift) = remaining_newton_shift(rows, &current)
    {
        return LocalFit::failed(
            n,
            iterations,
            format!(
                "the response is perfectly separated by the features: the likelihood keeps \
                 rising as the coefficients grow (one more Newton step would move a linear \
                 predictor by {shift:.2}, and {:.0}% of the fitted probabilities are \
                 numerically 0 or 1)",
                100.0 * saturated_fraction(rows, &theta)
            ),
        );
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

/// Largest change of a linear predictor `xᵢᵀθ` that one more Newton step may make at a
/// converged fit. At a maximum of the likelihood the full step `δ = ∇²F_j⁻¹ ∇F_j` is of
/// the order of the tolerance. Under (quasi-)complete separation the likelihood has no
/// maximum: the Newton-Raphson iterates run off to infinity while the loss of the
/// separated rows, `log(1 + e^−|η|) ≈ e^−|η|`, shrinks below rounding, so step halving
/// stalls and the relative step test can pass. There each full step still moves the
/// linear predictors of the separated rows by about 1. R's `glm` only warns in this case;
/// rose drops the machine instead.
const SEPARATION_SHIFT: f64 = 1e-3;

/// Returns the largest `|xᵢᵀδ|` of the full Newton step `δ` at the point of `moments`
/// when it exceeds [`SEPARATION_SHIFT`] (or `∞` when the Hessian is singular there), and
/// `None` when the point is a maximum of the likelihood.
fn remaining_newton_shift(rows: Rows<'_>, moments: &DerivativeMoments) -> Option<f64> {
    let Some(step) = linalg::solve_spd(&moments.hessian_mean, &moments.gradient_mean) else {
        return Some(f64::INFINITY);
    };
    let p = step.len();
    let shift = (0..rows.len())
        .map(|i| {
            let x = &rows.x[i * p..(i + 1) * p];
            x.iter().zip(&step).map(|(a, b)| a * b).sum::<f64>().abs()
        })
        .fold(0.0, f64::max);
    (shift > SEPARATION_SHIFT).then_some(shift)
}

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

    /// Fits an intercept and a slope to `x` (row-major pairs) and `y`, and checks that the
    /// fit fails as separated.
    fn assert_separated(x: &[f64], y: &[f64]) {
        let fit = fit_local(
            Family::Logistic,
            Rows { x, y },
            2,
            &NewtonOptions::default(),
        );
        assert!(!fit.is_usable());
        assert!(fit.failure.unwrap().contains("separat"));
    }

    #[test]
    fn separated_logistic_data_fail_cleanly() {
        assert_separated(
            &[1.0, -2.0, 1.0, -1.0, 1.0, 1.0, 1.0, 2.0],
            &[0.0, 0.0, 1.0, 1.0],
        );
    }

    /// Quasi-complete separation: x ≤ 0 gives y = 0 and x ≥ 0 gives y = 1, with both
    /// labels only at x = 0, so the slope's likelihood rises without bound.
    #[test]
    fn quasi_separated_logistic_data_fail_cleanly() {
        assert_separated(
            &[1.0, -2.0, 1.0, -1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 2.0],
            &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        );
    }

    /// Overlapping labels with a wide feature: the maximum exists although most fitted
    /// probabilities are within 1e-13 of 0 or 1. The fit must be kept and solve the score
    /// equations Σᵢ (pᵢ − yᵢ) xᵢ = 0.
    #[test]
    fn confident_but_overlapping_logistic_data_fit() {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for k in -200..=200 {
            x.extend([1.0, f64::from(k)]);
            // Labels overlap only for |k| ≤ 1.
            y.push(if k > 0 || k == -1 { 1.0 } else { 0.0 });
        }
        y[200] = 1.0; // k = 0
        y[201] = 0.0; // k = 1
        let fit = fit_local(
            Family::Logistic,
            Rows { x: &x, y: &y },
            2,
            &NewtonOptions::default(),
        );
        assert!(fit.is_usable(), "{:?}", fit.failure);
        let mut score = [0.0; 2];
        for (row, &label) in x.chunks(2).zip(&y) {
            let eta = row[0] * fit.estimate[0] + row[1] * fit.estimate[1];
            let p = 1.0 / (1.0 + (-eta).exp());
            score[0] += (p - label) * row[0];
            score[1] += (p - label) * row[1];
        }
        assert!(score.iter().all(|s| s.abs() < 1e-9), "{score:?}");
        let saturated = x
            .chunks(2)
            .filter(|row| (row[0] * fit.estimate[0] + row[1] * fit.estimate[1]).abs() > 30.0)
            .count();
        assert!(saturated > 200, "only {saturated} saturated rows");
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

    /// Rows `[1, x]` with y = 1 exactly when x > 0: completely separated.
    fn separated_rows() -> (Vec<f64>, Vec<f64>) {
        let values = [-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0];
        let x = values.iter().flat_map(|&v| [1.0, v]).collect();
        let y = values
            .iter()
            .map(|&v| f64::from(u8::from(v > 0.0)))
            .collect();
        (x, y)
    }

    fn keep_diverged() -> NewtonOptions {
        NewtonOptions {
            keep_diverged: true,
            ..NewtonOptions::default()
        }
    }

    #[test]
    fn diverged_fit_is_kept_on_request() {
        let (x, y) = separated_rows();
        let rows = Rows { x: &x, y: &y };
        let fit = fit_local(Family::Logistic, rows, 2, &keep_diverged());
        assert!(fit.failure.is_none(), "{:?}", fit.failure);
        assert!(!fit.converged);
        // The slope runs off towards +∞ and the intercept stays near 0 by symmetry.
        assert!(fit.estimate[1] > 5.0, "slope {}", fit.estimate[1]);
        assert!(
            fit.estimate[0].abs() < 1e-6,
            "intercept {}",
            fit.estimate[0]
        );
        for v in &fit.variance {
            assert!(v.is_finite(), "variance {v}");
            assert!(*v > 0.0, "variance {v}");
        }
    }

    #[test]
    fn diverged_fit_is_dropped_by_default() {
        let (x, y) = separated_rows();
        let rows = Rows { x: &x, y: &y };
        let fit = fit_local(Family::Logistic, rows, 2, &NewtonOptions::default());
        assert!(!fit.is_usable());
    }

    #[test]
    fn zero_column_fails_even_when_kept() {
        // A column that is zero on every row is aliased: R's glm reports NA for it, so
        // the machine keeps its failure rather than send a filler.
        let (x, y) = separated_rows();
        let with_zero: Vec<f64> = x.chunks(2).flat_map(|r| [r[0], r[1], 0.0]).collect();
        let rows = Rows {
            x: &with_zero,
            y: &y,
        };
        let fit = fit_local(Family::Logistic, rows, 3, &keep_diverged());
        assert!(!fit.is_usable());
        assert!(fit.failure.unwrap().contains("singular"));
    }

    #[test]
    fn exact_fit_fails_even_when_kept() {
        // y = 1 + 2x exactly: the residual variance, and with it every sandwich variance,
        // is zero, so there is nothing a coordinator could weigh.
        let x = [1.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0];
        let y = [1.0, 3.0, 5.0, 7.0];
        let rows = Rows { x: &x, y: &y };
        let fit = fit_local(Family::Gaussian, rows, 2, &keep_diverged());
        assert!(!fit.is_usable());
        assert!(fit.failure.unwrap().contains("exact"));
    }

    #[test]
    fn constant_response_reason_names_it() {
        // All-zero counts: exp(η) → 0 lowers the loss without end.
        let x: Vec<f64> = (0..20).flat_map(|i| [1.0, f64::from(i % 4)]).collect();
        let y = [0.0; 20];
        let fit = fit_local(
            Family::Poisson,
            Rows { x: &x, y: &y },
            2,
            &NewtonOptions::default(),
        );
        let reason = fit
            .failure
            .expect("an all-zero Poisson response has no maximum");
        assert!(reason.contains("response is 0 on every row"), "{reason}");
    }

    #[test]
    fn too_few_rows_fail_even_when_kept() {
        let (x, y) = separated_rows();
        let rows = Rows {
            x: &x[..4],
            y: &y[..2],
        };
        let fit = fit_local(Family::Logistic, rows, 2, &keep_diverged());
        assert!(!fit.is_usable());
    }

    #[test]
    fn bounded_sandwich_matches_intercept_closed_form() {
        // Intercept-only logistic model at its maximum, μ = ȳ = 0.3: H = J = μ(1 − μ), so
        // the sandwich variance is 1 / (μ(1 − μ)).
        let y = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let x = [1.0; 10];
        let theta = [(0.3f64 / 0.7).ln()];
        let rows = Rows { x: &x, y: &y };
        let variance = bounded_sandwich_diagonal(Family::Logistic, rows, &theta).unwrap();
        let expected = 1.0 / (0.3 * 0.7);
        assert!((variance[0] - expected).abs() < 1e-12, "{}", variance[0]);
    }
}
