//! Machines held in memory, for simulations: local fits and derivatives without a query
//! engine, through the same kernels that the DataFusion aggregates call.

use crate::error::Result;
use crate::estimator::DerivativeSource;
use crate::family::Family;
use crate::local_fit::{LocalFit, NewtonOptions, fit_local};
use crate::moments::{DerivativeMoments, LocalDerivatives, Rows};
use crate::simulate::MachineData;

/// A set of machines whose rows are in memory.
#[derive(Clone, Debug)]
pub struct MemoryMachines {
    /// Model family.
    pub family: Family,
    /// Number of parameters `p` (the design has no intercept column added).
    pub n_params: usize,
    /// Rows of each machine.
    pub machines: Vec<MachineData>,
}

impl MemoryMachines {
    /// Fits every machine's local M-estimator, in machine order.
    pub fn local_fits(&self, options: &NewtonOptions) -> Vec<LocalFit> {
        self.machines
            .iter()
            .map(|m| fit_local(self.family, rows(m), self.n_params, options))
            .collect()
    }

    fn derivatives(&self, theta: &[f64], machine: usize) -> Option<LocalDerivatives> {
        let data = &self.machines[machine];
        if data.y.is_empty() {
            return None;
        }
        Some(DerivativeMoments::from_rows(self.family, theta, rows(data)).finish())
    }
}

fn rows(data: &MachineData) -> Rows<'_> {
    Rows {
        x: &data.x,
        y: &data.y,
    }
}

impl DerivativeSource for MemoryMachines {
    async fn all_derivatives(&self, theta: &[f64]) -> Result<Vec<Option<LocalDerivatives>>> {
        Ok((0..self.machines.len())
            .map(|j| self.derivatives(theta, j))
            .collect())
    }

    async fn machine_derivatives(
        &self,
        theta: &[f64],
        machine: usize,
    ) -> Result<Option<LocalDerivatives>> {
        Ok(self.derivatives(theta, machine))
    }

    async fn machine_hessian(
        &self,
        theta: &[f64],
        machine: usize,
    ) -> Result<Option<LocalDerivatives>> {
        let data = &self.machines[machine];
        if data.y.is_empty() {
            return Ok(None);
        }
        let mut d = DerivativeMoments::first_moments(self.family, theta, rows(data)).finish();
        // first_moments leaves the covariance at zero; fill its diagonal in O(p) per row.
        let p = theta.len();
        let variances = gradient_only(self.family, theta, data).gradient_variance();
        for (l, v) in variances.into_iter().enumerate() {
            d.gradient_covariance[l * p + l] = v;
        }
        Ok(Some(d))
    }

    async fn all_gradients(&self, theta: &[f64]) -> Result<Vec<Option<LocalDerivatives>>> {
        Ok((0..self.machines.len())
            .map(|j| {
                let data = &self.machines[j];
                (!data.y.is_empty()).then(|| gradient_only(self.family, theta, data))
            })
            .collect())
    }
}

/// Computes the mean loss and gradient and the gradient variances only, in `O(p)` per
/// row; the matrices of the result are empty except the diagonal of the covariance.
fn gradient_only(family: Family, theta: &[f64], data: &MachineData) -> LocalDerivatives {
    let p = theta.len();
    let n = data.y.len();
    let mut weights = Vec::with_capacity(n);
    let mut gradient = vec![0.0; p];
    let mut loss = 0.0;
    for (i, &y) in data.y.iter().enumerate() {
        let x = &data.x[i * p..(i + 1) * p];
        let eta: f64 = x.iter().zip(theta).map(|(a, b)| a * b).sum();
        let terms = family.row_terms(eta, y);
        loss += terms.loss;
        weights.push(terms.gradient_weight);
        for (g, v) in gradient.iter_mut().zip(x) {
            *g += terms.gradient_weight * v;
        }
    }
    let inv_n = 1.0 / n as f64;
    gradient.iter_mut().for_each(|g| *g *= inv_n);
    let mut variance = vec![0.0; p];
    for (i, w) in weights.iter().enumerate() {
        let x = &data.x[i * p..(i + 1) * p];
        for l in 0..p {
            let d = w * x[l] - gradient[l];
            variance[l] += d * d * inv_n;
        }
    }
    let mut gradient_covariance = vec![0.0; p * p];
    for l in 0..p {
        gradient_covariance[l * p + l] = variance[l];
    }
    LocalDerivatives {
        rows: n as u64,
        loss: loss * inv_n,
        gradient,
        hessian: Vec::new(),
        gradient_covariance,
        gradient_outer: Vec::new(),
        hessian_variance: Vec::new(),
    }
}
