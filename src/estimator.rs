//! The coordinator: robust aggregation of the machines' statistics and the one-step
//! correction, for every estimator that `rose` offers.
//!
//! The coordinator never reads rows. It receives the first-round [`LocalFit`]s and requests from a
//! [`DerivativeSource`] the machines' gradients and Hessians at broadcast parameter
//! values, so the same code runs over DataFusion and over in-memory test data.

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use statrs::distribution::{ContinuousCDF, Normal};

use crate::aggregate::{self, QuantileLevels};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::attack::Attack;
use crate::error::{Result, RoseError};
use crate::linalg;
use crate::local_fit::LocalFit;
use crate::moments::LocalDerivatives;

/// The estimators `rose` computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Estimator {
    /// Row-weighted mean of the local estimates (Zhang, Duchi and Wainwright 2013).
    Avg,
    /// One Newton step from the mean with averaged gradient and Hessian (Huang and Huo
    /// 2019, eq. 12).
    OneStep,
    /// Coordinate-wise median of the local estimates.
    Med,
    /// VRMOL of the local estimates with the central machine's scales (eq. 8 and 5).
    Vrmol,
    /// One Newton step from the median with median gradient and median Hessian.
    RoseMed,
    /// Algorithm 1 (eq. 19): VRMOL start, VRMOL gradient and Hessian, scales from the
    /// central machine.
    Rose,
    /// Algorithm 2 (eq. 20): as `Rose`, with every scale the median of the machines' own
    /// variance estimates, so a Byzantine or empty central machine is tolerated.
    RoseRv,
    /// Communication-efficient surrogate likelihood (Jordan, Lee and Yang 2019): Newton
    /// iterations from the central machine's estimate with the row-weighted mean gradient
    /// and the central machine's Hessian.
    Csl,
    /// VRMOL-aggregated gradient with the central machine's Hessian (Tu, Liu, Mao and
    /// Chen 2021), iterated like `Csl`.
    Vrmom,
}

impl Estimator {
    /// All estimators, in documentation order.
    pub const ALL: [Estimator; 9] = [
        Estimator::Avg,
        Estimator::OneStep,
        Estimator::Med,
        Estimator::Vrmol,
        Estimator::RoseMed,
        Estimator::Rose,
        Estimator::RoseRv,
        Estimator::Csl,
        Estimator::Vrmom,
    ];

    /// Name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Estimator::Avg => "avg",
            Estimator::OneStep => "onestep",
            Estimator::Med => "med",
            Estimator::Vrmol => "vrmol",
            Estimator::RoseMed => "rose-med",
            Estimator::Rose => "rose",
            Estimator::RoseRv => "rose-rv",
            Estimator::Csl => "csl",
            Estimator::Vrmom => "vrmom",
        }
    }

    /// Returns whether the estimator needs the second round (gradients and Hessians).
    pub fn uses_second_round(self) -> bool {
        !matches!(self, Estimator::Avg | Estimator::Med | Estimator::Vrmol)
    }
}

