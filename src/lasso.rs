//! L1-penalised (lasso) logistic regression along a path of penalties, fitted by cyclic
//! coordinate descent as in Friedman, Hastie and Tibshirani (2010), "Regularization paths
//! for generalized linear models via coordinate descent", Journal of Statistical Software
//! 33(1).
//!
//! The module works on plain row-major slices and uses neither Arrow nor DataFusion.
//!
//! # Formula
//!
//! Each feature column is standardised first: `x̃_il = (x_il − m_l) / s_l` with the mean
//! `m_l = (1/n) Σ_i x_il` and the standard deviation `s_l = √((1/n) Σ_i (x_il − m_l)²)`
//! (divisor n, as glmnet uses with `standardize = TRUE`). On the standardised scale the
//! fit minimises
//!
//! ```text
//! F(β0, β) = (1/n) Σ_i [log(1 + exp(η_i)) − y_i η_i] + λ Σ_l |β_l|,   η_i = β0 + x̃_iᵀβ,
//! ```
//!
//! with the intercept `β0` left unpenalised and `y_i ∈ {0, 1}`. The coefficients on the
//! original scale are `β_l / s_l`, and the original intercept is `β0 − Σ_l β_l m_l / s_l`.
//! A constant column (all values equal) has `s_l = 0` and keeps the coefficient 0.
//!
//! Outer loop (IRLS): at the current `(β0, β)`, with `p_i = 1 / (1 + exp(−η_i))`, the loss
//! is replaced by its quadratic approximation
//!
//! ```text
//! (1 / 2n) Σ_i w_i (z_i − β0 − x̃_iᵀβ)²,   w_i = p_i (1 − p_i),   z_i = η_i + (y_i − p_i) / w_i.
//! ```
//!
//! Inner loop: cyclic coordinate descent on the penalised quadratic. With the weighted
//! residual `r_i = w_i (z_i − η_i)` and `v_l = (1/n) Σ_i w_i x̃_il²`, coordinate `l` moves to
//!
//! ```text
//! β_l ← S((1/n) Σ_i x̃_il r_i + v_l β_l, λ) / v_l,   S(u, λ) = sign(u) · max(|u| − λ, 0),
//! ```
//!
//! and the intercept moves by `Σ_i r_i / Σ_i w_i`. A change `Δβ_l` shifts the partial
//! derivative of the quadratic by `v_l Δβ_l`, so the loops stop when every `v_l |Δβ_l|`
//! (and `(1/n) Σ_i w_i · |Δβ0|` for the intercept) is below [`LassoOptions::tolerance`].
//! That criterion is in the units of the gradient, the same units as `λ` and the
//! Karush-Kuhn-Tucker conditions `|∂L/∂β_l| ≤ λ` (for `β_l = 0`) and
//! `∂L/∂β_l = −λ sign(β_l)` (otherwise), where `L` is the unpenalised mean loss.
//!
//! Active sets: after a full pass over all features, passes run over the nonzero features
//! only until they converge, then one more full pass checks whether any other feature
//! enters. The fit stops when a full pass changes nothing by `tolerance` or more.
//!
//! Path: `λ_max = max_l |(1/n) Σ_i x̃_il (y_i − ȳ)|` is the smallest λ at which all β are
//! 0, and the path has `n_lambda` values log-spaced from `λ_max` down to
//! `lambda_min_ratio · λ_max`. Each fit starts from the previous one (warm start).
//!
//! # Differences from glmnet
//!
//! - Fitted probabilities near 0 or 1: only the weight is clamped, `w_i = max(p_i (1 − p_i),
//!   ε)` with `ε = 1e-5`, and the residual keeps the exact `y_i − p_i`. A clamped weight
//!   only makes the quadratic steeper, so the fixed point of the iteration is still the
//!   exact minimiser of `F`. glmnet instead bounds the probabilities themselves
//!   (`glmnet.control`'s `pmin`, 1e-9 in glmnet 4.1-7).
//! - Step control: when an outer step raises `F` by more than a relative 1e-12, the step
//!   is halved, up to 30 times. The 2010 paper describes no such check.
//! - Early stop of [`lasso_logistic_path`]: after at least 5 fits, the path stops when the
//!   fraction of null deviance explained reaches 0.999, or when it rises by less than a
//!   relative 1e-5 from the previous λ. These are the factory defaults `devmax`, `fdev` and
//!   `mnlam` of `glmnet.control` in glmnet 4.1-7. [`lasso_logistic_at`] never stops early.

use crate::family::{Family, logistic};

