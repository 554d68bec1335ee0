//! The MNIST study of Wang, Zhu and Zhu, "Byzantine-robust distributed one-step
//! estimation", Section 5.2 (Tables 8 and 9), on the digits shipped in `data/`.
//!
//! For a pair of digits (6 against 9, or 8 against 9):
//!
//! 1. the machines learn from the MNIST training images of the two digits
//!    (`data/mnist-<study>`) and are scored on the MNIST test images
//!    (`data/mnist-<study>-test`);
//! 2. screening on the training set drops pixels that are zero in at least 75% of the
//!    images, and pixels whose absolute Welch t statistic between the digits exceeds
//!    `max_t`, then keeps the first `target` pixels to enter a lasso-logistic path;
//! 3. the training rows are split into m machines, of which ⌊α m⌋ non-central ones are
//!    Byzantine. Their images are replaced by images of digits 0 and 1 with the labels
//!    unchanged: an image labelled 1 (the digit 9) by a 1, an image labelled 0 by a 0.
//!    A Byzantine machine sends its local fit even when that fit has no maximum
//!    ([`NewtonOptions::keep_diverged`]), where an honest one would be left out;
//! 4. every estimator fits a logistic regression with intercept on the selected pixels,
//!    and its accuracy on the test set is the share of images where the sign of `xᵀθ̂`
//!    matches the label.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::{Array, Float64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::attack::choose_byzantine;
use crate::engine::discover::discover;
use crate::engine::write::write_hive;
use crate::error::{Result, RoseError};
use crate::estimator::{Estimator, EstimatorOptions, estimate};
use crate::family::Family;
use crate::lasso::{LassoOptions, lasso_logistic_path, select_variables};
use crate::local_fit::{NewtonOptions, fit_local};
use crate::memory::MemoryMachines;
use crate::moments::Rows;
use crate::simulate::MachineData;

/// Images of one directory: pixel names, row-major pixel values and labels.
#[derive(Clone, Debug)]
pub struct Images {
    /// Column names of the pixels.
    pub names: Vec<String>,
    /// Pixel values, row-major, `y.len() × names.len()`.
    pub x: Vec<f64>,
    /// Labels.
    pub y: Vec<f64>,
}

impl Images {
    fn width(&self) -> usize {
        self.names.len()
    }

    fn row(&self, i: usize) -> &[f64] {
        let d = self.width();
        &self.x[i * d..(i + 1) * d]
    }
}

/// Reads every machine of a hive or flat directory, in natural machine order, with the
/// response `y` and every other column as a pixel.
pub fn read_images(dir: &Path) -> Result<Images> {
    let discovery = discover(dir, None)?;
    let mut names: Option<Vec<String>> = None;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for file in discovery.files.iter().filter(|f| f.rows > 0) {
        let handle = fs::File::open(&file.path).map_err(|source| RoseError::Io {
            path: file.path.clone(),
            source,
        })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(handle)
            .and_then(|b| b.build())
            .map_err(|e| RoseError::Schema {
                file: file.path.clone(),
                message: e.to_string(),
            })?;
        let file_names: Vec<String> = file
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != "y")
            .collect();
        let names = names.get_or_insert_with(|| file_names.clone());
        if *names != file_names {
            return Err(RoseError::Schema {
                file: file.path.clone(),
                message: format!(
                    "the pixel columns differ from the first file's: {}",
                    column_difference(names, &file_names)
                ),
            });
        }
        for batch in reader {
            let batch = batch.map_err(|e| RoseError::Engine(e.to_string()))?;
            append_batch(&batch, names, &mut x, &mut y, &file.path)?;
        }
    }
    Ok(Images {
        names: names.unwrap_or_default(),
        x,
        y,
    })
}

