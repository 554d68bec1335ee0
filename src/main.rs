//! The `rose` command-line tool.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Byzantine-robust distributed estimation over Parquet directories.
#[derive(Parser)]
#[command(name = "rose", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit a model with a robust one-step estimator; each machine is one Parquet file or
    /// one `machine=<id>/` directory.
    Fit(cli::fit::FitArgs),
    /// Write a simulated Parquet directory with the design of the paper's Section 5.1.
    Simulate(cli::simulate::SimulateArgs),
    /// Regenerate a table of the ROSE paper's studies (Tables 1 to 7; 8 and 9 run the MNIST study).
    Experiment(cli::experiment::ExperimentArgs),
    /// Run SQL with rose's functions over Parquet directories.
    Sql(cli::sql::SqlArgs),
    /// Run the paper's MNIST study (Tables 8 and 9) on the digits in data/.
    Mnist(cli::mnist::MnistArgs),
}

/// Output format of results.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Text tables.
    Table,
    /// One JSON document.
    Json,
    /// Comma-separated values.
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (quiet, verbose) = match &cli.command {
        Command::Fit(args) => (args.quiet, args.verbose),
        Command::Simulate(args) => (args.quiet, false),
        Command::Experiment(args) => (args.quiet, false),
        Command::Sql(args) => (args.quiet, false),
        Command::Mnist(args) => (args.quiet, false),
    };
    init_logging(quiet, verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Fit(args) => runtime.block_on(cli::fit::run_fit(args)),
        Command::Simulate(args) => cli::simulate::run_simulate(args),
        Command::Experiment(args) => cli::experiment::run_experiment(args),
        Command::Sql(args) => runtime.block_on(cli::sql::run_sql(args)),
        Command::Mnist(args) => cli::mnist::run_mnist(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(quiet: bool, verbose: bool) {
    let default = if quiet {
        "error"
    } else if verbose {
        "warn,rose=debug"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}