/// Lower bound `ε` of the IRLS weights, reached when a fitted probability is within about
/// `ε` of 0 or 1.
const MIN_WEIGHT: f64 = 1e-5;
/// Path early stop: minimum relative rise of the deviance explained between two λ values.
const MIN_DEVIANCE_RISE: f64 = 1e-5;
/// Path early stop: the path ends once this fraction of the null deviance is explained.
const MAX_DEVIANCE_EXPLAINED: f64 = 0.999;
/// Path early stop: number of fits always computed before the path may stop.
const MIN_PATH_FITS: usize = 5;
/// Maximum number of step halvings in one outer iteration.
const MAX_STEP_HALVINGS: usize = 30;
/// Relative rise of `F` above which an outer step is halved. Smaller rises are rounding
/// noise near the minimiser, where halving would stop the iteration too early.
const OBJECTIVE_RISE_SLACK: f64 = 1e-12;

/// Settings of the lasso path and of the coordinate-descent solver.
#[derive(Clone, Debug, PartialEq)]
pub struct LassoOptions {
    /// Number of λ values on the path, including `λ_max`. Must be at least 1.
    pub n_lambda: usize,
    /// Ratio of the smallest to the largest λ on the path, in (0, 1). `None` selects 1e-4
    /// when there are more rows than features, and 1e-2 otherwise.
    pub lambda_min_ratio: Option<f64>,
    /// Convergence threshold on the weighted coefficient change `v_l |Δβ_l|`, in the units
    /// of the gradient of the mean loss (see the module docs). Must be positive.
    pub tolerance: f64,
    /// Maximum number of coordinate-descent passes at one λ, counting full and active-set
    /// passes. A fit that needs more returns an error.
    pub max_passes: usize,
    /// Stops the path after the first fit with at least this many nonzero coefficients,
    /// in the manner of glmnet's `dfmax`; `None` runs the whole path. Screening that keeps
    /// the first variables to enter needs no smaller λ.
    pub max_nonzero: Option<usize>,
}

impl Default for LassoOptions {
    fn default() -> Self {
        Self {
            n_lambda: 100,
            lambda_min_ratio: None,
            tolerance: 1e-10,
            max_passes: 100_000,
            max_nonzero: None,
        }
    }
}

/// Lasso fit at one λ.
#[derive(Clone, Debug, PartialEq)]
pub struct LassoFit {
    /// Penalty λ of this fit.
    pub lambda: f64,
    /// Intercept on the original scale of the features.
    pub intercept: f64,
    /// Coefficients on the original scale of the features, one per column.
    pub coefficients: Vec<f64>,
    /// Coefficients on the standardised scale (the scale on which λ acts).
    pub standardized: Vec<f64>,
    /// Number of nonzero coefficients.
    pub nonzero: usize,
    /// Coordinate-descent passes used at this λ, counting full and active-set passes.
    pub passes: usize,
}

/// Lasso fits in order of decreasing λ, starting at `λ_max`.
#[derive(Clone, Debug, PartialEq)]
pub struct LassoPath {
    /// Fits, one per λ. There may be fewer than `n_lambda` when the path stops early.
    pub fits: Vec<LassoFit>,
}

/// Soft-thresholding operator `S(u, λ) = sign(u) · max(|u| − λ, 0)`.
fn soft_threshold(value: f64, threshold: f64) -> f64 {
    if value > threshold {
        value - threshold
    } else if value < -threshold {
        value + threshold
    } else {
        0.0
    }
}

/// Standardised design stored column by column.
struct Design {
    rows: usize,
    /// Column `l` is `columns[l * rows..(l + 1) * rows]`. A constant column is all zeros.
    columns: Vec<f64>,
    means: Vec<f64>,
    /// Standard deviations with divisor n, or 0 for a constant column.
    scales: Vec<f64>,
}

impl Design {
    fn new(x: &[f64], rows: usize, p: usize) -> Self {
        let mut columns = vec![0.0; rows * p];
        let mut means = vec![0.0; p];
        let mut scales = vec![0.0; p];
        for l in 0..p {
            let column = &mut columns[l * rows..(l + 1) * rows];
            let first = x[l];
            // An exact test: a computed variance of equal values can be a tiny nonzero.
            if (0..rows).all(|i| x[i * p + l] == first) {
                means[l] = first;
                continue;
            }
            let mean = (0..rows).map(|i| x[i * p + l]).sum::<f64>() / rows as f64;
            let variance = (0..rows)
                .map(|i| (x[i * p + l] - mean).powi(2))
                .sum::<f64>()
                / rows as f64;
            let scale = variance.sqrt();
            for (i, value) in column.iter_mut().enumerate() {
                *value = (x[i * p + l] - mean) / scale;
            }
            means[l] = mean;
            scales[l] = scale;
        }
        Self {
            rows,
            columns,
            means,
            scales,
        }
    }

    fn p(&self) -> usize {
        self.scales.len()
    }

    fn column(&self, l: usize) -> &[f64] {
        &self.columns[l * self.rows..(l + 1) * self.rows]
    }

    fn is_constant(&self, l: usize) -> bool {
        self.scales[l] == 0.0
    }

