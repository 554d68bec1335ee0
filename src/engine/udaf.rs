//! DataFusion aggregate functions that compute each machine's statistics.
//!
//! Both aggregates take the machine key, the response and the feature columns (all cast
//! to `Float64` by the caller) and are thin plumbing over [`crate::local_fit`] and
//! [`crate::moments`]:
//!
//! - [`LocalFitUdaf`] (first round) buffers the machine's rows, because Newton-Raphson
//!   needs several passes, and fits the local M-estimator in `evaluate`. Memory grows with
//!   the machine's rows times `p + 1` values.
//! - [`DerivativesUdaf`] (second round) streams rows into mergeable moments at a fixed
//!   parameter value; its state is `O(p²)` whatever the row count.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, ListArray, StringArray, StructArray, UInt32Array,
    UInt64Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::cast::{as_float64_array, as_list_array, as_string_array, as_uint64_array};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::error::RoseError;
use crate::family::Family;
use crate::local_fit::{LocalFit, NewtonOptions, fit_local};
use crate::moments::{DerivativeMoments, LocalDerivatives, Rows};

type DfResult<T> = datafusion::common::Result<T>;

/// Report of one machine's finished statistics, for progress display and logging.
#[derive(Clone, Debug)]
pub struct MachineEvent {
    /// Round of communication: 1 for the local fit, 2 for the derivatives.
    pub round: u8,
    /// Machine key as grouped.
    pub key: String,
    /// Rows used.
    pub rows: u64,
    /// Newton iterations (0 in the second round).
    pub iterations: u32,
    /// Time from the first row to the finished statistics.
    pub elapsed: Duration,
}

/// Callback invoked once per machine when its statistics are finished.
pub type ProgressHook = Arc<dyn Fn(MachineEvent) + Send + Sync>;

/// Model columns and data handling shared by both aggregates.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    /// Model family.
    pub family: Family,
    /// Response column name (for messages).
    pub response: String,
    /// Feature column names (for messages), in argument order.
    pub features: Vec<String>,
    /// Whether a leading intercept column of ones is added.
    pub intercept: bool,
    /// Whether rows with null or non-finite values are skipped instead of rejected.
    pub drop_missing: bool,
}

impl ModelSpec {
    /// Number of parameters `p`.
    pub fn n_params(&self) -> usize {
        self.features.len() + usize::from(self.intercept)
    }

    fn hash_into<H: Hasher>(&self, state: &mut H) {
        self.family.hash(state);
        self.response.hash(state);
        self.features.hash(state);
        self.intercept.hash(state);
        self.drop_missing.hash(state);
    }

    fn same_as(&self, other: &ModelSpec) -> bool {
        self.family == other.family
            && self.response == other.response
            && self.features == other.features
            && self.intercept == other.intercept
            && self.drop_missing == other.drop_missing
    }

    /// Appends the rows of one input batch to `x` (row-major, intercept first) and `y`,
    /// after checking them. Returns the number of rows skipped for missing values.
    fn append_rows(
        &self,
        values: &[ArrayRef],
        x: &mut Vec<f64>,
        y: &mut Vec<f64>,
    ) -> DfResult<u64> {
        let key = as_string_array(&values[0])?;
        let response = as_float64_array(&values[1])?;
        let columns: Vec<&Float64Array> = values[2..]
            .iter()
            .map(|a| as_float64_array(a))
            .collect::<DfResult<_>>()?;
        let mut skipped = 0;
        x.reserve(response.len() * self.n_params());
        'rows: for i in 0..response.len() {
            let machine = || if key.is_valid(i) { key.value(i) } else { "" }.to_string();
            let check = |array: &Float64Array, column: &str| -> DfResult<Option<f64>> {
                if array.is_null(i) || !array.value(i).is_finite() {
                    if self.drop_missing {
                        return Ok(None);
                    }
                    let what = if array.is_null(i) {
                        "a null value".to_string()
                    } else {
                        format!("the non-finite value {}", array.value(i))
                    };
                    return Err(data_error(
                        &machine(),
                        column,
                        &format!(
                            "contains {what}; remove or impute such rows, or skip them with --drop-missing (drop_missing=true in SQL)"
                        ),
                    ));
                }
                Ok(Some(array.value(i)))
            };
            let Some(yi) = check(response, &self.response)? else {
                skipped += 1;
                continue;
            };
            let start = x.len();
            if self.intercept {
                x.push(1.0);
            }
            for (array, name) in columns.iter().zip(&self.features) {
                match check(array, name)? {
                    Some(v) => x.push(v),
                    None => {
                        x.truncate(start);
                        skipped += 1;
                        continue 'rows;
                    }
                }
            }
            if let Err(problem) = self.family.check_response(yi) {
                return Err(data_error(
                    &machine(),
                    &self.response,
                    &format!("response value {yi} is invalid: it {problem}"),
                ));
            }
            y.push(yi);
        }
        Ok(skipped)
    }
}

