//! Output of a fit: the coefficient table with inference, and the per-machine table, as
//! text in the spirit of R's `summary(glm)`, as JSON, or as CSV.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::engine::FitReport;
use crate::estimator::Estimator;

/// One row of the coefficient table.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Coefficient {
    /// Parameter name, `(Intercept)` for the intercept.
    pub name: String,
    /// Point estimate.
    pub estimate: f64,
    /// Standard error.
    pub std_error: f64,
    /// `estimate / std_error`.
    pub z: f64,
    /// Two-sided p-value of `z` under `N(0, 1)`.
    pub p_value: f64,
    /// Lower end of the confidence interval.
    pub ci_low: f64,
    /// Upper end of the confidence interval.
    pub ci_high: f64,
}

/// One row of the per-machine table.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MachineRow {
    /// Machine id.
    pub id: String,
    /// Rows.
    pub rows: u64,
    /// Whether the local fit converged.
    pub converged: bool,
    /// Local Newton iterations.
    pub iterations: u32,
    /// Whether the machine's statistics were used.
    pub usable: bool,
    /// Reason the statistics were not used, if they were not.
    pub failure: Option<String>,
    /// Largest standardised distance of its statistics from the aggregate.
    pub max_abs_z: f64,
    /// Whether that distance exceeds the outlier threshold.
    pub outlier: bool,
    /// Whether fault injection corrupted its statistics.
    pub byzantine: bool,
    /// Rows skipped for missing values (with `--drop-missing`).
    pub dropped: u64,
}

/// The whole output, with the keys of the JSON format.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// Model family.
    pub family: String,
    /// Estimator name.
    pub estimator: String,
    /// Number of VRMOL quantile levels `K`.
    pub k: usize,
    /// Number of machines.
    pub n_machines: usize,
    /// Rows over all machines.
    pub n_rows: u64,
    /// Id of the central machine.
    pub central_machine: String,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Factor applied to the variances (1, π/2 or `D_K`).
    pub efficiency_factor: f64,
    /// Coefficients, intercept first.
    pub coefficients: Vec<Coefficient>,
    /// Machines in natural order.
    pub machines: Vec<MachineRow>,
    /// Threshold on `max_abs_z` above which a machine is flagged as an outlier.
    pub outlier_threshold: f64,
    /// Attack injected, if any.
    pub attack: Option<String>,
    /// Iterations done by `csl` and `vrmom`; absent for the other estimators.
    pub iterations: Option<usize>,
    /// Whether `csl` or `vrmom` diverged.
    pub diverged: bool,
    /// Warnings.
    pub warnings: Vec<String>,
}

impl Summary {
    /// Builds the summary of a fit.
    pub fn new(report: &FitReport) -> Summary {
        let normal = Normal::new(0.0, 1.0).expect("N(0, 1) has valid parameters");
        let options = &report.options;
        let quantile = normal.inverse_cdf(0.5 + options.confidence / 2.0);
        let est = &report.estimation;
        let coefficients = report
            .names
            .iter()
            .enumerate()
            .map(|(l, name)| {
                let (estimate, std_error) = (est.estimate[l], est.std_error[l]);
                let z = estimate / std_error;
                Coefficient {
                    name: name.clone(),
                    estimate,
                    std_error,
                    z,
                    p_value: 2.0 * normal.sf(z.abs()),
                    ci_low: estimate - quantile * std_error,
                    ci_high: estimate + quantile * std_error,
                }
            })
            .collect();
        let machines = report
            .machine_ids
            .iter()
            .zip(&est.machines)
            .map(|(id, m)| MachineRow {
                id: id.clone(),
                rows: m.rows,
                converged: m.converged,
                iterations: m.iterations,
                usable: m.unusable.is_none(),
                failure: m.unusable.clone(),
                max_abs_z: m.max_abs_z,
                outlier: m.outlier,
                byzantine: m.injected,
                dropped: 0,
            })
            .collect();
        let mut machines: Vec<MachineRow> = machines;
        for (row, fit) in machines.iter_mut().zip(&report.fits) {
            row.dropped = fit.dropped;
        }
        let mut warnings = est.warnings.clone();
        let dropped: u64 = report.fits.iter().map(|f| f.dropped).sum();
        if dropped > 0 {
            warnings.push(format!(
                "--drop-missing skipped {dropped} rows with null or non-finite values"
            ));
        }
        Summary {
            family: report.family.name().to_string(),
            estimator: options.estimator.name().to_string(),
            k: options.k_quantiles,
            n_machines: report.machine_ids.len(),
            n_rows: report.fits.iter().map(|f| f.rows).sum(),
            central_machine: report.machine_ids[report.central].clone(),
            confidence: options.confidence,
            efficiency_factor: est.efficiency_factor,
            coefficients,
            machines,
            outlier_threshold: est.outlier_threshold,
            attack: options
                .attack
                .filter(|_| !options.byzantine.is_empty())
                .map(|a| a.to_string()),
            iterations: (!est.path.is_empty()).then(|| est.path.len() - 1),
            diverged: est.diverged,
            warnings,
        }
    }