impl fmt::Display for Estimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Estimator {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase().replace('_', "-");
        Estimator::ALL
            .into_iter()
            .find(|e| e.name() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = Estimator::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "unknown estimator '{s}': expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Settings of the coordinator.
#[derive(Clone, Debug, PartialEq)]
pub struct EstimatorOptions {
    /// Estimator to compute.
    pub estimator: Estimator,
    /// Number of quantile levels `K` of VRMOL.
    pub k_quantiles: usize,
    /// Confidence level of the intervals, in (0, 1).
    pub confidence: f64,
    /// Index of the central machine.
    pub central: usize,
    /// Machines whose transmitted statistics are corrupted, and how.
    pub byzantine: Vec<usize>,
    /// Attack applied to the statistics of the machines in `byzantine`.
    pub attack: Option<Attack>,
    /// Rounds of the iterative estimators `csl` and `vrmom`.
    pub iterations: usize,
    /// Seed of the random attacks.
    pub seed: u64,
    /// Switch, for `rose` only, that scales the VRMOL start with the central machine's
    /// sandwich variances at its own estimate θ̂₁ (those of its local fit). Eq. (5) evaluates
    /// the sandwich at the median θ̂_med instead, so this departs from Algorithm 1. The
    /// experiment harness offers it only to isolate which scale the paper's tables follow.
    pub start_scale_at_local_fit: bool,
}

impl EstimatorOptions {
    /// Returns options for `estimator` with the defaults of the command line: K = 10,
    /// 95% intervals, machine 0 central, no attack, 10 iterations.
    pub fn new(estimator: Estimator) -> Self {
        EstimatorOptions {
            estimator,
            k_quantiles: 10,
            confidence: 0.95,
            central: 0,
            byzantine: Vec::new(),
            attack: None,
            iterations: 10,
            seed: 0,
            start_scale_at_local_fit: false,
        }
    }
}

impl EstimatorOptions {
    /// Checks the settings against `n_machines` machines.
    pub fn validate(&self, n_machines: usize) -> Result<()> {
        if self.k_quantiles == 0 || self.k_quantiles > 10_000 {
            return Err(RoseError::option(
                "--quantiles",
                format!(
                    "K = {} is out of range: use an integer from 1 to 10000 (default 10)",
                    self.k_quantiles
                ),
            ));
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(RoseError::option(
                "--confidence",
                format!("{} is not in (0, 1): use for example 0.95", self.confidence),
            ));
        }
        if self.central >= n_machines {
            return Err(RoseError::option(
                "--central",
                "central machine index out of range",
            ));
        }
        if self.iterations == 0 || self.iterations > 10_000 {
            return Err(RoseError::option(
                "--iterations",
                format!(
                    "{} is out of range: use an integer from 1 to 10000",
                    self.iterations
                ),
            ));
        }
        if 2 * self.byzantine.len() >= n_machines && !self.byzantine.is_empty() {
            return Err(RoseError::option(
                "--byzantine-machines",
                format!(
                    "{} of {n_machines} machines would be Byzantine; the medians tolerate fewer than half",
                    self.byzantine.len()
                ),
            ));
        }
        if !self.byzantine.is_empty() && self.attack.is_none() {
            return Err(RoseError::option(
                "--attack",
                "Byzantine machines were named but no attack was given: add for example --attack scale:-3",
            ));
        }
        Ok(())
    }
}

/// Source of the second-round statistics: machines' loss derivatives at a parameter value.
pub trait DerivativeSource {
    /// Computes every machine's derivatives at `theta`, in machine order; `None` for a
    /// machine without rows.
    fn all_derivatives(
        &self,
        theta: &[f64],
    ) -> impl Future<Output = Result<Vec<Option<LocalDerivatives>>>> + Send;

    /// Computes one machine's derivatives at `theta` from its own rows.
    fn machine_derivatives(
        &self,
        theta: &[f64],
        machine: usize,
    ) -> impl Future<Output = Result<Option<LocalDerivatives>>> + Send;

    /// Computes one machine's mean gradient, gradient variances and mean Hessian at
    /// `theta`; the second moments of the Hessian may be left empty. The default computes
    /// everything.
    fn machine_hessian(
        &self,
        theta: &[f64],
        machine: usize,
    ) -> impl Future<Output = Result<Option<LocalDerivatives>>> + Send {
        self.machine_derivatives(theta, machine)
    }

    /// Computes every machine's mean gradient and gradient variances at `theta`; the
    /// Hessian fields may be left empty. The default computes everything.
    fn all_gradients(
        &self,
        theta: &[f64],
    ) -> impl Future<Output = Result<Vec<Option<LocalDerivatives>>>> + Send {
        self.all_derivatives(theta)
    }
}

/// Per-machine diagnostics of an estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineDiagnostics {
    /// Rows `n_j`.
    pub rows: u64,
    /// Whether the local Newton-Raphson converged.
    pub converged: bool,
    /// Local Newton iterations.
    pub iterations: u32,
    /// Reason the machine's statistics could not be used, if they could not.
    pub unusable: Option<String>,
    /// Largest standardised distance of the machine's statistics from the aggregate:
    /// `max_l |θ̂_jl − θ̂_l| / (σ_l/√n_j)`, and the same for the gradient when there is a
    /// second round. Byzantine machines usually sit far out.
    pub max_abs_z: f64,
    /// Whether `max_abs_z` exceeds the outlier threshold.
    pub outlier: bool,
    /// Whether the statistics were corrupted by fault injection.
    pub injected: bool,
}

/// The result of the coordinator.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimation {
    /// Point estimate.
    pub estimate: Vec<f64>,
    /// Standard errors.
    pub std_error: Vec<f64>,
    /// Reported covariance matrix (`p × p`, row-major), before the efficiency factor is
    /// applied to its diagonal; empty for estimators that report standard errors only.
    pub covariance: Vec<f64>,
    /// Factor applied to the diagonal: 1 for mean-based estimators, π/2 for the median,
    /// `D_K` for VRMOL; 1 whenever fewer than three machines take part.
    pub efficiency_factor: f64,
    /// Effective row count that the covariance is divided by.
    pub effective_rows: f64,
    /// Outlier threshold on `max_abs_z`.
    pub outlier_threshold: f64,
    /// One entry per machine, in machine order.
    pub machines: Vec<MachineDiagnostics>,
    /// Warnings for the user (few machines, fallbacks taken).
    pub warnings: Vec<String>,
    /// Iterates of `csl` and `vrmom`, starting point first; empty for other estimators.
    pub path: Vec<Vec<f64>>,
    /// Whether an iterative estimator diverged (an iterate not finite or exploding).
    pub diverged: bool,
}

