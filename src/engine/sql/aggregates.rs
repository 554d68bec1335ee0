//! Aggregate functions of rose's SQL interface.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, ListArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::cast::{as_float64_array, as_list_array};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use super::{DfResult, ModelOptions, argument_error, family_argument, literal};
use crate::aggregate::{self, QuantileLevels};
use crate::engine::udaf::{
    DerivativesAccumulator, DerivativesUdaf, LocalFitAccumulator, LocalFitUdaf, ModelSpec,
    derivatives_state_fields, f64_list, is_list_type, list_type, list_values,
    local_fit_state_fields,
};

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn is_number(data_type: &DataType) -> bool {
    data_type.is_numeric() || matches!(data_type, DataType::Boolean | DataType::Null)
}

/// Checks and coerces `(family, [theta,] y, x1, ..., xp [, options])`.
fn coerce_model_arguments(
    name: &str,
    arg_types: &[DataType],
    with_theta: bool,
) -> DfResult<Vec<DataType>> {
    let first_column = if with_theta { 2 } else { 1 };
    if arg_types.len() < first_column + 1 {
        let usage = if with_theta {
            "(family, theta, response, feature, ... [, options])"
        } else {
            "(family, response, feature, ... [, options])"
        };
        return Err(DataFusionError::Plan(format!(
            "{name} expects {usage}, got {} arguments",
            arg_types.len()
        )));
    }
    if !is_string(&arg_types[0]) {
        return Err(argument_error(
            name,
            0,
            format!("(family) must be a string, got {}", arg_types[0]),
        ));
    }
    let mut out = vec![DataType::Utf8];
    if with_theta {
        if !is_list_type(&arg_types[1]) {
            return Err(argument_error(
                name,
                1,
                format!(
                    "(theta) must be a list of numbers such as [0.1, 0.2], got {}",
                    arg_types[1]
                ),
            ));
        }
        out.push(list_type());
    }
    let last = arg_types.len() - 1;
    for (index, data_type) in arg_types.iter().enumerate().skip(first_column) {
        if index == last && index > first_column && is_string(data_type) {
            out.push(DataType::Utf8);
        } else if is_number(data_type) {
            out.push(DataType::Float64);
        } else {
            let role = if index == first_column {
                "response"
            } else {
                "feature"
            };
            return Err(argument_error(
                name,
                index,
                format!("({role}) must be numeric, got {data_type}"),
            ));
        }
    }
    Ok(out)
}

/// Builds the model from the accumulator arguments.
fn model_spec(
    name: &str,
    args: &AccumulatorArgs,
    with_theta: bool,
) -> DfResult<(ModelSpec, ModelOptions, usize)> {
    let family = family_argument(name, args.exprs, 0)?;
    let first_column = if with_theta { 2 } else { 1 };
    let mut columns = args.exprs.len();
    let mut options = ModelOptions::default();
    let last = columns - 1;
    if last > first_column && is_string(args.expr_fields[last].data_type()) {
        let text = literal(name, args.exprs, last, "options")?
            .try_as_str()
            .flatten()
            .unwrap_or("")
            .to_string();
        options = ModelOptions::parse(&text)
            .map_err(|e| argument_error(name, last, format!("(options): {e}")))?;
        columns -= 1;
    }
    let field_name = |i: usize| args.expr_fields[i].name().to_string();
    let spec = ModelSpec {
        family,
        response: field_name(first_column),
        features: (first_column + 1..columns).map(field_name).collect(),
        intercept: options.intercept,
        drop_missing: options.drop_missing,
    };
    if spec.n_params() == 0 {
        return Err(DataFusionError::Plan(format!(
            "{name}: the model has no parameters; add a feature or set intercept=true"
        )));
    }
    Ok((spec, options, columns))
}

/// Rebuilds the argument arrays in the layout the shared accumulators expect: an
/// (unnamed) machine key, the response, then the features.
fn keyed_columns(values: &[ArrayRef], first_column: usize, columns: usize) -> Vec<ArrayRef> {
    let rows = values.get(first_column).map_or(0, |a| a.len());
    let mut out = vec![new_null_array(&DataType::Utf8, rows)];
    out.extend(values[first_column..columns].iter().cloned());
    out
}

/// `rose_local_fit(family, response, feature, ... [, options])`: one machine's local
/// M-estimate (round 1), as the struct `{rows, estimate, variance, converged,
/// iterations, failure, dropped}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SqlLocalFit {
    signature: Signature,
}

