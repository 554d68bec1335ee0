//! `rose simulate`: a Parquet directory with the design of the simulation studies.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use rose::attack::choose_byzantine;
use rose::engine::write::write_hive;
use rose::simulate::{DataAttack, generate_machine, machine_seed, theta_star};
use rose::{Family, Result, RoseError};

#[derive(Args)]
pub struct SimulateArgs {
    /// Model family: logistic or poisson (gaussian adds N(0, 1) noise).
    #[arg(long, default_value = "logistic")]
    family: Family,

    /// Number of machines m, including the central machine.
    #[arg(long, default_value_t = 11)]
    machines: usize,

    /// Rows per machine n.
    #[arg(long, default_value_t = 500)]
    rows: usize,

    /// Number of features p (the model has no intercept).
    #[arg(long, default_value_t = 30)]
    params: usize,

    /// Fraction of Byzantine machines; floor(fraction * m) are chosen at random among
    /// the non-central machines.
    #[arg(long, default_value_t = 0.0)]
    byzantine: f64,

    /// Make the central machine (machine 00) one of the Byzantine machines.
    #[arg(long)]
    byzantine_central: bool,

    /// Corruption of the Byzantine machines' rows: flip-labels (logistic), scale-x:C or
    /// negate-mean (poisson).
    #[arg(long)]
    data_attack: Option<DataAttack>,

    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Output directory; machine=<id>/part-0.parquet files and truth.json are written
    /// into it.
    #[arg(long)]
    out: PathBuf,

    /// Print nothing on success.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run_simulate(args: SimulateArgs) -> Result<()> {
    if args.machines == 0 || args.machines > 100_000 {
        return Err(RoseError::option("--machines", "use 1 to 100000 machines"));
    }
    if args.rows == 0 {
        return Err(RoseError::option(
            "--rows",
            "use at least one row per machine",
        ));
    }
    if args.params < 2 {
        return Err(RoseError::option(
            "--params",
            "the design needs at least 2 features",
        ));
    }
    if !(0.0..0.5).contains(&args.byzantine) {
        return Err(RoseError::option(
            "--byzantine",
            format!(
                "{} is not in [0, 0.5): fewer than half of the machines may be Byzantine",
                args.byzantine
            ),
        ));
    }
    if let Some(attack) = args.data_attack {
        attack
            .check(args.family)
            .map_err(|m| RoseError::option("--data-attack", m))?;
    }
    let count = (args.byzantine * args.machines as f64).floor() as usize;
    let count = if args.byzantine_central {
        count.max(1)
    } else {
        count
    };
    let byzantine = choose_byzantine(args.machines, 0, count, args.byzantine_central, args.seed);
    if !byzantine.is_empty() && args.data_attack.is_none() {
        return Err(RoseError::option(
            "--data-attack",
            "Byzantine machines need a data attack: flip-labels, scale-x:10 or negate-mean",
        ));
    }

    let theta = theta_star(args.params);
    let width = (args.machines - 1).to_string().len().max(2);
    let ids: Vec<String> = (0..args.machines).map(|j| format!("{j:0width$}")).collect();
    let features: Vec<String> = (1..=args.params)
        .map(|l| format!("x{l:0w$}", w = args.params.to_string().len().max(2)))
        .collect();
    let machines: Vec<_> = (0..args.machines)
        .map(|j| {
            let attack = byzantine.contains(&j).then_some(args.data_attack).flatten();
            generate_machine(
                args.family,
                &theta,
                args.rows,
                attack,
                machine_seed(args.seed, j),
            )
        })
        .collect();
    write_hive(&args.out, &ids, &features, &machines)?;

    let truth = json!({
        "family": args.family.name(),
        "theta_star": theta,
        "features": features,
        "intercept": false,
        "machines": args.machines,
        "rows": args.rows,
        "byzantine_machines": byzantine.iter().map(|&j| ids[j].clone()).collect::<Vec<_>>(),
        "data_attack": args.data_attack.map(|a| a.to_string()),
        "seed": args.seed,
    });
    let path = args.out.join("truth.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&truth).expect("JSON") + "\n",
    )
    .map_err(|source| RoseError::Io {
        path: path.clone(),
        source,
    })?;
    if !args.quiet {
        eprintln!(
            "wrote {} machines x {} rows to {} (Byzantine: {})",
            args.machines,
            args.rows,
            args.out.display(),
            if byzantine.is_empty() {
                "none".to_string()
            } else {
                byzantine
                    .iter()
                    .map(|&j| ids[j].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    Ok(())
}