    /// Computes `η = β0 + X̃β` over the nonzero coefficients.
    fn linear_predictor(&self, intercept: f64, beta: &[f64], eta: &mut [f64]) {
        eta.fill(intercept);
        for (l, &b) in beta.iter().enumerate() {
            if b != 0.0 {
                for (e, &x) in eta.iter_mut().zip(self.column(l)) {
                    *e += b * x;
                }
            }
        }
    }

    /// Computes `λ_max = max_l |(1/n) Σ_i x̃_il (y_i − ȳ)|`.
    fn lambda_max(&self, y: &[f64]) -> f64 {
        let n = self.rows as f64;
        let mean = y.iter().sum::<f64>() / n;
        (0..self.p())
            .map(|l| {
                let dot: f64 = self
                    .column(l)
                    .iter()
                    .zip(y)
                    .map(|(x, y)| x * (y - mean))
                    .sum();
                (dot / n).abs()
            })
            .fold(0.0, f64::max)
    }

    /// Converts a solution on the standardised scale into a [`LassoFit`].
    fn to_fit(&self, lambda: f64, state: &State, passes: usize) -> LassoFit {
        let coefficients: Vec<f64> = (0..self.p())
            .map(|l| {
                if self.is_constant(l) {
                    0.0
                } else {
                    state.beta[l] / self.scales[l]
                }
            })
            .collect();
        let shift: f64 = coefficients
            .iter()
            .zip(&self.means)
            .map(|(b, m)| b * m)
            .sum();
        LassoFit {
            lambda,
            intercept: state.intercept - shift,
            coefficients,
            standardized: state.beta.clone(),
            nonzero: state.beta.iter().filter(|b| **b != 0.0).count(),
            passes,
        }
    }
}

/// Solution on the standardised scale, carried along the path as the warm start.
#[derive(Clone)]
struct State {
    intercept: f64,
    beta: Vec<f64>,
}

/// Computes `log(1 + exp(η)) − y η` without overflow for large `|η|`.
fn logistic_loss(eta: f64, y: f64) -> f64 {
    Family::Logistic.row_terms(eta, y).loss
}

/// Mean logistic loss `(1/n) Σ_i [log(1 + exp(η_i)) − y_i η_i]`.
fn mean_loss(eta: &[f64], y: &[f64]) -> f64 {
    eta.iter()
        .zip(y)
        .map(|(&e, &y)| logistic_loss(e, y))
        .sum::<f64>()
        / eta.len() as f64
}

/// Penalised objective `F` at `state`, with `eta` as scratch space.
fn objective(design: &Design, y: &[f64], lambda: f64, state: &State, eta: &mut [f64]) -> f64 {
    design.linear_predictor(state.intercept, &state.beta, eta);
    let penalty: f64 = state.beta.iter().map(|b| b.abs()).sum();
    mean_loss(eta, y) + lambda * penalty
}

/// Intercept-only fit `β0 = log(ȳ / (1 − ȳ))`, the solution for every `λ ≥ λ_max`.
fn null_state(y: &[f64], p: usize) -> State {
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    State {
        intercept: (mean / (1.0 - mean)).ln(),
        beta: vec![0.0; p],
    }
}

/// Quadratic approximation of the loss at one point: IRLS weights, the weighted residuals
/// `r_i = w_i (z_i − η_i) = y_i − p_i`, and the weighted column norms `v_l`.
struct Quadratic {
    weights: Vec<f64>,
    residuals: Vec<f64>,
    norms: Vec<f64>,
    weight_mean: f64,
}

impl Quadratic {
    fn at(design: &Design, y: &[f64], eta: &[f64]) -> Self {
        let n = design.rows as f64;
        let mut weights = Vec::with_capacity(eta.len());
        let mut residuals = Vec::with_capacity(eta.len());
        for (&e, &y) in eta.iter().zip(y) {
            let probability = logistic(e);
            let variance = probability * (1.0 - probability);
            weights.push(variance.max(MIN_WEIGHT));
            residuals.push(y - probability);
        }
        let norms = (0..design.p())
            .map(|l| {
                let sum: f64 = design
                    .column(l)
                    .iter()
                    .zip(&weights)
                    .map(|(x, w)| w * x * x)
                    .sum();
                sum / n
            })
            .collect();
        let weight_mean = weights.iter().sum::<f64>() / n;
        Self {
            weights,
            residuals,
            norms,
            weight_mean,
        }
    }

