//! Synthetic data of the simulation studies of Wang, Zhu and Zhu, "Byzantine-robust
//! distributed one-step estimation", Section 5.1.
//!
//! Features are `X ~ N(0, Σ_T)` with the Toeplitz covariance `Σ_T[i, k] = 0.5^|i−k|`,
//! drawn as the stationary AR(1) recursion `X₁ = Z₁`, `X_l = 0.5·X_{l−1} + √0.75·Z_l`,
//! which has exactly that covariance. The true parameter is
//! `θ* = p^(−1/2) (1, (p−2)/(p−1), (p−3)/(p−1), …, 0)` and the model has no intercept.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Poisson, StandardNormal};

use crate::family::Family;

/// Correlation between neighbouring features.
const RHO: f64 = 0.5;

/// Corruption of a Byzantine machine's own rows, applied before it computes anything.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DataAttack {
    /// Logistic response replaced by `1 − Y`.
    FlipLabels,
    /// Features multiplied by a constant (Section 5.1.3 uses 10).
    ScaleX(f64),
    /// Poisson response drawn from `Poisson(exp(−Xᵀθ*))`.
    NegateMean,
}

impl FromStr for DataAttack {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.split_once(':') {
            Some(("scale-x", c)) => c
                .parse::<f64>()
                .ok()
                .filter(|c| c.is_finite())
                .map(DataAttack::ScaleX)
                .ok_or_else(|| format!("invalid factor '{c}' in '{s}': use e.g. scale-x:10")),
            None if lower == "flip-labels" => Ok(DataAttack::FlipLabels),
            None if lower == "negate-mean" => Ok(DataAttack::NegateMean),
            None if lower == "scale-x" => Ok(DataAttack::ScaleX(10.0)),
            _ => Err(format!(
                "unknown data attack '{s}': expected flip-labels, scale-x:C or negate-mean"
            )),
        }
    }
}

impl fmt::Display for DataAttack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataAttack::FlipLabels => f.write_str("flip-labels"),
            DataAttack::ScaleX(c) => write!(f, "scale-x:{c}"),
            DataAttack::NegateMean => f.write_str("negate-mean"),
        }
    }
}

impl DataAttack {
    /// Checks that the attack applies to the family.
    pub fn check(self, family: Family) -> Result<(), String> {
        match (self, family) {
            (DataAttack::FlipLabels, Family::Logistic) => Ok(()),
            (DataAttack::NegateMean, Family::Poisson) => Ok(()),
            (DataAttack::ScaleX(_), _) => Ok(()),
            (attack, family) => Err(format!("data attack {attack} does not apply to {family}")),
        }
    }
}

/// Returns the true parameter `θ*` of Section 5.1.1 for `p` parameters.
pub fn theta_star(p: usize) -> Vec<f64> {
    assert!(p >= 2, "the design needs at least two parameters");
    let scale = 1.0 / (p as f64).sqrt();
    (0..p)
        .map(|l| scale * (p - 1 - l) as f64 / (p - 1) as f64)
        .collect()
}

/// One machine's rows: row-major features (`n × p`) and responses.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineData {
    /// Features, row-major.
    pub x: Vec<f64>,
    /// Responses.
    pub y: Vec<f64>,
}

/// Derives the seed of machine `j` of one simulated data set, so that machines are
/// independent and the honest machines of two data sets with the same `seed` coincide.
pub fn machine_seed(seed: u64, machine: usize) -> u64 {
    // SplitMix64 finaliser: spreads consecutive inputs over the whole range.
    let mut z = seed ^ (machine as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Draws one machine's `n` rows of the Section 5.1 design, corrupted by `attack` if given.
pub fn generate_machine(
    family: Family,
    theta: &[f64],
    n: usize,
    attack: Option<DataAttack>,
    seed: u64,
) -> MachineData {
    let p = theta.len();
    let mut rng = StdRng::seed_from_u64(seed);
    let innovation = (1.0 - RHO * RHO).sqrt();
    let mut x = Vec::with_capacity(n * p);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let start = x.len();
        let mut previous: f64 = rng.sample(StandardNormal);
        x.push(previous);
        for _ in 1..p {
            let z: f64 = rng.sample(StandardNormal);
            previous = RHO * previous + innovation * z;
            x.push(previous);
        }
        let row = &x[start..];
        let eta: f64 = row.iter().zip(theta).map(|(a, b)| a * b).sum();
        let response = match (family, attack) {
            (Family::Logistic, _) => {
                let probability = 1.0 / (1.0 + (-eta).exp());
                let draw = f64::from(u8::from(rng.random::<f64>() < probability));
                if attack == Some(DataAttack::FlipLabels) {
                    1.0 - draw
                } else {
                    draw
                }
            }
            (Family::Poisson, Some(DataAttack::NegateMean)) => poisson(&mut rng, (-eta).exp()),
            (Family::Poisson, _) => poisson(&mut rng, eta.exp()),
            (Family::Gaussian, _) => eta + rng.sample::<f64, _>(StandardNormal),
        };
        y.push(response);
        if let Some(DataAttack::ScaleX(c)) = attack {
            x[start..].iter_mut().for_each(|v| *v *= c);
        }
    }
    MachineData { x, y }
}

fn poisson(rng: &mut StdRng, mean: f64) -> f64 {
    // rand_distr rejects a zero mean; exp() of a finite predictor is positive, but it
    // underflows to 0 below about −745.
    if mean > 0.0 {
        Poisson::new(mean).map(|d| d.sample(rng)).unwrap_or(0.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theta_star_falls_linearly_to_zero() {
        let t = theta_star(30);
        assert!((t[0] - 30f64.powf(-0.5)).abs() < 1e-15);
        assert_eq!(t[29], 0.0);
        assert!((t[1] - 30f64.powf(-0.5) * 28.0 / 29.0).abs() < 1e-15);
    }

    /// The AR(1) recursion must give covariance 0.5^|i−k|, checked on 40,000 rows.
    #[test]
    fn features_have_toeplitz_covariance() {
        let theta = theta_star(4);
        let data = generate_machine(Family::Logistic, &theta, 40_000, None, 7);
        let n = data.y.len() as f64;
        for (a, b, expected) in [(0, 0, 1.0), (0, 1, 0.5), (1, 3, 0.25), (0, 3, 0.125)] {
            let cov: f64 = (0..data.y.len())
                .map(|i| data.x[i * 4 + a] * data.x[i * 4 + b])
                .sum::<f64>()
                / n;
            // Standard error of a sample covariance of unit normals is at most √(2/n) ≈ 0.007.
            assert!((cov - expected).abs() < 0.03, "cov({a}, {b}) = {cov}");
        }
    }

    #[test]
    fn flipped_labels_are_the_complement() {
        let theta = theta_star(5);
        let clean = generate_machine(Family::Logistic, &theta, 200, None, 3);
        let flipped = generate_machine(
            Family::Logistic,
            &theta,
            200,
            Some(DataAttack::FlipLabels),
            3,
        );
        assert_eq!(clean.x, flipped.x);
        for (a, b) in clean.y.iter().zip(&flipped.y) {
            assert_eq!(a + b, 1.0);
        }
    }

    #[test]
    fn machine_seeds_differ() {
        assert_ne!(machine_seed(1, 0), machine_seed(1, 1));
        assert_ne!(machine_seed(1, 0), machine_seed(2, 0));
    }
}
