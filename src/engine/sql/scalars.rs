//! Scalar functions of rose's SQL interface.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, ListBuilder, StructArray,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use datafusion::common::cast::{as_int64_array, as_list_array};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{DfResult, argument_error};
use crate::aggregate::QuantileLevels;
use crate::engine::udaf::{DerivativesUdaf, is_list_type, list_type, list_values};
use crate::linalg;
use crate::local_fit::sandwich_diagonal;

/// The scalar functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScalarKind {
    /// `rose_sandwich_scale(derivatives)`: `sqrt(diag(H⁻¹ J H⁻¹))`, the scales of eq. (5).
    SandwichScale,
    /// `rose_sqrt(list)`: entry-wise square root.
    Sqrt,
    /// `rose_diagonal(matrix)`: the diagonal of a flattened `p × p` matrix.
    Diagonal,
    /// `rose_one_step(theta, gradient, hessian)`: `θ − H⁻¹ g`.
    OneStep,
    /// `rose_d_k(k)`: the efficiency factor `D_K` of eq. (9).
    DK,
}

impl ScalarKind {
    /// All scalar functions.
    pub const ALL: [ScalarKind; 5] = [
        ScalarKind::SandwichScale,
        ScalarKind::Sqrt,
        ScalarKind::Diagonal,
        ScalarKind::OneStep,
        ScalarKind::DK,
    ];

    fn name(self) -> &'static str {
        match self {
            ScalarKind::SandwichScale => "rose_sandwich_scale",
            ScalarKind::Sqrt => "rose_sqrt",
            ScalarKind::Diagonal => "rose_diagonal",
            ScalarKind::OneStep => "rose_one_step",
            ScalarKind::DK => "rose_d_k",
        }
    }
}

/// One of rose's scalar functions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RoseScalar {
    kind: ScalarKind,
    signature: Signature,
}

impl RoseScalar {
    /// Creates the function of `kind`.
    pub fn new(kind: ScalarKind) -> Self {
        RoseScalar {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for RoseScalar {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let name = self.name();
        let expected = match self.kind {
            ScalarKind::OneStep => 3,
            _ => 1,
        };
        if arg_types.len() != expected {
            let usage = match self.kind {
                ScalarKind::SandwichScale => "(derivatives)",
                ScalarKind::Sqrt | ScalarKind::Diagonal => "(list)",
                ScalarKind::OneStep => "(theta, gradient, hessian)",
                ScalarKind::DK => "(k)",
            };
            return Err(DataFusionError::Plan(format!(
                "{name} expects {usage}, got {} arguments",
                arg_types.len()
            )));
        }
        match self.kind {
            ScalarKind::SandwichScale => {
                let expected = DerivativesUdaf::output_type();
                if arg_types[0] != expected {
                    return Err(argument_error(
                        name,
                        0,
                        format!(
                            "must be the struct that rose_local_derivatives returns, got {}",
                            arg_types[0]
                        ),
                    ));
                }
                Ok(vec![expected])
            }
            ScalarKind::DK => {
                if !arg_types[0].is_integer() {
                    return Err(argument_error(
                        name,
                        0,
                        format!("(k) must be an integer, got {}", arg_types[0]),
                    ));
                }
                Ok(vec![DataType::Int64])
            }
            _ => arg_types
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    if is_list_type(t) {
                        Ok(list_type())
                    } else {
                        Err(argument_error(
                            name,
                            i,
                            format!("must be a list of numbers, got {t}"),
                        ))
                    }
                })
                .collect(),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            ScalarKind::DK => DataType::Float64,
            _ => list_type(),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        if self.kind == ScalarKind::DK {
            let ks = as_int64_array(&arrays[0])?;
            let out: Float64Array = (0..rows)
                .map(|i| {
                    let k = ks
                        .is_valid(i)
                        .then(|| ks.value(i))
                        .filter(|k| (1..=10_000).contains(k));
                    k.map(|k| QuantileLevels::new(k as usize).d_k())
                })
                .collect();
            return Ok(ColumnarValue::Array(Arc::new(out)));
        }
        let mut builder = ListBuilder::new(Float64Builder::new());
        for i in 0..rows {
            match self.row(&arrays, i)? {
                Some(values) => {
                    builder.values().append_slice(&values);
                    builder.append(true);
                }
                None => builder.append(false),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    }
}

impl RoseScalar {
    /// Computes one row; `None` is NULL (a NULL input or a singular matrix).
    fn row(&self, arrays: &[ArrayRef], i: usize) -> DfResult<Option<Vec<f64>>> {
        if arrays.iter().any(|a| a.is_null(i)) {
            return Ok(None);
        }
        let list =
            |index: usize| -> DfResult<Vec<f64>> { list_values(as_list_array(&arrays[index])?, i) };
        Ok(match self.kind {
            ScalarKind::SandwichScale => {
                let derivatives = arrays[0]
                    .as_any()
                    .downcast_ref::<StructArray>()
                    .ok_or_else(|| DataFusionError::Internal("expected a struct".into()))?;
                let d = DerivativesUdaf::decode(derivatives, i)?;
                if d.rows == 0 {
                    return Ok(None);
                }
                sandwich_diagonal(&d.hessian, &d.gradient_covariance)
                    .map(|v| v.iter().map(|x| x.sqrt()).collect())
            }
            ScalarKind::Sqrt => Some(list(0)?.iter().map(|v| v.sqrt()).collect()),
            ScalarKind::Diagonal => {
                let matrix = list(0)?;
                let p = (matrix.len() as f64).sqrt().round() as usize;
                if p * p != matrix.len() {
                    return Err(argument_error(
                        self.name(),
                        0,
                        format!("has {} entries, which is not a square matrix", matrix.len()),
                    ));
                }
                Some((0..p).map(|l| matrix[l * p + l]).collect())
            }
            ScalarKind::OneStep => {
                let (theta, gradient, hessian) = (list(0)?, list(1)?, list(2)?);
                let p = theta.len();
                if gradient.len() != p || hessian.len() != p * p {
                    return Err(DataFusionError::Execution(format!(
                        "rose_one_step: theta has {p} entries, so the gradient needs {p} and the hessian {}; got {} and {}",
                        p * p,
                        gradient.len(),
                        hessian.len()
                    )));
                }
                linalg::solve_spd(&hessian, &gradient)
                    .or_else(|| linalg::solve_general(&hessian, &gradient))
                    .map(|step| theta.iter().zip(&step).map(|(t, s)| t - s).collect())
            }
            ScalarKind::DK => unreachable!("handled in invoke_with_args"),
        })
    }
}