    /// Runs one coordinate-descent pass over `features` and the intercept, and returns
    /// the maximum weighted change.
    fn pass(
        &mut self,
        design: &Design,
        lambda: f64,
        state: &mut State,
        features: impl Iterator<Item = usize>,
    ) -> f64 {
        let n = design.rows as f64;
        let mut max_change = self.update_intercept(state);
        for l in features {
            let norm = self.norms[l];
            if design.is_constant(l) || norm == 0.0 {
                continue;
            }
            let column = design.column(l);
            let dot: f64 = column.iter().zip(&self.residuals).map(|(x, r)| x * r).sum();
            let old = state.beta[l];
            let new = soft_threshold(dot / n + norm * old, lambda) / norm;
            let delta = new - old;
            if delta != 0.0 {
                for ((r, &w), &x) in self.residuals.iter_mut().zip(&self.weights).zip(column) {
                    *r -= delta * w * x;
                }
                state.beta[l] = new;
                max_change = max_change.max(norm * delta.abs());
            }
        }
        max_change
    }

    /// Moves the intercept to its weighted least-squares optimum and returns the weighted
    /// change.
    fn update_intercept(&mut self, state: &mut State) -> f64 {
        let delta =
            self.residuals.iter().sum::<f64>() / (self.weight_mean * self.weights.len() as f64);
        if delta != 0.0 {
            for (r, &w) in self.residuals.iter_mut().zip(&self.weights) {
                *r -= delta * w;
            }
            state.intercept += delta;
        }
        self.weight_mean * delta.abs()
    }
}

/// Minimises the penalised quadratic approximation by coordinate descent with active-set
/// iteration, and returns the number of passes used.
fn solve_quadratic(
    quadratic: &mut Quadratic,
    design: &Design,
    lambda: f64,
    state: &mut State,
    options: &LassoOptions,
    mut passes: usize,
) -> Result<usize, String> {
    let p = design.p();
    let check_passes = |passes: usize| {
        if passes >= options.max_passes {
            Err(format!(
                "coordinate descent did not converge at lambda = {lambda} within {} passes. \
                 Raise max_passes or the tolerance ({}).",
                options.max_passes, options.tolerance
            ))
        } else {
            Ok(passes + 1)
        }
    };
    loop {
        passes = check_passes(passes)?;
        if quadratic.pass(design, lambda, state, 0..p) < options.tolerance {
            return Ok(passes);
        }
        let active: Vec<usize> = (0..p).filter(|&l| state.beta[l] != 0.0).collect();
        loop {
            passes = check_passes(passes)?;
            let change = quadratic.pass(design, lambda, state, active.iter().copied());
            if change < options.tolerance {
                break;
            }
        }
    }
}

/// Fits the lasso at one λ, starting from `state` and leaving the solution there. Returns
/// the number of coordinate-descent passes.
fn solve(
    design: &Design,
    y: &[f64],
    lambda: f64,
    state: &mut State,
    options: &LassoOptions,
) -> Result<usize, String> {
    let mut eta = vec![0.0; design.rows];
    let mut previous_objective = objective(design, y, lambda, state, &mut eta);
    let mut passes = 0;
    loop {
        let mut quadratic = Quadratic::at(design, y, &eta);
        let start = state.clone();
        passes = solve_quadratic(&mut quadratic, design, lambda, state, options, passes)?;

        // The quadratic is only an approximation, so a full step can raise F far from the
        // minimiser. Halving the step towards `start` restores descent.
        let limit = previous_objective * (1.0 + OBJECTIVE_RISE_SLACK);
        let mut current_objective = objective(design, y, lambda, state, &mut eta);
        let mut halvings = 0;
        while current_objective > limit {
            if halvings == MAX_STEP_HALVINGS {
                return Err(format!(
                    "step halving failed to decrease the objective at lambda = {lambda} \
                     ({current_objective} after {halvings} halvings, {previous_objective} before)"
                ));
            }
            state.intercept = 0.5 * (state.intercept + start.intercept);
            for (b, s) in state.beta.iter_mut().zip(&start.beta) {
                *b = 0.5 * (*b + s);
            }
            current_objective = objective(design, y, lambda, state, &mut eta);
            halvings += 1;
        }
        previous_objective = current_objective;

        let mut change = quadratic.weight_mean * (state.intercept - start.intercept).abs();
        for l in 0..design.p() {
            change = change.max(quadratic.norms[l] * (state.beta[l] - start.beta[l]).abs());
        }
        if change < options.tolerance {
            return Ok(passes);
        }
        if passes >= options.max_passes {
            return Err(format!(
                "the IRLS iteration did not converge at lambda = {lambda} within {} passes. \
                 Raise max_passes or the tolerance ({}).",
                options.max_passes, options.tolerance
            ));
        }
    }
}

