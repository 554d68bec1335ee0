//! Robust aggregation of the statistics that machines send: the coordinate-wise median
//! and the variance-reduced median of local estimators (VRMOL).
//!
//! Every function here treats a value that is not a finite number (NaN, ±∞) as missing:
//! it is dropped before ordering, together with its row count. A Byzantine machine that
//! sends non-finite values therefore loses its vote on that coordinate, while one that
//! sends huge finite values (such as 1e308) is outvoted by the ordering.

use statrs::distribution::{Continuous, ContinuousCDF, Normal};

/// Returns the standard normal distribution `N(0, 1)`.
fn standard_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("N(0, 1) has valid parameters")
}

/// Returns the median of the finite values, or `None` when there are none.
///
/// For an even count it is the mean of the two middle values, computed as `a/2 + b/2` so
/// that two values near `f64::MAX` do not overflow.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut finite: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return None;
    }
    finite.sort_by(f64::total_cmp);
    let mid = finite.len() / 2;
    if finite.len() % 2 == 1 {
        Some(finite[mid])
    } else {
        Some(finite[mid - 1] / 2.0 + finite[mid] / 2.0)
    }
}

/// Quantile levels `κ_k = k/(K+1)`, `k = 1..K`, and the normal quantities derived from them.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantileLevels {
    /// Levels `κ_k`.
    pub kappa: Vec<f64>,
    /// Normal quantiles `Δ_k = Ψ⁻¹(κ_k)`.
    pub delta: Vec<f64>,
    /// `Σ_k ψ(Δ_k)`, the sum of the standard normal density at the quantiles.
    pub density_sum: f64,
}

impl QuantileLevels {
    /// Builds the levels for `k_quantiles ≥ 1` quantiles.
    pub fn new(k_quantiles: usize) -> Self {
        assert!(k_quantiles >= 1, "VRMOL needs at least one quantile level");
        let normal = standard_normal();
        let kappa: Vec<f64> = (1..=k_quantiles)
            .map(|k| k as f64 / (k_quantiles as f64 + 1.0))
            .collect();
        let delta: Vec<f64> = kappa.iter().map(|&q| normal.inverse_cdf(q)).collect();
        let density_sum = delta.iter().map(|&d| normal.pdf(d)).sum();
        QuantileLevels {
            kappa,
            delta,
            density_sum,
        }
    }

    /// Number of levels `K`.
    pub fn k(&self) -> usize {
        self.kappa.len()
    }

    /// Computes the variance inflation `D_K` of VRMOL relative to the mean.
    ///
    /// # Formula
    ///
    /// Wang, Zhu and Zhu, "Byzantine-robust distributed one-step estimation", eq. (9):
    ///
    /// ```text
    /// D_K = Σ_{k1=1..K} Σ_{k2=1..K} (min(κ_k1, κ_k2) − κ_k1·κ_k2) / (Σ_k ψ(Δ_k))²
    /// ```
    ///
    /// `D_K` decreases from `π/2` at `K = 1` (the plain median) towards `π/3` as `K → ∞`.
    pub fn d_k(&self) -> f64 {
        let mut numerator = 0.0;
        for &a in &self.kappa {
            for &b in &self.kappa {
                numerator += a.min(b) - a * b;
            }
        }
        numerator / (self.density_sum * self.density_sum)
    }
}

