//! Fault injection: statistics that Byzantine machines send in place of the honest ones.
//!
//! An attack replaces every value a corrupted machine transmits to the coordinator: its
//! local estimate and variances in the first round, and its gradient, Hessian and their
//! variances and second moments in the second. Quantities the central machine computes
//! from its own rows for its own use never travel, so they are never corrupted.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;
use statrs::distribution::{ContinuousCDF, Normal};

/// Corruption that a Byzantine machine applies to the values it sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Attack {
    /// Multiply every value by a constant (the simulations of Wang, Zhu and Zhu use −3).
    Scale(f64),
    /// Send independent draws from `N(0, sd²)`.
    Gaussian(f64),
    /// Send NaN.
    Nan,
    /// Send +∞.
    Infinity,
    /// Send 1e308, a finite value near the largest `f64`.
    Huge,
    /// "A little is enough" (Baruch, Baruch and Goldberg 2019): send `μ − z·s`, where `μ`
    /// and `s` are the mean and standard deviation of the honest machines' values of the
    /// same entry. `None` takes `z = Ψ⁻¹((m − s)/m)` with `s = ⌊m/2 + 1⌋ − f` for `m`
    /// machines of which `f` are Byzantine, the largest shift that stays inside the
    /// honest spread.
    Alie(Option<f64>),
    /// Inner-product manipulation (Xie, Koyejo and Gupta 2020): send `−ε·μ`, with `μ` the
    /// honest mean of the same entry.
    Ipm(f64),
}

impl Attack {
    /// Corrupts machine `j`'s vector `messages[j]` for every `j` with `byzantine[j]`.
    ///
    /// Empty vectors (machines without statistics) are left alone. The honest mean and
    /// standard deviation of ALIE and IPM use the finite values of the other machines.
    pub fn corrupt(self, messages: &mut [Vec<f64>], byzantine: &[bool], rng: &mut StdRng) {
        assert_eq!(messages.len(), byzantine.len(), "one flag per machine");
        let len = messages.iter().map(Vec::len).max().unwrap_or(0);
        let m = messages.len();
        let f = byzantine.iter().filter(|&&b| b).count();
        let honest_stats = |e: usize| -> (f64, f64) {
            let values: Vec<f64> = (0..m)
                .filter(|&j| !byzantine[j] && messages[j].len() > e && messages[j][e].is_finite())
                .map(|j| messages[j][e])
                .collect();
            let k = values.len().max(1) as f64;
            let mean = values.iter().sum::<f64>() / k;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / k;
            (mean, var.sqrt())
        };
        let stats: Vec<(f64, f64)> = match self {
            Attack::Alie(_) | Attack::Ipm(_) => (0..len).map(honest_stats).collect(),
            _ => Vec::new(),
        };
        let alie_z = match self {
            Attack::Alie(Some(z)) => z,
            Attack::Alie(None) => alie_default_z(m, f),
            _ => 0.0,
        };
        for (j, message) in messages.iter_mut().enumerate() {
            if !byzantine[j] {
                continue;
            }
            for (e, value) in message.iter_mut().enumerate() {
                *value = match self {
                    Attack::Scale(c) => c * *value,
                    Attack::Gaussian(sd) => sd * rng.sample::<f64, _>(StandardNormal),
                    Attack::Nan => f64::NAN,
                    Attack::Infinity => f64::INFINITY,
                    Attack::Huge => 1e308,
                    Attack::Alie(_) => stats[e].0 - alie_z * stats[e].1,
                    Attack::Ipm(eps) => -eps * stats[e].0,
                };
            }
        }
    }
}

/// Chooses the Byzantine machines of a what-if analysis.
///
/// `count` machines are drawn uniformly without replacement, seeded by `seed`. With
/// `include_central` the central machine is one of them and the other `count − 1` are
/// drawn from the remaining machines; otherwise all are drawn from the non-central ones.
/// Returns machine indices in increasing order.
pub fn choose_byzantine(
    n_machines: usize,
    central: usize,
    count: usize,
    include_central: bool,
    seed: u64,
) -> Vec<usize> {
    use rand::SeedableRng;
    let others: Vec<usize> = (0..n_machines).filter(|&j| j != central).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let drawn = if include_central {
        count.saturating_sub(1)
    } else {
        count
    };
    let drawn = drawn.min(others.len());
    let mut chosen: Vec<usize> = rand::seq::index::sample(&mut rng, others.len(), drawn)
        .into_iter()
        .map(|i| others[i])
        .collect();
    if include_central {
        chosen.push(central);
    }
    chosen.sort_unstable();
    chosen
}

/// Computes the default `z` of ALIE for `m` machines of which `f` are Byzantine.
fn alie_default_z(m: usize, f: usize) -> f64 {
    let s = (m / 2 + 1).saturating_sub(f);
    let level = ((m - s.min(m)) as f64 / m.max(1) as f64).clamp(1e-6, 1.0 - 1e-6);
    Normal::new(0.0, 1.0)
        .expect("N(0, 1) has valid parameters")
        .inverse_cdf(level)
}

fn parse_number(s: &str, text: &str, example: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|c| c.is_finite())
        .ok_or_else(|| format!("invalid number '{text}' in attack '{s}': use e.g. {example}"))
}