/// Family-wise false-alarm rate of the per-machine outlier flag.
const OUTLIER_LEVEL: f64 = 0.01;

/// Standard normal distribution.
fn normal() -> Normal {
    Normal::new(0.0, 1.0).expect("N(0, 1) has valid parameters")
}

/// Runs the coordinator on the first-round fits and the second-round source.
///
/// `ids` names the machines (for messages) in the same order as `fits`.
pub async fn estimate<S: DerivativeSource>(
    options: &EstimatorOptions,
    ids: &[String],
    fits: Vec<LocalFit>,
    source: &S,
) -> Result<Estimation> {
    let m = fits.len();
    assert_eq!(ids.len(), m, "one id per machine");
    options.validate(m)?;
    let levels = QuantileLevels::new(options.k_quantiles);
    let mut warnings = Vec::new();
    if m <= 2 {
        warnings.push(format!(
            "only {m} machine(s): the median is {}, so no Byzantine machine can be tolerated",
            if m == 1 {
                "the machine's own estimate"
            } else {
                "the mean of the two"
            }
        ));
    }
    let injected: Vec<bool> = (0..m).map(|j| options.byzantine.contains(&j)).collect();

    // Round 1: the messages as received, after any injected corruption.
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut unusable: Vec<Option<String>> = fits.iter().map(|f| f.failure.clone()).collect();
    let mut first = fits.clone();
    if let Some(attack) = options.attack {
        let mut estimates: Vec<Vec<f64>> = first.iter().map(|f| f.estimate.clone()).collect();
        let mut variances: Vec<Vec<f64>> = first.iter().map(|f| f.variance.clone()).collect();
        attack.corrupt(&mut estimates, &injected, &mut rng);
        attack.corrupt(&mut variances, &injected, &mut rng);
        for ((fit, e), v) in first.iter_mut().zip(estimates).zip(variances) {
            fit.estimate = e;
            fit.variance = v;
        }
    }
    for (j, fit) in first.iter_mut().enumerate() {
        let finite = fit
            .estimate
            .iter()
            .chain(&fit.variance)
            .all(|v| v.is_finite());
        if unusable[j].is_none() && !finite {
            unusable[j] = Some("sent non-finite statistics".to_string());
        }
    }
    let usable: Vec<usize> = (0..m).filter(|&j| unusable[j].is_none()).collect();
    require_half(&usable, m, ids, &unusable, "round 1 (local fits)")?;
    let uses_central_rows = matches!(
        options.estimator,
        Estimator::Vrmol | Estimator::OneStep | Estimator::RoseMed | Estimator::Rose
    );
    if let Some(reason) = &unusable[options.central]
        && uses_central_rows
    {
        warnings.push(format!(
            "the central machine '{}' has no usable local fit ({reason}), but {} still takes \
             scales or standard errors from its rows, so they may be wrong; name another \
             machine with --central or use --estimator rose-rv",
            ids[options.central], options.estimator
        ));
    }
    let p = first[usable[0]].estimate.len();
    let rows: Vec<u64> = fits.iter().map(|f| f.rows).collect();
    let used_rows: Vec<u64> = usable.iter().map(|&j| rows[j]).collect();
    let n_eff = aggregate::effective_rows(&used_rows);
    let total_rows: f64 = used_rows.iter().map(|&n| n as f64).sum();

    let coordinate =
        |l: usize| -> Vec<f64> { usable.iter().map(|&j| first[j].estimate[l]).collect() };
    let theta_median: Vec<f64> = (0..p)
        .map(|l| aggregate::median(coordinate(l)).unwrap_or(f64::NAN))
        .collect();
    let variance_median: Vec<f64> = (0..p)
        .map(|l| {
            aggregate::median(usable.iter().map(|&j| first[j].variance[l])).unwrap_or(f64::NAN)
        })
        .collect();
    let theta_avg: Vec<f64> = (0..p)
        .map(|l| {
            usable
                .iter()
                .map(|&j| first[j].estimate[l] * (rows[j] as f64 / total_rows))
                .sum()
        })
        .collect();

    // Scales of Algorithm 1 (eq. 5: the central machine at the median) or Algorithm 2
    // (eq. 6: the median of the machines' own variances).
    let central_scale = || async {
        let central = source
            .machine_derivatives(&theta_median, options.central)
            .await?
            .ok_or_else(|| no_central_rows(ids, options.central))?;
        central_sandwich_scale(&central, ids, options.central)
    };
    let vrmol_theta = |scale: &[f64]| -> Vec<f64> {
        (0..p)
            .map(|l| {
                aggregate::vrmol(&coordinate(l), &used_rows, scale[l], &levels).unwrap_or(f64::NAN)
            })
            .collect()
    };
    let median_factor = if usable.len() >= 3 {
        std::f64::consts::FRAC_PI_2
    } else {
        1.0
    };
    let vrmol_factor = if usable.len() >= 3 { levels.d_k() } else { 1.0 };

    let mut result = match options.estimator {
        Estimator::Avg => {
            // Var(Σ w_j θ̂_j) = Σ w_j² σ̂²_j / n_j with w_j = n_j / N.
            let std_error = (0..p)
                .map(|l| {
                    usable
                        .iter()
                        .map(|&j| {
                            let w = rows[j] as f64 / total_rows;
                            w * w * first[j].variance[l] / rows[j] as f64
                        })
                        .sum::<f64>()
                        .sqrt()
                })
                .collect();
            partial_result(theta_avg.clone(), std_error, 1.0, total_rows)
        }
        Estimator::Med => {
            let std_error = variance_median
                .iter()
                .map(|v| (median_factor * v / n_eff).sqrt())
                .collect();
            partial_result(theta_median.clone(), std_error, median_factor, n_eff)
        }
        Estimator::Vrmol => {
            let scale = central_scale().await?;
            let std_error = scale
                .iter()
                .map(|s| (vrmol_factor * s * s / n_eff).sqrt())
                .collect();
            partial_result(vrmol_theta(&scale), std_error, vrmol_factor, n_eff)
        }
        Estimator::Csl | Estimator::Vrmom => {
            let central = &fits[options.central];
            if !central.is_usable() {
                return Err(RoseError::option(
                    "--central",
                    format!(
                        "{} starts from the central machine's local estimate, but machine '{}' has none ({}); name another with --central",
                        options.estimator,
                        ids[options.central],
                        central.failure.as_deref().unwrap_or("unusable")
                    ),
                ));
            }
            let start = central.estimate.clone();
            iterate_central_hessian(
                options, ids, source, &levels, start, &rows, &injected, &mut rng,
            )
            .await?
        }
        Estimator::OneStep | Estimator::RoseMed | Estimator::Rose | Estimator::RoseRv => {
            let start = match options.estimator {
                Estimator::OneStep => theta_avg.clone(),
                Estimator::RoseMed => theta_median.clone(),
                Estimator::Rose if options.start_scale_at_local_fit => {
                    let central_fit = &fits[options.central];
                    if !central_fit.is_usable() {
                        return Err(no_central_rows(ids, options.central));
                    }
                    let scale: Vec<f64> = central_fit.variance.iter().map(|v| v.sqrt()).collect();
                    vrmol_theta(&scale)
                }
                Estimator::Rose => vrmol_theta(&central_scale().await?),
                _ => vrmol_theta(&variance_median.iter().map(|v| v.sqrt()).collect::<Vec<_>>()),
            };
            let factor = match options.estimator {
                Estimator::OneStep => 1.0,
                Estimator::RoseMed => median_factor,
                _ => vrmol_factor,
            };
            second_round(
                options,
                ids,
                source,
                &levels,
                &start,
                &rows,
                &injected,
                &mut unusable,
                factor,
                &mut warnings,
                &mut rng,
            )
            .await?
        }
    };

    // Per-machine diagnostics: standardised distance of each local estimate from the result.
    // Bonferroni bound: an honest machine set is flagged with probability about 1%
    // over all machines, coordinates and both rounds.
    let comparisons = 2.0 * (p * m) as f64;
    let threshold = normal().inverse_cdf(1.0 - OUTLIER_LEVEL / (2.0 * comparisons));
    result.outlier_threshold = threshold;
    result.machines = (0..m)
        .map(|j| {
            let fit = &fits[j];
            let mut max_abs_z = result.machine_gradient_z.get(j).copied().unwrap_or(0.0);
            if unusable[j].is_none() {
                let coordinates = variance_median
                    .iter()
                    .zip(&first[j].estimate)
                    .zip(&result.estimate);
                for ((variance, local), aggregated) in coordinates {
                    let sd = (variance / rows[j] as f64).sqrt();
                    let z = (local - aggregated).abs() / sd;
                    // NaN (an unusable scale) must stay visible rather than be skipped.
                    if z.is_nan() || z > max_abs_z {
                        max_abs_z = z;
                    }
                }
            }
            MachineDiagnostics {
                rows: fit.rows,
                converged: fit.converged,
                iterations: fit.iterations,
                unusable: unusable[j].clone(),
                max_abs_z,
                // A NaN distance counts as an outlier.
                outlier: unusable[j].is_none()
                    && !matches!(
                        max_abs_z.partial_cmp(&threshold),
                        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                    ),
                injected: injected[j],
            }
        })
        .collect();
    let usable_count = result
        .machines
        .iter()
        .filter(|d| d.unusable.is_none())
        .count();
    let outliers = result.machines.iter().filter(|d| d.outlier).count();
    if usable_count >= 3 && 2 * outliers > usable_count {
        warnings.push(format!(
            "{outliers} of {usable_count} usable machines lie far from the aggregate, so the \
             estimate is unreliable; Byzantine statistics bias the medians most when machines \
             have few rows for the number of features, so compare estimators and the machine table"
        ));
    }
    let diverged = result
        .machines
        .iter()
        .filter(|d| d.unusable.is_none() && !d.converged)
        .count();
    if diverged > 0 {
        warnings.push(format!(
            "{diverged} machine(s) sent local fits that did not converge (converged = no in the \
             machine table) and were kept by the keep-diverged option; their estimates are the last \
             Newton-Raphson iterates"
        ));
    }
    let missing = (0..p).filter(|&l| !result.std_error[l].is_finite()).count();
    if missing > 0 {
        warnings.push(format!(
            "{missing} standard error(s) are not available: the variance estimate is negative or \
             not finite, which Byzantine statistics cause in a non-robust estimator"
        ));
    }
    result.warnings.splice(0..0, warnings);
    Ok(result.into_estimation())
}