/// Returns column `name` of `batch` as float64, rejecting non-numeric types, nulls and
/// values that are not finite, because a silently replaced pixel or label would bias
/// every accuracy of the study.
fn float_column(batch: &RecordBatch, name: &str, file: &Path) -> Result<Float64Array> {
    let invalid = |message: String| RoseError::Schema {
        file: file.to_path_buf(),
        message: format!("{message}; regenerate the MNIST data sets with scripts/make_mnist.py"),
    };
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| RoseError::MissingColumn {
            column: name.to_string(),
            file: file.to_path_buf(),
            available: String::new(),
        })?;
    if !column.data_type().is_numeric() {
        return Err(invalid(format!(
            "column '{name}' has type {}, but pixels and labels must be numeric",
            column.data_type()
        )));
    }
    let cast = cast(column, &DataType::Float64).map_err(|e| RoseError::Engine(e.to_string()))?;
    let values = cast
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("cast to Float64")
        .clone();
    if values.null_count() > 0
        && let Some(row) = (0..values.len()).find(|&i| values.is_null(i))
    {
        return Err(invalid(format!(
            "column '{name}' has a null value in row {row}"
        )));
    }
    if let Some(row) = (0..values.len()).find(|&i| !values.value(i).is_finite()) {
        return Err(invalid(format!(
            "column '{name}' has the value {} in row {row}, but values must be finite",
            values.value(row)
        )));
    }
    Ok(values)
}

fn append_batch(
    batch: &RecordBatch,
    names: &[String],
    x: &mut Vec<f64>,
    y: &mut Vec<f64>,
    file: &Path,
) -> Result<()> {
    let labels = float_column(batch, "y", file)?;
    if let Some(row) = (0..labels.len()).find(|&i| !matches!(labels.value(i), 0.0 | 1.0)) {
        return Err(RoseError::Schema {
            file: file.to_path_buf(),
            message: format!(
                "label y = {} in row {row}; labels must be 0 (the first digit) or 1 (the \
                 second digit)",
                labels.value(row)
            ),
        });
    }
    let pixels: Vec<Float64Array> = names
        .iter()
        .map(|n| float_column(batch, n, file))
        .collect::<Result<_>>()?;
    for i in 0..batch.num_rows() {
        y.push(labels.value(i));
        x.extend(pixels.iter().map(|p| p.value(i)));
    }
    Ok(())
}

/// Describes the first difference between two lists of pixel columns.
fn column_difference(expected: &[String], found: &[String]) -> String {
    match expected.iter().zip(found).position(|(a, b)| a != b) {
        Some(i) => format!(
            "column {} is '{}' where '{}' was expected",
            i + 1,
            found[i],
            expected[i]
        ),
        None if found.len() < expected.len() => {
            format!("column '{}' is missing", expected[found.len()])
        }
        None => format!("column '{}' is extra", found[expected.len()]),
    }
}

/// Settings of one study.
#[derive(Clone, Debug)]
pub struct StudyOptions {
    /// Study name, `6-9` or `8-9`: the training images in `data/mnist-<study>` and the
    /// test images in `data/mnist-<study>-test`.
    pub study: String,
    /// Directory holding `mnist-<study>`, `mnist-<study>-test` and `mnist-0-1`.
    pub data_dir: PathBuf,
    /// Machine counts m.
    pub machines: Vec<usize>,
    /// Byzantine fractions α.
    pub alphas: Vec<f64>,
    /// Pixels kept by the lasso screening.
    pub variables: usize,
    /// VRMOL quantile levels K.
    pub k_quantiles: usize,
    /// Rounds of `csl` and `vrmom`.
    pub iterations: usize,
    /// Seed of the machines and the Byzantine choice.
    pub seed: u64,
    /// Estimators compared.
    pub estimators: Vec<Estimator>,
    /// Largest absolute Welch t statistic between the two digits that a pixel may have
    /// to enter the lasso screening; `None` keeps every pixel.
    pub max_t: Option<f64>,
}