impl FromStr for Attack {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.split_once(':') {
            Some(("scale", c)) => parse_number(s, c, "scale:-3").map(Attack::Scale),
            Some(("gaussian", sd)) => parse_number(s, sd, "gaussian:100").and_then(|sd| {
                if sd >= 0.0 {
                    Ok(Attack::Gaussian(sd))
                } else {
                    Err(format!(
                        "the standard deviation in '{s}' must not be negative"
                    ))
                }
            }),
            Some(("alie", z)) => parse_number(s, z, "alie:1.5").map(|z| Attack::Alie(Some(z))),
            Some(("ipm", eps)) => parse_number(s, eps, "ipm:0.5").map(Attack::Ipm),
            None if lower == "nan" => Ok(Attack::Nan),
            None if lower == "inf" => Ok(Attack::Infinity),
            None if lower == "huge" => Ok(Attack::Huge),
            None if lower == "alie" => Ok(Attack::Alie(None)),
            None if lower == "ipm" => Ok(Attack::Ipm(0.1)),
            _ => Err(format!(
                "unknown attack '{s}': expected scale:C, gaussian:SD, nan, inf, huge, alie[:Z] or ipm[:EPS]"
            )),
        }
    }
}

/// A parameter as the user would write it: `1e300` rather than its 301 digits.
struct CompactNumber(f64);

impl fmt::Display for CompactNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let magnitude = self.0.abs();
        if magnitude.is_finite() && magnitude != 0.0 && !(1e-4..1e6).contains(&magnitude) {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attack::Scale(c) => write!(f, "scale:{}", CompactNumber(*c)),
            Attack::Gaussian(sd) => write!(f, "gaussian:{}", CompactNumber(*sd)),
            Attack::Nan => f.write_str("nan"),
            Attack::Infinity => f.write_str("inf"),
            Attack::Huge => f.write_str("huge"),
            Attack::Alie(None) => f.write_str("alie"),
            Attack::Alie(Some(z)) => write!(f, "alie:{}", CompactNumber(*z)),
            Attack::Ipm(eps) => write!(f, "ipm:{}", CompactNumber(*eps)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn corrupt(attack: &str, values: &[f64], byzantine: &[bool]) -> Vec<f64> {
        let mut messages: Vec<Vec<f64>> = values.iter().map(|v| vec![*v]).collect();
        let mut rng = StdRng::seed_from_u64(1);
        attack
            .parse::<Attack>()
            .unwrap()
            .corrupt(&mut messages, byzantine, &mut rng);
        messages.into_iter().map(|m| m[0]).collect()
    }

    #[test]
    fn elementwise_attacks_touch_only_byzantine_machines() {
        let flags = [false, true, false];
        assert_eq!(
            corrupt("scale:-3", &[1.0, 2.0, 3.0], &flags),
            vec![1.0, -6.0, 3.0]
        );
        assert!(corrupt("nan", &[1.0, 2.0, 3.0], &flags)[1].is_nan());
        assert_eq!(corrupt("inf", &[1.0, 2.0, 3.0], &flags)[1], f64::INFINITY);
        assert_eq!(
            corrupt("huge", &[1.0, 2.0, 3.0], &flags),
            vec![1.0, 1e308, 3.0]
        );
        let noisy = corrupt("gaussian:100", &[1.0, 2.0, 3.0], &flags);
        assert_eq!(noisy[0], 1.0);
        assert_ne!(noisy[1], 2.0);
    }

    #[test]
    fn alie_and_ipm_use_honest_moments() {
        // Honest values 1 and 3: mean 2, population standard deviation 1.
        let flags = [false, true, false];
        assert_eq!(
            corrupt("alie:1.5", &[1.0, 100.0, 3.0], &flags)[1],
            2.0 - 1.5
        );
        assert_eq!(corrupt("ipm:0.5", &[1.0, 100.0, 3.0], &flags)[1], -1.0);
    }

    /// Baruch et al.'s z for m = 11 and f = 2: s = 6 − 2 = 4, z = Ψ⁻¹(7/11) ≈ 0.3488
    /// (R: qnorm(7/11)).
    #[test]
    fn alie_default_z_follows_the_formula() {
        assert!((alie_default_z(11, 2) - 0.348_755_695_517_946).abs() < 1e-9);
    }

    #[test]
    fn byzantine_choice_respects_central() {
        let chosen = choose_byzantine(11, 0, 2, false, 5);
        assert_eq!(chosen.len(), 2);
        assert!(!chosen.contains(&0));
        assert_eq!(chosen, choose_byzantine(11, 0, 2, false, 5), "seeded");
        let with_central = choose_byzantine(11, 0, 2, true, 5);
        assert_eq!(with_central.len(), 2);
        assert!(with_central.contains(&0));
    }

    #[test]
    fn attacks_parse_and_reject_garbage() {
        for good in [
            "scale:-3",
            "gaussian:2",
            "nan",
            "inf",
            "huge",
            "alie",
            "alie:1",
            "ipm",
            "ipm:2",
        ] {
            assert!(good.parse::<Attack>().is_ok(), "{good}");
        }
        for bad in ["scale:x", "flip", "gaussian", "scale:inf", ""] {
            assert!(bad.parse::<Attack>().is_err(), "{bad}");
        }
    }

    #[test]
    fn attack_labels_parse_back() {
        for (written, label) in [
            ("gaussian:1e300", "gaussian:1e300"),
            ("scale:-3", "scale:-3"),
            ("ipm:0.00001", "ipm:1e-5"),
            ("alie:2.5", "alie:2.5"),
        ] {
            let attack: Attack = written.parse().unwrap();
            assert_eq!(attack.to_string(), label);
            assert_eq!(label.parse::<Attack>().unwrap(), attack);
        }
    }
}
