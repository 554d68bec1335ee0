//! `rose fit`: the robust estimate of a Parquet directory.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use rose::attack::{Attack, choose_byzantine};
use rose::engine::udaf::{MachineEvent, ProgressHook};
use rose::engine::{DataOptions, Dataset};
use rose::estimator::{Estimator, EstimatorOptions};
use rose::local_fit::NewtonOptions;
use rose::report::Summary;
use rose::{Family, Result, RoseError};

use super::Format;

#[derive(Args)]
pub struct FitArgs {
    /// Directory of Parquet files: DIR/machine=<id>/*.parquet or DIR/*.parquet.
    dir: PathBuf,

    /// Model family: logistic, poisson or gaussian.
    #[arg(long, default_value = "logistic")]
    family: Family,

    /// Response column.
    #[arg(long, default_value = "y")]
    response: String,

    /// Feature columns, comma separated [default: every numeric column except the
    /// response and the machine key].
    #[arg(long, value_delimiter = ',', conflicts_with = "features_file")]
    features: Option<Vec<String>>,

    /// File listing the feature columns, one per line.
    #[arg(long)]
    features_file: Option<PathBuf>,

    /// Fit without an intercept.
    #[arg(long)]
    no_intercept: bool,

    /// Column that names each row's machine, instead of the file layout.
    #[arg(long)]
    machine_column: Option<String>,

    /// Central machine id [default: the first machine in natural order].
    #[arg(long)]
    central: Option<String>,

    /// Estimator: avg, onestep, med, vrmol, rose-med, rose, rose-rv, csl or vrmom.
    #[arg(long, default_value = "rose")]
    estimator: Estimator,

    /// Number of VRMOL quantile levels K, with kappa_k = k/(K+1).
    #[arg(short = 'K', long = "quantiles", default_value_t = 10)]
    quantiles: usize,

    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,

    /// Convergence tolerance of the local Newton-Raphson fits (relative step size).
    #[arg(long, default_value_t = 1e-10)]
    tolerance: f64,

    /// Iteration cap of the local Newton-Raphson fits.
    #[arg(long, default_value_t = 100)]
    max_iterations: u32,

    /// Skip rows with null or non-finite values in the model's columns instead of failing.
    #[arg(long)]
    drop_missing: bool,

    /// Let a machine whose local fit diverges (separation, singular Hessian, no
    /// convergence) send its last Newton-Raphson iterate, as R's glm returns it, instead
    /// of being left out. A machine with too few rows, or with a column that is zero on
    /// all of its rows, is still left out.
    #[arg(long)]
    keep_diverged: bool,

    /// Rounds of the iterative estimators csl and vrmom.
    #[arg(long, default_value_t = 10)]
    iterations: usize,

    /// Machines whose transmitted statistics are corrupted (fault injection), comma
    /// separated ids.
    #[arg(
        long,
        value_delimiter = ',',
        requires = "attack",
        conflicts_with = "byzantine"
    )]
    byzantine_machines: Option<Vec<String>>,

    /// Fraction of machines whose statistics are corrupted: floor(fraction * m) machines
    /// chosen at random among the non-central ones, seeded by --seed.
    #[arg(long, requires = "attack")]
    byzantine: Option<f64>,

    /// Corrupt the central machine's transmitted statistics too (it counts as one of the
    /// Byzantine machines).
    #[arg(long, requires = "attack")]
    byzantine_central: bool,

    /// Attack used by the Byzantine machines: scale:C, gaussian:SD, nan, inf, huge,
    /// alie[:Z] or ipm[:EPS].
    #[arg(long)]
    attack: Option<Attack>,

    /// Seed of the random choice of Byzantine machines and of random attacks.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,

    /// Write the output to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,

    /// DataFusion execution partitions [default: number of cores].
    #[arg(long)]
    partitions: Option<usize>,

    /// Print only errors on standard error.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Log one line per machine and round (rows, iterations, time).
    #[arg(short, long)]
    pub verbose: bool,
}

fn read_features_file(path: &PathBuf) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        RoseError::option(
            "--features-file",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let features: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if features.is_empty() {
        return Err(RoseError::option(
            "--features-file",
            format!("{} lists no columns", path.display()),
        ));
    }
    Ok(features)
}

fn round_message(round: u8) -> &'static str {
    if round == 1 {
        "round 1: local fits"
    } else {
        "round 2: gradients and Hessians"
    }
}

