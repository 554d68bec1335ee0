//! The MNIST study through the real binary, on the digits shipped in `data/`.

mod common;

use common::*;

fn accuracy(rows: &serde_json::Value, estimator: &str, alpha: f64) -> f64 {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["estimator"] == estimator && (r["alpha"].as_f64().unwrap() - alpha).abs() < 1e-9
        })
        .and_then(|r| r["accuracy"].as_f64())
        .unwrap_or(f64::NAN)
}

#[test]
fn mnist_study_reports_json_and_writes_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cells");
    let models = dir.path().join("models.json");
    let out = rose(&[
        "mnist",
        "--study",
        "6-9",
        "--machines",
        "10",
        "--format",
        "json",
        "--write-data",
        data.to_str().unwrap(),
        "--models",
        models.to_str().unwrap(),
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &rows[0];
    for key in ["study", "machines", "alpha", "estimator", "accuracy"] {
        assert!(first.get(key).is_some(), "missing {key}");
    }
    assert_eq!(first["study"], "6-9");
    // 2 fractions × 9 estimators.
    assert_eq!(rows.as_array().unwrap().len(), 18);

    // With 20% of the machines sending zeros and ones, rose keeps its accuracy within two
    // points while the non-robust one-step estimator collapses.
    let rose_clean = accuracy(&rows, "rose", 0.0);
    let rose_attacked = accuracy(&rows, "rose", 0.2);
    assert!(rose_clean > 0.8, "rose clean accuracy {rose_clean}");
    assert!(
        (rose_clean - rose_attacked).abs() < 0.02,
        "{rose_clean} vs {rose_attacked}"
    );
    let onestep_attacked = accuracy(&rows, "onestep", 0.2);
    assert!(
        onestep_attacked < rose_attacked - 0.2,
        "onestep {onestep_attacked}"
    );

    // The written cell reproduces through rose fit.
    let cell = data.join("6-9/m10-alpha0.20");
    let fit = fit_json(&[cell.to_str().unwrap(), "--estimator", "rose", "-K", "5"]);
    assert_eq!(fit["n_machines"], 10);
    assert_eq!(fit["coefficients"].as_array().unwrap().len(), 16);
    let models: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&models).unwrap()).unwrap();
    let model = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["estimator"] == "rose" && m["alpha"] == 0.2)
        .unwrap();
    // The in-memory study and rose fit on the written Parquet run the same kernels.
    let diff = max_abs_diff(&numbers(&model["estimate"]), &column(&fit, "estimate"));
    assert!(diff < 1e-10, "rose fit differs from the study by {diff}");
    assert!(data.join("6-9/test/machine=00/part-0.parquet").exists());
}

#[test]
fn experiment_tables_8_and_9_alias_the_study() {
    let out = rose(&["experiment", "--table", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use 1 to 9"));
}
