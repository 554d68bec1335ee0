//! `rose experiment`: regenerate Tables 1 to 7 of the simulation studies of
//! Wang, Zhu and Zhu, "Byzantine-robust distributed one-step estimation".

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use rose::aggregate::QuantileLevels;
use rose::experiment::{Grid, Method, Record, TableSpec, job_count, run, summarise};
use rose::{Result, RoseError};

const DEFAULT_REPLICATIONS: usize = 100;
const DEFAULT_SEED: u64 = 20_240_611;

#[derive(Args)]
pub struct ExperimentArgs {
    /// Table of the paper to regenerate, 1 to 9 (8 and 9 run the MNIST study).
    #[arg(long)]
    table: u8,

    /// Replications per cell.
    #[arg(long, default_value_t = DEFAULT_REPLICATIONS)]
    replications: usize,

    /// Machine counts m to run, comma separated [default: 11,31,101].
    #[arg(long, value_delimiter = ',')]
    machines: Option<Vec<usize>>,

    /// Rows per machine n to run, comma separated [default: 200,300,500,1000].
    #[arg(long, value_delimiter = ',')]
    rows: Option<Vec<usize>>,

    /// Byzantine fractions to run, comma separated [default: the table's].
    #[arg(long, value_delimiter = ',')]
    alpha: Option<Vec<f64>>,

    /// Methods to run, comma separated, by their names in the table (for example
    /// rose,rose-rv), or rose-local, which runs only on request [default: all of the
    /// table's].
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,

    /// Seed of the whole run.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// Write one CSV row per replication, method and cell to this file.
    #[arg(long)]
    csv: Option<PathBuf>,

    /// CSV of the paper's values to print beside the results.
    #[arg(long, default_value = "data/paper/tables.csv")]
    paper: PathBuf,

    /// Worker threads [default: number of cores].
    #[arg(long)]
    threads: Option<usize>,

    /// Print only the tables.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run_experiment(args: ExperimentArgs) -> Result<()> {
    if matches!(args.table, 1 | 8 | 9) {
        reject_grid_options(&args)?;
    }
    if args.table == 1 {
        print!("{}", table_1(&args.paper));
        return Ok(());
    }
    if args.table == 8 || args.table == 9 {
        return super::mnist::run_mnist(super::mnist::MnistArgs::for_table(args.table, args.quiet));
    }
    let mut spec = TableSpec::new(args.table).ok_or_else(|| {
        RoseError::option(
            "--table",
            format!("table {} does not exist: use 1 to 9", args.table),
        )
    })?;
    if let Some(names) = &args.methods {
        spec.methods = select_methods(&spec, names)?;
    }
    let mut grid = Grid::paper(&spec);
    grid.seed = args.seed;
    grid.replications = args.replications;
    if let Some(m) = args.machines {
        grid.machines = m;
    }
    if let Some(n) = args.rows {
        grid.rows = n;
    }
    if let Some(alpha) = args.alpha {
        grid.alphas = alpha;
    }
    validate(&grid)?;

    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let bar = if !args.quiet && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(job_count(&grid) as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} replications, {eta} left")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("table {}", spec.number));
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let records = run(&spec, &grid, threads, &|| bar.inc(1));
    bar.finish_and_clear();
    let elapsed = started.elapsed();

