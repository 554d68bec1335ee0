//! rose's functions for DataFusion SQL.
//!
//! [`register_functions`] adds them to any [`SessionContext`]:
//!
//! - per-machine aggregates `rose_local_fit` and `rose_local_derivatives`, used with
//!   `GROUP BY machine`;
//! - combining aggregates over the per-machine rows: `rose_median`, `rose_weighted_mean`,
//!   `rose_vrmol` (Algorithm 1 scales) and `rose_vrmol_rv` (Algorithm 2 scales);
//! - scalar functions `rose_sandwich_scale`, `rose_sqrt`, `rose_diagonal`,
//!   `rose_one_step` and `rose_d_k`;
//! - the table function `rose_fit(path, family, response [, options])`, which runs the
//!   whole estimate.
//!
//! `docs/SQL.md` documents every signature with an example.

pub mod aggregates;
pub mod fit_table;
pub mod scalars;

use std::sync::Arc;

use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::prelude::SessionContext;

use crate::family::Family;
use crate::local_fit::NewtonOptions;

type DfResult<T> = datafusion::common::Result<T>;

/// Registers every rose function in `ctx`.
pub fn register_functions(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::from(aggregates::SqlLocalFit::new()));
    ctx.register_udaf(AggregateUDF::from(aggregates::SqlLocalDerivatives::new()));
    for kind in aggregates::CombineKind::ALL {
        ctx.register_udaf(AggregateUDF::from(aggregates::Combine::new(kind)));
    }
    for kind in scalars::ScalarKind::ALL {
        ctx.register_udf(ScalarUDF::from(scalars::RoseScalar::new(kind)));
    }
    ctx.register_udtf("rose_fit", Arc::new(fit_table::RoseFitFunction));
}

/// Builds the planning error of a function argument.
pub(crate) fn argument_error(
    function: &str,
    index: usize,
    message: impl std::fmt::Display,
) -> DataFusionError {
    DataFusionError::Plan(format!("{function}: argument {} {message}", index + 1))
}

/// Returns the literal value of argument `index`, or a planning error.
pub(crate) fn literal<'a>(
    function: &str,
    exprs: &'a [Arc<dyn PhysicalExpr>],
    index: usize,
    what: &str,
) -> DfResult<&'a ScalarValue> {
    exprs
        .get(index)
        .and_then(|e| e.downcast_ref::<Literal>())
        .map(|l| l.value())
        .ok_or_else(|| argument_error(function, index, format!("({what}) must be a literal")))
}

/// Parses the family literal of argument `index`.
pub(crate) fn family_argument(
    function: &str,
    exprs: &[Arc<dyn PhysicalExpr>],
    index: usize,
) -> DfResult<Family> {
    let value = literal(function, exprs, index, "family")?;
    let text = value.try_as_str().flatten().ok_or_else(|| {
        argument_error(
            function,
            index,
            "(family) must be a string such as 'logistic'",
        )
    })?;
    text.parse()
        .map_err(|e: String| argument_error(function, index, format!("(family): {e}")))
}

/// Options of the per-machine aggregates, from a literal such as
/// `'intercept=false, tolerance=1e-12'`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ModelOptions {
    pub intercept: bool,
    pub drop_missing: bool,
    pub newton: NewtonOptions,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            intercept: true,
            drop_missing: false,
            newton: NewtonOptions::default(),
        }
    }
}

/// Splits `key=value` pairs separated by commas.
pub fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let pairs: Vec<(String, String)> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| {
                    (
                        k.trim().to_ascii_lowercase().replace('-', "_"),
                        v.trim().to_string(),
                    )
                })
                .ok_or_else(|| format!("option '{pair}' is not of the form key=value"))
        })
        .collect::<Result<_, _>>()?;
    // A repeated key is almost always a mistake, and which value wins would be a guess.
    for (i, (key, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(k, _)| k == key) {
            return Err(format!("option '{key}' is given twice: keep one"));
        }
    }
    Ok(pairs)
}

pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(format!("option {key}={value}: expected true or false")),
    }
}

pub(crate) fn parse_count<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("option {key}={value}: expected a whole number such as 10"))
}

pub(crate) fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("option {key}={value}: expected a number"))
}

/// Checks the Newton settings as `rose fit` does: a tolerance in (0, 0.01) and at least one
/// iteration.
pub(crate) fn check_newton(newton: &NewtonOptions) -> Result<(), String> {
    if !(newton.tolerance > 0.0 && newton.tolerance < 1e-2) {
        return Err(format!(
            "option tolerance={}: use a positive number below 0.01, e.g. 1e-10",
            newton.tolerance
        ));
    }
    if newton.max_iterations == 0 {
        return Err("option max_iterations=0: use at least 1".to_string());
    }
    Ok(())
}

impl ModelOptions {
    pub(crate) fn parse(text: &str) -> Result<ModelOptions, String> {
        let mut options = ModelOptions::default();
        for (key, value) in parse_pairs(text)? {
            match key.as_str() {
                "intercept" => options.intercept = parse_bool(&key, &value)?,
                "drop_missing" => options.drop_missing = parse_bool(&key, &value)?,
                "tolerance" => options.newton.tolerance = parse_number(&key, &value)?,
                "max_iterations" => options.newton.max_iterations = parse_count(&key, &value)?,
                "keep_diverged" => options.newton.keep_diverged = parse_bool(&key, &value)?,
                other => {
                    return Err(format!(
                        "unknown option '{other}': expected intercept, drop_missing, tolerance, \
                         max_iterations or keep_diverged"
                    ));
                }
            }
        }
        check_newton(&options.newton)?;
        Ok(options)
    }
}
