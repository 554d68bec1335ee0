//! Fault injection: statistics that Byzantine machines send in place of the honest ones.
//!
//! An attack replaces every value a corrupted machine transmits to the coordinator: its
//! local estimate and variances in the first round, and its gradient, Hessian and their
//! variances in the second. Quantities the central machine computes from its own rows for
//! its own use never travel, so they are never corrupted.

use std::fmt;
use std::str::FromStr;

/// How a Byzantine machine corrupts the values it sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Attack {
    /// Multiply every value by a constant (the simulations of Wang, Zhu and Zhu use −3).
    Scale(f64),
    /// Send NaN.
    Nan,
    /// Send +∞.
    Infinity,
    /// Send 1e308, a finite value near the largest `f64`.
    Huge,
}

impl Attack {
    /// Corrupts one value.
    pub fn apply(self, value: f64) -> f64 {
        match self {
            Attack::Scale(c) => c * value,
            Attack::Nan => f64::NAN,
            Attack::Infinity => f64::INFINITY,
            Attack::Huge => 1e308,
        }
    }

    /// Corrupts every value of a vector in place.
    pub fn apply_all(self, values: &mut [f64]) {
        values.iter_mut().for_each(|v| *v = self.apply(*v));
    }
}

impl FromStr for Attack {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.split_once(':') {
            Some(("scale", c)) => c
                .parse::<f64>()
                .ok()
                .filter(|c| c.is_finite())
                .map(Attack::Scale)
                .ok_or_else(|| format!("invalid scale factor '{c}' in attack '{s}': expected a finite number, e.g. scale:-3")),
            None if lower == "nan" => Ok(Attack::Nan),
            None if lower == "inf" => Ok(Attack::Infinity),
            None if lower == "huge" => Ok(Attack::Huge),
            _ => Err(format!(
                "unknown attack '{s}': expected scale:C, nan, inf or huge"
            )),
        }
    }
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attack::Scale(c) => write!(f, "scale:{c}"),
            Attack::Nan => f.write_str("nan"),
            Attack::Infinity => f.write_str("inf"),
            Attack::Huge => f.write_str("huge"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks_parse_and_apply() {
        assert_eq!("scale:-3".parse::<Attack>().unwrap().apply(2.0), -6.0);
        assert!("nan".parse::<Attack>().unwrap().apply(2.0).is_nan());
        assert_eq!("inf".parse::<Attack>().unwrap().apply(2.0), f64::INFINITY);
        assert_eq!("huge".parse::<Attack>().unwrap().apply(2.0), 1e308);
        assert!("scale:x".parse::<Attack>().is_err());
        assert!("flip".parse::<Attack>().is_err());
    }
}
