//! rose: Byzantine-robust distributed one-step estimation over Parquet directories.
//!
//! Data sit in `m` partitions ("machines"); a minority of them may be Byzantine and send
//! arbitrary statistics. rose computes the Robust One-Step Estimator (ROSE) of Wang, Zhu
//! and Zhu, "Byzantine-robust distributed one-step estimation". Each machine fits its own
//! M-estimator, and the coordinator combines them by the variance-reduced median VRMOL.
//! Each machine then sends its gradient and Hessian at that point, these are combined the
//! same way, and one Newton step gives the final estimate.
//!
//! # Layout
//!
//! Imports point one way: `cli → engine → estimator → {aggregate, local_fit} → moments →
//! family → linalg`. Only [`engine`] touches Arrow and DataFusion; the math modules are
//! plain Rust and are tested directly.
//!
//! # Notation
//!
//! | paper | code |
//! |---|---|
//! | θ, θ̂_j, θ̂_med, θ̂_vr, θ̂_ros | `theta`, `fits[j].estimate`, `theta_median`, `vrmol_theta`, `estimate` |
//! | ∇F_j(θ), ∇²F_j(θ) | `gradient`, `hessian` |
//! | σ̂²_jl, σ̂²_gr,jl, σ̂²_he,jl1l2 | `variance`, `gradient_variance()`, `hessian_variance` |
//! | K, κ_k, Δ_k, D_K | `k_quantiles`, `kappa`, `delta`, `d_k()` |
//! | m, n_j, p | `n_machines`, `rows[j]`, `n_params` |
//!
//! Index letters: `j` machine, `i` row, `l` parameter, `k` quantile level.
//!
//! # References
//!
//! - Wang, Zhu and Zhu, "Byzantine-robust distributed one-step estimation" (ROSE, VRMOL).
//! - Zhang, Duchi and Wainwright (2013), communication-efficient algorithms for statistical
//!   optimization (the averaging estimator).
//! - Huang and Huo (2019), a distributed one-step estimator.
//! - Zou and Yuan (2008), composite quantile regression (the variance-reduction idea).
//! - Chan, Golub and LeVeque (1979), updating formulae for sample variances.

#![deny(missing_docs)]

pub mod aggregate;
pub mod attack;
pub mod engine;
pub mod error;
pub mod estimator;
pub mod experiment;
pub mod family;
pub mod lasso;
pub mod linalg;
pub mod local_fit;
pub mod memory;
pub mod moments;
pub mod report;
pub mod simulate;

pub use error::{Result, RoseError};
pub use estimator::{Estimation, Estimator, EstimatorOptions};
pub use family::Family;