    if let Some(path) = &args.csv {
        std::fs::write(path, to_csv(&spec, &records)).map_err(|source| RoseError::Io {
            path: path.clone(),
            source,
        })?;
    }
    let paper = read_paper(&args.paper, spec.number);
    print!("{}", to_markdown(&spec, &grid, &records, &paper));
    if !args.quiet {
        eprintln!(
            "table {}: {} replications per cell in {:.1} s on {threads} threads",
            spec.number,
            grid.replications,
            elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// Rejects the simulation grid's options for Table 1, which is computed in closed form,
/// and for Tables 8 and 9, which run the MNIST study with its own options.
fn reject_grid_options(args: &ExperimentArgs) -> Result<()> {
    let set_options = [
        ("--machines", args.machines.is_some()),
        ("--rows", args.rows.is_some()),
        ("--alpha", args.alpha.is_some()),
        ("--methods", args.methods.is_some()),
        ("--csv", args.csv.is_some()),
        ("--threads", args.threads.is_some()),
        ("--replications", args.replications != DEFAULT_REPLICATIONS),
        ("--seed", args.seed != DEFAULT_SEED),
    ];
    match set_options.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(RoseError::option(
            flag,
            format!(
                "does not apply to table {}: {}",
                args.table,
                if args.table == 1 {
                    "Table 1 is computed in closed form"
                } else {
                    "Tables 8 and 9 are the MNIST study; run rose mnist to set its options"
                }
            ),
        )),
        None => Ok(()),
    }
}

/// Selects the methods named in `names`, in the table's order. Each replication draws its
/// data from its own seed, so a method's errors do not depend on which others run.
fn select_methods(spec: &TableSpec, names: &[String]) -> Result<Vec<Method>> {
    let available: Vec<Method> = spec
        .methods
        .iter()
        .chain(&spec.diagnostic_methods)
        .copied()
        .collect();
    let known: Vec<&str> = available.iter().map(|m| m.name).collect();
    let mut seen: Vec<&str> = Vec::new();
    for name in names.iter().map(|n| n.trim()) {
        if name.is_empty() {
            return Err(RoseError::option(
                "--methods",
                format!("a method name is empty: use some of {}", known.join(", ")),
            ));
        }
        if !known.contains(&name) {
            return Err(RoseError::option(
                "--methods",
                format!(
                    "table {} has no method '{name}': use some of {}",
                    spec.number,
                    known.join(", ")
                ),
            ));
        }
        if seen.contains(&name) {
            return Err(RoseError::option(
                "--methods",
                format!("'{name}' is named twice"),
            ));
        }
        seen.push(name);
    }
    Ok(available
        .into_iter()
        .filter(|m| seen.contains(&m.name))
        .collect())
}

fn validate(grid: &Grid) -> Result<()> {
    if grid.replications == 0 {
        return Err(RoseError::option("--replications", "use at least 1"));
    }
    if grid.machines.iter().any(|&m| m < 3) {
        return Err(RoseError::option("--machines", "use at least 3 machines"));
    }
    if grid.rows.iter().any(|&n| n < 2 * grid.params) {
        return Err(RoseError::option(
            "--rows",
            format!(
                "use at least {} rows per machine for p = {}",
                2 * grid.params,
                grid.params
            ),
        ));
    }
    if grid.alphas.iter().any(|a| !(0.0..0.5).contains(a)) {
        return Err(RoseError::option(
            "--alpha",
            "fractions must be in [0, 0.5)",
        ));
    }
    Ok(())
}

/// Warns that the paper's values are missing, so that a table without them is explained.
pub(crate) fn warn_no_paper_values(path: &std::path::Path, error: &std::io::Error) {
    tracing::warn!(
        "cannot read the paper's values from {}: {error}; run rose from the repository root or \
         pass --paper FILE",
        path.display()
    );
}

fn table_1(paper: &std::path::Path) -> String {
    let table1 = paper.with_file_name("table1.csv");
    let printed: HashMap<usize, String> = std::fs::read_to_string(&table1)
        .inspect_err(|error| warn_no_paper_values(&table1, error))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split(',');
            let k = fields.next()?.trim().parse().ok()?;
            Some((k, fields.next()?.trim().to_string()))
        })
        .collect();
    let mut out = String::from("| K | D_K | efficiency 1/D_K | paper D_K |\n|---|---|---|---|\n");
    for k in [3, 5, 7, 10, 15, 20, 30, 50, 100] {
        let d_k = QuantileLevels::new(k).d_k();
        let paper = printed.get(&k).cloned().unwrap_or_else(|| "-".to_string());
        let _ = writeln!(out, "| {k} | {d_k:.3} | {:.3} | {paper} |", 1.0 / d_k);
    }
    out
}

fn to_csv(spec: &TableSpec, records: &[Record]) -> String {
    let mut out = String::from("table,family,machines,rows,alpha,method,replication,error\n");
    for r in records {
        let _ = writeln!(
            out,
            "{},{},{},{},{:.2},{},{},{}",
            spec.number, spec.family, r.machines, r.rows, r.alpha, r.method, r.replication, r.error
        );
    }
    out
}

