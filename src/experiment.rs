//! The simulation studies of Wang, Zhu and Zhu, "Byzantine-robust distributed one-step
//! estimation", Section 5.1 (Tables 2 to 7), run in memory and in parallel.
//!
//! Each replication draws one data set per grid cell with the design of
//! [`crate::simulate`], fits every machine once, and then computes every method at every
//! Byzantine fraction from the same honest machines (common random numbers), so that
//! differences between methods and fractions are not blurred by different draws.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::attack::{Attack, choose_byzantine};
use crate::estimator::{Estimator, EstimatorOptions, estimate};
use crate::family::Family;
use crate::local_fit::{NewtonOptions, fit_local};
use crate::memory::MemoryMachines;
use crate::moments::Rows;
use crate::simulate::{DataAttack, generate_machine, machine_seed, theta_star};

/// One method of a table: an estimator and, for the iterative ones, the iterate reported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Method {
    /// Name in tables and CSV: the estimator name, with the round count appended for the
    /// iterative ones (`csl3`, `vrmom10`).
    pub name: &'static str,
    /// Estimator computed.
    pub estimator: Estimator,
    /// Iterate reported by `csl` and `vrmom`.
    pub iterations: usize,
    /// Sets [`EstimatorOptions::start_scale_at_local_fit`].
    pub start_scale_at_local_fit: bool,
}

const fn method(name: &'static str, estimator: Estimator, iterations: usize) -> Method {
    Method {
        name,
        estimator,
        iterations,
        start_scale_at_local_fit: false,
    }
}

/// Methods run only when named with `--methods`, to isolate causes of differences from
/// the paper. `rose-local` is `rose` with the VRMOL start scaled by the central machine's
/// variances at its own estimate rather than at the median (eq. 5).
const DIAGNOSTIC: [Method; 1] = [Method {
    name: "rose-local",
    estimator: Estimator::Rose,
    iterations: 0,
    start_scale_at_local_fit: true,
}];

/// Methods of Tables 2 and 3. The paper does not report `rose-rv` there. It is listed
/// because it differs from `rose` only in its scales, the median of every machine's
/// variance estimates in place of the central machine's own, so it isolates their effect.
const NORMAL_CENTRAL: [Method; 9] = [
    method("avg", Estimator::Avg, 0),
    method("onestep", Estimator::OneStep, 0),
    method("rose-med", Estimator::RoseMed, 0),
    method("rose", Estimator::Rose, 0),
    method("rose-rv", Estimator::RoseRv, 0),
    method("csl3", Estimator::Csl, 3),
    method("csl10", Estimator::Csl, 10),
    method("vrmom3", Estimator::Vrmom, 3),
    method("vrmom10", Estimator::Vrmom, 10),
];

/// Methods of Tables 4 to 7, where the central machine is Byzantine.
const BYZANTINE_CENTRAL: [Method; 4] = [
    method("rose-rv", Estimator::RoseRv, 0),
    method("rose", Estimator::Rose, 0),
    method("vrmom3", Estimator::Vrmom, 3),
    method("vrmom10", Estimator::Vrmom, 10),
];

/// The setting of one table of the paper.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    /// Table number, 2 to 7.
    pub number: u8,
    /// Model family.
    pub family: Family,
    /// Methods compared.
    pub methods: Vec<Method>,
    /// Further methods that run only on request.
    pub diagnostic_methods: Vec<Method>,
    /// Default Byzantine fractions α.
    pub alphas: Vec<f64>,
    /// Attack on the statistics sent by Byzantine machines, if any.
    pub statistic_attack: Option<Attack>,
    /// Attack on the Byzantine machines' rows, if any.
    pub data_attack: Option<DataAttack>,
    /// Whether the central machine is one of the Byzantine machines.
    pub central_byzantine: bool,
}