fn data_error(machine: &str, column: &str, message: &str) -> DataFusionError {
    DataFusionError::External(Box::new(RoseError::InvalidData {
        machine: machine.to_string(),
        column: column.to_string(),
        message: message.to_string(),
    }))
}

pub(crate) fn f64_list(values: Vec<f64>) -> ArrayRef {
    let field = Arc::new(Field::new_list_field(DataType::Float64, true));
    let len = values.len();
    Arc::new(ListArray::new(
        field,
        OffsetBuffer::from_lengths([len]),
        Arc::new(Float64Array::from(values)),
        None,
    ))
}

fn state_field(function: &str, name: &str, data_type: DataType) -> FieldRef {
    Arc::new(Field::new(
        format_state_name(function, name),
        data_type,
        true,
    ))
}

/// Builds the state fields of the round-1 accumulator: machine key, skipped rows and the
/// buffered responses and design rows.
pub(crate) fn local_fit_state_fields(function: &str) -> Vec<FieldRef> {
    vec![
        state_field(function, "key", DataType::Utf8),
        state_field(function, "skipped", DataType::UInt64),
        state_field(function, "y", list_type()),
        state_field(function, "x", list_type()),
    ]
}

/// Builds the state fields of the round-2 accumulator: machine key and mergeable moments.
pub(crate) fn derivatives_state_fields(function: &str) -> Vec<FieldRef> {
    vec![
        state_field(function, "key", DataType::Utf8),
        state_field(function, "rows", DataType::UInt64),
        state_field(function, "loss", DataType::Float64),
        state_field(function, "gradient_mean", list_type()),
        state_field(function, "gradient_m2", list_type()),
        state_field(function, "hessian_mean", list_type()),
        state_field(function, "hessian_m2", list_type()),
    ]
}

/// Whether a type is a list (any list layout), as the SQL functions accept for vectors.
pub(crate) fn is_list_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
    )
}

pub(crate) fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

pub(crate) fn list_values(array: &ListArray, row: usize) -> DfResult<Vec<f64>> {
    let inner = array.value(row);
    Ok(as_float64_array(&inner)?.values().to_vec())
}

fn input_types(spec: &ModelSpec) -> Vec<DataType> {
    let mut types = vec![DataType::Utf8, DataType::Float64];
    types.extend(std::iter::repeat_n(DataType::Float64, spec.features.len()));
    types
}

fn check_arity(name: &str, spec: &ModelSpec, arg_types: &[DataType]) -> DfResult<()> {
    let expected = spec.features.len() + 2;
    if arg_types.len() != expected {
        return Err(DataFusionError::Plan(format!(
            "{name} expects {expected} arguments (machine key, response, {} features), got {}",
            spec.features.len(),
            arg_types.len()
        )));
    }
    Ok(())
}

/// First-round aggregate: the local M-estimate of each machine.
///
/// Returns a struct `{rows, estimate, variance, converged, iterations, failure}`.
pub struct LocalFitUdaf {
    spec: ModelSpec,
    options: NewtonOptions,
    signature: Signature,
    progress: Option<ProgressHook>,
}

impl LocalFitUdaf {
    /// Creates the aggregate for a model.
    pub fn new(spec: ModelSpec, options: NewtonOptions, progress: Option<ProgressHook>) -> Self {
        LocalFitUdaf {
            spec,
            options,
            signature: Signature::user_defined(Volatility::Immutable),
            progress,
        }
    }

    /// Struct type the aggregate returns.
    pub fn output_type() -> DataType {
        DataType::Struct(Fields::from(vec![
            Field::new("rows", DataType::UInt64, false),
            Field::new("estimate", list_type(), false),
            Field::new("variance", list_type(), false),
            Field::new("converged", DataType::Boolean, false),
            Field::new("iterations", DataType::UInt32, false),
            Field::new("failure", DataType::Utf8, true),
            Field::new("dropped", DataType::UInt64, false),
        ]))
    }

