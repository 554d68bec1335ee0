//! The table function `rose_fit(path, family, response [, options])`.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::Expr;

use super::{DfResult, check_newton, parse_bool, parse_count, parse_number, parse_pairs};
use crate::engine::{DataOptions, Dataset};
use crate::estimator::{Estimator, EstimatorOptions};
use crate::family::Family;
use crate::local_fit::NewtonOptions;
use crate::report::Summary;

const NAME: &str = "rose_fit";

/// `rose_fit(path, family, response [, options])`: runs the whole two-round estimate of a
/// Parquet directory and returns the coefficient table `(name, estimate, std_error, z,
/// p_value, ci_low, ci_high)`.
///
/// The work runs when the query is planned, so `EXPLAIN` runs it too.
#[derive(Debug)]
pub struct RoseFitFunction;

fn string_argument(exprs: &[Expr], index: usize, what: &str) -> DfResult<String> {
    match exprs.get(index) {
        Some(Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        )) => Ok(s.clone()),
        Some(other) => Err(DataFusionError::Plan(format!(
            "{NAME}: argument {} ({what}) must be a string literal, got {other}",
            index + 1
        ))),
        None => Err(DataFusionError::Plan(format!(
            "{NAME} expects (path, family, response [, options]); argument {} ({what}) is missing",
            index + 1
        ))),
    }
}

/// The settings of a fit parsed from the options string.
struct FitSettings {
    data: DataOptions,
    estimator: EstimatorOptions,
    central: Option<String>,
}

fn parse_settings(
    path: String,
    family: Family,
    response: String,
    options: &str,
) -> Result<FitSettings, String> {
    let mut data = DataOptions {
        dir: PathBuf::from(path),
        family,
        response,
        features: None,
        machine_column: None,
        intercept: true,
        drop_missing: false,
        newton: NewtonOptions::default(),
        target_partitions: None,
        progress: None,
    };
    let mut estimator = EstimatorOptions::new(Estimator::Rose);
    let mut central = None;
    let pairs = parse_pairs(options)?;
    if pairs.iter().any(|(k, _)| k == "k") && pairs.iter().any(|(k, _)| k == "quantiles") {
        return Err("options 'k' and 'quantiles' name the same setting: keep one".to_string());
    }
    for (key, value) in pairs {
        match key.as_str() {
            "estimator" => estimator.estimator = value.parse()?,
            "k" | "quantiles" => estimator.k_quantiles = parse_count(&key, &value)?,
            "confidence" => estimator.confidence = parse_number(&key, &value)?,
            "iterations" => estimator.iterations = parse_count(&key, &value)?,
            "intercept" => data.intercept = parse_bool(&key, &value)?,
            "drop_missing" => data.drop_missing = parse_bool(&key, &value)?,
            "tolerance" => data.newton.tolerance = parse_number(&key, &value)?,
            "max_iterations" => data.newton.max_iterations = parse_count(&key, &value)?,
            "keep_diverged" => data.newton.keep_diverged = parse_bool(&key, &value)?,
            "partitions" => data.target_partitions = Some(parse_count(&key, &value)?),
            "machine_column" => data.machine_column = Some(value),
            "central" => central = Some(value),
            "features" => {
                // Commas separate options, so features are separated by spaces, ';' or '|'.
                let features: Vec<String> = value
                    .split([' ', ';', '|'])
                    .filter(|f| !f.is_empty())
                    .map(String::from)
                    .collect();
                data.features = Some(features);
            }
            other => {
                return Err(format!(
                    "unknown option '{other}': expected estimator, k (or quantiles), confidence, iterations, intercept, \
                     features, machine_column, central, drop_missing, tolerance, max_iterations, keep_diverged or \
                     partitions"
                ));
            }
        }
    }
    check_newton(&data.newton)?;
    if data.target_partitions == Some(0) {
        return Err("option partitions=0: use at least 1".to_string());
    }
    Ok(FitSettings {
        data,
        estimator,
        central,
    })
}

async fn run_fit(settings: FitSettings) -> crate::Result<Summary> {
    let dataset = Dataset::open(&settings.data).await?;
    let mut options = settings.estimator;
    if let Some(id) = &settings.central {
        options.central = dataset.machine_index(id)?;
    }
    let report = dataset.fit(options).await?;
    let summary = Summary::new(&report);
    // A table has no place for warnings, so they go to the log, as `rose fit` prints them.
    for warning in &summary.warnings {
        tracing::warn!(
            "rose_fit({}): {}",
            settings.data.dir.display(),
            sql_option_names(warning)
        );
    }
    Ok(summary)
}

