//! `rose mnist`: the MNIST study of Wang, Zhu and Zhu, "Byzantine-robust distributed
//! one-step estimation", Section 5.2 (Tables 8 and 9).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use rose::engine::mnist::{
    DEFAULT_MAX_T, Study, StudyOptions, check_data_dirs, run_study, write_study_data,
};
use rose::{Result, RoseError};

/// Output formats of the study.
#[derive(Clone, Copy, ValueEnum)]
pub enum StudyFormat {
    /// Markdown tables beside the paper's values.
    Table,
    /// One JSON array of `{study, machines, alpha, estimator, accuracy}`.
    Json,
}

#[derive(Args)]
pub struct MnistArgs {
    /// Study: 6-9, 8-9 or both.
    #[arg(long, default_value = "both")]
    study: String,

    /// Machine counts m, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10,20,30")]
    machines: Vec<usize>,

    /// Byzantine fractions, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "0,0.2")]
    alpha: Vec<f64>,

    /// Pixels kept by the lasso screening [default: 15 for 6-9, 26 for 8-9].
    #[arg(long)]
    variables: Option<usize>,

    /// Before the lasso, drop pixels whose absolute Welch t statistic between the two
    /// digits exceeds this value (see docs/MNIST.md); 0 keeps every pixel.
    #[arg(long, default_value_t = DEFAULT_MAX_T)]
    max_t: f64,

    /// VRMOL quantile levels K.
    #[arg(short = 'K', long = "quantiles", default_value_t = 5)]
    quantiles: usize,

    /// Seed of the machines and the Byzantine choice.
    #[arg(long, default_value_t = 20_240_615)]
    seed: u64,

    /// Directory holding mnist-6-9, mnist-8-9, their -test sets and mnist-0-1.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: StudyFormat,

    /// Write the fitted models (estimates per setting and estimator) as JSON to this file.
    #[arg(long)]
    models: Option<PathBuf>,

    /// Write each setting's machines and the test set as Parquet under this directory.
    #[arg(long)]
    write_data: Option<PathBuf>,

    /// CSV of the paper's accuracies to print beside the results.
    #[arg(long, default_value = "data/paper/mnist.csv")]
    paper: PathBuf,

    /// Worker threads [default: number of cores].
    #[arg(long)]
    threads: Option<usize>,

    /// Print only the results.
    #[arg(short, long)]
    pub quiet: bool,
}

impl MnistArgs {
    /// Returns the arguments of `rose experiment --table 8` (6-9) or `--table 9` (8-9).
    pub fn for_table(table: u8, quiet: bool) -> MnistArgs {
        MnistArgs {
            study: if table == 8 { "6-9" } else { "8-9" }.to_string(),
            machines: vec![10, 20, 30],
            alpha: vec![0.0, 0.2],
            variables: None,
            max_t: DEFAULT_MAX_T,
            quantiles: 5,
            seed: 20_240_615,
            data_dir: PathBuf::from("data"),
            format: StudyFormat::Table,
            models: None,
            write_data: None,
            paper: PathBuf::from("data/paper/mnist.csv"),
            threads: None,
            quiet,
        }
    }
}

pub fn run_mnist(args: MnistArgs) -> Result<()> {
    let studies: Vec<&str> = match args.study.as_str() {
        "both" => vec!["6-9", "8-9"],
        "6-9" => vec!["6-9"],
        "8-9" => vec!["8-9"],
        other => {
            return Err(RoseError::option(
                "--study",
                format!("'{other}' is not 6-9, 8-9 or both"),
            ));
        }
    };
    if args.max_t.is_nan() || args.max_t < 0.0 {
        return Err(RoseError::option(
            "--max-t",
            "use a non-negative bound, or 0 to keep every pixel",
        ));
    }
    if args.alpha.iter().any(|a| !(0.0..0.5).contains(a)) {
        return Err(RoseError::option(
            "--alpha",
            "fractions must be in [0, 0.5)",
        ));
    }
    if args.machines.iter().any(|&m| m < 1) {
        return Err(RoseError::option("--machines", "use at least one machine"));
    }
    if !(1..=10_000).contains(&args.quantiles) {
        return Err(RoseError::option(
            "--quantiles",
            "use from 1 to 10000 quantile levels, e.g. 5",
        ));
    }
    if args.variables == Some(0) {
        return Err(RoseError::option(
            "--variables",
            "keep at least one pixel, e.g. 15",
        ));
    }
    // More threads than settings would only wait.
    let settings = args.machines.len() * args.alpha.len();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, settings.max(1));
    let bar = if !args.quiet && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new((studies.len() * args.machines.len() * args.alpha.len()) as u64);
        bar.set_style(
            ProgressStyle::with_template("MNIST [{bar:30}] {pos}/{len} settings, {eta} left")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let study_options: Vec<StudyOptions> = studies
        .iter()
        .map(|study| {
            let mut options = StudyOptions::paper(study);
            options.machines = args.machines.clone();
            options.alphas = args.alpha.clone();
            options.max_t = (args.max_t > 0.0).then_some(args.max_t);
            options.k_quantiles = args.quantiles;
            options.seed = args.seed;
            options.data_dir = args.data_dir.clone();
            if let Some(v) = args.variables {
                options.variables = v;
            }
            options
        })
        .collect();
    for options in &study_options {
        check_data_dirs(options)?;
    }

    let started = Instant::now();
    let mut results = Vec::new();
    for options in &study_options {
        let result = run_study(options, threads, &|| bar.inc(1))?;
        if let Some(dir) = &args.write_data {
            write_study_data(options, &result, dir)?;
        }
        results.push(result);
    }
    bar.finish_and_clear();

    if let Some(path) = &args.models {
        let models: Vec<_> = cell_objects(&results, true);
        let text = serde_json::to_string_pretty(&models).expect("JSON") + "\n";
        std::fs::write(path, text).map_err(|source| RoseError::Io {
            path: path.clone(),
            source,
        })?;
    }
    match args.format {
        StudyFormat::Json => {
            let rows = cell_objects(&results, false);
            println!("{}", serde_json::to_string_pretty(&rows).expect("JSON"));
        }
        StudyFormat::Table => {
            let paper = read_paper(&args.paper);
            for study in &results {
                print!("{}", to_markdown(study, &args, &paper));
            }
        }
    }
    if !args.quiet {
        eprintln!(
            "MNIST study finished in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

type PaperKey = (String, usize, i64, String);

fn read_paper(path: &Path) -> HashMap<PaperKey, f64> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            super::experiment::warn_no_paper_values(path, &error);
            return HashMap::new();
        }
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let alpha: f64 = f.get(4)?.parse().ok()?;
            Some((
                (
                    f[0].to_string(),
                    f[2].parse().ok()?,
                    (alpha * 100.0).round() as i64,
                    f[5].to_string(),
                ),
                f.get(6)?.parse().ok()?,
            ))
        })
        .collect()
}