    /// Decodes one row of the aggregate's output.
    pub fn decode(array: &StructArray, row: usize) -> DfResult<LocalFit> {
        let column = |name: &str| {
            array
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| DataFusionError::Internal(format!("missing field {name}")))
        };
        let rows = as_uint64_array(&column("rows")?)?.value(row);
        let estimate = list_values(as_list_array(&column("estimate")?)?, row)?;
        let variance = list_values(as_list_array(&column("variance")?)?, row)?;
        let converged_col = column("converged")?;
        let converged = converged_col
            .as_any()
            .downcast_ref::<BooleanArray>()
            .map(|b| b.value(row))
            .unwrap_or(false);
        let iterations_col = column("iterations")?;
        let iterations = iterations_col
            .as_any()
            .downcast_ref::<UInt32Array>()
            .map(|a| a.value(row))
            .unwrap_or(0);
        let failure_col = column("failure")?;
        let failure_array = as_string_array(&failure_col)?;
        let failure = failure_array
            .is_valid(row)
            .then(|| failure_array.value(row).to_string());
        let dropped = as_uint64_array(&column("dropped")?)?.value(row);
        Ok(LocalFit {
            rows,
            estimate,
            variance,
            converged,
            iterations,
            failure,
            dropped,
        })
    }
}

impl std::fmt::Debug for LocalFitUdaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFitUdaf")
            .field("family", &self.spec.family)
            .finish()
    }
}

impl PartialEq for LocalFitUdaf {
    fn eq(&self, other: &Self) -> bool {
        self.spec.same_as(&other.spec) && self.options == other.options
    }
}

impl Eq for LocalFitUdaf {}

impl Hash for LocalFitUdaf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.spec.hash_into(state);
    }
}

impl AggregateUDFImpl for LocalFitUdaf {
    fn name(&self) -> &str {
        "rose_local_fit"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        check_arity(self.name(), &self.spec, arg_types)?;
        Ok(input_types(&self.spec))
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(Self::output_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(local_fit_state_fields(args.name))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(LocalFitAccumulator::new(
            self.spec.clone(),
            self.options,
            self.progress.clone(),
        )))
    }
}

pub(crate) struct LocalFitAccumulator {
    spec: ModelSpec,
    options: NewtonOptions,
    progress: Option<ProgressHook>,
    key: Option<String>,
    skipped: u64,
    x: Vec<f64>,
    y: Vec<f64>,
    started: Option<Instant>,
}

impl std::fmt::Debug for LocalFitAccumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFitAccumulator")
            .field("key", &self.key)
            .field("rows", &self.y.len())
            .finish()
    }
}

fn first_key(values: &ArrayRef) -> DfResult<Option<String>> {
    let keys = as_string_array(values)?;
    Ok((0..keys.len())
        .find(|&i| keys.is_valid(i))
        .map(|i| keys.value(i).to_string()))
}

impl LocalFitAccumulator {
    pub(crate) fn new(
        spec: ModelSpec,
        options: NewtonOptions,
        progress: Option<ProgressHook>,
    ) -> Self {
        LocalFitAccumulator {
            spec,
            options,
            progress,
            key: None,
            skipped: 0,
            x: Vec::new(),
            y: Vec::new(),
            started: None,
        }
    }

    /// Returns the first feature whose values are all equal on this machine.
    fn constant_feature(&self) -> Option<&str> {
        let p = self.spec.n_params();
        let offset = usize::from(self.spec.intercept);
        let n = self.y.len();
        if n < 2 {
            return None;
        }
        self.spec.features.iter().enumerate().find_map(|(l, name)| {
            let column = l + offset;
            let first = self.x[column];
            (1..n)
                .all(|i| self.x[i * p + column] == first)
                .then_some(name.as_str())
        })
    }
}