/// Intermediate result before per-machine diagnostics are attached.
struct PartialResult {
    estimate: Vec<f64>,
    std_error: Vec<f64>,
    covariance: Vec<f64>,
    efficiency_factor: f64,
    effective_rows: f64,
    outlier_threshold: f64,
    machines: Vec<MachineDiagnostics>,
    machine_gradient_z: Vec<f64>,
    warnings: Vec<String>,
    path: Vec<Vec<f64>>,
    diverged: bool,
}

impl PartialResult {
    fn into_estimation(self) -> Estimation {
        Estimation {
            estimate: self.estimate,
            std_error: self.std_error,
            covariance: self.covariance,
            efficiency_factor: self.efficiency_factor,
            effective_rows: self.effective_rows,
            outlier_threshold: self.outlier_threshold,
            machines: self.machines,
            warnings: self.warnings,
            path: self.path,
            diverged: self.diverged,
        }
    }
}

fn partial_result(
    estimate: Vec<f64>,
    std_error: Vec<f64>,
    factor: f64,
    n_eff: f64,
) -> PartialResult {
    PartialResult {
        estimate,
        std_error,
        covariance: Vec::new(),
        efficiency_factor: factor,
        effective_rows: n_eff,
        outlier_threshold: f64::INFINITY,
        machines: Vec::new(),
        machine_gradient_z: Vec::new(),
        warnings: Vec::new(),
        path: Vec::new(),
        diverged: false,
    }
}