pub async fn run_fit(args: FitArgs) -> Result<()> {
    let features = match (&args.features, &args.features_file) {
        (Some(list), _) => Some(list.iter().map(|s| s.trim().to_string()).collect()),
        (None, Some(path)) => Some(read_features_file(path)?),
        (None, None) => None,
    };
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let progress = ProgressBar::hidden();
    if show_progress {
        progress.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        progress.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} machines")
                .expect("valid progress template")
                .progress_chars("=> "),
        );
    }
    let bar = progress.clone();
    let verbose = args.verbose;
    let shown_round = Arc::new(AtomicU8::new(1));
    let hook: ProgressHook = Arc::new(move |event: MachineEvent| {
        if shown_round.swap(event.round, Ordering::Relaxed) != event.round {
            bar.set_position(0);
            bar.set_message(round_message(event.round));
        }
        bar.inc(1);
        if verbose {
            tracing::debug!(
                round = event.round,
                machine = %event.key,
                rows = event.rows,
                iterations = event.iterations,
                elapsed_ms = event.elapsed.as_millis() as u64,
                "machine statistics done"
            );
        }
    });

    let data = DataOptions {
        dir: args.dir.clone(),
        family: args.family,
        response: args.response.clone(),
        features,
        machine_column: args.machine_column.clone(),
        intercept: !args.no_intercept,
        drop_missing: args.drop_missing,
        newton: NewtonOptions {
            tolerance: args.tolerance,
            max_iterations: args.max_iterations,
            keep_diverged: args.keep_diverged,
            ..NewtonOptions::default()
        },
        target_partitions: args.partitions,
        progress: Some(hook),
    };
    if !(args.tolerance > 0.0 && args.tolerance < 1e-2) {
        return Err(RoseError::option(
            "--tolerance",
            "must be a positive number below 0.01, e.g. 1e-10",
        ));
    }
    if args.max_iterations == 0 {
        return Err(RoseError::option("--max-iterations", "must be at least 1"));
    }
    if args.partitions == Some(0) {
        return Err(RoseError::option("--partitions", "must be at least 1"));
    }

    let dataset = Dataset::open(&data).await?;
    let central = match &args.central {
        Some(id) => dataset.machine_index(id.trim())?,
        None => 0,
    };
    let m = dataset.machine_ids().len();
    let mut byzantine = match &args.byzantine_machines {
        Some(ids) => ids
            .iter()
            .map(|id| {
                dataset.machine_index(id.trim()).map_err(|_| {
                    RoseError::option(
                        "--byzantine-machines",
                        format!(
                            "no machine named '{id}'; machines are: {}",
                            dataset.machine_ids().join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?,
        None => match args.byzantine {
            Some(fraction) if (0.0..0.5).contains(&fraction) => {
                let count = (fraction * m as f64).floor() as usize;
                choose_byzantine(m, central, count, args.byzantine_central, args.seed)
            }
            Some(fraction) => {
                return Err(RoseError::option(
                    "--byzantine",
                    format!(
                        "{fraction} is not in [0, 0.5): fewer than half of the machines may be Byzantine"
                    ),
                ));
            }
            None => Vec::new(),
        },
    };
    if let Some(i) = (0..byzantine.len()).find(|&i| byzantine[..i].contains(&byzantine[i])) {
        return Err(RoseError::option(
            "--byzantine-machines",
            format!(
                "machine '{}' is named twice; list each machine once",
                dataset.machine_ids()[byzantine[i]]
            ),
        ));
    }
    if args.byzantine_central && !byzantine.contains(&central) {
        byzantine.push(central);
        byzantine.sort_unstable();
    }
    let options = EstimatorOptions {
        estimator: args.estimator,
        k_quantiles: args.quantiles,
        confidence: args.confidence,
        central,
        byzantine,
        attack: args.attack,
        iterations: args.iterations,
        seed: args.seed,
        start_scale_at_local_fit: false,
    };
    if args.attack.is_some() && options.byzantine.is_empty() {
        return Err(RoseError::option(
            "--attack",
            "no machine is Byzantine: name them with --byzantine-machines, --byzantine FRACTION or --byzantine-central",
        ));
    }
    options.validate(dataset.machine_ids().len())?;

    // The bar counts the machines of one round and restarts at 0 when the next begins.
    progress.set_length(m as u64);
    progress.set_message(round_message(1));
    tracing::info!(machines = m, "data registered");
    let report = dataset.fit(options).await;
    progress.finish_and_clear();
    let report = report?;

    let summary = Summary::new(&report);
    for warning in &summary.warnings {
        tracing::warn!("{warning}");
    }
    let text = match args.format {
        Format::Table => summary.to_table(),
        Format::Json => summary.to_json(),
        Format::Csv => summary.to_csv(),
    };
    super::write_output(args.output.as_deref(), &text)?;
    Ok(())
}