/// Combines one coordinate of the machines' statistics by VRMOL.
///
/// `values[j]` is machine `j`'s statistic, `rows[j]` its row count `n_j`, and `sigma` the
/// scale `σ` of one row, so that machine `j`'s statistic has standard deviation
/// `σ/√n_j`. With fewer than three finite values, or a scale that is not a positive
/// finite number, the median is returned instead, because the correction needs an
/// ordering of at least three values and a usable scale.
///
/// # Formula
///
/// Wang, Zhu and Zhu, "Byzantine-robust distributed one-step estimation", eq. (8), with
/// machine-specific row counts. Starting from the median `t₀`, one Newton step on the
/// composite-quantile estimating equation
/// `S(t) = Σ_k Σ_j [1(v_j ≤ t + σΔ_k/√n_j) − κ_k]`, whose slope is
/// `(Σ_j √n_j)·Σ_k ψ(Δ_k)/σ`, gives
///
/// ```text
/// v_vr = t₀ − σ·S(t₀) / ((Σ_j √n_j) · Σ_k ψ(Δ_k))
/// ```
///
/// With `n_j = n` for all `m` machines, `Σ_j √n_j = m√n` and this is eq. (8) exactly.
pub fn vrmol(values: &[f64], rows: &[u64], sigma: f64, levels: &QuantileLevels) -> Option<f64> {
    assert_eq!(values.len(), rows.len(), "one row count per value");
    let t0 = median(values.iter().copied())?;
    let finite: Vec<(f64, f64)> = values
        .iter()
        .zip(rows)
        .filter(|(v, _)| v.is_finite())
        .map(|(&v, &n)| (v, (n as f64).sqrt()))
        .collect();
    if finite.len() < 3 || !(sigma.is_finite() && sigma > 0.0) {
        return Some(t0);
    }

    let mut score = 0.0;
    for (&kappa, &delta) in levels.kappa.iter().zip(&levels.delta) {
        for &(v, sqrt_n) in &finite {
            let below = v <= t0 + sigma * delta / sqrt_n;
            score += f64::from(u8::from(below)) - kappa;
        }
    }
    let sqrt_n_sum: f64 = finite.iter().map(|&(_, s)| s).sum();
    Some(t0 - sigma * score / (sqrt_n_sum * levels.density_sum))
}

