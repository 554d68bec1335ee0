//! Layouts, output formats and bad inputs, through the real binary on the Parquet files
//! of `tests/data/inputs` (written by `scripts/make_test_inputs.py`).

mod common;

use common::*;

/// Results of one data set read through different layouts or partitionings differ only
/// by the order of floating-point sums.
const LAYOUT_TOLERANCE: f64 = 1e-12;

#[test]
fn layouts_give_the_same_estimate() {
    let hive = fit_json(&[&input("layout-hive")]);
    let flat = fit_json(&[&input("layout-flat")]);
    let column_layout = fit_json(&[&input("layout-column"), "--machine-column", "site"]);
    let reference = column(&hive, "estimate");
    assert!(max_abs_diff(&column(&flat, "estimate"), &reference) < LAYOUT_TOLERANCE);
    assert!(max_abs_diff(&column(&column_layout, "estimate"), &reference) < LAYOUT_TOLERANCE);
    assert_eq!(hive["n_machines"], 5);
    assert_eq!(flat["machines"][0]["id"], "m1");
    assert_eq!(column_layout["machines"][4]["id"], "site-5");
    assert_eq!(hive["n_rows"], 650);
}

#[test]
fn split_partitions_give_the_same_estimate() {
    // The column layout spreads every machine over two files, so each machine's rows
    // reach several accumulators and are merged.
    let one = fit_json(&[
        &input("layout-column"),
        "--machine-column",
        "site",
        "--partitions",
        "1",
    ]);
    let many = fit_json(&[
        &input("layout-column"),
        "--machine-column",
        "site",
        "--partitions",
        "9",
    ]);
    let diff = max_abs_diff(&column(&one, "estimate"), &column(&many, "estimate"));
    assert!(diff < LAYOUT_TOLERANCE, "{diff}");
    let flat = fit_json(&[&input("layout-flat"), "--partitions", "16"]);
    let hive = fit_json(&[&input("layout-hive"), "--partitions", "1"]);
    assert!(
        max_abs_diff(&column(&flat, "estimate"), &column(&hive, "estimate")) < LAYOUT_TOLERANCE
    );
}

#[test]
fn json_has_the_documented_keys() {
    let fit = fit_json(&["data/logistic-m11", "--no-intercept"]);
    for key in [
        "family",
        "estimator",
        "k",
        "n_machines",
        "n_rows",
        "central_machine",
    ] {
        assert!(fit.get(key).is_some(), "missing {key}");
    }
    assert_eq!(fit["family"], "logistic");
    assert_eq!(fit["estimator"], "rose");
    assert_eq!(fit["k"], 10);
    assert_eq!(fit["n_rows"], 5500);
    let first = &fit["coefficients"][0];
    for key in [
        "name",
        "estimate",
        "std_error",
        "z",
        "p_value",
        "ci_low",
        "ci_high",
    ] {
        assert!(first.get(key).is_some(), "coefficient lacks {key}");
    }
    assert_eq!(first["name"], "x01");
    let machine = &fit["machines"][0];
    for key in ["id", "rows", "converged", "iterations"] {
        assert!(machine.get(key).is_some(), "machine lacks {key}");
    }
}

#[test]
fn intervals_follow_confidence_level() {
    let fit = fit_json(&["data/logistic-m11", "--no-intercept", "--confidence", "0.9"]);
    let c = &fit["coefficients"][0];
    let (est, se) = (
        c["estimate"].as_f64().unwrap(),
        c["std_error"].as_f64().unwrap(),
    );
    // z_{0.95} = 1.6448536269514722 (R: qnorm(0.95)).
    let half = c["ci_high"].as_f64().unwrap() - est;
    assert!((half / se - 1.6448536269514722).abs() < 1e-12);
    let z = c["z"].as_f64().unwrap();
    assert!((z - est / se).abs() < 1e-12);
}

#[test]
fn std_errors_scale_with_d_k() {
    // Remark 8: the reported variance is D_K times the sandwich's diagonal, so the
    // standard error ratio between K = 3 and K = 10 at the same estimate inputs follows
    // sqrt(D_3 / D_10) up to the change of the estimate itself.
    let k3 = fit_json(&["data/logistic-m11", "--no-intercept", "-K", "3"]);
    let k10 = fit_json(&["data/logistic-m11", "--no-intercept", "-K", "10"]);
    let f3 = k3["efficiency_factor"].as_f64().unwrap();
    let f10 = k10["efficiency_factor"].as_f64().unwrap();
    assert!((f3 - 1.1680269506).abs() < 1e-9);
    assert!((f10 - 1.0655625036).abs() < 1e-9);
}

#[test]
fn csv_and_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coef.csv");
    let out = rose(&[
        "fit",
        &input("layout-hive"),
        "--format",
        "csv",
        "-o",
        path.to_str().unwrap(),
        "-q",
    ]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("name,estimate,std_error,z,p_value,ci_low,ci_high")
    );
    assert!(lines.next().unwrap().starts_with("(Intercept),"));
    assert_eq!(text.lines().count(), 5);
}

