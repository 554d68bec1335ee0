//! `rose sql` and the SQL functions, through the real binary: every file in `queries/`
//! runs, the step-by-step and one-call queries give the same estimates as `rose fit`, and
//! bad calls are planning errors that name the function and the argument.

mod common;

use common::*;
use serde_json::Value;

/// The SQL path runs the same kernels in the same order as `rose fit`, so only the
/// order of floating-point sums may differ.
const SAME_COMPUTATION: f64 = 1e-10;

fn sql_json(args: &[&str]) -> Value {
    command_json("sql", args)
}

fn sql_error(args: &[&str]) -> String {
    command_error("sql", args)
}

#[test]
fn every_query_file_runs() {
    let mut files: Vec<_> = std::fs::read_dir(root().join("queries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "queries/ holds the worked examples");
    for file in files {
        let rows = sql_json(&["-f", file.to_str().unwrap()]);
        assert!(
            !rows.as_array().unwrap().is_empty(),
            "{} returned no rows",
            file.display()
        );
    }
}

#[test]
fn step_by_step_query_matches_rose_fit() {
    let rows = sql_json(&["-f", "queries/rose_step_by_step.sql"]);
    let sql = numbers(&rows[0]["estimate"]);
    let fit = fit_json(&[
        "data/mnist-6-9",
        "--features-file",
        "data/mnist-6-9/features.txt",
    ]);
    let diff = max_abs_diff(&sql, &column(&fit, "estimate"));
    assert!(diff < SAME_COMPUTATION, "differs by {diff}");
}

#[test]
fn one_call_query_matches_rose_fit() {
    let rows = sql_json(&["-f", "queries/rose_fit_one_call.sql"]);
    let fit = fit_json(&["data/logistic-m11", "--no-intercept"]);
    for key in ["estimate", "std_error", "ci_low", "ci_high"] {
        let sql = row_values(&rows, key);
        let diff = max_abs_diff(&sql, &column(&fit, key));
        assert!(diff < SAME_COMPUTATION, "{key} differs by {diff}");
    }
    assert_eq!(rows[0]["name"], "x01");
}

#[test]
fn rose_fit_options_follow_the_flags() {
    let rows = sql_json(&[
        "SELECT estimate FROM rose_fit('data/mnist-8-9', 'logistic', 'y', \
         'estimator=rose-rv, k=5, central=03, features=r18_c19 r21_c14')",
    ]);
    let fit = fit_json(&[
        "data/mnist-8-9",
        "--estimator",
        "rose-rv",
        "-K",
        "5",
        "--central",
        "03",
        "--features",
        "r18_c19,r21_c14",
    ]);
    let sql = row_values(&rows, "estimate");
    assert!(max_abs_diff(&sql, &column(&fit, "estimate")) < SAME_COMPUTATION);
}

/// Round 1 through SQL, with every machine's rows spread over several execution
/// partitions, against one partition: the local fits must agree.
#[test]
fn split_partitions_give_the_same_fits() {
    let query = |partitions: &str| {
        let script = format!(
            "SET datafusion.execution.target_partitions = {partitions};\n\
             SELECT site, rose_local_fit('logistic', y, x1, x2, x3)['estimate'] AS estimate \
             FROM t GROUP BY site ORDER BY site;"
        );
        sql_json(&[&script, "--table", "t=tests/data/inputs/layout-column"])
    };
    let one = query("1");
    let many = query("7");
    assert_eq!(one.as_array().unwrap().len(), 5);
    for (a, b) in one.as_array().unwrap().iter().zip(many.as_array().unwrap()) {
        assert_eq!(a["site"], b["site"]);
        let diff = max_abs_diff(&numbers(&a["estimate"]), &numbers(&b["estimate"]));
        assert!(diff < SAME_COMPUTATION, "{} differs by {diff}", a["site"]);
    }
}

#[test]
fn hive_tables_have_a_machine_column() {
    let rows = sql_json(&[
        "SELECT machine, count(*) AS n FROM logistic_m11 GROUP BY machine ORDER BY machine",
    ]);
    assert_eq!(rows.as_array().unwrap().len(), 11);
    assert_eq!(rows[0]["machine"], "00");
    assert_eq!(rows[0]["n"], 500);
}

#[test]
fn combining_aggregates_skip_failed_machines() {
    // Machine m5 of one-separated is perfectly separated: its estimate list is empty.
    let rows = sql_json(&[
        "WITH f AS (SELECT machine, rose_local_fit('logistic', y, x1, x2, x3) AS fit FROM t GROUP BY machine) \
         SELECT count(*) AS machines, rose_median(fit['estimate']) AS median FROM f",
        "--table",
        "t=tests/data/inputs/one-separated",
    ]);
    assert_eq!(rows[0]["machines"], 7);
    assert_eq!(numbers(&rows[0]["median"]).len(), 4);
}

#[test]
fn bad_calls_name_function_and_argument() {
    let table = ["--table", "t=tests/data/inputs/layout-hive"];
    let cases = [
        (
            "SELECT rose_local_fit('gamma', y, x1) FROM t",
            "rose_local_fit: argument 1 (family)",
        ),
        (
            "SELECT rose_local_fit(machine, y, x1) FROM t GROUP BY machine",
            "argument 1 (family) must be a literal",
        ),
        (
            "SELECT rose_local_fit('logistic') FROM t",
            "rose_local_fit expects (family, response, feature",
        ),
        (
            "SELECT rose_local_fit('logistic', y, machine, x1) FROM t",
            "argument 3 (feature) must be numeric",
        ),
        (
            "SELECT rose_local_fit('logistic', y, x1, 'intercept=maybe') FROM t",
            "argument 4 (options)",
        ),
        (
            "SELECT rose_local_derivatives('logistic', [1.0], y, x1) FROM t",
            "argument 2 (theta) has 1 entries",
        ),
        (
            "SELECT rose_local_derivatives('logistic', 1.0, y, x1) FROM t",
            "argument 2 (theta) must be a list",
        ),
        (
            "SELECT rose_median(x1) FROM t",
            "rose_median: argument 1 must be a list",
        ),
        (
            "SELECT rose_vrmol([1.0], 3, [1.0], x1) FROM t",
            "rose_vrmol: argument 4 (k) must be a literal",
        ),
        (
            "SELECT rose_vrmol([1.0], 3, [1.0], 0) FROM t",
            "argument 4 (k) must be an integer from 1",
        ),
        (
            "SELECT rose_one_step([1.0]) FROM t",
            "rose_one_step expects (theta, gradient, hessian)",
        ),
        (
            "SELECT * FROM rose_fit('data/logistic-m11', 'logistic')",
            "rose_fit expects (path, family, response",
        ),
        (
            "SELECT * FROM rose_fit('data/logistic-m11', 'logistic', 'y', 'estimator=foo')",
            "unknown estimator 'foo'",
        ),
        (
            "SELECT * FROM rose_fit('data/logistic-m11', 7, 'y')",
            "argument 2 (family) must be a string literal",
        ),
        (
            "SELECT * FROM rose_fit('data/logistic-m11', 'logistic', 'y', 'k=5, k=7')",
            "option 'k' is given twice",
        ),
        (
            "SELECT * FROM rose_fit('data/logistic-m11', 'logistic', 'y', 'k=5,quantiles=7')",
            "options 'k' and 'quantiles' name the same setting",
        ),
        (
            "SELECT rose_local_fit('logistic', y, x1, 'intercept=true,Intercept=false') FROM t",
            "option 'intercept' is given twice",
        ),
        (
            "SELECT * FROM rose_fit('data/logistic-m11', 'logistic', 'y', 'k=0')",
            "invalid option k: K = 0 is out of range",
        ),
        (
            "SELECT * FROM rose_fit('data/logistic-m11', 'logistic', 'y', 'k=5.0')",
            "option k=5.0: expected a whole number such as 10",
        ),
        (
            "SELECT * FROM rose_fit('data/logistic-m11', 'logistic', 'y', 'tolerance=-1')",
            "option tolerance=-1: use a positive number below 0.01",
        ),
        (
            "SELECT * FROM rose_fit('data/logistic-m11', 'logistic', 'y', 'partitions=0')",
            "option partitions=0: use at least 1",
        ),
        (
            "SELECT rose_local_fit('logistic', y, x1, 'max_iterations=0') FROM t",
            "option max_iterations=0: use at least 1",
        ),
        // Hints name the SQL option, not the command-line flag.
        (
            "SELECT * FROM rose_fit('tests/data/inputs/null-feature', 'logistic', 'y')",
            "contains a null value; remove or impute such rows, or skip them with \
             drop_missing=true",
        ),
        (
            "SELECT * FROM rose_fit('tests/data/inputs/one-separated', 'logistic', 'y', \
             'estimator=csl,central=m5')",
            "name another with central=ID",
        ),
    ];
    for (query, expected) in cases {
        let mut args = vec![query];
        args.extend_from_slice(&table);
        let err = sql_error(&args);
        assert!(err.contains(expected), "{query}: {err}");
        assert!(!err.contains("panicked"), "{query}: {err}");
    }
}

#[test]
fn d_k_function_reproduces_table_1() {
    let rows = sql_json(&["SELECT rose_d_k(10) AS d10, rose_d_k(3) AS d3"]);
    assert!((rows[0]["d10"].as_f64().unwrap() - 1.0655625036).abs() < 1e-9);
    assert!((rows[0]["d3"].as_f64().unwrap() - 1.1680269506).abs() < 1e-9);
}

#[test]
fn rose_fit_logs_warnings() {
    let out = rose(&[
        "sql",
        "SELECT estimate FROM rose_fit('tests/data/inputs/one-separated', 'logistic', 'y', \
         'central=m5')",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("rose_fit("), "{log}");
    assert!(log.contains("central machine 'm5'"), "{log}");
    assert!(
        log.contains("estimator=rose-rv") && !log.contains("--"),
        "SQL warnings name SQL options: {log}"
    );
}
