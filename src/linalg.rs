//! Small dense linear algebra on row-major `p × p` matrices, backed by faer.
//!
//! The estimators keep matrices as flat `Vec<f64>` in row-major order because they travel
//! through Arrow lists and through coordinate-wise medians entry by entry. These helpers
//! convert to faer for the factorizations.

use faer::linalg::solvers::DenseSolveCore;
use faer::prelude::*;
use faer::{Mat, Side};

/// Builds a faer matrix from a row-major slice of a `p × p` matrix.
fn to_faer(a: &[f64], p: usize) -> Mat<f64> {
    assert_eq!(a.len(), p * p, "matrix slice must hold p * p entries");
    Mat::from_fn(p, p, |i, j| a[i * p + j])
}

fn from_faer(m: &Mat<f64>) -> Vec<f64> {
    let (rows, cols) = (m.nrows(), m.ncols());
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            out.push(m[(i, j)]);
        }
    }
    out
}

/// Solves `A x = b` for a symmetric positive definite `A` by Cholesky factorization.
///
/// Returns `None` when `A` is not numerically positive definite or the solution is not
/// finite.
pub fn solve_spd(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let p = b.len();
    let llt = to_faer(a, p).llt(Side::Lower).ok()?;
    let mut rhs = Mat::from_fn(p, 1, |i, _| b[i]);
    llt.solve_in_place(&mut rhs);
    finite_column(&rhs)
}

/// Solves `A x = b` for a general square `A` by LU factorization with partial pivoting.
///
/// Returns `None` when the solution is not finite, which is how an exactly singular `A`
/// shows up.
pub fn solve_general(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let p = b.len();
    let lu = to_faer(a, p).partial_piv_lu();
    let mut rhs = Mat::from_fn(p, 1, |i, _| b[i]);
    lu.solve_in_place(&mut rhs);
    finite_column(&rhs)
}

/// Inverts a symmetric positive definite matrix, or returns `None` when it is not
/// numerically positive definite.
pub fn inverse_spd(a: &[f64], p: usize) -> Option<Vec<f64>> {
    let llt = to_faer(a, p).llt(Side::Lower).ok()?;
    let inverse = from_faer(&llt.inverse());
    inverse.iter().all(|v| v.is_finite()).then_some(inverse)
}

/// Inverts a general square matrix by LU factorization, or returns `None` when the
/// inverse is not finite.
pub fn inverse_general(a: &[f64], p: usize) -> Option<Vec<f64>> {
    let lu = to_faer(a, p).partial_piv_lu();
    let inverse = from_faer(&lu.inverse());
    inverse.iter().all(|v| v.is_finite()).then_some(inverse)
}

/// Computes the sandwich `A⁻¹ M A⁻¹` from an already inverted bread `A⁻¹`.
pub fn sandwich(bread_inverse: &[f64], meat: &[f64], p: usize) -> Vec<f64> {
    let bread = to_faer(bread_inverse, p);
    let meat = to_faer(meat, p);
    let product = &bread * &meat * &bread;
    from_faer(&product)
}

fn finite_column(m: &Mat<f64>) -> Option<Vec<f64>> {
    let out: Vec<f64> = (0..m.nrows()).map(|i| m[(i, 0)]).collect();
    out.iter().all(|v| v.is_finite()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPD: [f64; 9] = [4.0, 1.0, 0.5, 1.0, 3.0, 0.25, 0.5, 0.25, 2.0];

    fn multiply(a: &[f64], x: &[f64]) -> Vec<f64> {
        let p = x.len();
        (0..p)
            .map(|i| (0..p).map(|j| a[i * p + j] * x[j]).sum())
            .collect()
    }

    #[test]
    fn spd_solve_has_small_residual() {
        let b = [1.0, -2.0, 0.5];
        let x = solve_spd(&SPD, &b).unwrap();
        for (ax, bi) in multiply(&SPD, &x).iter().zip(b) {
            assert!((ax - bi).abs() < 1e-12);
        }
    }

    #[test]
    fn general_solve_matches_spd_solve() {
        let b = [0.3, 0.1, -0.7];
        let x = solve_spd(&SPD, &b).unwrap();
        let y = solve_general(&SPD, &b).unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn indefinite_matrix_is_rejected_by_cholesky() {
        let a = [1.0, 2.0, 2.0, 1.0];
        assert!(solve_spd(&a, &[1.0, 1.0]).is_none());
        assert!(solve_general(&a, &[1.0, 1.0]).is_some());
    }

    #[test]
    fn singular_matrix_has_no_solution() {
        let a = [1.0, 2.0, 2.0, 4.0];
        assert!(solve_general(&a, &[1.0, 1.0]).is_none());
        assert!(inverse_spd(&a, 2).is_none());
    }

    #[test]
    fn inverse_times_matrix_is_identity() {
        let inv = inverse_spd(&SPD, 3).unwrap();
        let identity = sandwich(&inv, &SPD, 3);
        // A⁻¹ A A⁻¹ = A⁻¹, so compare with the inverse itself.
        for (a, b) in identity.iter().zip(&inv) {
            assert!((a - b).abs() < 1e-12);
        }
    }
}