impl StudyOptions {
    /// The paper's settings for `study`: m ∈ {10, 20, 30}, α ∈ {0, 0.2}, 15 pixels for
    /// 6-9 and 26 for 8-9, K = 5.
    pub fn paper(study: &str) -> StudyOptions {
        StudyOptions {
            study: study.to_string(),
            data_dir: PathBuf::from("data"),
            machines: vec![10, 20, 30],
            alphas: vec![0.0, 0.2],
            variables: if study == "8-9" { 26 } else { 15 },
            k_quantiles: 5,
            iterations: 10,
            seed: 20_240_615,
            estimators: Estimator::ALL.to_vec(),
            max_t: Some(DEFAULT_MAX_T),
        }
    }
}

/// The result of one estimator in one setting.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Machines m.
    pub machines: usize,
    /// Rows per machine (the smallest machine).
    pub rows: usize,
    /// Byzantine fraction α.
    pub alpha: f64,
    /// Estimator.
    pub estimator: Estimator,
    /// Test accuracy in [0, 1]; NaN when the estimator failed.
    pub accuracy: f64,
    /// Estimate, intercept first; empty when the estimator failed.
    pub estimate: Vec<f64>,
    /// Reason the estimator failed, if it did.
    pub failure: Option<String>,
}

/// A whole study.
#[derive(Clone, Debug)]
pub struct Study {
    /// Study name.
    pub study: String,
    /// Selected pixels, in lasso entry order.
    pub selected: Vec<String>,
    /// Pixels left after dropping those zero in at least 75% of the training images.
    pub screened: usize,
    /// Training images.
    pub train_rows: usize,
    /// Test images.
    pub test_rows: usize,
    /// One cell per setting and estimator.
    pub cells: Vec<Cell>,
}

/// Share of training images in which a pixel may be zero and still be kept.
const ZERO_SHARE: f64 = 0.75;

/// Default bound on a pixel's absolute Welch t statistic between the two digits before the
/// lasso. Without it the lasso picks pixels that nearly separate the digits on machines
/// of a few hundred images, the local fits become heavy-tailed and the median Hessian
/// indefinite (docs/MNIST.md shows the sensitivity to this bound).
pub const DEFAULT_MAX_T: f64 = 30.0;

/// Welch's two-sample t statistic of pixel `c` between the labels 1 and 0.
fn welch_t(images: &Images, rows: &[usize], c: usize) -> f64 {
    let moments = |label: f64| {
        let values: Vec<f64> = rows
            .iter()
            .filter(|&&i| images.y[i] == label)
            .map(|&i| images.row(i)[c])
            .collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var, n)
    };
    let (m1, v1, n1) = moments(1.0);
    let (m0, v0, n0) = moments(0.0);
    (m1 - m0) / (v1 / n1 + v0 / n0).sqrt()
}

/// The images a study reads: training, test and replacement images with the same pixels.
struct Inputs {
    train: Images,
    test: Images,
    replacements: Images,
    /// Rows of `replacements` labelled 0 and 1.
    zeros: Vec<usize>,
    ones: Vec<usize>,
}