impl TableSpec {
    /// Returns the setting of Table `number` (2 to 7), or `None`.
    ///
    /// - Table 2: logistic; Byzantine machines send every statistic multiplied by −3.
    /// - Table 3: Poisson; Byzantine machines' responses follow `Poisson(exp(−Xᵀθ*))`.
    /// - Tables 4 to 7: the central machine is Byzantine; logistic with flipped labels
    ///   (4) or features scaled by 10 (5), Poisson with the negated mean (6) or features
    ///   scaled by 10 (7).
    pub fn new(number: u8) -> Option<TableSpec> {
        let normal = |family, statistic_attack, data_attack| TableSpec {
            number,
            family,
            methods: NORMAL_CENTRAL.to_vec(),
            diagnostic_methods: DIAGNOSTIC.to_vec(),
            alphas: vec![0.0, 0.1, 0.2],
            statistic_attack,
            data_attack,
            central_byzantine: false,
        };
        let byzantine = |family, data_attack| TableSpec {
            number,
            family,
            methods: BYZANTINE_CENTRAL.to_vec(),
            diagnostic_methods: DIAGNOSTIC.to_vec(),
            alphas: vec![0.1, 0.2],
            statistic_attack: None,
            data_attack: Some(data_attack),
            central_byzantine: true,
        };
        match number {
            2 => Some(normal(Family::Logistic, Some(Attack::Scale(-3.0)), None)),
            3 => Some(normal(Family::Poisson, None, Some(DataAttack::NegateMean))),
            4 => Some(byzantine(Family::Logistic, DataAttack::FlipLabels)),
            5 => Some(byzantine(Family::Logistic, DataAttack::ScaleX(10.0))),
            6 => Some(byzantine(Family::Poisson, DataAttack::NegateMean)),
            7 => Some(byzantine(Family::Poisson, DataAttack::ScaleX(10.0))),
            _ => None,
        }
    }
}

/// The grid and the replications of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// Machine counts m.
    pub machines: Vec<usize>,
    /// Rows per machine n.
    pub rows: Vec<usize>,
    /// Byzantine fractions α.
    pub alphas: Vec<f64>,
    /// Replications per cell.
    pub replications: usize,
    /// Number of features p.
    pub params: usize,
    /// VRMOL quantile levels K.
    pub k_quantiles: usize,
    /// Seed of the whole run.
    pub seed: u64,
}

impl Grid {
    /// The paper's grid for `spec`: m ∈ {11, 31, 101}, n ∈ {200, 300, 500, 1000}, p = 30,
    /// K = 10, 100 replications.
    pub fn paper(spec: &TableSpec) -> Grid {
        Grid {
            machines: vec![11, 31, 101],
            rows: vec![200, 300, 500, 1000],
            alphas: spec.alphas.clone(),
            replications: 100,
            params: 30,
            k_quantiles: 10,
            seed: 20_240_611,
        }
    }
}

/// The error of one method in one replication of one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Machines m.
    pub machines: usize,
    /// Rows per machine n.
    pub rows: usize,
    /// Byzantine fraction α.
    pub alpha: f64,
    /// Method name.
    pub method: &'static str,
    /// Replication index, from 0.
    pub replication: usize,
    /// `‖θ̂ − θ*‖₂`; NaN when the method returned no estimate.
    pub error: f64,
    /// Whether an iterative method diverged before the reported iterate.
    pub diverged: bool,
}

/// Runs every replication of `spec` over `grid` on `threads` threads, calling `progress`
/// after each replication of a cell. Records come back sorted by cell, method and
/// replication.
pub fn run(
    spec: &TableSpec,
    grid: &Grid,
    threads: usize,
    progress: &(dyn Fn() + Sync),
) -> Vec<Record> {
    let mut jobs = Vec::new();
    for &m in &grid.machines {
        for &n in &grid.rows {
            for replication in 0..grid.replications {
                jobs.push((m, n, replication));
            }
        }
    }
    let next = AtomicUsize::new(0);
    let records = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(m, n, replication)) = jobs.get(index) else {
                        break;
                    };
                    let found = replicate(spec, grid, m, n, replication);
                    records.lock().expect("no worker panics").extend(found);
                    progress();
                }
            });
        }
    });
    let mut records = records.into_inner().expect("no worker panics");
    let method_index = |name: &str| spec.methods.iter().position(|m| m.name == name);
    records.sort_by(|a, b| {
        (a.machines, a.rows)
            .cmp(&(b.machines, b.rows))
            .then(a.alpha.total_cmp(&b.alpha))
            .then(method_index(a.method).cmp(&method_index(b.method)))
            .then(a.replication.cmp(&b.replication))
    });
    records
}

/// Number of progress steps of [`run`].
pub fn job_count(grid: &Grid) -> usize {
    grid.machines.len() * grid.rows.len() * grid.replications
}

fn replication_seed(grid: &Grid, spec: &TableSpec, m: usize, n: usize, replication: usize) -> u64 {
    let cell =
        ((spec.number as u64) << 48) ^ ((m as u64) << 32) ^ ((n as u64) << 16) ^ replication as u64;
    machine_seed(grid.seed, cell as usize)
}