fn require_half(
    usable: &[usize],
    m: usize,
    ids: &[String],
    unusable: &[Option<String>],
    round: &'static str,
) -> Result<()> {
    if usable.is_empty() || 2 * usable.len() < m {
        const LISTED: usize = 10;
        let mut failed: Vec<String> = unusable
            .iter()
            .enumerate()
            .filter_map(|(j, r)| r.as_ref().map(|r| format!("{}: {r}", ids[j])))
            .collect();
        let constant = unusable
            .iter()
            .flatten()
            .any(|r| r.contains("is constant on this machine"));
        if failed.len() > LISTED {
            let more = failed.len() - LISTED;
            failed.truncate(LISTED);
            failed.push(format!("and {more} more"));
        }
        if constant {
            failed.push(
                "choose features that vary on every machine with --features or --features-file"
                    .to_string(),
            );
        }
        return Err(RoseError::TooFewUsableMachines {
            usable: usable.len(),
            total: m,
            round,
            failed: failed.join("; "),
        });
    }
    Ok(())
}

fn no_central_rows(ids: &[String], central: usize) -> RoseError {
    RoseError::option(
        "--central",
        format!(
            "central machine '{}' has no usable rows; name another with --central or use --estimator rose-rv",
            ids[central]
        ),
    )
}

/// Scales `σ̂_l` of eq. (5): the square roots of the diagonal of the central machine's
/// sandwich `∇²F₁(θ)⁻¹ J₁(θ) ∇²F₁(θ)⁻¹` at the median.
fn central_sandwich_scale(
    central: &LocalDerivatives,
    ids: &[String],
    index: usize,
) -> Result<Vec<f64>> {
    crate::local_fit::sandwich_diagonal(&central.hessian, &central.gradient_covariance)
        .map(|d| d.iter().map(|v| v.sqrt()).collect())
        .ok_or_else(|| RoseError::SingularHessian {
            hint: format!(
                "the central machine '{}' has a singular Hessian at the median; \
                 name another with --central or use --estimator rose-rv",
                ids[index]
            ),
        })
}

/// A statistic of the second-round message, selected for aggregation.
#[derive(Clone, Copy)]
enum Field {
    Gradient,
    Hessian,
    GradientCovariance,
    GradientOuter,
    HessianVariance,
}