/// Checks that the data directory contains `mnist-<study>`, `mnist-<study>-test` and
/// `mnist-0-1`, so that a job over several studies fails before it computes any.
pub fn check_data_dirs(options: &StudyOptions) -> Result<()> {
    for name in [
        format!("mnist-{}", options.study),
        format!("mnist-{}-test", options.study),
        "mnist-0-1".to_string(),
    ] {
        if !options.data_dir.join(&name).is_dir() {
            return Err(RoseError::option(
                "--data-dir",
                format!(
                    "{} has no directory {name}; run rose from the repository root or pass \
                     --data-dir with the directory that holds the MNIST data sets",
                    options.data_dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Reads `mnist-<study>`, `mnist-<study>-test` and `mnist-0-1` under the data directory
/// and checks that they carry the same pixel columns.
fn read_inputs(options: &StudyOptions) -> Result<Inputs> {
    check_data_dirs(options)?;
    let train_dir = options.data_dir.join(format!("mnist-{}", options.study));
    let test_dir = options
        .data_dir
        .join(format!("mnist-{}-test", options.study));
    let replacement_dir = options.data_dir.join("mnist-0-1");
    let train = read_images(&train_dir)?;
    let test = read_images(&test_dir)?;
    let replacements = read_images(&replacement_dir)?;

    for (images, path) in [(&test, &test_dir), (&replacements, &replacement_dir)] {
        if images.names != train.names {
            return Err(RoseError::Schema {
                file: path.clone(),
                message: format!(
                    "the pixel columns differ from those of mnist-{}: {}; regenerate the MNIST \
                     data sets together with scripts/make_mnist.py",
                    options.study,
                    column_difference(&train.names, &images.names)
                ),
            });
        }
    }

    let sets = [
        (&train, &train_dir, "training"),
        (&test, &test_dir, "test"),
        (&replacements, &replacement_dir, "replacement"),
    ];
    for (images, path, name) in sets {
        let ones = images.y.iter().filter(|&&v| v == 1.0).count();
        if ones == 0 || ones == images.y.len() {
            return Err(RoseError::Schema {
                file: path.clone(),
                message: format!(
                    "the {name} images need both labels, 0 and 1, but {ones} of {} are \
                     labelled 1",
                    images.y.len()
                ),
            });
        }
    }

    // Labels are 0 or 1, checked when the images were read.
    let (ones, zeros): (Vec<usize>, Vec<usize>) =
        (0..replacements.y.len()).partition(|&i| replacements.y[i] == 1.0);
    Ok(Inputs {
        train,
        test,
        replacements,
        zeros,
        ones,
    })
}

/// Runs a study on `threads` threads, calling `progress` after each setting.
pub fn run_study(
    options: &StudyOptions,
    threads: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<Study> {
    let inputs = read_inputs(options)?;
    let images = &inputs.train;
    let train: Vec<usize> = (0..images.y.len()).collect();
    let train = &train[..];

    // Screening: pixels non-zero in more than 25% of training images, then the lasso path.
    let kept: Vec<usize> = (0..images.width())
        .filter(|&c| {
            let zeros = train.iter().filter(|&&i| images.row(i)[c] == 0.0).count();
            (zeros as f64) < ZERO_SHARE * train.len() as f64
        })
        .filter(|&c| {
            options
                .max_t
                .is_none_or(|limit| welch_t(images, train, c).abs() <= limit)
        })
        .collect();
    if kept.is_empty() {
        return Err(RoseError::option(
            "--max-t",
            format!(
                "no pixel of mnist-{} is non-zero in more than 25% of the images and has a \
                 Welch t statistic within the bound; raise --max-t, or pass 0 to turn it off",
                options.study
            ),
        ));
    }
    let mut design = Vec::with_capacity(train.len() * kept.len());
    for &i in train {
        let row = images.row(i);
        design.extend(kept.iter().map(|&c| row[c]));
    }
    let labels: Vec<f64> = train.iter().map(|&i| images.y[i]).collect();
    let lasso_options = LassoOptions {
        max_nonzero: Some(options.variables),
        ..LassoOptions::default()
    };
    let path = lasso_logistic_path(&design, &labels, kept.len(), &lasso_options)
        .map_err(|e| RoseError::Engine(format!("lasso screening: {e}")))?;
    let chosen: Vec<usize> = select_variables(&path, options.variables)
        .into_iter()
        .map(|l| kept[l])
        .collect();
    let selected: Vec<String> = chosen.iter().map(|&c| images.names[c].clone()).collect();
    if chosen.len() < options.variables {
        tracing::warn!(
            study = %options.study,
            requested = options.variables,
            selected = chosen.len(),
            "the lasso path selected fewer pixels than requested"
        );
    }
    let p = chosen.len() + 1;
    if let Some(&m) = options.machines.iter().find(|&&m| train.len() / m <= 2 * p) {
        return Err(RoseError::option(
            "--machines",
            format!(
                "{m} machines get about {} images each, too few for {p} parameters; use at \
                 most {} machines",
                train.len() / m,
                train.len() / (2 * p + 1)
            ),
        ));
    }

    let settings: Vec<(usize, f64)> = options
        .machines
        .iter()
        .flat_map(|&m| options.alphas.iter().map(move |&a| (m, a)))
        .collect();
    let next = AtomicUsize::new(0);
    let cells = Mutex::new(Vec::new());
    let context = Context {
        options,
        inputs: &inputs,
        chosen: &chosen,
    };
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(m, alpha)) = settings.get(index) else {
                        break;
                    };
                    let found = context.setting(m, alpha);
                    cells.lock().expect("no worker panics").extend(found);
                    progress();
                }
            });
        }
    });
    let mut cells = cells.into_inner().expect("no worker panics");
    let position = |e: Estimator| options.estimators.iter().position(|&x| x == e);
    cells.sort_by(|a, b| {
        a.machines
            .cmp(&b.machines)
            .then(a.alpha.total_cmp(&b.alpha))
            .then(position(a.estimator).cmp(&position(b.estimator)))
    });
    Ok(Study {
        study: options.study.clone(),
        selected,
        screened: kept.len(),
        train_rows: train.len(),
        test_rows: inputs.test.y.len(),
        cells,
    })
}

