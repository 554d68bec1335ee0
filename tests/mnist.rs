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

/// Asserts the study's acceptance: with 20% of the machines training on zeros and ones,
/// rose keeps its test accuracy within two points of its clean accuracy, while averaging
/// and the non-robust one-step estimator lose clearly more (at least ten points). The
/// clean floor of 80% sits below the paper's clean accuracies of 87% to 91%.
fn assert_robust(rows: &serde_json::Value, study: &str) {
    let rose_clean = accuracy(rows, "rose", 0.0);
    let rose_attacked = accuracy(rows, "rose", 0.2);
    assert!(
        rose_clean > 0.8,
        "{study}: rose clean accuracy {rose_clean}"
    );
    assert!(
        (rose_clean - rose_attacked).abs() < 0.02,
        "{study}: rose {rose_clean} clean vs {rose_attacked} attacked"
    );
    for estimator in ["avg", "onestep"] {
        let clean = accuracy(rows, estimator, 0.0);
        let attacked = accuracy(rows, estimator, 0.2);
        assert!(
            attacked < clean - 0.1,
            "{study}: {estimator} {clean} clean vs {attacked} attacked"
        );
    }
}

#[test]
fn mnist_study_reports_json_and_writes_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cells");
    let models = dir.path().join("models.json");
    let rows = command_json(
        "mnist",
        &[
            "--study",
            "6-9",
            "--machines",
            "10",
            "--write-data",
            data.to_str().unwrap(),
            "--models",
            models.to_str().unwrap(),
        ],
    );
    let first = &rows[0];
    for key in ["study", "machines", "alpha", "estimator", "accuracy"] {
        assert!(first.get(key).is_some(), "missing {key}");
    }
    assert_eq!(first["study"], "6-9");
    // 2 fractions × 9 estimators.
    assert_eq!(rows.as_array().unwrap().len(), 18);

    assert_robust(&rows, "6-9");

    // The written cell reproduces through rose fit and rose sql. The Byzantine machines'
    // fits on zeros and ones diverge, and the study lets them send their last iterate,
    // which --keep-diverged (keep_diverged in SQL) does for every machine.
    let cell = data.join("6-9/m10-alpha0.20");
    let cell = cell.to_str().unwrap();
    let fit = fit_json(&[cell, "--estimator", "rose", "-K", "5", "--keep-diverged"]);
    assert_eq!(fit["n_machines"], 10);
    assert_eq!(fit["coefficients"].as_array().unwrap().len(), 16);
    let diverged: Vec<&serde_json::Value> = fit["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["converged"] == false)
        .collect();
    assert_eq!(diverged.len(), 2, "the two Byzantine machines diverge");
    assert!(diverged.iter().all(|m| m["outlier"] == true));
    let models: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&models).unwrap()).unwrap();
    let model = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["estimator"] == "rose" && m["alpha"] == 0.2)
        .unwrap();
    // The in-memory study and rose fit on the written Parquet run the same kernels.
    let study_estimate = numbers(&model["estimate"]);
    let diff = max_abs_diff(&study_estimate, &column(&fit, "estimate"));
    assert!(diff < 1e-10, "rose fit differs from the study by {diff}");
    let query = format!(
        "SELECT estimate FROM rose_fit('{cell}', 'logistic', 'y', 'k=5, keep_diverged=true')"
    );
    let rows = command_json("sql", &[&query]);
    let sql = row_values(&rows, "estimate");
    let diff = max_abs_diff(&study_estimate, &sql);
    assert!(diff < 1e-10, "rose sql differs from the study by {diff}");
    assert!(data.join("6-9/test/machine=00/part-0.parquet").exists());
}

#[test]
fn mnist_8_9_robust_at_thirty_machines() {
    let rows = command_json("mnist", &["--study", "8-9", "--machines", "30"]);
    assert!(rows.as_array().unwrap().iter().all(|r| r["study"] == "8-9"));
    assert_robust(&rows, "8-9");
}

#[test]
fn experiment_tables_8_and_9_alias_the_study() {
    let out = rose(&["experiment", "--table", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use 1 to 9"));
}

/// Writes a small MNIST-like data directory: three pixels, `rows` images with labels
/// alternating 0 and 1, one machine.
fn write_images(dir: &std::path::Path, rows: usize, label: impl Fn(usize) -> f64, pixel: f64) {
    let names = ["r00_c00", "r00_c01", "r00_c02"].map(String::from);
    let data = rose::simulate::MachineData {
        x: (0..rows)
            .flat_map(|i| [pixel, (i % 7) as f64 / 7.0, (i % 3) as f64 / 3.0])
            .collect(),
        y: (0..rows).map(label).collect(),
    };
    rose::engine::write::write_hive(dir, &["00".to_string()], &names, &[data]).unwrap();
}

/// Runs `rose mnist` on the data directory `dir` and returns its standard error, failing
/// the test if the command succeeds.
fn mnist_error(dir: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec![
        "--study",
        "6-9",
        "--machines",
        "2",
        "--alpha",
        "0",
        "-q",
        "--data-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    command_error("mnist", &args)
}

#[test]
fn mnist_rejects_invalid_images() {
    let alternate = |i: usize| (i % 2) as f64;

    // A label that is not 0 or 1, as when digits are stored instead of 0/1 labels.
    let dir = tempfile::tempdir().unwrap();
    write_images(
        &dir.path().join("mnist-6-9"),
        200,
        |i| 6.0 + 3.0 * (i % 2) as f64,
        0.5,
    );
    write_images(&dir.path().join("mnist-6-9-test"), 50, alternate, 0.5);
    write_images(&dir.path().join("mnist-0-1"), 50, alternate, 0.5);
    let message = mnist_error(dir.path(), &[]);
    assert!(message.contains("label y = 6"), "{message}");
    assert!(message.contains("mnist-6-9"), "{message}");

    // A pixel that is not finite in the test images.
    let dir = tempfile::tempdir().unwrap();
    write_images(&dir.path().join("mnist-6-9"), 200, alternate, 0.5);
    write_images(&dir.path().join("mnist-6-9-test"), 50, alternate, f64::NAN);
    write_images(&dir.path().join("mnist-0-1"), 50, alternate, 0.5);
    let message = mnist_error(dir.path(), &[]);
    assert!(message.contains("column 'r00_c00'"), "{message}");
    assert!(message.contains("finite"), "{message}");
    assert!(message.contains("mnist-6-9-test"), "{message}");

    // Training images with a single label.
    let dir = tempfile::tempdir().unwrap();
    write_images(&dir.path().join("mnist-6-9"), 200, |_| 1.0, 0.5);
    write_images(&dir.path().join("mnist-6-9-test"), 50, alternate, 0.5);
    write_images(&dir.path().join("mnist-0-1"), 50, alternate, 0.5);
    let message = mnist_error(dir.path(), &[]);
    assert!(message.contains("need both labels"), "{message}");
}

#[test]
fn mnist_rejects_missing_data_and_bad_options() {
    let empty = tempfile::tempdir().unwrap();
    let message = mnist_error(empty.path(), &[]);
    assert!(message.contains("--data-dir"), "{message}");
    assert!(message.contains("mnist-6-9"), "{message}");

    let data = root().join("data");
    for (option, value) in [("--quantiles", "0"), ("--variables", "0")] {
        let message = mnist_error(&data, &[option, value]);
        assert!(message.contains(option), "{option}: {message}");
    }
    let message = mnist_error(&data, &["--machines", "100000"]);
    assert!(message.contains("too few"), "{message}");
}