/// Checks the inputs and returns the number of rows.
fn validate(x: &[f64], y: &[f64], p: usize, options: &LassoOptions) -> Result<usize, String> {
    if p == 0 {
        return Err(
            "invalid number of features p = 0: the design needs at least one column".into(),
        );
    }
    if y.is_empty() {
        return Err("empty data: y has no rows".into());
    }

    let n = y.len();
    if x.len() != n * p {
        return Err(format!(
            "mismatched lengths: x has {} values, but n × p = {n} × {p} = {} for {n} responses",
            x.len(),
            n * p
        ));
    }
    if let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0) {
        return Err(format!(
            "invalid response y[{i}] = {}: logistic regression needs y in {{0, 1}}",
            y[i]
        ));
    }

    if y.iter().all(|&v| v == y[0]) {
        return Err(format!(
            "all {n} responses are {}: logistic regression needs both classes",
            y[0]
        ));
    }
    if let Some(k) = x.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "invalid value x[{}, {}] = {}: features must be finite",
            k / p,
            k % p,
            x[k]
        ));
    }

    if options.n_lambda == 0 {
        return Err("invalid n_lambda = 0: the path needs at least one λ".into());
    }
    if let Some(ratio) = options.lambda_min_ratio
        && !(ratio > 0.0 && ratio < 1.0)
    {
        return Err(format!(
            "invalid lambda_min_ratio = {ratio}: it must lie strictly between 0 and 1"
        ));
    }
    if !(options.tolerance > 0.0 && options.tolerance.is_finite()) {
        return Err(format!(
            "invalid tolerance = {}: it must be positive and finite",
            options.tolerance
        ));
    }
    if options.max_passes == 0 {
        return Err("invalid max_passes = 0: the solver needs at least one pass".into());
    }
    Ok(n)
}

/// Ratio between consecutive λ values of the path, in (0, 1]. It is 1 for a one-point path.
fn lambda_step(n: usize, p: usize, options: &LassoOptions) -> f64 {
    let min_ratio = options
        .lambda_min_ratio
        .unwrap_or(if n > p { 1e-4 } else { 1e-2 });
    if options.n_lambda < 2 {
        1.0
    } else {
        min_ratio.powf(1.0 / (options.n_lambda - 1) as f64)
    }
}

/// Computes the deviance of the fit in `state`. The saturated model's log-likelihood is 0
/// for 0/1 responses, so the deviance is `2 n L`.
fn deviance(design: &Design, y: &[f64], state: &State) -> f64 {
    let mut eta = vec![0.0; design.rows];
    design.linear_predictor(state.intercept, &state.beta, &mut eta);
    2.0 * mean_loss(&eta, y) * design.rows as f64
}

/// Fits the lasso logistic regression path from `λ_max` down to
/// `lambda_min_ratio · λ_max`, with warm starts.
///
/// `x` is the row-major n × p design and `y` contains the 0/1 responses. The path may
/// stop before `n_lambda` fits (see the module docs). Returns an error for empty data,
/// mismatched lengths, responses other than 0 and 1, a single class, non-finite features,
/// invalid options, or a fit that does not converge within `max_passes`.
pub fn lasso_logistic_path(
    x: &[f64],
    y: &[f64],
    p: usize,
    options: &LassoOptions,
) -> Result<LassoPath, String> {
    let n = validate(x, y, p, options)?;
    let design = Design::new(x, n, p);
    let lambda_max = design.lambda_max(y);
    let step = lambda_step(n, p, options);

    let mut state = null_state(y, p);
    let null_deviance = deviance(&design, y, &state);
    let mut fits = vec![design.to_fit(lambda_max, &state, 0)];
    let mut previous_explained = 0.0;
    for k in 1..options.n_lambda {
        let lambda = lambda_max * step.powi(k as i32);
        let passes = solve(&design, y, lambda, &mut state, options)?;
        fits.push(design.to_fit(lambda, &state, passes));
        if options
            .max_nonzero
            .is_some_and(|limit| fits[fits.len() - 1].nonzero >= limit)
        {
            break;
        }

        let explained = 1.0 - deviance(&design, y, &state) / null_deviance;
        let rise = explained - previous_explained;
        previous_explained = explained;
        if fits.len() >= MIN_PATH_FITS
            && (explained >= MAX_DEVIANCE_EXPLAINED || rise < MIN_DEVIANCE_RISE * explained)
        {
            break;
        }
    }
    Ok(LassoPath { fits })
}

/// Fits the lasso logistic regression at a single `lambda`.
///
/// The solver walks down the λ grid of [`lasso_logistic_path`] (extended below its
/// smallest value when needed) to `lambda` with warm starts, so the result equals the
/// path's fit at that λ up to the tolerance. `passes` counts only the passes at `lambda`.
/// For `lambda ≥ λ_max` the fit is intercept-only. Returns the errors of
/// [`lasso_logistic_path`], and an error for a `lambda` that is not positive and finite.
pub fn lasso_logistic_at(
    x: &[f64],
    y: &[f64],
    p: usize,
    lambda: f64,
    options: &LassoOptions,
) -> Result<LassoFit, String> {
    let n = validate(x, y, p, options)?;
    if !(lambda > 0.0 && lambda.is_finite()) {
        return Err(format!(
            "invalid lambda = {lambda}: it must be positive and finite"
        ));
    }
    let design = Design::new(x, n, p);
    let lambda_max = design.lambda_max(y);
    let mut state = null_state(y, p);
    if lambda >= lambda_max {
        return Ok(design.to_fit(lambda, &state, 0));
    }

    let step = lambda_step(n, p, options);
    if step < 1.0 {
        // The same grid values as the path: λ_max · step^k for k = 1, 2, ...
        let mut k = 1;
        while lambda_max * step.powi(k) > lambda {
            solve(&design, y, lambda_max * step.powi(k), &mut state, options)?;
            k += 1;
        }
    }
    let passes = solve(&design, y, lambda, &mut state, options)?;
    Ok(design.to_fit(lambda, &state, passes))
}