/// Everything a setting needs, shared by the worker threads.
struct Context<'a> {
    options: &'a StudyOptions,
    inputs: &'a Inputs,
    chosen: &'a [usize],
}

impl Context<'_> {
    /// Builds the design row `(1, selected pixels)` of one image.
    fn design_row(&self, images: &Images, i: usize, out: &mut Vec<f64>) {
        out.push(1.0);
        let row = images.row(i);
        out.extend(self.chosen.iter().map(|&c| row[c]));
    }

    /// Splits the training rows into `m` machines and corrupts the Byzantine ones.
    pub(crate) fn machines(&self, m: usize, alpha: f64) -> (Vec<MachineData>, Vec<usize>) {
        let seed = self.options.seed ^ ((m as u64) << 20) ^ (alpha * 1000.0).round() as u64;
        let mut order: Vec<usize> = (0..self.inputs.train.y.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let count = (alpha * m as f64 + 1e-9).floor() as usize;
        let byzantine = choose_byzantine(m, 0, count, false, seed ^ 0xB12);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0101);
        let mut zeros = self.inputs.zeros.clone();
        let mut ones = self.inputs.ones.clone();
        zeros.shuffle(&mut rng);
        ones.shuffle(&mut rng);
        let (mut next_zero, mut next_one) = (0, 0);

        let base = order.len() / m;
        let extra = order.len() % m;
        let mut start = 0;
        let mut machines = Vec::with_capacity(m);
        for j in 0..m {
            let size = base + usize::from(j < extra);
            let rows = &order[start..start + size];
            start += size;
            let mut data = MachineData {
                x: Vec::with_capacity(size * (self.chosen.len() + 1)),
                y: Vec::with_capacity(size),
            };
            for &i in rows {
                let label = self.inputs.train.y[i];
                if byzantine.contains(&j) {
                    // Replace the image by a 0 or a 1 of the same label, cycling if needed.
                    let source = if label == 1.0 {
                        next_one += 1;
                        ones[(next_one - 1) % ones.len()]
                    } else {
                        next_zero += 1;
                        zeros[(next_zero - 1) % zeros.len()]
                    };
                    self.design_row(&self.inputs.replacements, source, &mut data.x);
                } else {
                    self.design_row(&self.inputs.train, i, &mut data.x);
                }
                data.y.push(label);
            }
            machines.push(data);
        }
        (machines, byzantine)
    }

    fn accuracy(&self, theta: &[f64]) -> f64 {
        let test = &self.inputs.test;
        let mut row = Vec::with_capacity(theta.len());
        let correct = (0..test.y.len())
            .filter(|&i| {
                row.clear();
                self.design_row(test, i, &mut row);
                let eta: f64 = row.iter().zip(theta).map(|(a, b)| a * b).sum();
                (eta > 0.0) == (test.y[i] == 1.0)
            })
            .count();
        correct as f64 / test.y.len().max(1) as f64
    }

    fn setting(&self, m: usize, alpha: f64) -> Vec<Cell> {
        let (machines, byzantine) = self.machines(m, alpha);
        let rows = machines.iter().map(|d| d.y.len()).min().unwrap_or(0);
        let p = self.chosen.len() + 1;
        // An honest machine whose fit fails is left out. A Byzantine one sends what R's
        // glm would return, because the pixels often separate its zeros from its ones.
        let honest = NewtonOptions::default();
        let byzantine_newton = NewtonOptions {
            keep_diverged: true,
            ..honest
        };
        let fits: Vec<_> = machines
            .iter()
            .enumerate()
            .map(|(j, d)| {
                let newton = if byzantine.contains(&j) {
                    &byzantine_newton
                } else {
                    &honest
                };
                fit_local(Family::Logistic, Rows { x: &d.x, y: &d.y }, p, newton)
            })
            .collect();
        let source = MemoryMachines {
            family: Family::Logistic,
            n_params: p,
            machines,
        };
        let ids: Vec<String> = (0..m).map(|j| format!("{j:02}")).collect();
        self.options
            .estimators
            .iter()
            .map(|&estimator| {
                let mut options = EstimatorOptions::new(estimator);
                options.k_quantiles = self.options.k_quantiles;
                options.iterations = self.options.iterations;
                let result =
                    futures::executor::block_on(estimate(&options, &ids, fits.clone(), &source));
                let (accuracy, estimate, failure) = match result {
                    Ok(e) if e.estimate.iter().all(|v| v.is_finite()) => {
                        (self.accuracy(&e.estimate), e.estimate, None)
                    }
                    Ok(e) => (
                        f64::NAN,
                        e.estimate,
                        Some("the estimate is not finite".to_string()),
                    ),
                    Err(e) => (f64::NAN, Vec::new(), Some(e.to_string())),
                };
                Cell {
                    machines: m,
                    rows,
                    alpha,
                    estimator,
                    accuracy,
                    estimate,
                    failure,
                }
            })
            .collect()
    }
}