/// Effective row count `n_eff = (Σ_j √n_j)² / m` of a median-type aggregate over
/// machines with row counts `n_j`.
///
/// The median and VRMOL of `m` local statistics with standard deviations `σ/√n_j` have
/// asymptotic variance `c·σ²/n_eff` (`c = π/2` for the median, `D_K` for VRMOL). With
/// equal row counts `n_eff = m·n`.
pub fn effective_rows(rows: &[u64]) -> f64 {
    let m = rows.len() as f64;
    let sqrt_sum: f64 = rows.iter().map(|&n| (n as f64).sqrt()).sum();
    sqrt_sum * sqrt_sum / m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// D_K from Table 1 of Wang, Zhu and Zhu, "Byzantine-robust distributed one-step
    /// estimation", printed to three decimals.
    const TABLE_1: [(usize, f64); 9] = [
        (3, 1.168),
        (5, 1.103),
        (7, 1.080),
        (10, 1.066),
        (15, 1.056),
        (20, 1.053),
        (30, 1.050),
        (50, 1.048),
        (100, 1.047),
    ];

    #[test]
    fn d_k_reproduces_table_1() {
        for (k, expected) in TABLE_1 {
            let d_k = QuantileLevels::new(k).d_k();
            // The table rounds to three decimals.
            assert!((d_k - expected).abs() <= 0.0005, "K = {k}: D_K = {d_k}");
            let efficiency = 1.0 / d_k;
            assert!(efficiency > 0.85, "K = {k}");
            assert!(efficiency < 0.956, "K = {k}");
        }
    }

    #[test]
    fn d_k_limits_are_median_and_pi_over_three() {
        let median_case = QuantileLevels::new(1).d_k();
        assert!((median_case - std::f64::consts::FRAC_PI_2).abs() < 1e-12);
        let large = QuantileLevels::new(2000).d_k();
        assert!((large - std::f64::consts::PI / 3.0).abs() < 2e-3);
    }

    #[test]
    fn median_handles_even_counts_and_non_finite_values() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([f64::NAN, 1.0, f64::INFINITY, 3.0]), Some(2.0));
        assert_eq!(median([f64::MAX, f64::MAX]), Some(f64::MAX));
        assert_eq!(median([f64::NAN]), None);
    }

    #[test]
    fn vrmol_with_equal_rows_is_equation_8() {
        let values = [1.0, 1.2, 0.9, 5.0, 1.1, 0.95, 1.05];
        let n = 100u64;
        let sigma = 0.5;
        let levels = QuantileLevels::new(10);
        let got = vrmol(&values, &[n; 7], sigma, &levels).unwrap();

        // Eq. (8) written literally with m·√n in the denominator.
        let m = values.len() as f64;
        let t0 = 1.05;
        let mut score = 0.0;
        for k in 1..=10 {
            let kappa = k as f64 / 11.0;
            let delta = standard_normal().inverse_cdf(kappa);
            for v in values {
                let below = v <= t0 + sigma * delta / (n as f64).sqrt();
                score += if below { 1.0 } else { 0.0 } - kappa;
            }
        }
        let density: f64 = (1..=10)
            .map(|k| {
                let normal = standard_normal();
                normal.pdf(normal.inverse_cdf(k as f64 / 11.0))
            })
            .sum();
        let expected = t0 - sigma * score / (m * (n as f64).sqrt() * density);
        assert_eq!(got, expected);
    }

    #[test]
    fn vrmol_falls_back_to_median_for_two_values() {
        let levels = QuantileLevels::new(5);
        assert_eq!(vrmol(&[1.0, 3.0], &[10, 10], 1.0, &levels), Some(2.0));
        assert_eq!(vrmol(&[7.0], &[10], 1.0, &levels), Some(7.0));
    }

    #[test]
    fn vrmol_ignores_non_finite_values() {
        let levels = QuantileLevels::new(10);
        let clean = vrmol(&[1.0, 1.1, 0.9, 1.05], &[50; 4], 0.3, &levels).unwrap();
        let dirty = vrmol(
            &[1.0, f64::NAN, 1.1, 0.9, f64::INFINITY, 1.05],
            &[50; 6],
            0.3,
            &levels,
        )
        .unwrap();
        assert_eq!(clean, dirty);
    }

    #[test]
    fn effective_rows_of_equal_machines_is_total() {
        assert!((effective_rows(&[500; 11]) - 5500.0).abs() < 1e-9);
        assert!(effective_rows(&[100, 900]) < 1000.0);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn sample() -> impl Strategy<Value = (Vec<f64>, Vec<u64>, f64, usize)> {
            (3usize..15).prop_flat_map(|m| {
                (
                    proptest::collection::vec(-10.0f64..10.0, m),
                    proptest::collection::vec(20u64..2000, m),
                    0.05f64..5.0,
                    1usize..30,
                )
            })
        }

        proptest! {
            #[test]
            fn vrmol_ignores_machine_order((values, rows, sigma, k) in sample()) {
                let levels = QuantileLevels::new(k);
                let a = vrmol(&values, &rows, sigma, &levels).unwrap();
                let mut pairs: Vec<(f64, u64)> = values.iter().copied().zip(rows.iter().copied()).collect();
                pairs.reverse();
                pairs.rotate_left(1);
                let (v2, r2): (Vec<f64>, Vec<u64>) = pairs.into_iter().unzip();
                let b = vrmol(&v2, &r2, sigma, &levels).unwrap();
                prop_assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
            }

            #[test]
            fn vrmol_is_translation_equivariant((values, rows, sigma, k) in sample(), shift in -50.0f64..50.0) {
                let levels = QuantileLevels::new(k);
                let a = vrmol(&values, &rows, sigma, &levels).unwrap();
                let moved: Vec<f64> = values.iter().map(|v| v + shift).collect();
                let b = vrmol(&moved, &rows, sigma, &levels).unwrap();
                prop_assert!((b - (a + shift)).abs() < 1e-9, "{} vs {}", b, a + shift);
            }

            /// With equal row counts the unequal-n formula is eq. (8) of Wang, Zhu and
            /// Zhu, with m·√n in the denominator.
            #[test]
            fn equal_rows_reduce_to_equation_8((values, _rows, sigma, k) in sample(), n in 20u64..5000) {
                let levels = QuantileLevels::new(k);
                let m = values.len();
                let got = vrmol(&values, &vec![n; m], sigma, &levels).unwrap();
                let t0 = median(values.iter().copied()).unwrap();
                let sqrt_n = (n as f64).sqrt();
                let mut score = 0.0;
                for (kappa, delta) in levels.kappa.iter().zip(&levels.delta) {
                    for v in &values {
                        let below = *v <= t0 + sigma * delta / sqrt_n;
                        score += if below { 1.0 } else { 0.0 } - kappa;
                    }
                }
                let expected = t0 - sigma * score / (m as f64 * sqrt_n * levels.density_sum);
                prop_assert!((got - expected).abs() <= 1e-14 * (1.0 + expected.abs()));
                prop_assert!((effective_rows(&vec![n; m]) - (m as u64 * n) as f64).abs() < 1e-6);
            }

            #[test]
            fn median_is_within_range(values in proptest::collection::vec(-1e300f64..1e300, 1..40)) {
                let med = median(values.iter().copied()).unwrap();
                let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                prop_assert!(med >= lo && med <= hi);
            }
        }
    }
}
