//! Fault injection, `rose simulate`, the iterative baselines and `rose experiment`,
//! through the real binary.

mod common;

use common::*;

/// Every attack of `rose fit --attack`.
const ATTACKS: [&str; 8] = [
    "scale:-3",
    "gaussian:100",
    "nan",
    "inf",
    "huge",
    "alie",
    "ipm",
    "ipm:2",
];

/// Distance that two of eleven attacked machines may move the robust estimators on
/// logistic-m11. The −3 scaling of the paper moves `rose` by 0.31 (the numpy reference,
/// values.json); the other attacks put their values at one extreme at most as well.
const ATTACK_BOUND: f64 = 0.35;

#[test]
fn every_attack_is_outvoted_at_twenty_percent() {
    for estimator in ["rose", "rose-rv"] {
        let clean = column(
            &fit_json(&[
                "data/logistic-m11",
                "--no-intercept",
                "--estimator",
                estimator,
            ]),
            "estimate",
        );
        for attack in ATTACKS {
            let fit = fit_json(&[
                "data/logistic-m11",
                "--no-intercept",
                "--estimator",
                estimator,
                "--byzantine",
                "0.2",
                "--attack",
                attack,
            ]);
            let injected = fit["machines"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["byzantine"] == true)
                .count();
            assert_eq!(injected, 2, "floor(0.2 * 11) machines");
            assert_eq!(
                fit["machines"][0]["byzantine"], false,
                "central stays honest"
            );
            let moved = distance(&column(&fit, "estimate"), &clean);
            assert!(
                moved < ATTACK_BOUND,
                "{estimator} under {attack} moved {moved}"
            );
        }
    }
}