/// Writes the study's machines of every setting, the test set and the selected pixels
/// as Parquet, so that `rose fit` and `rose sql` can reproduce any cell:
/// `DIR/<study>/m<m>-alpha<α>/machine=<id>/part-0.parquet` and `DIR/<study>/test/`.
pub fn write_study_data(options: &StudyOptions, study: &Study, dir: &Path) -> Result<()> {
    let inputs = read_inputs(options)?;
    let chosen: Vec<usize> = study
        .selected
        .iter()
        .map(|name| {
            inputs
                .train
                .names
                .iter()
                .position(|n| n == name)
                .expect("selected pixel exists")
        })
        .collect();
    let context = Context {
        options,
        inputs: &inputs,
        chosen: &chosen,
    };
    // The design rows carry a leading 1 for the intercept; the Parquet files do not.
    let strip = |data: &MachineData| -> MachineData {
        let width = chosen.len() + 1;
        MachineData {
            x: data
                .x
                .chunks(width)
                .flat_map(|row| row[1..].iter().copied())
                .collect(),
            y: data.y.clone(),
        }
    };
    let root = dir.join(&options.study);
    for &m in &options.machines {
        for &alpha in &options.alphas {
            let (machines, _) = context.machines(m, alpha);
            let ids: Vec<String> = (0..m).map(|j| format!("{j:02}")).collect();
            let stripped: Vec<MachineData> = machines.iter().map(strip).collect();
            write_hive(
                &root.join(format!("m{m}-alpha{alpha:.2}")),
                &ids,
                &study.selected,
                &stripped,
            )?;
        }
    }
    let mut test_data = MachineData {
        x: Vec::new(),
        y: Vec::new(),
    };
    for i in 0..inputs.test.y.len() {
        context.design_row(&inputs.test, i, &mut test_data.x);
        test_data.y.push(inputs.test.y[i]);
    }
    write_hive(
        &root.join("test"),
        &["00".to_string()],
        &study.selected,
        &[strip(&test_data)],
    )
}
