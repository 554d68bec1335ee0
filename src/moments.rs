//! Streaming per-machine sums of the loss derivatives at a fixed parameter value.
//!
//! A machine's rows arrive in batches, possibly split across execution partitions, so
//! the means and centred second moments are kept in the mergeable form of Chan, Golub and
//! LeVeque (1979): each batch is summarised exactly by two passes, and summaries combine
//! with
//!
//! ```text
//! n = n_a + n_b,  δ = mean_b − mean_a,
//! mean = mean_a + δ·n_b/n,  M2 = M2_a + M2_b + δ·δᵀ·n_a·n_b/n
//! ```
//!
//! which avoids the cancellation of the `Σx² − n·mean²` form.

use crate::family::Family;

/// A batch of rows in row-major order: `x` contains `n × p` values (the intercept column
/// included when the model has one) and `y` contains `n` responses.
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    /// Design matrix, row-major, `y.len() × n_params` values.
    pub x: &'a [f64],
    /// Responses.
    pub y: &'a [f64],
}

impl Rows<'_> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Returns whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// Mergeable summary of one machine's loss derivatives at a parameter value `θ`.
///
/// Matrices are `p × p`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct DerivativeMoments {
    /// Number of parameters `p`.
    pub n_params: usize,
    /// Rows summarised.
    pub rows: u64,
    /// Mean loss `F_j(θ)`.
    pub loss_mean: f64,
    /// Mean gradient `∇F_j(θ)`.
    pub gradient_mean: Vec<f64>,
    /// Co-moment `Σ_i (∇f_i − ∇F_j)(∇f_i − ∇F_j)ᵀ`.
    pub gradient_m2: Vec<f64>,
    /// Mean Hessian `∇²F_j(θ)`.
    pub hessian_mean: Vec<f64>,
    /// Entry-wise `Σ_i (∇²f_i − ∇²F_j)²`.
    pub hessian_m2: Vec<f64>,
}

impl DerivativeMoments {
    /// Creates an empty summary for `n_params` parameters.
    pub fn new(n_params: usize) -> Self {
        let pp = n_params * n_params;
        DerivativeMoments {
            n_params,
            rows: 0,
            loss_mean: 0.0,
            gradient_mean: vec![0.0; n_params],
            gradient_m2: vec![0.0; pp],
            hessian_mean: vec![0.0; pp],
            hessian_m2: vec![0.0; pp],
        }
    }

    /// Summarises `rows` at `theta` and merges the result into `self`.
    pub fn update(&mut self, family: Family, theta: &[f64], rows: Rows<'_>) {
        let batch = Self::from_rows(family, theta, rows);
        self.merge(&batch);
    }

    /// Summarises one batch exactly with two passes over its rows.
    pub fn from_rows(family: Family, theta: &[f64], rows: Rows<'_>) -> Self {
        Self::summarise(family, theta, rows, true, false)
    }

    /// Summarises one batch like [`Self::from_rows`], with every linear predictor bounded
    /// by [`Family::bound_linear_predictor`], as R evaluates a fit that ran off to infinity.
    pub fn from_rows_bounded(family: Family, theta: &[f64], rows: Rows<'_>) -> Self {
        Self::summarise(family, theta, rows, true, true)
    }

    /// Summarises one batch with the loss, mean gradient and mean Hessian only, leaving
    /// the second moments at zero. A Newton iteration needs nothing more, and this skips
    /// two thirds of the work.
    pub fn first_moments(family: Family, theta: &[f64], rows: Rows<'_>) -> Self {
        Self::summarise(family, theta, rows, false, false)
    }