/// Selects `target` variables from a path and returns their column indices in entry order.
///
/// The selection comes from the first fit with at least `target` nonzero coefficients, or
/// from the last fit when none has that many (then fewer than `target` are returned).
/// Among that fit's nonzero coefficients, the ones that entered first are kept. A
/// variable's entry is the first fit (largest λ) at which it is nonzero. Ties go to the
/// larger `|standardized coefficient|` at the entry fit, and then to the lower index.
pub fn select_variables(path: &LassoPath, target: usize) -> Vec<usize> {
    if target == 0 || path.fits.is_empty() {
        return Vec::new();
    }
    let chosen = path
        .fits
        .iter()
        .position(|fit| fit.nonzero >= target)
        .unwrap_or(path.fits.len() - 1);
    let fit = &path.fits[chosen];

    // (entry fit, |coefficient| at entry, column) for each nonzero column of the chosen fit.
    let mut candidates: Vec<(usize, f64, usize)> = Vec::new();
    for (l, &b) in fit.standardized.iter().enumerate() {
        if b == 0.0 {
            continue;
        }
        let entry = path.fits[..=chosen]
            .iter()
            .position(|f| f.standardized[l] != 0.0)
            .expect("a nonzero coefficient of the chosen fit has an entry fit");
        let size = path.fits[entry].standardized[l].abs();
        candidates.push((entry, size, l));
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
    candidates
        .into_iter()
        .take(target)
        .map(|(_, _, l)| l)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small design with a clear signal in columns 0 and 2 and noise in column 1.
    fn small_data() -> (Vec<f64>, Vec<f64>) {
        let n = 60;
        let mut x = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let a = ((i * 37) % 17) as f64 / 17.0 - 0.5;
            let b = ((i * 11) % 7) as f64;
            let c = ((i * 5) % 13) as f64 / 13.0;
            x.extend([a, b, c]);
            let score = 3.0 * a - 2.0 * c + if i % 5 == 0 { 1.5 } else { 0.0 };
            y.push(if score > -0.9 { 1.0 } else { 0.0 });
        }
        (x, y)
    }

    fn options() -> LassoOptions {
        LassoOptions {
            n_lambda: 30,
            ..LassoOptions::default()
        }
    }

    #[test]
    fn soft_threshold_values() {
        assert_eq!(soft_threshold(3.0, 1.0), 2.0);
        assert_eq!(soft_threshold(-3.0, 1.0), -2.0);
        assert_eq!(soft_threshold(0.5, 1.0), 0.0);
        assert_eq!(soft_threshold(-0.5, 1.0), 0.0);
        assert_eq!(soft_threshold(1.0, 1.0), 0.0);
        assert_eq!(soft_threshold(-1.0, 1.0), 0.0);
        assert_eq!(soft_threshold(2.5, 0.0), 2.5);
    }

    #[test]
    fn logistic_loss_stable_for_large_eta() {
        assert!((logistic_loss(800.0, 1.0)).abs() < 1e-12);
        assert!((logistic_loss(-800.0, 0.0)).abs() < 1e-12);
        assert!((logistic_loss(800.0, 0.0) - 800.0).abs() < 1e-9);
        assert!((logistic_loss(0.0, 1.0) - 2f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn path_starts_at_null_model() {
        let (x, y) = small_data();
        let path = lasso_logistic_path(&x, &y, 3, &options()).unwrap();
        let first = &path.fits[0];
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        assert_eq!(first.nonzero, 0);
        assert!(first.standardized.iter().all(|&b| b == 0.0));
        assert!((first.intercept - (mean / (1.0 - mean)).ln()).abs() < 1e-12);
        assert!(path.fits.windows(2).all(|w| w[1].lambda < w[0].lambda));
    }

    #[test]
    fn max_nonzero_stops_path_early() {
        let (x, y) = small_data();
        let full = lasso_logistic_path(&x, &y, 3, &options()).unwrap();
        let first_two = full.fits.iter().position(|f| f.nonzero >= 2).unwrap();
        assert!(
            first_two + 1 < full.fits.len(),
            "the full path goes past 2 variables"
        );
        let limited = LassoOptions {
            max_nonzero: Some(2),
            ..options()
        };
        let stopped = lasso_logistic_path(&x, &y, 3, &limited).unwrap();
        assert_eq!(stopped.fits.len(), first_two + 1);
        assert_eq!(stopped.fits[..], full.fits[..=first_two]);
        assert_eq!(select_variables(&stopped, 2), select_variables(&full, 2));
    }

    #[test]
    fn constant_column_stays_zero() {
        let (x, y) = small_data();
        // Insert a constant column of 0.1, whose computed variance would not be exactly 0.
        let mut with_constant = Vec::new();
        for row in x.chunks(3) {
            with_constant.extend([row[0], 0.1, row[1], row[2]]);
        }
        let path = lasso_logistic_path(&with_constant, &y, 4, &options()).unwrap();
        for fit in &path.fits {
            assert_eq!(fit.standardized[1], 0.0);
            assert_eq!(fit.coefficients[1], 0.0);
            assert!(fit.intercept.is_finite());
        }
        let without = lasso_logistic_path(&x, &y, 3, &options()).unwrap();
        let last = path.fits.last().unwrap();
        let last_without = &without.fits[last_index(&without, last.lambda)];
        assert!((last.coefficients[0] - last_without.coefficients[0]).abs() < 1e-8);
        assert!((last.intercept - last_without.intercept).abs() < 1e-8);
    }

    fn last_index(path: &LassoPath, lambda: f64) -> usize {
        path.fits
            .iter()
            .position(|f| (f.lambda - lambda).abs() <= 1e-12 * lambda)
            .expect("both paths share the λ grid")
    }

    #[test]
    fn original_scale_gives_same_linear_predictor() {
        let (x, y) = small_data();
        let design = Design::new(&x, y.len(), 3);
        let fit = lasso_logistic_at(&x, &y, 3, 0.01, &options()).unwrap();
        for (i, row) in x.chunks(3).enumerate() {
            let original: f64 = fit.intercept
                + row
                    .iter()
                    .zip(&fit.coefficients)
                    .map(|(a, b)| a * b)
                    .sum::<f64>();
            let standardized_eta = fit.intercept
                + (0..3)
                    .map(|l| fit.coefficients[l] * design.means[l])
                    .sum::<f64>()
                + (0..3)
                    .map(|l| fit.standardized[l] * design.column(l)[i])
                    .sum::<f64>();
            assert!((original - standardized_eta).abs() < 1e-10, "row {i}");
        }
    }

    #[test]
    fn single_lambda_matches_path() {
        let (x, y) = small_data();
        let path = lasso_logistic_path(&x, &y, 3, &options()).unwrap();
        let target = &path.fits[path.fits.len() / 2];
        let fit = lasso_logistic_at(&x, &y, 3, target.lambda, &options()).unwrap();
        for l in 0..3 {
            assert!((fit.standardized[l] - target.standardized[l]).abs() < 1e-8);
        }
    }

    #[test]
    fn lambda_above_max_gives_intercept_only() {
        let (x, y) = small_data();
        let fit = lasso_logistic_at(&x, &y, 3, 10.0, &options()).unwrap();
        assert_eq!(fit.nonzero, 0);
        assert_eq!(fit.passes, 0);
        assert_eq!(fit.lambda, 10.0);
    }

    #[test]
    fn one_point_path_is_null_model() {
        let (x, y) = small_data();
        let options = LassoOptions {
            n_lambda: 1,
            ..LassoOptions::default()
        };
        let path = lasso_logistic_path(&x, &y, 3, &options).unwrap();
        assert_eq!(path.fits.len(), 1);
        assert_eq!(path.fits[0].nonzero, 0);
        let fit = lasso_logistic_at(&x, &y, 3, 0.02, &options).unwrap();
        assert!(fit.nonzero > 0);
    }

    #[test]
    fn separable_data_path_converges() {
        // y = 1 exactly when the first feature is positive, so fitted probabilities reach
        // 0 and 1 at small λ and the IRLS weights are clamped.
        let n = 40;
        let x: Vec<f64> = (0..n)
            .flat_map(|i| [i as f64 - 19.5, ((i * 7) % 5) as f64])
            .collect();
        let y: Vec<f64> = (0..n).map(|i| if i >= 20 { 1.0 } else { 0.0 }).collect();
        let path = lasso_logistic_path(&x, &y, 2, &LassoOptions::default()).unwrap();
        let last = path.fits.last().unwrap();
        assert!(last.standardized[0] > 10.0, "{last:?}");
        assert!(last.coefficients.iter().all(|b| b.is_finite()));

        // The optimality condition of the first coefficient still holds.
        let design = Design::new(&x, n, 2);
        let gradient: f64 = (0..n)
            .map(|i| {
                let eta: f64 = last.intercept
                    + last.coefficients[0] * x[2 * i]
                    + last.coefficients[1] * x[2 * i + 1];
                design.column(0)[i] * (logistic(eta) - y[i])
            })
            .sum::<f64>()
            / n as f64;
        assert!((gradient + last.lambda).abs() < 1e-8, "gradient {gradient}");
    }

    #[test]
    fn invalid_inputs_are_rejected() {
        let options = options();
        let x = [0.0, 1.0, 2.0, 3.0];
        let y = [0.0, 1.0, 0.0, 1.0];
        let cases: [(&[f64], &[f64], usize, &str); 7] = [
            (&[], &[], 1, "empty data"),
            (&x, &y, 0, "p = 0"),
            (&x, &y[..3], 1, "mismatched lengths"),
            (&x, &[0.0, 1.0, 2.0, 1.0], 1, "y[2] = 2"),
            (&x, &[0.0, 1.0, f64::NAN, 1.0], 1, "y[2] = NaN"),
            (&x, &[1.0; 4], 1, "all 4 responses are 1"),
            (&[0.0, 1.0, f64::INFINITY, 3.0], &y, 1, "x[2, 0] = inf"),
        ];
        for (x, y, p, message) in cases {
            let error = lasso_logistic_path(x, y, p, &options).unwrap_err();
            assert!(error.contains(message), "{error:?} lacks {message:?}");
            let error = lasso_logistic_at(x, y, p, 0.1, &options).unwrap_err();
            assert!(error.contains(message), "{error:?} lacks {message:?}");
        }
    }

    #[test]
    fn invalid_options_are_rejected() {
        let x = [0.0, 1.0, 2.0, 3.0];
        let y = [0.0, 1.0, 0.0, 1.0];
        let cases = [
            (
                LassoOptions {
                    n_lambda: 0,
                    ..options()
                },
                "n_lambda",
            ),
            (
                LassoOptions {
                    lambda_min_ratio: Some(1.0),
                    ..options()
                },
                "lambda_min_ratio",
            ),
            (
                LassoOptions {
                    tolerance: 0.0,
                    ..options()
                },
                "tolerance",
            ),
            (
                LassoOptions {
                    max_passes: 0,
                    ..options()
                },
                "max_passes",
            ),
        ];
        for (options, message) in cases {
            let error = lasso_logistic_path(&x, &y, 1, &options).unwrap_err();
            assert!(error.contains(message), "{error:?} lacks {message:?}");
        }
        let error = lasso_logistic_at(&x, &y, 1, -1.0, &options()).unwrap_err();
        assert!(error.contains("lambda = -1"), "{error:?}");
    }

    #[test]
    fn max_passes_exceeded_is_error() {
        let (x, y) = small_data();
        let options = LassoOptions {
            max_passes: 2,
            ..options()
        };
        let error = lasso_logistic_at(&x, &y, 3, 0.001, &options).unwrap_err();
        assert!(error.contains("did not converge"), "{error:?}");
    }

    fn fit(lambda: f64, standardized: Vec<f64>) -> LassoFit {
        let nonzero = standardized.iter().filter(|b| **b != 0.0).count();
        LassoFit {
            lambda,
            intercept: 0.0,
            coefficients: standardized.clone(),
            standardized,
            nonzero,
            passes: 0,
        }
    }

    #[test]
    fn select_variables_by_entry_order() {
        let path = LassoPath {
            fits: vec![
                fit(1.0, vec![0.0, 0.0, 0.0, 0.0]),
                fit(0.5, vec![0.0, 0.0, 0.3, 0.0]),
                // Columns 0 and 3 enter together, and column 3 is larger at entry.
                fit(0.25, vec![0.1, 0.0, 0.4, -0.2]),
                fit(0.1, vec![0.5, 0.2, 0.5, -0.2]),
            ],
        };
        assert_eq!(select_variables(&path, 0), Vec::<usize>::new());
        assert_eq!(select_variables(&path, 1), vec![2]);
        assert_eq!(select_variables(&path, 2), vec![2, 3]);
        assert_eq!(select_variables(&path, 3), vec![2, 3, 0]);
        assert_eq!(select_variables(&path, 4), vec![2, 3, 0, 1]);
        // No fit has 5 nonzero coefficients, so the last fit's 4 are returned.
        assert_eq!(select_variables(&path, 5), vec![2, 3, 0, 1]);
    }

    #[test]
    fn select_variables_skips_dropped_columns() {
        let path = LassoPath {
            fits: vec![
                fit(1.0, vec![0.0, 0.0, 0.0]),
                fit(0.5, vec![0.0, 0.3, 0.0]),
                // Column 1 leaves the model, and the fit still has 2 nonzero coefficients.
                fit(0.25, vec![0.2, 0.0, 0.1]),
            ],
        };
        assert_eq!(select_variables(&path, 2), vec![0, 2]);
    }
}