/// The paper's mean, standard deviation and starred flag of one cell.
#[derive(Clone, Debug)]
struct PaperCell {
    mean: f64,
    sd: f64,
    starred: bool,
}

/// Key of a cell: machines, rows, α in hundredths, method as in the paper's CSV.
type CellKey = (usize, usize, i64, String);

fn alpha_key(alpha: f64) -> i64 {
    (alpha * 100.0).round() as i64
}

fn read_paper(path: &std::path::Path, table: u8) -> HashMap<CellKey, PaperCell> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            warn_no_paper_values(path, &error);
            return HashMap::new();
        }
    };
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.splitn(10, ',').map(str::trim).collect();
        if fields.len() < 9 || fields[0].parse::<u8>().ok() != Some(table) {
            continue;
        }
        let (Ok(m), Ok(n), Ok(alpha)) = (
            fields[2].parse(),
            fields[3].parse(),
            fields[4].parse::<f64>(),
        ) else {
            continue;
        };
        let (Ok(mean), Ok(sd)) = (fields[6].parse(), fields[7].parse()) else {
            continue;
        };
        let starred = fields[8] == "1";
        out.insert(
            (m, n, alpha_key(alpha), fields[5].to_string()),
            PaperCell { mean, sd, starred },
        );
    }
    out
}

/// The paper's name of a method: the iterative ones appear once, after 10 rounds, or
/// after 3 where starred.
fn paper_method(method: &str) -> &str {
    method.trim_end_matches(char::is_numeric)
}

fn to_markdown(
    spec: &TableSpec,
    grid: &Grid,
    records: &[Record],
    paper: &HashMap<CellKey, PaperCell>,
) -> String {
    let mut cells: HashMap<CellKey, (Vec<f64>, usize)> = HashMap::new();
    for r in records {
        let entry = cells
            .entry((r.machines, r.rows, alpha_key(r.alpha), r.method.to_string()))
            .or_default();
        entry.0.push(r.error);
        entry.1 += usize::from(r.diverged);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Table {} ({}): mean (sd) of ‖θ̂ − θ*‖₂ over {} replications; `paper` is the published value. \
         `!` marks a difference of more than two standard errors; `[d=k]` counts replications that diverged; \
         `*` marks a paper value reported after 3 rounds (2 in Table 6) because the method did not converge.\n",
        spec.number, spec.family, grid.replications
    );
    for &m in &grid.machines {
        let _ = write!(out, "| m = {m} | α |");
        for &n in &grid.rows {
            let _ = write!(out, " n = {n} |");
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(grid.rows.len()));
        out.push('\n');
        for method in &spec.methods {
            for &alpha in &grid.alphas {
                let _ = write!(out, "| {} | {alpha:.2} |", method.name);
                for &n in &grid.rows {
                    let key = (m, n, alpha_key(alpha), method.name.to_string());
                    let Some((errors, diverged)) = cells.get(&key) else {
                        out.push_str(" - |");
                        continue;
                    };
                    let ours = summarise(errors, *diverged);
                    let _ = write!(out, " {}", format_pair(ours.mean, ours.sd));
                    if ours.diverged > 0 {
                        let _ = write!(out, " [d={}]", ours.diverged);
                    }
                    let paper_key = (
                        m,
                        n,
                        alpha_key(alpha),
                        paper_method(method.name).to_string(),
                    );
                    if let Some(p) = paper.get(&paper_key) {
                        let compare = match method.iterations {
                            0 => true,
                            3 => p.starred,
                            _ => !p.starred,
                        };
                        if compare {
                            let se = (ours.sd.powi(2) / ours.finite.max(1) as f64
                                + p.sd.powi(2) / 100.0)
                                .sqrt();
                            let flag = if (ours.mean - p.mean).abs() > 2.0 * se {
                                " !"
                            } else {
                                ""
                            };
                            let _ = write!(
                                out,
                                " · paper {}{}{flag}",
                                format_pair(p.mean, p.sd),
                                if p.starred { "*" } else { "" }
                            );
                        }
                    }
                    out.push_str(" |");
                }
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out
}

fn format_pair(mean: f64, sd: f64) -> String {
    if mean.is_finite() && mean.abs() < 100.0 {
        format!("{mean:.4} ({sd:.4})")
    } else {
        format!("{mean:.3e} ({sd:.3e})")
    }
}