    fn summarise(
        family: Family,
        theta: &[f64],
        rows: Rows<'_>,
        second_moments: bool,
        bounded: bool,
    ) -> Self {
        let p = theta.len();
        assert_eq!(rows.x.len(), rows.len() * p, "design must have p columns");
        let mut out = DerivativeMoments::new(p);
        let n = rows.len();
        if n == 0 {
            return out;
        }

        // First pass: per-row weights and the means.
        let mut weights = Vec::with_capacity(n);
        let mut loss_sum = 0.0;
        for (i, &y) in rows.y.iter().enumerate() {
            let x = &rows.x[i * p..(i + 1) * p];
            let mut eta: f64 = x.iter().zip(theta).map(|(a, b)| a * b).sum();
            if bounded {
                eta = family.bound_linear_predictor(eta);
            }
            let terms = family.row_terms(eta, y);
            loss_sum += terms.loss;
            weights.push((terms.gradient_weight, terms.hessian_weight));
            for a in 0..p {
                out.gradient_mean[a] += terms.gradient_weight * x[a];
                let hx = terms.hessian_weight * x[a];
                // Slices over the upper triangle let the compiler drop bounds checks and
                // vectorise.
                let row = &mut out.hessian_mean[a * p + a..(a + 1) * p];
                for (h, xb) in row.iter_mut().zip(&x[a..]) {
                    *h += hx * xb;
                }
            }
        }
        let inv_n = 1.0 / n as f64;
        out.loss_mean = loss_sum * inv_n;
        out.gradient_mean.iter_mut().for_each(|v| *v *= inv_n);
        for a in 0..p {
            for b in a..p {
                out.hessian_mean[a * p + b] *= inv_n;
            }
        }

        out.rows = n as u64;
        if !second_moments {
            out.mirror_upper();
            return out;
        }

        // Second pass: centred second moments, upper triangle only.
        let mut centred = vec![0.0; p];
        for (i, &(gw, hw)) in weights.iter().enumerate() {
            let x = &rows.x[i * p..(i + 1) * p];
            for a in 0..p {
                centred[a] = gw * x[a] - out.gradient_mean[a];
            }
            for a in 0..p {
                let ca = centred[a];
                let hx = hw * x[a];
                let upper = a * p + a..(a + 1) * p;
                let g_row = &mut out.gradient_m2[upper.clone()];
                for (g, cb) in g_row.iter_mut().zip(&centred[a..]) {
                    *g += ca * cb;
                }
                let h_mean = &out.hessian_mean[upper.clone()];
                let h_row = &mut out.hessian_m2[upper];
                for ((h, xb), mean) in h_row.iter_mut().zip(&x[a..]).zip(h_mean) {
                    let d = hx * xb - mean;
                    *h += d * d;
                }
            }
        }
        out.mirror_upper();
        out
    }

    fn mirror_upper(&mut self) {
        let p = self.n_params;
        for a in 0..p {
            for b in 0..a {
                self.gradient_m2[a * p + b] = self.gradient_m2[b * p + a];
                self.hessian_mean[a * p + b] = self.hessian_mean[b * p + a];
                self.hessian_m2[a * p + b] = self.hessian_m2[b * p + a];
            }
        }
    }

    /// Merges another summary of the same machine and parameter value into `self`.
    pub fn merge(&mut self, other: &DerivativeMoments) {
        assert_eq!(
            self.n_params, other.n_params,
            "summaries must have the same p"
        );
        if other.rows == 0 {
            return;
        }
        if self.rows == 0 {
            *self = other.clone();
            return;
        }
        let p = self.n_params;
        let (na, nb) = (self.rows as f64, other.rows as f64);
        let n = na + nb;
        let wb = nb / n;
        let cross = na * nb / n;

        self.loss_mean += (other.loss_mean - self.loss_mean) * wb;
        let delta_g: Vec<f64> = (0..p)
            .map(|a| other.gradient_mean[a] - self.gradient_mean[a])
            .collect();
        for a in 0..p {
            self.gradient_mean[a] += delta_g[a] * wb;
            for b in 0..p {
                let idx = a * p + b;
                self.gradient_m2[idx] += other.gradient_m2[idx] + delta_g[a] * delta_g[b] * cross;
                let delta_h = other.hessian_mean[idx] - self.hessian_mean[idx];
                self.hessian_mean[idx] += delta_h * wb;
                self.hessian_m2[idx] += other.hessian_m2[idx] + delta_h * delta_h * cross;
            }
        }
        self.rows += other.rows;
    }

    /// Finishes the summary into the statistics a machine sends.
    pub fn finish(&self) -> LocalDerivatives {
        let p = self.n_params;
        let inv_n = if self.rows == 0 {
            f64::NAN
        } else {
            1.0 / self.rows as f64
        };
        let gradient_covariance: Vec<f64> = self.gradient_m2.iter().map(|v| v * inv_n).collect();
        let hessian_variance: Vec<f64> = self.hessian_m2.iter().map(|v| v * inv_n).collect();
        let mut gradient_outer = gradient_covariance.clone();
        for a in 0..p {
            for b in 0..p {
                gradient_outer[a * p + b] += self.gradient_mean[a] * self.gradient_mean[b];
            }
        }
        LocalDerivatives {
            rows: self.rows,
            loss: self.loss_mean,
            gradient: self.gradient_mean.clone(),
            hessian: self.hessian_mean.clone(),
            gradient_covariance,
            gradient_outer,
            hessian_variance,
        }
    }
}

/// One machine's loss derivatives at a broadcast parameter value `θ` (the second round of
/// communication). Matrices are `p × p`, row-major, and all averages divide by `n_j`.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalDerivatives {
    /// Rows `n_j`.
    pub rows: u64,
    /// Mean loss `F_j(θ)`.
    pub loss: f64,
    /// Mean gradient `∇F_j(θ)`.
    pub gradient: Vec<f64>,
    /// Mean Hessian `∇²F_j(θ)`.
    pub hessian: Vec<f64>,
    /// Centred gradient covariance `J_j(θ) = (1/n_j) Σ_i (∇f_i − ∇F_j)(∇f_i − ∇F_j)ᵀ`;
    /// its diagonal is the gradient variance `σ̂²_gr,jl` of eq. (14).
    pub gradient_covariance: Vec<f64>,
    /// Uncentred gradient second moment `(1/n_j) Σ_i ∇f_i ∇f_iᵀ`.
    pub gradient_outer: Vec<f64>,
    /// Hessian entry variances `σ̂²_he,jl1l2 = (1/n_j) Σ_i (∇²f_i − ∇²F_j)²` of eq. (15).
    pub hessian_variance: Vec<f64>,
}