impl SqlLocalFit {
    /// Creates the function.
    pub fn new() -> Self {
        SqlLocalFit {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for SqlLocalFit {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for SqlLocalFit {
    fn name(&self) -> &str {
        "rose_local_fit"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        coerce_model_arguments(self.name(), arg_types, false)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(LocalFitUdaf::output_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(local_fit_state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let (spec, options, columns) = model_spec(self.name(), &args, false)?;
        Ok(Box::new(Keyless {
            inner: LocalFitAccumulator::new(spec, options.newton, None),
            first_column: 1,
            columns,
        }))
    }
}

/// Passes SQL arguments to a shared accumulator without the literal arguments.
#[derive(Debug)]
struct Keyless<A> {
    inner: A,
    first_column: usize,
    columns: usize,
}

impl<A: Accumulator> Accumulator for Keyless<A> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.inner
            .update_batch(&keyed_columns(values, self.first_column, self.columns))
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.inner.merge_batch(states)
    }
}

/// `rose_local_derivatives(family, theta, response, feature, ... [, options])`: one
/// machine's loss derivatives at `theta` (round 2), as the struct `{rows, loss, gradient,
/// hessian, gradient_covariance, gradient_outer, hessian_variance}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SqlLocalDerivatives {
    signature: Signature,
}

impl SqlLocalDerivatives {
    /// Creates the function.
    pub fn new() -> Self {
        SqlLocalDerivatives {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for SqlLocalDerivatives {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for SqlLocalDerivatives {
    fn name(&self) -> &str {
        "rose_local_derivatives"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        coerce_model_arguments(self.name(), arg_types, true)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DerivativesUdaf::output_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(derivatives_state_fields(args.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let (spec, _, columns) = model_spec(self.name(), &args, true)?;
        Ok(Box::new(LazyDerivatives {
            spec,
            columns,
            inner: None,
        }))
    }
}

/// Derivatives accumulator that takes `θ` from the first row it receives, because the SQL
/// argument may be a column (from a join with the previous round's result).
#[derive(Debug)]
struct LazyDerivatives {
    spec: ModelSpec,
    columns: usize,
    inner: Option<DerivativesAccumulator>,
}

impl LazyDerivatives {
    fn inner_with(&mut self, theta: Vec<f64>) -> &mut DerivativesAccumulator {
        let spec = self.spec.clone();
        self.inner
            .get_or_insert_with(|| DerivativesAccumulator::new(spec, theta, None))
    }
}

impl Accumulator for LazyDerivatives {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if values[1].is_empty() {
            return Ok(());
        }
        if self.inner.is_none() {
            let thetas = as_list_array(&values[1])?;
            let row = (0..thetas.len())
                .find(|&i| thetas.is_valid(i))
                .ok_or_else(|| argument_error("rose_local_derivatives", 1, "(theta) is NULL"))?;
            let theta = list_values(thetas, row)?;
            let p = self.spec.n_params();
            if theta.len() != p {
                return Err(argument_error(
                    "rose_local_derivatives",
                    1,
                    format!(
                        "(theta) has {} entries but the model has {p} parameters ({}{} features)",
                        theta.len(),
                        if self.spec.intercept {
                            "an intercept and "
                        } else {
                            ""
                        },
                        self.spec.features.len()
                    ),
                ));
            }
            self.inner_with(theta);
        }
        let columns = keyed_columns(values, 2, self.columns);
        self.inner
            .as_mut()
            .expect("created above")
            .update_batch(&columns)
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let p = self.spec.n_params();
        self.inner_with(vec![0.0; p]).evaluate()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.inner.as_ref().map_or(0, |i| i.size())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let p = self.spec.n_params();
        self.inner_with(vec![0.0; p]).state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        // Merging combines moments only; θ is not needed for it.
        let p = self.spec.n_params();
        self.inner_with(vec![0.0; p]).merge_batch(states)
    }
}

/// The combining aggregates over per-machine rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CombineKind {
    /// `rose_median(values)`: coordinate-wise median.
    Median,
    /// `rose_weighted_mean(values, rows)`: row-weighted mean.
    WeightedMean,
    /// `rose_vrmol(values, rows, scales [, k])`: VRMOL with given scales (Algorithm 1).
    Vrmol,
    /// `rose_vrmol_rv(values, rows, variances [, k])`: VRMOL with the square root of the
    /// median of the machines' own variances as scales (Algorithm 2).
    VrmolRv,
}

impl CombineKind {
    /// All combining aggregates.
    pub const ALL: [CombineKind; 4] = [
        CombineKind::Median,
        CombineKind::WeightedMean,
        CombineKind::Vrmol,
        CombineKind::VrmolRv,
    ];

    fn name(self) -> &'static str {
        match self {
            CombineKind::Median => "rose_median",
            CombineKind::WeightedMean => "rose_weighted_mean",
            CombineKind::Vrmol => "rose_vrmol",
            CombineKind::VrmolRv => "rose_vrmol_rv",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            CombineKind::Median => "(values)",
            CombineKind::WeightedMean => "(values, rows)",
            CombineKind::Vrmol => "(values, rows, scales [, k])",
            CombineKind::VrmolRv => "(values, rows, variances [, k])",
        }
    }

    fn list_arguments(self) -> usize {
        match self {
            CombineKind::Median => 1,
            CombineKind::WeightedMean => 2,
            CombineKind::Vrmol | CombineKind::VrmolRv => 3,
        }
    }
}

/// A combining aggregate: buffers one list per machine and combines them entry-wise.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Combine {
    kind: CombineKind,
    signature: Signature,
}

impl Combine {
    /// Creates the aggregate of `kind`.
    pub fn new(kind: CombineKind) -> Self {
        Combine {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for Combine {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let required = self.kind.list_arguments();
        let with_k = matches!(self.kind, CombineKind::Vrmol | CombineKind::VrmolRv);
        if arg_types.len() < required || arg_types.len() > required + usize::from(with_k) {
            return Err(DataFusionError::Plan(format!(
                "{} expects {}, got {} arguments",
                self.name(),
                self.kind.usage(),
                arg_types.len()
            )));
        }
        let mut out = Vec::with_capacity(arg_types.len());
        for (index, data_type) in arg_types.iter().enumerate() {
            let is_rows = index == 1;
            let is_k = index == 3;
            if is_rows || is_k {
                if !is_number(data_type) {
                    let what = if is_rows { "rows" } else { "k" };
                    return Err(argument_error(
                        self.name(),
                        index,
                        format!("({what}) must be numeric, got {data_type}"),
                    ));
                }
                out.push(if is_k {
                    DataType::Int64
                } else {
                    DataType::Float64
                });
            } else if is_list_type(data_type) || matches!(data_type, DataType::Null) {
                out.push(list_type());
            } else {
                return Err(argument_error(
                    self.name(),
                    index,
                    format!("must be a list of numbers, got {data_type}"),
                ));
            }
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(list_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        let field = |name: &str, data_type: DataType| {
            Arc::new(Field::new(
                format_state_name(args.name, name),
                data_type,
                true,
            ))
        };
        Ok(vec![
            field("values", list_type()),
            field("lengths", list_type()),
            field("rows", list_type()),
            field("aux", list_type()),
            field("aux_lengths", list_type()),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let k = if args.exprs.len() > 3 {
            let value = literal(self.name(), args.exprs, 3, "k")?;
            let k = match value {
                ScalarValue::Int64(Some(k)) => *k,
                other => other.to_string().parse::<i64>().unwrap_or(-1),
            };
            if !(1..=10_000).contains(&k) {
                return Err(argument_error(
                    self.name(),
                    3,
                    format!("(k) must be an integer from 1 to 10000, got {value}"),
                ));
            }
            k as usize
        } else {
            10
        };
        Ok(Box::new(CombineAccumulator {
            kind: self.kind,
            k,
            values: Vec::new(),
            rows: Vec::new(),
            aux: Vec::new(),
        }))
    }
}

#[derive(Debug)]
struct CombineAccumulator {
    kind: CombineKind,
    k: usize,
    values: Vec<Vec<f64>>,
    rows: Vec<f64>,
    aux: Vec<Vec<f64>>,
}

fn flatten(lists: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let values = lists.iter().flatten().copied().collect();
    let lengths = lists.iter().map(|l| l.len() as f64).collect();
    (values, lengths)
}

fn unflatten(values: &[f64], lengths: &[f64]) -> Vec<Vec<f64>> {
    let mut out = Vec::with_capacity(lengths.len());
    let mut start = 0;
    for &length in lengths {
        let end = start + length as usize;
        out.push(values[start..end].to_vec());
        start = end;
    }
    out
}

fn list_scalar(values: Vec<f64>) -> DfResult<ScalarValue> {
    let array = f64_list(values);
    Ok(ScalarValue::List(Arc::new(as_list_array(&array)?.clone())))
}

impl Accumulator for CombineAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let lists = as_list_array(&values[0])?;
        let rows = values.get(1).map(|a| as_float64_array(a)).transpose()?;
        let aux = values.get(2).map(|a| as_list_array(a)).transpose()?;
        for i in 0..lists.len() {
            // A machine without statistics (a failed local fit) has a NULL or empty list.
            if lists.is_null(i) || lists.value_length(i) == 0 {
                continue;
            }
            self.values.push(list_values(lists, i)?);
            self.rows
                .push(rows.map_or(1.0, |r| if r.is_valid(i) { r.value(i) } else { f64::NAN }));
            let aux_values = match aux {
                Some(a) if a.is_valid(i) => list_values(a, i)?,
                _ => Vec::new(),
            };
            self.aux.push(aux_values);
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let (values, lengths) = flatten(&self.values);
        let (aux, aux_lengths) = flatten(&self.aux);
        Ok(vec![
            list_scalar(values)?,
            list_scalar(lengths)?,
            list_scalar(self.rows.clone())?,
            list_scalar(aux)?,
            list_scalar(aux_lengths)?,
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let lists: Vec<&ListArray> = states
            .iter()
            .map(|a| as_list_array(a))
            .collect::<DfResult<_>>()?;
        for i in 0..lists[0].len() {
            if lists[0].is_null(i) {
                continue;
            }
            let values = list_values(lists[0], i)?;
            let lengths = list_values(lists[1], i)?;
            let aux = list_values(lists[3], i)?;
            let aux_lengths = list_values(lists[4], i)?;
            self.values.extend(unflatten(&values, &lengths));
            self.rows.extend(list_values(lists[2], i)?);
            self.aux.extend(unflatten(&aux, &aux_lengths));
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let name = self.kind.name();
        let Some(width) = self.values.first().map(Vec::len) else {
            return list_scalar(Vec::new());
        };
        if let Some(other) = self.values.iter().find(|v| v.len() != width) {
            return Err(DataFusionError::Execution(format!(
                "{name}: the lists have different lengths ({width} and {})",
                other.len()
            )));
        }
        let rows: Vec<u64> = self
            .rows
            .iter()
            .map(|&r| {
                if r.is_finite() && r > 0.0 {
                    r as u64
                } else {
                    0
                }
            })
            .collect();
        let column = |e: usize| -> Vec<f64> { self.values.iter().map(|v| v[e]).collect() };
        let combined: Vec<f64> = match self.kind {
            CombineKind::Median => (0..width)
                .map(|e| aggregate::median(column(e)).unwrap_or(f64::NAN))
                .collect(),
            CombineKind::WeightedMean => {
                let usable: Vec<usize> = (0..self.values.len())
                    .filter(|&j| rows[j] > 0 && self.values[j].iter().all(|v| v.is_finite()))
                    .collect();
                let total: f64 = usable.iter().map(|&j| rows[j] as f64).sum();
                (0..width)
                    .map(|e| {
                        usable
                            .iter()
                            .map(|&j| self.values[j][e] * rows[j] as f64 / total)
                            .sum()
                    })
                    .collect()
            }
            CombineKind::Vrmol | CombineKind::VrmolRv => {
                let levels = QuantileLevels::new(self.k);
                let scales: Vec<f64> = if self.kind == CombineKind::Vrmol {
                    let scales = self
                        .aux
                        .iter()
                        .find(|a| !a.is_empty())
                        .cloned()
                        .unwrap_or_default();
                    if scales.len() != width {
                        return Err(argument_error(
                            name,
                            2,
                            format!(
                                "(scales) has {} entries but the values have {width}",
                                scales.len()
                            ),
                        ));
                    }
                    scales
                } else {
                    (0..width)
                        .map(|e| {
                            let variances =
                                self.aux.iter().filter(|a| a.len() == width).map(|a| a[e]);
                            aggregate::median(variances).unwrap_or(f64::NAN).sqrt()
                        })
                        .collect()
                };
                (0..width)
                    .map(|e| {
                        aggregate::vrmol(&column(e), &rows, scales[e], &levels).unwrap_or(f64::NAN)
                    })
                    .collect()
            }
        };
        list_scalar(combined)
    }

    fn size(&self) -> usize {
        let entries: usize = self.values.iter().chain(&self.aux).map(Vec::len).sum();
        std::mem::size_of_val(self) + 8 * (entries + self.rows.len())
    }
}