impl Field {
    fn of(self, d: &LocalDerivatives) -> &[f64] {
        match self {
            Field::Gradient => &d.gradient,
            Field::Hessian => &d.hessian,
            Field::GradientCovariance => &d.gradient_covariance,
            Field::GradientOuter => &d.gradient_outer,
            Field::HessianVariance => &d.hessian_variance,
        }
    }
}

/// Second round: gradients and Hessians at `start`, their aggregation and the Newton step.
#[allow(clippy::too_many_arguments)]
async fn second_round<S: DerivativeSource>(
    options: &EstimatorOptions,
    ids: &[String],
    source: &S,
    levels: &QuantileLevels,
    start: &[f64],
    rows: &[u64],
    injected: &[bool],
    unusable: &mut [Option<String>],
    factor: f64,
    warnings: &mut Vec<String>,
    rng: &mut StdRng,
) -> Result<PartialResult> {
    let m = rows.len();
    let p = start.len();
    if start.iter().any(|v| !v.is_finite()) {
        return Err(RoseError::SingularHessian {
            hint: "the first-round estimate is not finite".to_string(),
        });
    }
    let received = source.all_derivatives(start).await?;
    // The central machine's own statistics at the start, before any corruption in transit.
    let central_own = received[options.central].clone();

    let mut messages: Vec<Option<LocalDerivatives>> = received;
    if let Some(attack) = options.attack {
        corrupt_derivatives(attack, &mut messages, injected, rng);
    }
    let mut round_two_failed: Vec<Option<String>> = vec![None; m];
    for (j, message) in messages.iter_mut().enumerate() {
        match message {
            None => round_two_failed[j] = Some("has no rows".to_string()),
            Some(d) => {
                let finite = d.gradient.iter().chain(&d.hessian).all(|v| v.is_finite());
                if !finite {
                    round_two_failed[j] = Some("sent non-finite derivatives".to_string());
                }
            }
        }
    }
    let usable: Vec<usize> = (0..m).filter(|&j| round_two_failed[j].is_none()).collect();
    require_half(
        &usable,
        m,
        ids,
        &round_two_failed,
        "round 2 (gradients and Hessians)",
    )?;
    for j in 0..m {
        if unusable[j].is_none() {
            unusable[j] = round_two_failed[j].take();
        }
    }
    let used_rows: Vec<u64> = usable.iter().map(|&j| rows[j]).collect();
    let total_rows: f64 = used_rows.iter().map(|&n| n as f64).sum();
    let n_eff = aggregate::effective_rows(&used_rows);
    let msg = |j: usize| messages[j].as_ref().expect("usable machines have messages");
    let entries = |field: Field, e: usize| -> Vec<f64> {
        usable.iter().map(|&j| field.of(msg(j))[e]).collect()
    };
    let median_of = |field: Field, len: usize| -> Vec<f64> {
        (0..len)
            .map(|e| aggregate::median(entries(field, e)).unwrap_or(f64::NAN))
            .collect()
    };
    let weighted_mean = |field: Field, len: usize| -> Vec<f64> {
        (0..len)
            .map(|e| {
                usable
                    .iter()
                    .map(|&j| field.of(msg(j))[e] * (rows[j] as f64 / total_rows))
                    .sum()
            })
            .collect()
    };
    let vrmol_of = |field: Field, scale: &[f64]| -> Vec<f64> {
        (0..scale.len())
            .map(|e| {
                aggregate::vrmol(&entries(field, e), &used_rows, scale[e], levels)
                    .unwrap_or(f64::NAN)
            })
            .collect()
    };

    let (gradient, hessian, n_divisor) = match options.estimator {
        Estimator::OneStep => (
            weighted_mean(Field::Gradient, p),
            weighted_mean(Field::Hessian, p * p),
            total_rows,
        ),
        Estimator::RoseMed => (
            median_of(Field::Gradient, p),
            median_of(Field::Hessian, p * p),
            n_eff,
        ),
        Estimator::Rose => {
            let own = central_own
                .as_ref()
                .ok_or_else(|| no_central_rows(ids, options.central))?;
            let gradient_scale: Vec<f64> =
                own.gradient_variance().iter().map(|v| v.sqrt()).collect();
            let hessian_scale: Vec<f64> = own.hessian_variance.iter().map(|v| v.sqrt()).collect();
            (
                vrmol_of(Field::Gradient, &gradient_scale),
                vrmol_of(Field::Hessian, &hessian_scale),
                n_eff,
            )
        }
        _ => {
            let covariance_median = median_of(Field::GradientCovariance, p * p);
            let gradient_scale: Vec<f64> = (0..p)
                .map(|l| covariance_median[l * p + l].sqrt())
                .collect();
            let hessian_scale: Vec<f64> = median_of(Field::HessianVariance, p * p)
                .iter()
                .map(|v| v.sqrt())
                .collect();
            (
                vrmol_of(Field::Gradient, &gradient_scale),
                vrmol_of(Field::Hessian, &hessian_scale),
                n_eff,
            )
        }
    };

    // The one-step correction θ̂ = θ₀ − Ĥ⁻¹ ĝ.
    let singular_hint = || {
        if options.estimator == Estimator::OneStep {
            "the mean of the machines' Hessians takes Byzantine statistics unchecked; \
             use a robust estimator such as rose or rose-rv"
                .to_string()
        } else {
            "check the features for collinearity, or compare with --estimator rose-med".to_string()
        }
    };
    let step = match linalg::solve_spd(&hessian, &gradient) {
        Some(step) => step,
        None => {
            warnings.push(
                "the aggregated Hessian is not positive definite; the Newton step used an LU solve"
                    .to_string(),
            );
            linalg::solve_general(&hessian, &gradient).ok_or_else(|| {
                RoseError::SingularHessian {
                    hint: singular_hint(),
                }
            })?
        }
    };
    let step_norm = norm(&step);
    if step_norm > LARGE_STEP * (1.0 + norm(start)) {
        warnings.push(format!(
            "the one-step correction is large (norm {step_norm:.3e} against {:.3e} for the start): \
             the aggregated Hessian is probably ill-conditioned, because machines have few rows for \
             the number of features or many statistics are corrupted; compare with other estimators",
            norm(start)
        ));
    }
    let estimate: Vec<f64> = start.iter().zip(&step).map(|(t, s)| t - s).collect();

    // Covariance: H⁻¹ U H⁻¹ with U the uncentred gradient second moment (Remark 8).
    let outer = match options.estimator {
        Estimator::OneStep => weighted_mean(Field::GradientOuter, p * p),
        Estimator::RoseRv => median_of(Field::GradientOuter, p * p),
        _ => {
            source
                .machine_derivatives(&estimate, options.central)
                .await?
                .ok_or_else(|| no_central_rows(ids, options.central))?
                .gradient_outer
        }
    };
    let inverse = linalg::inverse_spd(&hessian, p)
        .or_else(|| linalg::inverse_general(&hessian, p))
        .ok_or_else(|| RoseError::SingularHessian {
            hint: singular_hint(),
        })?;
    let covariance: Vec<f64> = linalg::sandwich(&inverse, &outer, p)
        .iter()
        .map(|v| v / n_divisor)
        .collect();
    let std_error = (0..p)
        .map(|l| (factor * covariance[l * p + l]).sqrt())
        .collect();

    // Standardised distance of each machine's gradient from the aggregated gradient.
    let gradient_spread = median_of(Field::GradientCovariance, p * p);
    let machine_gradient_z = (0..m)
        .map(|j| match (&messages[j], unusable[j].is_none()) {
            (Some(d), true) => (0..p)
                .map(|l| {
                    let sd = (gradient_spread[l * p + l] / rows[j] as f64).sqrt();
                    (d.gradient[l] - gradient[l]).abs() / sd
                })
                .fold(0.0, f64::max),
            _ => 0.0,
        })
        .collect();

    Ok(PartialResult {
        estimate,
        std_error,
        covariance,
        efficiency_factor: factor,
        effective_rows: n_divisor,
        outlier_threshold: f64::INFINITY,
        machines: Vec::new(),
        machine_gradient_z,
        warnings: Vec::new(),
        path: Vec::new(),
        diverged: false,
    })
}