impl LocalDerivatives {
    /// Number of parameters `p`.
    pub fn n_params(&self) -> usize {
        self.gradient.len()
    }

    /// Gradient variances `σ̂²_gr,jl`, the diagonal of the centred covariance.
    pub fn gradient_variance(&self) -> Vec<f64> {
        let p = self.n_params();
        (0..p)
            .map(|l| self.gradient_covariance[l * p + l])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_rows() -> (Vec<f64>, Vec<f64>) {
        let p = 3;
        let n = 40;
        let mut x = Vec::with_capacity(n * p);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let t = i as f64;
            x.extend_from_slice(&[1.0, (t * 0.37).sin(), (t * 0.11).cos() * 2.0]);
            y.push(f64::from(u8::from((t * 0.7).sin() > 0.0)));
        }
        (x, y)
    }

    /// Direct evaluation of the definitions, one row at a time.
    fn naive(family: Family, theta: &[f64], x: &[f64], y: &[f64]) -> LocalDerivatives {
        let p = theta.len();
        let n = y.len() as f64;
        let mut grads = Vec::new();
        let mut hess = Vec::new();
        for (i, &yi) in y.iter().enumerate() {
            let xi = &x[i * p..(i + 1) * p];
            let eta: f64 = xi.iter().zip(theta).map(|(a, b)| a * b).sum();
            let t = family.row_terms(eta, yi);
            grads.push(xi.iter().map(|v| t.gradient_weight * v).collect::<Vec<_>>());
            let mut h = vec![0.0; p * p];
            for a in 0..p {
                for b in 0..p {
                    h[a * p + b] = t.hessian_weight * xi[a] * xi[b];
                }
            }
            hess.push(h);
        }
        let g_mean: Vec<f64> = (0..p)
            .map(|a| grads.iter().map(|g| g[a]).sum::<f64>() / n)
            .collect();
        let h_mean: Vec<f64> = (0..p * p)
            .map(|e| hess.iter().map(|h| h[e]).sum::<f64>() / n)
            .collect();
        let mut cov = vec![0.0; p * p];
        let mut hvar = vec![0.0; p * p];
        for (g, h) in grads.iter().zip(&hess) {
            for a in 0..p {
                for b in 0..p {
                    cov[a * p + b] += (g[a] - g_mean[a]) * (g[b] - g_mean[b]) / n;
                    hvar[a * p + b] += (h[a * p + b] - h_mean[a * p + b]).powi(2) / n;
                }
            }
        }
        LocalDerivatives {
            rows: y.len() as u64,
            loss: 0.0,
            gradient: g_mean,
            hessian: h_mean,
            gradient_covariance: cov,
            gradient_outer: vec![],
            hessian_variance: hvar,
        }
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn split_batches_merge_to_the_definitions() {
        let (x, y) = sample_rows();
        let theta = [0.2, -0.5, 0.3];
        let expected = naive(Family::Logistic, &theta, &x, &y);

        let mut merged = DerivativeMoments::new(3);
        for (start, end) in [(0, 7), (7, 8), (8, 31), (31, 40)] {
            let rows = Rows {
                x: &x[start * 3..end * 3],
                y: &y[start..end],
            };
            merged.update(Family::Logistic, &theta, rows);
        }
        let got = merged.finish();
        assert_eq!(got.rows, 40);
        assert_close(&got.gradient, &expected.gradient, 1e-13);
        assert_close(&got.hessian, &expected.hessian, 1e-13);
        assert_close(
            &got.gradient_covariance,
            &expected.gradient_covariance,
            1e-12,
        );
        assert_close(&got.hessian_variance, &expected.hessian_variance, 1e-12);
    }

    #[test]
    fn uncentred_moment_adds_mean_outer_product() {
        let (x, y) = sample_rows();
        let theta = [0.0, 1.0, -1.0];
        let d =
            DerivativeMoments::from_rows(Family::Poisson, &theta, Rows { x: &x, y: &y }).finish();
        let direct: f64 = (0..40)
            .map(|i| {
                let xi = &x[i * 3..i * 3 + 3];
                let eta = xi[1] - xi[2];
                let g = eta.exp() - y[i];
                (g * xi[1]) * (g * xi[2])
            })
            .sum::<f64>()
            / 40.0;
        assert!((d.gradient_outer[5] - direct).abs() < 1e-12);
    }
}