    /// Renders the summary as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serialises") + "\n"
    }

    /// Renders the coefficient table as CSV with a header row.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("name,estimate,std_error,z,p_value,ci_low,ci_high\n");
        for c in &self.coefficients {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                csv_field(&c.name),
                c.estimate,
                c.std_error,
                c.z,
                c.p_value,
                c.ci_low,
                c.ci_high
            ));
        }
        out
    }

    /// Renders the summary as text tables.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let link = match self.family.as_str() {
            "logistic" => "binomial, logit link",
            "poisson" => "poisson, log link",
            _ => "gaussian, identity link",
        };
        let estimator: Estimator = self.estimator.parse().expect("estimator name round-trips");
        let used = self.machines.iter().filter(|m| m.usable).count();
        out.push_str(&format!("Family:     {} ({link})\n", self.family));
        out.push_str(&format!(
            "Estimator:  {} ({}), K = {}\n",
            self.estimator,
            describe(estimator),
            self.k
        ));
        out.push_str(&format!(
            "Machines:   {} ({} usable), rows: {}, central machine: {}\n",
            self.n_machines, used, self.n_rows, self.central_machine
        ));
        if let Some(attack) = &self.attack {
            let corrupted: Vec<&str> = self
                .machines
                .iter()
                .filter(|m| m.byzantine)
                .map(|m| m.id.as_str())
                .collect();
            out.push_str(&format!(
                "Injected:   attack {attack} on machines {}\n",
                corrupted.join(", ")
            ));
        }

        let level = self.confidence * 100.0;
        let lo = format!("{}%", trim_float(50.0 - level / 2.0));
        let hi = format!("{}%", trim_float(50.0 + level / 2.0));
        let name_width = self
            .coefficients
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        out.push_str("\nCoefficients:\n");
        out.push_str(&format!(
            "{:<name_width$} {:>12} {:>12} {:>9} {:>10} {:>12} {:>12}\n",
            "", "Estimate", "Std. Error", "z value", "Pr(>|z|)", lo, hi
        ));
        for c in &self.coefficients {
            out.push_str(&format!(
                "{:<name_width$} {:>12} {:>12} {:>9} {:>10} {:>12} {:>12} {}\n",
                c.name,
                sig(c.estimate),
                sig(c.std_error),
                z_value(c.z),
                p_value(c.p_value),
                sig(c.ci_low),
                sig(c.ci_high),
                stars(c.p_value)
            ));
        }
        out.push_str("---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1\n");
        out.push_str(&format!(
            "Standard errors: {}; variance factor {:.4}\n",
            covariance_note(estimator),
            self.efficiency_factor
        ));

        out.push_str("\nMachines:\n");
        let id_width = self
            .machines
            .iter()
            .map(|m| m.id.len())
            .max()
            .unwrap_or(2)
            .max(2);
        out.push_str(&format!(
            "{:<id_width$} {:>8} {:>9} {:>10} {:>8}  {}\n",
            "id", "rows", "converged", "iterations", "max|z|", "status"
        ));
        for m in &self.machines {
            let status = match (&m.failure, m.outlier) {
                (Some(reason), _) => format!("unusable: {reason}"),
                (None, true) => "outlier".to_string(),
                (None, false) => "ok".to_string(),
            };
            let status = if m.byzantine {
                format!("{status} (injected)")
            } else {
                status
            };
            out.push_str(&format!(
                "{:<id_width$} {:>8} {:>9} {:>10} {:>8}  {}\n",
                m.id,
                m.rows,
                if m.converged { "yes" } else { "no" },
                m.iterations,
                if m.usable && m.max_abs_z.abs() < 1e5 {
                    format!("{:.2}", m.max_abs_z)
                } else if m.usable {
                    format!("{:.2e}", m.max_abs_z)
                } else {
                    "-".to_string()
                },
                status
            ));
        }
        out.push_str(&format!(
            "max|z|: largest standardised distance of a machine's statistics from the aggregate; \
             outlier above {:.2}\n",
            self.outlier_threshold
        ));
        out
    }
}

fn describe(estimator: Estimator) -> &'static str {
    match estimator {
        Estimator::Avg => "mean of local estimates",
        Estimator::OneStep => "one-step from the mean",
        Estimator::Med => "median of local estimates",
        Estimator::Vrmol => "variance-reduced median",
        Estimator::RoseMed => "one-step with medians",
        Estimator::Rose => "robust one-step, Algorithm 1",
        Estimator::RoseRv => "robust one-step, Algorithm 2",
        Estimator::Csl => "surrogate likelihood, central Hessian",
        Estimator::Vrmom => "VRMOL gradient, central Hessian",
    }
}

fn covariance_note(estimator: Estimator) -> &'static str {
    match estimator {
        Estimator::Avg => "row-weighted local sandwich variances",
        Estimator::Med => "median of local sandwich variances",
        Estimator::Vrmol => "central machine's sandwich at the median",
        Estimator::OneStep => "pooled sandwich H^-1 U H^-1",
        Estimator::RoseMed | Estimator::Rose => {
            "sandwich H^-1 U H^-1 with U from the central machine"
        }
        Estimator::RoseRv => "sandwich H^-1 U H^-1 with U the median over machines",
        Estimator::Csl | Estimator::Vrmom => "central machine's sandwich at the last iterate",
    }
}

/// Quotes a CSV field when it contains a comma, a quote or a newline.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Formats a number with six significant digits, switching to scientific notation for
/// very large or small magnitudes.
fn sig(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let magnitude = v.abs();
    if magnitude != 0.0 && !(1e-4..1e6).contains(&magnitude) {
        format!("{v:.4e}")
    } else {
        let digits = if magnitude == 0.0 {
            0
        } else {
            magnitude.log10().floor() as i32
        };
        let decimals = (5 - digits).clamp(0, 9) as usize;
        format!("{v:.decimals$}")
    }
}

fn z_value(z: f64) -> String {
    if z.is_finite() && z.abs() < 1e5 {
        format!("{z:.3}")
    } else {
        format!("{z:.3e}")
    }
}

fn p_value(p: f64) -> String {
    if p < 2e-16 {
        "<2e-16".to_string()
    } else if p < 1e-4 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

fn stars(p: f64) -> &'static str {
    match p {
        p if p < 0.001 => "***",
        p if p < 0.01 => "**",
        p if p < 0.05 => "*",
        p if p < 0.1 => ".",
        _ => "",
    }
}