/// One replication of cell (m, n): every α and every method.
fn replicate(spec: &TableSpec, grid: &Grid, m: usize, n: usize, replication: usize) -> Vec<Record> {
    let seed = replication_seed(grid, spec, m, n, replication);
    let theta = theta_star(grid.params);
    let newton = NewtonOptions::default();
    let clean: Vec<_> = (0..m)
        .map(|j| generate_machine(spec.family, &theta, n, None, machine_seed(seed, j)))
        .collect();
    let clean_fits: Vec<_> = clean
        .iter()
        .map(|d| fit_local(spec.family, Rows { x: &d.x, y: &d.y }, grid.params, &newton))
        .collect();

    let mut out = Vec::new();
    for &alpha in &grid.alphas {
        let count = (alpha * m as f64 + 1e-9).floor() as usize;
        let byzantine = choose_byzantine(
            m,
            0,
            count,
            spec.central_byzantine && count > 0,
            seed ^ 0xB12,
        );
        let mut machines = clean.clone();
        let mut fits = clean_fits.clone();
        if let Some(attack) = spec.data_attack {
            for &j in &byzantine {
                machines[j] =
                    generate_machine(spec.family, &theta, n, Some(attack), machine_seed(seed, j));
                fits[j] = fit_local(
                    spec.family,
                    Rows {
                        x: &machines[j].x,
                        y: &machines[j].y,
                    },
                    grid.params,
                    &newton,
                );
            }
        }
        let source = MemoryMachines {
            family: spec.family,
            n_params: grid.params,
            machines,
        };
        let ids: Vec<String> = (0..m).map(|j| format!("{j:03}")).collect();
        // Iterative methods share one run per estimator: csl3 and csl10 are two iterates
        // of the same path.
        let same_run = |a: &Method, b: &Method| {
            a.estimator == b.estimator && a.start_scale_at_local_fit == b.start_scale_at_local_fit
        };
        let mut runs: Vec<(Method, Option<crate::estimator::Estimation>)> = Vec::new();
        for method in &spec.methods {
            if runs.iter().any(|(m, _)| same_run(m, method)) {
                continue;
            }
            let iterations = spec
                .methods
                .iter()
                .filter(|m| same_run(m, method))
                .map(|m| m.iterations)
                .max()
                .unwrap_or(0);
            let mut options = EstimatorOptions::new(method.estimator);
            options.start_scale_at_local_fit = method.start_scale_at_local_fit;
            options.k_quantiles = grid.k_quantiles;
            options.iterations = iterations.max(1);
            if let Some(attack) = spec.statistic_attack {
                options.byzantine = byzantine.clone();
                options.attack = Some(attack);
            }
            let result =
                futures::executor::block_on(estimate(&options, &ids, fits.clone(), &source));
            runs.push((*method, result.ok()));
        }
        for method in &spec.methods {
            let run = runs
                .iter()
                .find(|(m, _)| same_run(m, method))
                .and_then(|(_, r)| r.as_ref());
            let (error, diverged) = match run {
                None => (f64::NAN, false),
                Some(estimation) if method.iterations == 0 => {
                    (distance(&estimation.estimate, &theta), false)
                }
                Some(estimation) => {
                    // The path holds the start and every accepted iterate; a diverged run
                    // reports its last iterate, as the paper reports unconverged results.
                    let reached = estimation.path.len().saturating_sub(1);
                    let index = method.iterations.min(reached);
                    let iterate = &estimation.path[index];
                    (distance(iterate, &theta), reached < method.iterations)
                }
            };
            out.push(Record {
                machines: m,
                rows: n,
                alpha,
                method: method.name,
                replication,
                error,
                diverged,
            });
        }
    }
    out
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Mean, standard deviation and counts of one cell's errors.
#[derive(Clone, Debug, PartialEq)]
pub struct CellSummary {
    /// Mean of the finite errors.
    pub mean: f64,
    /// Sample standard deviation of the finite errors.
    pub sd: f64,
    /// Replications with a finite error.
    pub finite: usize,
    /// Replications in which the method diverged.
    pub diverged: usize,
}

/// Summarises the errors of one cell.
pub fn summarise(errors: &[f64], diverged: usize) -> CellSummary {
    let finite: Vec<f64> = errors.iter().copied().filter(|e| e.is_finite()).collect();
    let k = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / k;
    let sd = (finite.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (k - 1.0).max(1.0)).sqrt();
    CellSummary {
        mean,
        sd,
        finite: finite.len(),
        diverged,
    }
}
