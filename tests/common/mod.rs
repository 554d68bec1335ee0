//! Helpers shared by the command-line tests: run the real `rose` binary and read the
//! committed reference values.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Repository root, where the tests run the binary from.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `rose` with `args` from the repository root.
pub fn rose(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rose"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the rose binary runs")
}

/// Runs `rose fit ... --format json -q` and parses the output, failing the test with
/// the binary's standard error when it exits with an error.
pub fn fit_json(args: &[&str]) -> Value {
    command_json("fit", args)
}

/// Runs `rose SUBCOMMAND ... --format json -q` and parses the output, failing the test
/// with the binary's standard error when it exits with an error.
pub fn command_json(subcommand: &str, args: &[&str]) -> Value {
    let mut all = vec![subcommand];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json", "-q"]);
    let out = rose(&all);
    assert!(
        out.status.success(),
        "rose {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rose prints JSON")
}

/// Runs `rose fit ...` expecting failure, and returns standard error.
pub fn fit_error(args: &[&str]) -> String {
    command_error("fit", args)
}

/// Runs `rose SUBCOMMAND ...` expecting exit status 1, and returns standard error.
pub fn command_error(subcommand: &str, args: &[&str]) -> String {
    let mut all = vec![subcommand];
    all.extend_from_slice(args);
    let out = rose(&all);
    assert!(
        !out.status.success(),
        "rose {all:?} succeeded but should fail"
    );
    assert_eq!(out.status.code(), Some(1), "data errors exit with status 1");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "rose panicked: {stderr}");
    stderr
}

/// Field `key` of every coefficient, in output order.
pub fn column(fit: &Value, key: &str) -> Vec<f64> {
    fit["coefficients"]
        .as_array()
        .expect("coefficients array")
        .iter()
        .map(|c| c[key].as_f64().expect("numeric field"))
        .collect()
}

/// Field `key` of every row of a JSON array of objects, in output order.
pub fn row_values(rows: &Value, key: &str) -> Vec<f64> {
    rows.as_array()
        .expect("an array of rows")
        .iter()
        .map(|r| r[key].as_f64().expect("numeric field"))
        .collect()
}

/// Reads the reference values written by `tests/reference/rose_reference.py`.
pub fn reference() -> Value {
    let path = root().join("tests/reference/values.json");
    let text = std::fs::read_to_string(&path).expect("reference values exist");
    serde_json::from_str(&text).expect("reference values are JSON")
}

/// Converts a JSON array of numbers to a vector.
pub fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

/// Largest absolute entry-wise difference.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors of different length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Euclidean distance.
pub fn distance(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors of different length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Path of a directory under `tests/data/inputs`.
pub fn input(name: &str) -> String {
    Path::new("tests/data/inputs")
        .join(name)
        .to_string_lossy()
        .into_owned()
}