/// Returns one JSON object per cell: `study`, `machines`, `alpha`, `estimator` and
/// `accuracy`, and with `model` also the coefficient `names`, `estimate` and `failure`.
fn cell_objects(results: &[Study], model: bool) -> Vec<serde_json::Value> {
    let mut objects = Vec::new();
    for study in results {
        let names: Vec<String> = std::iter::once("(Intercept)".to_string())
            .chain(study.selected.iter().cloned())
            .collect();
        for cell in &study.cells {
            let mut object = json!({
                "study": study.study,
                "machines": cell.machines,
                "alpha": cell.alpha,
                "estimator": cell.estimator.name(),
                "accuracy": cell.accuracy,
            });
            if model {
                object["names"] = json!(names);
                object["estimate"] = json!(cell.estimate);
                object["failure"] = json!(cell.failure);
            }
            objects.push(object);
        }
    }
    objects
}

fn to_markdown(study: &Study, args: &MnistArgs, paper: &HashMap<PaperKey, f64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Study {} ({} pixels: {}). {} training and {} test images; {} pixels pass the zero and t-statistic \
         screening (|t| ≤ {}). Accuracy on the test images; `paper` is the published value.\n",
        study.study,
        study.selected.len(),
        study.selected.join(" "),
        study.train_rows,
        study.test_rows,
        study.screened,
        if args.max_t >= 1e6 {
            format!("{:e}", args.max_t)
        } else if args.max_t > 0.0 {
            args.max_t.to_string()
        } else {
            "∞".to_string()
        },
    );
    let _ = write!(out, "| estimator | α |");
    for &m in &args.machines {
        let rows = study
            .cells
            .iter()
            .find(|c| c.machines == m)
            .map_or(0, |c| c.rows);
        let _ = write!(out, " m = {m} (n ≈ {rows}) |");
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(args.machines.len()));
    out.push('\n');
    let mut estimators: Vec<_> = study.cells.iter().map(|c| c.estimator).collect();
    estimators.dedup();
    let mut seen = Vec::new();
    for estimator in estimators {
        if seen.contains(&estimator) {
            continue;
        }
        seen.push(estimator);
        for &alpha in &args.alpha {
            let _ = write!(out, "| {} | {alpha:.2} |", estimator.name());
            for &m in &args.machines {
                let cell = study.cells.iter().find(|c| {
                    c.machines == m && c.estimator == estimator && (c.alpha - alpha).abs() < 1e-9
                });
                match cell {
                    Some(c) if c.accuracy.is_finite() => {
                        let _ = write!(out, " {:.2}%", 100.0 * c.accuracy);
                    }
                    Some(_) => out.push_str(" failed"),
                    None => out.push_str(" -"),
                }
                let key = (
                    study.study.clone(),
                    m,
                    (alpha * 100.0).round() as i64,
                    estimator.name().to_string(),
                );
                if let Some(p) = paper.get(&key) {
                    let _ = write!(out, " · paper {:.2}%", 100.0 * p);
                }
                out.push_str(" |");
            }
            out.push('\n');
        }
    }
    // Why cells failed, once per distinct reason, so that a table of `failed` is explained.
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for cell in &study.cells {
        if let Some(reason) = cell.failure.as_deref() {
            match reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, count)) => *count += 1,
                None => reasons.push((reason, 1)),
            }
        }
    }
    if !reasons.is_empty() {
        out.push_str("\nFailed cells:\n");
        for (reason, count) in reasons {
            let _ = writeln!(out, "- {count} cell(s): {reason}");
        }
    }
    out.push('\n');
    out
}