impl Accumulator for LocalFitAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.started.get_or_insert_with(Instant::now);
        if self.key.is_none() {
            self.key = first_key(&values[0])?;
        }
        self.skipped += self.spec.append_rows(values, &mut self.x, &mut self.y)?;
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let y = f64_list(std::mem::take(&mut self.y));
        let x = f64_list(std::mem::take(&mut self.x));
        Ok(vec![
            ScalarValue::Utf8(self.key.clone()),
            ScalarValue::UInt64(Some(self.skipped)),
            ScalarValue::List(Arc::new(as_list_array(&y)?.clone())),
            ScalarValue::List(Arc::new(as_list_array(&x)?.clone())),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.started.get_or_insert_with(Instant::now);
        if self.key.is_none() {
            self.key = first_key(&states[0])?;
        }
        let skipped = as_uint64_array(&states[1])?;
        let y = as_list_array(&states[2])?;
        let x = as_list_array(&states[3])?;
        for row in 0..y.len() {
            if y.is_null(row) {
                continue;
            }
            self.skipped += skipped.value(row);
            self.y.extend(list_values(y, row)?);
            self.x.extend(list_values(x, row)?);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let p = self.spec.n_params();
        let rows = Rows {
            x: &self.x,
            y: &self.y,
        };
        let mut fit = fit_local(self.spec.family, rows, p, &self.options);
        fit.dropped = self.skipped;
        if let Some(failure) = &mut fit.failure {
            if self.y.is_empty() && self.skipped > 0 {
                *failure = format!("all {} rows were dropped for missing values", self.skipped);
            } else if let Some(column) = self.constant_feature() {
                *failure = format!(
                    "feature '{column}' is constant on this machine, so its coefficient is not identified"
                );
            }
        }
        if let (Some(hook), Some(key)) = (&self.progress, &self.key) {
            hook(MachineEvent {
                round: 1,
                key: key.clone(),
                rows: fit.rows,
                iterations: fit.iterations,
                elapsed: self.started.map(|s| s.elapsed()).unwrap_or_default(),
            });
        }
        let DataType::Struct(fields) = LocalFitUdaf::output_type() else {
            unreachable!("output type is a struct")
        };
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(vec![fit.rows])),
            f64_list(fit.estimate),
            f64_list(fit.variance),
            Arc::new(BooleanArray::from(vec![fit.converged])),
            Arc::new(UInt32Array::from(vec![fit.iterations])),
            Arc::new(StringArray::from(vec![fit.failure])),
            Arc::new(UInt64Array::from(vec![fit.dropped])),
        ];
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
            fields, arrays, None,
        )?)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + 8 * (self.x.capacity() + self.y.capacity())
    }
}

/// Second-round aggregate: each machine's loss derivatives at a broadcast `θ`.
///
/// Returns a struct `{rows, loss, gradient, hessian, gradient_covariance, gradient_outer,
/// hessian_variance}` with `p × p` matrices flattened row-major.
pub struct DerivativesUdaf {
    spec: ModelSpec,
    theta: Vec<f64>,
    signature: Signature,
    progress: Option<ProgressHook>,
}

impl DerivativesUdaf {
    /// Creates the aggregate for a model at parameter value `theta`.
    pub fn new(spec: ModelSpec, theta: Vec<f64>, progress: Option<ProgressHook>) -> Self {
        assert_eq!(
            theta.len(),
            spec.n_params(),
            "theta must have one entry per parameter"
        );
        DerivativesUdaf {
            spec,
            theta,
            signature: Signature::user_defined(Volatility::Immutable),
            progress,
        }
    }

    /// Struct type the aggregate returns.
    pub fn output_type() -> DataType {
        DataType::Struct(Fields::from(vec![
            Field::new("rows", DataType::UInt64, false),
            Field::new("loss", DataType::Float64, false),
            Field::new("gradient", list_type(), false),
            Field::new("hessian", list_type(), false),
            Field::new("gradient_covariance", list_type(), false),
            Field::new("gradient_outer", list_type(), false),
            Field::new("hessian_variance", list_type(), false),
        ]))
    }

    /// Decodes one row of the aggregate's output.
    pub fn decode(array: &StructArray, row: usize) -> DfResult<LocalDerivatives> {
        let list = |name: &str| -> DfResult<Vec<f64>> {
            let column = array
                .column_by_name(name)
                .ok_or_else(|| DataFusionError::Internal(format!("missing field {name}")))?;
            list_values(as_list_array(column)?, row)
        };
        let rows_col = array
            .column_by_name("rows")
            .ok_or_else(|| DataFusionError::Internal("missing field rows".into()))?;
        let loss_col = array
            .column_by_name("loss")
            .ok_or_else(|| DataFusionError::Internal("missing field loss".into()))?;
        Ok(LocalDerivatives {
            rows: as_uint64_array(rows_col)?.value(row),
            loss: as_float64_array(loss_col)?.value(row),
            gradient: list("gradient")?,
            hessian: list("hessian")?,
            gradient_covariance: list("gradient_covariance")?,
            gradient_outer: list("gradient_outer")?,
            hessian_variance: list("hessian_variance")?,
        })
    }
}

impl std::fmt::Debug for DerivativesUdaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerivativesUdaf")
            .field("theta", &self.theta)
            .finish()
    }
}