/// Applies `attack` to every field of the second-round messages of the Byzantine machines.
fn corrupt_derivatives(
    attack: Attack,
    messages: &mut [Option<LocalDerivatives>],
    injected: &[bool],
    rng: &mut StdRng,
) {
    let fields: [fn(&mut LocalDerivatives) -> &mut Vec<f64>; 5] = [
        |d| &mut d.gradient,
        |d| &mut d.hessian,
        |d| &mut d.gradient_covariance,
        |d| &mut d.gradient_outer,
        |d| &mut d.hessian_variance,
    ];
    for field in fields {
        let mut values: Vec<Vec<f64>> = messages
            .iter_mut()
            .map(|m| m.as_mut().map(|d| field(d).clone()).unwrap_or_default())
            .collect();
        attack.corrupt(&mut values, injected, rng);
        for (message, v) in messages.iter_mut().zip(values) {
            if let Some(d) = message {
                *field(d) = v;
            }
        }
    }
}

/// Ratio of the Newton step's norm to `1 + ‖θ₀‖` above which the correction is reported
/// as suspicious.
const LARGE_STEP: f64 = 10.0;

/// Norm beyond which an iterate counts as diverged, relative to the starting point.
const DIVERGENCE_FACTOR: f64 = 1e3;

/// Iterates `θ_{t+1} = θ_t − ∇²F₁(θ_t)⁻¹ ĝ(θ_t)` from the central machine's local
/// estimate.
///
/// `csl` takes `ĝ` as the row-weighted mean of the machines' gradients, `vrmom` as their
/// VRMOL with scales from the central machine's own gradient variances. The central
/// machine's Hessian and scales come from its own rows. An iterate that is not finite, or
/// whose norm exceeds `DIVERGENCE_FACTOR` times that of the start, stops the iteration
/// and marks the result as diverged.
#[allow(clippy::too_many_arguments)]
async fn iterate_central_hessian<S: DerivativeSource>(
    options: &EstimatorOptions,
    ids: &[String],
    source: &S,
    levels: &QuantileLevels,
    start: Vec<f64>,
    rows: &[u64],
    injected: &[bool],
    rng: &mut StdRng,
) -> Result<PartialResult> {
    let m = rows.len();
    let p = start.len();
    let start_norm = norm(&start).max(1.0);
    let mut theta = start.clone();
    let mut path = vec![start];
    let mut diverged = false;
    for _ in 0..options.iterations {
        let mut messages = source.all_gradients(&theta).await?;
        if let Some(attack) = options.attack {
            let mut gradients: Vec<Vec<f64>> = messages
                .iter()
                .map(|d| d.as_ref().map(|d| d.gradient.clone()).unwrap_or_default())
                .collect();
            attack.corrupt(&mut gradients, injected, rng);
            for (message, g) in messages.iter_mut().zip(gradients) {
                if let Some(d) = message {
                    d.gradient = g;
                }
            }
        }
        let usable: Vec<(f64, &Vec<f64>)> = messages
            .iter()
            .zip(rows)
            .filter_map(|(d, &n)| d.as_ref().map(|d| (n as f64, &d.gradient)))
            .filter(|(_, g)| g.iter().all(|v| v.is_finite()))
            .collect();
        let central = source
            .machine_hessian(&theta, options.central)
            .await?
            .ok_or_else(|| no_central_rows(ids, options.central))?;
        let gradient: Vec<f64> = match options.estimator {
            Estimator::Csl => {
                let total: f64 = usable.iter().map(|(n, _)| n).sum();
                (0..p)
                    .map(|l| usable.iter().map(|(n, g)| g[l] * n / total).sum())
                    .collect()
            }
            _ => {
                let used_rows: Vec<u64> = usable.iter().map(|(n, _)| *n as u64).collect();
                let scale = central.gradient_variance();
                (0..p)
                    .map(|l| {
                        let values: Vec<f64> = usable.iter().map(|(_, g)| g[l]).collect();
                        aggregate::vrmol(&values, &used_rows, scale[l].sqrt(), levels)
                            .unwrap_or(f64::NAN)
                    })
                    .collect()
            }
        };
        let step = linalg::solve_spd(&central.hessian, &gradient)
            .or_else(|| linalg::solve_general(&central.hessian, &gradient));
        let next: Option<Vec<f64>> =
            step.map(|s| theta.iter().zip(&s).map(|(t, d)| t - d).collect());
        match next {
            Some(next)
                if next.iter().all(|v| v.is_finite())
                    && norm(&next) <= DIVERGENCE_FACTOR * start_norm =>
            {
                theta = next;
                path.push(theta.clone());
            }
            _ => {
                diverged = true;
                break;
            }
        }
    }

    // Sandwich of the central machine at the last iterate.
    let central = source
        .machine_derivatives(&theta, options.central)
        .await?
        .ok_or_else(|| no_central_rows(ids, options.central))?;
    let total: f64 = rows.iter().map(|&n| n as f64).sum();
    let (factor, divisor) = match options.estimator {
        Estimator::Csl => (1.0, total),
        _ => (
            if m >= 3 { levels.d_k() } else { 1.0 },
            aggregate::effective_rows(rows),
        ),
    };
    let covariance: Vec<f64> = linalg::inverse_spd(&central.hessian, p)
        .or_else(|| linalg::inverse_general(&central.hessian, p))
        .map(|inverse| linalg::sandwich(&inverse, &central.gradient_outer, p))
        .unwrap_or_else(|| vec![f64::NAN; p * p])
        .iter()
        .map(|v| v / divisor)
        .collect();
    let std_error = (0..p)
        .map(|l| (factor * covariance[l * p + l]).sqrt())
        .collect();
    let warnings = if diverged {
        vec![format!(
            "{} diverged after {} iterations; the estimate is the last iterate before that",
            options.estimator,
            path.len() - 1
        )]
    } else {
        Vec::new()
    };
    Ok(PartialResult {
        estimate: theta,
        std_error,
        covariance,
        efficiency_factor: factor,
        effective_rows: divisor,
        outlier_threshold: f64::INFINITY,
        machines: Vec::new(),
        machine_gradient_z: Vec::new(),
        warnings,
        path,
        diverged,
    })
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}