/// Rewrites the command-line flags that messages of the shared fitting code suggest into
/// the options of `rose_fit`, so that the message names what a SQL user writes.
fn sql_option_names(message: &str) -> String {
    const NAMES: [(&str, &str); 11] = [
        (
            "--drop-missing (drop_missing=true in SQL)",
            "drop_missing=true",
        ),
        ("--max-iterations (max_iterations in SQL)", "max_iterations"),
        (" or --features-file", ""),
        ("--features", "features=..."),
        ("--estimator ", "estimator="),
        ("--central", "central=ID"),
        ("--drop-missing", "drop_missing=true"),
        ("--max-iterations", "max_iterations"),
        ("--machine-column", "machine_column"),
        ("--iterations", "iterations"),
        ("--confidence", "confidence"),
    ];
    NAMES
        .iter()
        .fold(message.to_string(), |text, (flag, option)| {
            text.replace(flag, option)
        })
}

/// Returns the `rose_fit` option that sets what the command-line flag `flag` sets.
fn sql_option(flag: &str) -> &str {
    match flag {
        "--quantiles" => "k",
        "--features" | "--features-file" => "features",
        "--drop-missing" => "drop_missing",
        "--max-iterations" => "max_iterations",
        "--machine-column" => "machine_column",
        other => other.trim_start_matches("--"),
    }
}

/// Formats an error of the shared fitting code in `rose_fit`'s terms.
fn sql_error_message(error: &crate::RoseError) -> String {
    match error {
        crate::RoseError::InvalidOption { option, message } => format!(
            "invalid option {}: {}",
            sql_option(option),
            sql_option_names(message)
        ),
        other => sql_option_names(&other.to_string()),
    }
}

/// Schema of the coefficient table.
pub fn coefficient_schema() -> Arc<Schema> {
    let mut fields = vec![Field::new("name", DataType::Utf8, false)];
    for name in ["estimate", "std_error", "z", "p_value", "ci_low", "ci_high"] {
        fields.push(Field::new(name, DataType::Float64, true));
    }
    Arc::new(Schema::new(fields))
}

impl TableFunctionImpl for RoseFitFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() < 3 || exprs.len() > 4 {
            return Err(DataFusionError::Plan(format!(
                "{NAME} expects (path, family, response [, options]), got {} arguments",
                exprs.len()
            )));
        }
        let path = string_argument(exprs, 0, "path")?;
        let family: Family =
            string_argument(exprs, 1, "family")?
                .parse()
                .map_err(|e: String| {
                    DataFusionError::Plan(format!("{NAME}: argument 2 (family): {e}"))
                })?;
        let response = string_argument(exprs, 2, "response")?;
        let options = if exprs.len() == 4 {
            string_argument(exprs, 3, "options")?
        } else {
            String::new()
        };
        let settings = parse_settings(path, family, response, &options)
            .map_err(|e| DataFusionError::Plan(format!("{NAME}: argument 4 (options): {e}")))?;

        // Planning is synchronous; the fit runs its own queries on the current runtime.
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            DataFusionError::Execution(format!("{NAME} needs a multi-threaded tokio runtime"))
        })?;
        let summary =
            tokio::task::block_in_place(|| handle.block_on(run_fit(settings))).map_err(|e| {
                DataFusionError::Execution(format!("{NAME}: {}", sql_error_message(&e)))
            })?;

        let column = |f: fn(&crate::report::Coefficient) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(
                summary.coefficients.iter().map(f),
            ))
        };
        let names: StringArray = summary
            .coefficients
            .iter()
            .map(|c| Some(c.name.as_str()))
            .collect();
        let batch = RecordBatch::try_new(
            coefficient_schema(),
            vec![
                Arc::new(names),
                column(|c| c.estimate),
                column(|c| c.std_error),
                column(|c| c.z),
                column(|c| c.p_value),
                column(|c| c.ci_low),
                column(|c| c.ci_high),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(
            coefficient_schema(),
            vec![vec![batch]],
        )?))
    }
}