#[test]
fn table_output_has_summary_sections() {
    let out = rose(&["fit", &input("layout-hive")]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Family:",
        "Coefficients:",
        "Std. Error",
        "Pr(>|z|)",
        "Machines:",
        "central machine: 1",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
}

#[test]
fn verbose_logs_one_line_per_machine() {
    let out = rose(&["fit", &input("layout-hive"), "-v", "--estimator", "avg"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("machine statistics done").count(),
        5,
        "{stderr}"
    );
    let quiet = rose(&["fit", &input("layout-hive"), "-q", "--estimator", "avg"]);
    assert!(quiet.stderr.is_empty());
}

#[test]
fn two_machines_fit_with_warning() {
    let out = rose(&["fit", &input("two-machines"), "--format", "json"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mean of the two"));
    let fit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fit["efficiency_factor"], 1.0);
}

#[test]
fn separated_machine_is_reported_and_outvoted() {
    let fit = fit_json(&[&input("one-separated")]);
    let m5 = &fit["machines"][4];
    assert_eq!(m5["id"], "m5");
    assert_eq!(m5["usable"], false);
    assert!(m5["failure"].as_str().unwrap().contains("separat"), "{m5}");
    assert_eq!(fit["machines"][0]["usable"], true);
}

#[test]
fn too_few_usable_machines_is_an_error() {
    let err = fit_error(&[&input("mostly-separated")]);
    assert!(err.contains("only 2 of 5 machines"), "{err}");
    assert!(err.contains("at least half"), "{err}");
    assert!(err.contains("m2:"), "{err}");
}

#[test]
fn missing_directory_is_named() {
    let err = fit_error(&["tests/data/inputs/does-not-exist"]);
    assert!(err.contains("does-not-exist"), "{err}");
    assert!(err.contains("cannot read data directory"), "{err}");
}

#[test]
fn directory_without_parquet_is_rejected() {
    let err = fit_error(&[&input("no-parquet")]);
    assert!(err.contains("no Parquet files found"), "{err}");
}

#[test]
fn corrupt_file_is_named() {
    let err = fit_error(&[&input("corrupt-file")]);
    assert!(err.contains("m2.parquet"), "{err}");
    assert!(err.contains("not a readable Parquet file"), "{err}");
}

#[test]
fn missing_column_lists_available_columns() {
    let err = fit_error(&[&input("layout-hive"), "--features", "x1,nope"]);
    assert!(err.contains("column 'nope' not found"), "{err}");
    assert!(err.contains("available columns: x1, x2, x3, y"), "{err}");
    let err = fit_error(&[&input("layout-hive"), "--response", "outcome"]);
    assert!(err.contains("column 'outcome' not found"), "{err}");
}

#[test]
fn non_numeric_column_is_rejected() {
    let err = fit_error(&[&input("string-feature"), "--features", "x1,label"]);
    assert!(err.contains("m1.parquet"), "{err}");
    assert!(
        err.contains("'label' has type Utf8 but must be numeric"),
        "{err}"
    );
    // By default only numeric columns become features.
    let fit = fit_json(&[&input("string-feature")]);
    assert_eq!(fit["coefficients"].as_array().unwrap().len(), 4);
}

#[test]
fn disagreeing_schemas_are_rejected() {
    let err = fit_error(&[&input("missing-in-one")]);
    assert!(err.contains("m4.parquet"), "{err}");
    assert!(err.contains("column 'x3' is missing here"), "{err}");
}

#[test]
fn integer_and_float_columns_mix() {
    let fit = fit_json(&[&input("int-and-float")]);
    assert_eq!(fit["n_machines"], 5);
}

#[test]
fn nulls_and_non_finite_values_are_rejected() {
    for (dir, column, what) in [
        ("null-feature", "x2", "a null value"),
        ("nan-feature", "x1", "NaN"),
        ("inf-response", "y", "inf"),
    ] {
        let err = fit_error(&[&input(dir)]);
        assert!(
            err.contains(&format!("machine 'm3', column '{column}'")),
            "{err}"
        );
        assert!(err.contains(what), "{err}");
        assert!(err.contains("--drop-missing"), "{err}");
        let fit = fit_json(&[&input(dir), "--drop-missing"]);
        assert_eq!(fit["machines"][2]["rows"], 119, "{dir}: one row dropped");
    }
}

#[test]
fn invalid_responses_are_rejected() {
    let err = fit_error(&[&input("response-two")]);
    assert!(err.contains("machine 'm3', column 'y'"), "{err}");
    assert!(err.contains("must be 0 or 1"), "{err}");
    let err = fit_error(&[&input("poisson-negative"), "--family", "poisson"]);
    assert!(err.contains("must be non-negative"), "{err}");
    let err = fit_error(&[&input("poisson-fraction"), "--family", "poisson"]);
    assert!(err.contains("value 2.5"), "{err}");
    assert!(err.contains("integer count"), "{err}");
}

#[test]
fn unknown_central_machine_lists_machines() {
    let err = fit_error(&[&input("layout-hive"), "--central", "9"]);
    assert!(err.contains("no machine named '9'"), "{err}");
    assert!(err.contains("1, 2, 3, 4, 5"), "{err}");
}

#[test]
fn usage_errors_exit_with_two() {
    for args in [
        vec!["fit", "data/logistic-m11", "--estimator", "mean"],
        vec!["fit", "data/logistic-m11", "--family", "gamma"],
        vec![
            "fit",
            "data/logistic-m11",
            "--attack",
            "flip",
            "--byzantine-machines",
            "01",
        ],
    ] {
        let out = rose(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("invalid value"),
            "{args:?}"
        );
    }
}

#[test]
fn out_of_range_options_are_rejected() {
    let err = fit_error(&[&input("layout-hive"), "--confidence", "1.5"]);
    assert!(err.contains("--confidence"), "{err}");
    let err = fit_error(&[&input("layout-hive"), "-K", "0"]);
    assert!(err.contains("--quantiles"), "{err}");
}

#[test]
fn escaped_hive_ids_are_decoded() {
    let fit = fit_json(&[&input("hive-escaped")]);
    let ids: Vec<&str> = fit["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["1", "2", "3", "a,b"]);
    assert_eq!(fit["machines"][3]["rows"], 100);
    assert_eq!(fit["n_rows"], 400);
}

#[test]
fn hidden_files_are_not_read() {
    let fit = fit_json(&[&input("hive-hidden")]);
    assert_eq!(fit["machines"][0]["rows"], 100);
    assert_eq!(fit["n_rows"], 300);
}

#[test]
fn linked_duplicate_file_is_rejected() {
    let err = fit_error(&[&input("linked-duplicate")]);
    assert!(err.contains("m9.parquet"), "{err}");
    assert!(err.contains("same file as"), "{err}");
}

#[test]
fn mixed_and_nested_layouts_are_rejected() {
    let err = fit_error(&[&input("mixed-layout")]);
    assert!(err.contains("mixes layouts"), "{err}");
    let err = fit_error(&[&input("nested")]);
    assert!(err.contains("nested directories"), "{err}");
    assert!(err.contains("--machine-column"), "{err}");
}

#[test]
fn files_without_rows_are_an_error() {
    let err = fit_error(&[&input("all-empty")]);
    assert!(err.contains("all 3 Parquet files have no rows"), "{err}");
}

#[test]
fn machines_need_more_rows_than_parameters() {
    let err = fit_error(&[&input("rows-equal-params"), "--family", "gaussian"]);
    assert!(err.contains("4 rows for 4 parameters"), "{err}");
}

#[test]
fn constant_feature_is_named() {
    let fit = fit_json(&[&input("constant-feature")]);
    let failure = fit["machines"][1]["failure"].as_str().unwrap();
    assert!(failure.contains("feature 'x2' is constant"), "{failure}");
}

#[test]
fn dropped_rows_are_counted() {
    let out = rose(&[
        "fit",
        &input("null-feature"),
        "--drop-missing",
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipped 1 rows"), "{stderr}");
    let fit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fit["machines"][2]["dropped"], 1);
}

#[test]
fn majority_injection_is_refused() {
    let err = fit_error(&[
        &input("layout-flat"),
        "--byzantine-machines",
        "m1,m2,m3",
        "--attack",
        "nan",
    ]);
    assert!(err.contains("3 of 5 machines would be Byzantine"), "{err}");
    let err = fit_error(&[&input("layout-flat"), "--attack", "nan"]);
    assert!(err.contains("no machine is Byzantine"), "{err}");
    let err = fit_error(&[
        &input("layout-flat"),
        "--byzantine-machines",
        "m1, m1",
        "--attack",
        "nan",
    ]);
    assert!(err.contains("machine 'm1' is named twice"), "{err}");
}

#[test]
fn machine_column_cannot_be_a_feature() {
    let err = fit_error(&[
        &input("layout-column"),
        "--machine-column",
        "site",
        "--features",
        "x1,site",
    ]);
    assert!(err.contains("'site' identifies the machines"), "{err}");
}

#[test]
fn write_errors_on_stdout_fail() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rose"))
        .args(["fit", &input("layout-hive")])
        .current_dir(root())
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("standard output"));
}

#[test]
fn unusable_central_machine_warns() {
    let fit = fit_json(&["tests/data/inputs/one-separated", "--central", "m5"]);
    let warnings = fit["warnings"].to_string();
    assert!(
        warnings.contains("central machine 'm5' has no usable local fit"),
        "{warnings}"
    );
    assert!(warnings.contains("--estimator rose-rv"), "{warnings}");
    // Spaces around the machine id, as a shell variable may leave them, are ignored.
    let spaced = fit_json(&["tests/data/inputs/one-separated", "--central", " m5 "]);
    assert_eq!(spaced["central_machine"], "m5");
    let clean = fit_json(&["tests/data/inputs/one-separated"]);
    assert!(
        !clean["warnings"].to_string().contains("central machine"),
        "{}",
        clean["warnings"]
    );
}