#[test]
fn huge_attack_values_print_compactly() {
    let out = rose(&[
        "fit",
        "data/logistic-m11",
        "--no-intercept",
        "--byzantine-machines",
        "01,02",
        "--attack",
        "gaussian:1e300",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("gaussian:1e300"), "{text}");
    let longest = text.split_whitespace().map(str::len).max().unwrap_or(0);
    assert!(longest < 40, "a number printed in full:\n{text}");
}

#[test]
fn byzantine_choice_follows_the_seed() {
    let chosen = |seed: &str| -> Vec<String> {
        let fit = fit_json(&[
            "data/logistic-m11",
            "--no-intercept",
            "--estimator",
            "med",
            "--byzantine",
            "0.3",
            "--attack",
            "nan",
            "--seed",
            seed,
        ]);
        fit["machines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["byzantine"] == true)
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(chosen("4"), chosen("4"));
    assert_eq!(chosen("4").len(), 3);
    assert_ne!(chosen("4"), chosen("5"));
}

#[test]
fn byzantine_central_is_corrupted_too() {
    let fit = fit_json(&[
        "data/logistic-m11",
        "--no-intercept",
        "--estimator",
        "rose-rv",
        "--byzantine",
        "0.2",
        "--byzantine-central",
        "--attack",
        "scale:-3",
    ]);
    assert_eq!(fit["machines"][0]["byzantine"], true);
    let injected = fit["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["byzantine"] == true)
        .count();
    assert_eq!(injected, 2);
}

/// CSL iterates Newton steps on the pooled gradient with the central machine's Hessian,
/// so its fixed point is the pooled maximum-likelihood fit (statsmodels, values.json).
#[test]
fn csl_converges_to_pooled_fit() {
    let reference = reference();
    let pooled = numbers(&reference["pooled_fits"]["logistic-m11"]["params"]);
    let fit = fit_json(&[
        "data/logistic-m11",
        "--no-intercept",
        "--estimator",
        "csl",
        "--iterations",
        "40",
    ]);
    let diff = max_abs_diff(&column(&fit, "estimate"), &pooled);
    assert!(diff < 1e-6, "csl is {diff} from the pooled fit");
    assert_eq!(fit["iterations"], 40);
    assert_eq!(fit["diverged"], false);
}

#[test]
fn vrmom_stays_near_pooled_fit() {
    let reference = reference();
    let pooled = numbers(&reference["pooled_fits"]["logistic-m11"]["params"]);
    let fit = fit_json(&[
        "data/logistic-m11",
        "--no-intercept",
        "--estimator",
        "vrmom",
    ]);
    let d = distance(&column(&fit, "estimate"), &pooled);
    // VRMOL of the gradient differs from the mean by about √(D_K − 1) local standard
    // errors, far less than the 0.24 sampling error of the pooled fit itself.
    assert!(d < 0.1, "vrmom is {d} from the pooled fit");
}

#[test]
fn simulate_writes_a_fittable_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let status = rose(&[
        "simulate",
        "--family",
        "poisson",
        "--machines",
        "7",
        "--rows",
        "400",
        "--params",
        "5",
        "--byzantine",
        "0.2",
        "--data-attack",
        "negate-mean",
        "--seed",
        "9",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("truth.json")).unwrap()).unwrap();
    assert_eq!(truth["byzantine_machines"].as_array().unwrap().len(), 1);
    assert_eq!(
        truth["byzantine_machines"][0].as_str().map(|s| s != "00"),
        Some(true)
    );
    let theta = numbers(&truth["theta_star"]);
    // θ* of the design: p^(-1/2) (1, 3/4, 1/2, 1/4, 0) for p = 5.
    let expected: Vec<f64> = [1.0, 0.75, 0.5, 0.25, 0.0]
        .iter()
        .map(|v| v / 5f64.sqrt())
        .collect();
    assert!(max_abs_diff(&theta, &expected) < 1e-15);

    let fit = fit_json(&[
        out.to_str().unwrap(),
        "--family",
        "poisson",
        "--no-intercept",
    ]);
    assert_eq!(fit["n_machines"], 7);
    assert_eq!(fit["n_rows"], 2800);
    let error = distance(&column(&fit, "estimate"), &theta);
    // 2,800 rows and five parameters: the error is a few hundredths.
    assert!(error < 0.15, "rose is {error} from θ*");
}

#[test]
fn simulate_rejects_mismatched_attack() {
    let dir = tempfile::tempdir().unwrap();
    let out = rose(&[
        "simulate",
        "--family",
        "poisson",
        "--byzantine",
        "0.2",
        "--data-attack",
        "flip-labels",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not apply to poisson"));
}

#[test]
fn experiment_table_1_matches_paper() {
    let out = rose(&["experiment", "--table", "1"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for row in [
        "| 3 | 1.168 |",
        "| 10 | 1.066 | 0.938 |",
        "| 100 | 1.047 | 0.955 |",
    ] {
        assert!(text.contains(row), "missing {row}:\n{text}");
    }
}

/// Runs `rose experiment` with `args`, checks that it succeeds and returns its output.
fn experiment_output(args: &[&str]) -> String {
    let mut all = vec!["experiment"];
    all.extend_from_slice(args);
    let out = rose(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn experiment_writes_markdown_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t2.csv");
    let grid = [
        "--table",
        "2",
        "--machines",
        "11",
        "--rows",
        "200",
        "--replications",
        "2",
        "-q",
    ];
    let mut args = grid.to_vec();
    args.extend(["--csv", csv.to_str().unwrap()]);
    let text = experiment_output(&args);
    assert!(text.contains("| m = 11 | α | n = 200 |"), "{text}");
    assert!(
        text.contains("paper 0.4602 (0.0688)"),
        "avg at α = 0 carries the paper's value"
    );
    let lines: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        lines[0],
        "table,family,machines,rows,alpha,method,replication,error"
    );
    // 3 fractions × 9 methods × 2 replications.
    assert_eq!(lines.len() - 1, 54);
    assert!(lines[1].starts_with("2,logistic,11,200,0.00,avg,0,"));

    // A subset of the methods draws the same data, so its rows are those of the full run.
    let subset_csv = dir.path().join("subset.csv");
    let mut args = grid.to_vec();
    args.extend([
        "--methods",
        "rose-rv,rose",
        "--csv",
        subset_csv.to_str().unwrap(),
    ]);
    experiment_output(&args);
    let subset: Vec<String> = std::fs::read_to_string(&subset_csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    let expected: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(",rose,") || l.contains(",rose-rv,"))
        .cloned()
        .collect();
    assert_eq!(subset.len(), 12);
    assert_eq!(subset, expected);
}

#[test]
fn experiment_runs_diagnostic_method() {
    let text = experiment_output(&[
        "--table",
        "3",
        "--machines",
        "11",
        "--rows",
        "200",
        "--alpha",
        "0.2",
        "--replications",
        "3",
        "--methods",
        "rose,rose-local",
        "--csv",
        "/dev/stdout",
        "-q",
    ]);
    let errors = |method: &str| -> Vec<f64> {
        text.lines()
            .filter(|l| l.contains(&format!(",{method},")))
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect()
    };
    let (rose, local) = (errors("rose"), errors("rose-local"));
    assert_eq!(rose.len(), 3, "{text}");
    assert_eq!(local.len(), 3, "{text}");
    // Only the scale of the start differs, so the errors are close but not equal.
    for (a, b) in rose.iter().zip(&local) {
        assert_ne!(a, b, "rose-local must change the start");
        assert!((a - b).abs() < 0.5 * a, "rose {a}, rose-local {b}");
    }
}

#[test]
fn experiment_rejects_misplaced_grid_options() {
    let err = command_error("experiment", &["--table", "1", "--machines", "11"]);
    assert!(err.contains("--machines"), "{err}");
    assert!(err.contains("Table 1 is computed in closed form"), "{err}");
    let err = command_error("experiment", &["--table", "8", "--replications", "5"]);
    assert!(err.contains("run rose mnist"), "{err}");
}

#[test]
fn experiment_rejects_unknown_and_repeated_methods() {
    let unknown = command_error("experiment", &["--table", "4", "--methods", "rose,avg"]);
    assert!(
        unknown.contains("--methods")
            && unknown.contains("table 4 has no method 'avg'")
            && unknown.contains("rose-rv, rose, vrmom3, vrmom10"),
        "{unknown}"
    );
    let repeated = command_error("experiment", &["--table", "2", "--methods", "rose, rose"]);
    assert!(repeated.contains("'rose' is named twice"), "{repeated}");
    let empty = command_error("experiment", &["--table", "2", "--methods", ""]);
    assert!(empty.contains("a method name is empty"), "{empty}");
}

#[test]
fn simulate_rejects_stale_machines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let simulate = |machines: &str| {
        rose(&[
            "simulate",
            "--family",
            "logistic",
            "--machines",
            machines,
            "--rows",
            "40",
            "--params",
            "3",
            "--out",
            out,
            "-q",
        ])
    };
    assert!(simulate("4").status.success());
    let again = simulate("2");
    assert_eq!(again.status.code(), Some(1));
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(message.contains("machine=02"), "{message}");
    assert!(message.contains("empty directory"), "{message}");
}