impl PartialEq for DerivativesUdaf {
    fn eq(&self, other: &Self) -> bool {
        self.spec.same_as(&other.spec)
            && self.theta.len() == other.theta.len()
            && self
                .theta
                .iter()
                .zip(&other.theta)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for DerivativesUdaf {}

impl Hash for DerivativesUdaf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.spec.hash_into(state);
        self.theta.iter().for_each(|t| t.to_bits().hash(state));
    }
}

impl AggregateUDFImpl for DerivativesUdaf {
    fn name(&self) -> &str {
        "rose_local_derivatives"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        check_arity(self.name(), &self.spec, arg_types)?;
        Ok(input_types(&self.spec))
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(Self::output_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(derivatives_state_fields(args.name))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(DerivativesAccumulator::new(
            self.spec.clone(),
            self.theta.clone(),
            self.progress.clone(),
        )))
    }
}

pub(crate) struct DerivativesAccumulator {
    spec: ModelSpec,
    theta: Vec<f64>,
    progress: Option<ProgressHook>,
    key: Option<String>,
    moments: DerivativeMoments,
    x: Vec<f64>,
    y: Vec<f64>,
    started: Option<Instant>,
}

impl std::fmt::Debug for DerivativesAccumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerivativesAccumulator")
            .field("key", &self.key)
            .field("rows", &self.moments.rows)
            .finish()
    }
}

impl DerivativesAccumulator {
    pub(crate) fn new(spec: ModelSpec, theta: Vec<f64>, progress: Option<ProgressHook>) -> Self {
        DerivativesAccumulator {
            moments: DerivativeMoments::new(spec.n_params()),
            spec,
            theta,
            progress,
            key: None,
            x: Vec::new(),
            y: Vec::new(),
            started: None,
        }
    }
}

impl Accumulator for DerivativesAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.started.get_or_insert_with(Instant::now);
        if self.key.is_none() {
            self.key = first_key(&values[0])?;
        }
        self.x.clear();
        self.y.clear();
        self.spec.append_rows(values, &mut self.x, &mut self.y)?;
        let rows = Rows {
            x: &self.x,
            y: &self.y,
        };
        self.moments.update(self.spec.family, &self.theta, rows);
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let list = |v: &Vec<f64>| -> DfResult<ScalarValue> {
            Ok(ScalarValue::List(Arc::new(
                as_list_array(&f64_list(v.clone()))?.clone(),
            )))
        };
        Ok(vec![
            ScalarValue::Utf8(self.key.clone()),
            ScalarValue::UInt64(Some(self.moments.rows)),
            ScalarValue::Float64(Some(self.moments.loss_mean)),
            list(&self.moments.gradient_mean)?,
            list(&self.moments.gradient_m2)?,
            list(&self.moments.hessian_mean)?,
            list(&self.moments.hessian_m2)?,
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.started.get_or_insert_with(Instant::now);
        if self.key.is_none() {
            self.key = first_key(&states[0])?;
        }
        let rows = as_uint64_array(&states[1])?;
        let loss = as_float64_array(&states[2])?;
        let lists: Vec<&ListArray> = states[3..7]
            .iter()
            .map(|a| as_list_array(a))
            .collect::<DfResult<_>>()?;
        for row in 0..rows.len() {
            if rows.is_null(row) || rows.value(row) == 0 {
                continue;
            }
            let other = DerivativeMoments {
                n_params: self.moments.n_params,
                rows: rows.value(row),
                loss_mean: loss.value(row),
                gradient_mean: list_values(lists[0], row)?,
                gradient_m2: list_values(lists[1], row)?,
                hessian_mean: list_values(lists[2], row)?,
                hessian_m2: list_values(lists[3], row)?,
            };
            self.moments.merge(&other);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let d = self.moments.finish();
        if let (Some(hook), Some(key)) = (&self.progress, &self.key) {
            hook(MachineEvent {
                round: 2,
                key: key.clone(),
                rows: d.rows,
                iterations: 0,
                elapsed: self.started.map(|s| s.elapsed()).unwrap_or_default(),
            });
        }
        let DataType::Struct(fields) = DerivativesUdaf::output_type() else {
            unreachable!("output type is a struct")
        };
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(vec![d.rows])),
            Arc::new(Float64Array::from(vec![d.loss])),
            f64_list(d.gradient),
            f64_list(d.hessian),
            f64_list(d.gradient_covariance),
            f64_list(d.gradient_outer),
            f64_list(d.hessian_variance),
        ];
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
            fields, arrays, None,
        )?)))
    }

    fn size(&self) -> usize {
        let p2 = self.moments.n_params * self.moments.n_params;
        std::mem::size_of_val(self) + 8 * (3 * p2 + self.x.capacity() + self.y.capacity())
    }
}
