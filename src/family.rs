//! Loss functions of the supported generalized linear models.
//!
//! Every family uses its canonical link, so with the linear predictor `η = xᵀθ` the
//! per-row loss, gradient and Hessian take the common form
//!
//! ```text
//! f(x, y; θ)  = b(η) − y·η
//! ∇f(x, y; θ) = (b′(η) − y)·x
//! ∇²f(x, y; θ) = b″(η)·x·xᵀ
//! ```
//!
//! with `b(η) = log(1 + eᶯ)` (logistic), `b(η) = eᶯ` (Poisson) and `b(η) = η²/2`
//! (Gaussian, least squares). The loss is the negative log-likelihood up to terms that do
//! not depend on θ, so its minimiser is the maximum-likelihood estimate that R's `glm` and
//! statsmodels' `GLM` return.

use std::fmt;
use std::str::FromStr;

/// Model family: the distribution of the response and its canonical link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Binomial response in {0, 1} with the logit link.
    Logistic,
    /// Count response with the log link.
    Poisson,
    /// Continuous response with the identity link (least squares).
    Gaussian,
}

/// Per-row derivative weights of the loss at one linear predictor value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowTerms {
    /// Loss `b(η) − y·η`.
    pub loss: f64,
    /// Gradient weight `b′(η) − y`; the gradient is this times `x`.
    pub gradient_weight: f64,
    /// Hessian weight `b″(η)`; the Hessian is this times `x·xᵀ`.
    pub hessian_weight: f64,
}

impl Family {
    /// All families, in the order the documentation lists them.
    pub const ALL: [Family; 3] = [Family::Logistic, Family::Poisson, Family::Gaussian];

    /// Name used on the command line, in SQL and in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Family::Logistic => "logistic",
            Family::Poisson => "poisson",
            Family::Gaussian => "gaussian",
        }
    }

    /// Computes the loss and its derivative weights at linear predictor `eta` for response `y`.
    #[inline]
    pub fn row_terms(self, eta: f64, y: f64) -> RowTerms {
        match self {
            Family::Logistic => {
                // log(1 + e^η) computed without overflow for large |η|.
                let softplus = if eta > 0.0 {
                    eta + (-eta).exp().ln_1p()
                } else {
                    eta.exp().ln_1p()
                };
                let mu = logistic(eta);
                RowTerms {
                    loss: softplus - y * eta,
                    gradient_weight: mu - y,
                    hessian_weight: mu * (1.0 - mu),
                }
            }
            Family::Poisson => {
                let mu = eta.exp();
                RowTerms {
                    loss: mu - y * eta,
                    gradient_weight: mu - y,
                    hessian_weight: mu,
                }
            }
            Family::Gaussian => {
                let residual = eta - y;
                RowTerms {
                    loss: 0.5 * residual * residual,
                    gradient_weight: residual,
                    hessian_weight: 1.0,
                }
            }
        }
    }

    /// Bounds the linear predictor as R's links bound the fitted mean: `|η| ≤ ln(1/ε)` for
    /// the logit, so that `μ ∈ [ε/(1+ε), 1/(1+ε)]`, and `η ≥ ln ε` for the log link, with
    /// ε the machine epsilon. The identity link is left as it is.
    pub fn bound_linear_predictor(self, eta: f64) -> f64 {
        let bound = (1.0 / f64::EPSILON).ln();
        match self {
            Family::Logistic => eta.clamp(-bound, bound),
            Family::Poisson => eta.max(-bound),
            Family::Gaussian => eta,
        }
    }

    /// Checks that `y` is a valid response for this family and returns a description of
    /// the problem otherwise.
    pub fn check_response(self, y: f64) -> Result<(), &'static str> {
        match self {
            Family::Logistic if y != 0.0 && y != 1.0 => Err("must be 0 or 1 for logistic"),
            Family::Poisson if y < 0.0 => Err("must be non-negative for poisson"),
            Family::Poisson if y.fract() != 0.0 => Err("must be an integer count for poisson"),
            _ => Ok(()),
        }
    }
}

/// The logistic function `1 / (1 + e^−η)`, evaluated without overflow.
#[inline]
pub(crate) fn logistic(eta: f64) -> f64 {
    if eta >= 0.0 {
        1.0 / (1.0 + (-eta).exp())
    } else {
        let e = eta.exp();
        e / (1.0 + e)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "logistic" | "binomial" | "logit" => Ok(Family::Logistic),
            "poisson" => Ok(Family::Poisson),
            "gaussian" | "normal" | "linear" | "ols" => Ok(Family::Gaussian),
            other => Err(format!(
                "unknown family '{other}': expected one of logistic, poisson, gaussian"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central finite difference of the loss, the closed-form check of each weight.
    fn numeric_derivative(family: Family, eta: f64, y: f64) -> (f64, f64) {
        let h = 1e-5;
        let up = family.row_terms(eta + h, y);
        let down = family.row_terms(eta - h, y);
        let first = (up.loss - down.loss) / (2.0 * h);
        let second = (up.gradient_weight - down.gradient_weight) / (2.0 * h);
        (first, second)
    }

    #[test]
    fn weights_match_finite_differences() {
        for family in Family::ALL {
            for &(eta, y) in &[(-2.0, 0.0), (0.3, 1.0), (1.7, 3.0), (0.0, 0.0)] {
                let terms = family.row_terms(eta, y);
                let (first, second) = numeric_derivative(family, eta, y);
                assert!(
                    (terms.gradient_weight - first).abs() < 1e-7,
                    "{family} {eta}"
                );
                assert!(
                    (terms.hessian_weight - second).abs() < 1e-7,
                    "{family} {eta}"
                );
            }
        }
    }

    #[test]
    fn bounded_linear_predictor_matches_r_links() {
        // R's logit link maps η > 30 to μ = (1/ε) / (1 + 1/ε) = 1 / (1 + ε).
        let eps = f64::EPSILON;
        let mu = logistic(Family::Logistic.bound_linear_predictor(1e6));
        assert_eq!(mu, 1.0 / (1.0 + eps));
        let mu = logistic(Family::Logistic.bound_linear_predictor(-1e6));
        assert!((mu - eps / (1.0 + eps)).abs() < 1e-30, "{mu}");
        assert!((Family::Poisson.bound_linear_predictor(-1e6).exp() - eps).abs() < 1e-30);
        assert_eq!(Family::Poisson.bound_linear_predictor(5.0), 5.0);
        assert_eq!(Family::Gaussian.bound_linear_predictor(-1e6), -1e6);
    }

    #[test]
    fn logistic_loss_is_finite_for_extreme_eta() {
        let terms = Family::Logistic.row_terms(800.0, 0.0);
        assert_eq!(terms.loss, 800.0);
        assert_eq!(terms.gradient_weight, 1.0);
        let terms = Family::Logistic.row_terms(-800.0, 1.0);
        assert_eq!(terms.loss, 800.0);
    }

    #[test]
    fn responses_are_checked_per_family() {
        assert!(Family::Logistic.check_response(2.0).is_err());
        assert!(Family::Poisson.check_response(-1.0).is_err());
        assert!(Family::Poisson.check_response(1.5).is_err());
        assert!(Family::Gaussian.check_response(-3.25).is_ok());
    }
}
