//! The DataFusion engine: registers a Parquet directory, runs the two rounds of per-machine
//! aggregates, and feeds the coordinator.

pub mod discover;
pub mod machine_key;
pub mod mnist;
pub mod sql;
pub mod udaf;
pub mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use datafusion::arrow::array::{Array, RecordBatch, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::cast::as_string_array;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::functions::core::expr_fn::input_file_name;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::{Expr, SessionConfig, SessionContext, cast, ident, lit};

use crate::error::{Result, RoseError};
use crate::estimator::{self, DerivativeSource, Estimation, EstimatorOptions};
use crate::family::Family;
use crate::local_fit::{LocalFit, NewtonOptions};
use crate::moments::LocalDerivatives;
use discover::{Discovery, HIVE_KEY, Layout, ParquetFile, discover, natural_cmp};
use machine_key::FileMachineUdf;
use udaf::{DerivativesUdaf, LocalFitUdaf, ModelSpec, ProgressHook};

impl From<DataFusionError> for RoseError {
    fn from(e: DataFusionError) -> Self {
        // A data problem found inside an aggregate travels as an external error. Unwrap it
        // so that the message names the machine and column without the engine's prefix.
        if let DataFusionError::External(inner) = e.find_root()
            && let Some(RoseError::InvalidData {
                machine,
                column,
                message,
            }) = inner.downcast_ref::<RoseError>()
        {
            return RoseError::InvalidData {
                machine: machine.clone(),
                column: column.clone(),
                message: message.clone(),
            };
        }
        RoseError::Engine(e.strip_backtrace())
    }
}

/// Name under which the directory is registered.
const TABLE: &str = "rose_data";
/// Largest number of machine groups of a path layout that round 1 queries one by one.
const MAX_GROUPS: usize = 256;

/// Column alias of the machine key in the per-machine queries.
const KEY: &str = discover::RESERVED_COLUMN;

/// Input directory, model and engine settings of a fit.
#[derive(Clone)]
pub struct DataOptions {
    /// Directory of Parquet files.
    pub dir: PathBuf,
    /// Model family.
    pub family: Family,
    /// Response column.
    pub response: String,
    /// Feature columns; `None` selects every numeric column but the response and key.
    pub features: Option<Vec<String>>,
    /// Column that names the machine of each row, instead of the path layout.
    pub machine_column: Option<String>,
    /// Whether to add an intercept.
    pub intercept: bool,
    /// Whether rows with null or non-finite values are skipped.
    pub drop_missing: bool,
    /// Local Newton-Raphson settings.
    pub newton: NewtonOptions,
    /// DataFusion execution partitions; `None` uses the number of cores.
    pub target_partitions: Option<usize>,
    /// Called once per machine and round when its statistics are finished.
    pub progress: Option<ProgressHook>,
}

/// A registered Parquet directory with its machines.
pub struct Dataset {
    ctx: SessionContext,
    discovery: Discovery,
    spec: ModelSpec,
    progress: Option<ProgressHook>,
    newton: NewtonOptions,
    /// Machine ids in natural order.
    ids: Vec<String>,
    /// Group key of each machine as the queries see it.
    keys: Vec<String>,
    /// Maps a row's file path to its machine id (path layouts).
    file_machine: ScalarUDF,
}

/// Everything a fit returns: the estimate and the facts of the data behind it.
#[derive(Clone, Debug)]
pub struct FitReport {
    /// Model family.
    pub family: Family,
    /// Parameter names: `(Intercept)` first when present, then the features.
    pub names: Vec<String>,
    /// Machine ids in natural order.
    pub machine_ids: Vec<String>,
    /// Index of the central machine.
    pub central: usize,
    /// First-round fits, one per machine.
    pub fits: Vec<LocalFit>,
    /// The coordinator's result.
    pub estimation: Estimation,
    /// Settings used.
    pub options: EstimatorOptions,
}

impl Dataset {
    /// Discovers the directory, checks the schemas and registers the table.
    pub async fn open(options: &DataOptions) -> Result<Dataset> {
        let discovery = discover(&options.dir, options.machine_column.as_deref())?;
        let features = discovery.resolve_columns(&options.response, options.features.as_deref())?;
        let spec = ModelSpec {
            family: options.family,
            response: options.response.clone(),
            features,
            intercept: options.intercept,
            drop_missing: options.drop_missing,
        };

        let partitions = options
            .target_partitions
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let config = SessionConfig::new().with_target_partitions(partitions.max(1));
        let ctx = SessionContext::new_with_config(config);
        register_table(&ctx, &discovery, &spec)?;

        let ids = match &discovery.layout {
            Layout::Column(column) => {
                let ids = distinct_keys(&ctx, column).await?;
                if ids.is_empty() {
                    return Err(RoseError::InvalidData {
                        machine: "<all>".into(),
                        column: column.clone(),
                        message: "the machine column has no non-null values; name a column that identifies each row's machine".into(),
                    });
                }
                ids
            }
            _ => discovery.path_machines().into_iter().map(|m| m.0).collect(),
        };
        // Files map to machines through a hash lookup on the path that DataFusion reports.
        let file_machines: HashMap<String, String> = discovery
            .files
            .iter()
            .filter_map(|f| f.machine.clone().map(|id| (object_store_key(&f.path), id)))
            .collect();
        Ok(Dataset {
            ctx,
            discovery,
            spec,
            progress: options.progress.clone(),
            newton: options.newton,
            keys: ids.clone(),
            ids,
            file_machine: ScalarUDF::from(FileMachineUdf::new(file_machines)),
        })
    }

    /// Machine ids in natural order.
    pub fn machine_ids(&self) -> &[String] {
        &self.ids
    }

    /// Parameter names, intercept first.
    pub fn parameter_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.spec.n_params());
        if self.spec.intercept {
            names.push("(Intercept)".to_string());
        }
        names.extend(self.spec.features.iter().cloned());
        names
    }

    /// Index of the machine with this id.
    pub fn machine_index(&self, id: &str) -> Result<usize> {
        self.ids.iter().position(|m| m == id).ok_or_else(|| {
            RoseError::option(
                "--central",
                format!(
                    "no machine named '{id}'; machines are: {}",
                    self.ids.join(", ")
                ),
            )
        })
    }

    /// Builds the per-machine input: machine key, response and features cast to `Float64`.
    async fn frame(&self, machine: Option<usize>) -> Result<DataFrame> {
        let layout = &self.discovery.layout;
        if let (Layout::Hive | Layout::Flat, Some(j)) = (layout, machine) {
            // Read just this machine's files.
            let id = &self.ids[j];
            let files: Vec<&ParquetFile> = self
                .discovery
                .files
                .iter()
                .filter(|f| f.machine.as_ref() == Some(id) && f.rows > 0)
                .collect();
            if files.is_empty() {
                let empty = self.ctx.table(TABLE).await?.limit(0, Some(0))?;
                return self.project(empty, lit(id.clone()));
            }
            let table = listing_table(&self.discovery, &self.spec, &files)?;
            let df = self.ctx.read_table(Arc::new(table))?;
            return self.project(df, lit(id.clone()));
        }
        let df = self.ctx.table(TABLE).await?;
        let key = match layout {
            Layout::Column(c) => cast(ident(c.as_str()), DataType::Utf8),
            _ => self.file_machine.call(vec![input_file_name()]),
        };
        let df = match machine {
            Some(j) => df.filter(key.clone().eq(lit(self.keys[j].clone())))?,
            None => df,
        };
        self.project(df, key)
    }

    fn project(&self, df: DataFrame, key: Expr) -> Result<DataFrame> {
        let mut columns = vec![
            key.alias(KEY),
            cast(ident(&self.spec.response), DataType::Float64).alias(&self.spec.response),
        ];
        for feature in &self.spec.features {
            columns.push(cast(ident(feature), DataType::Float64).alias(feature));
        }
        Ok(df.select(columns)?)
    }

    /// Runs one per-machine aggregate and returns its output rows keyed by machine index.
    async fn per_machine(
        &self,
        udaf: AggregateUDF,
        machine: Option<usize>,
    ) -> Result<Vec<(usize, StructArray, usize)>> {
        let frame = self.frame(machine).await?;
        self.aggregate_frame(frame, udaf).await
    }

    /// Builds the per-machine input of a group of machines of a path layout, reading only
    /// their files.
    fn chunk_frame(&self, chunk: &[usize]) -> Result<Option<DataFrame>> {
        let files: Vec<&ParquetFile> = self
            .discovery
            .files
            .iter()
            .filter(|f| f.rows > 0)
            .filter(|f| {
                f.machine
                    .as_ref()
                    .is_some_and(|id| chunk.iter().any(|&j| &self.ids[j] == id))
            })
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let table = listing_table(&self.discovery, &self.spec, &files)?;
        let df = self.ctx.read_table(Arc::new(table))?;
        let key = self.file_machine.call(vec![input_file_name()]);
        Ok(Some(self.project(df, key)?))
    }

    /// Aggregates a per-machine input and returns the output rows keyed by machine index.
    async fn aggregate_frame(
        &self,
        frame: DataFrame,
        udaf: AggregateUDF,
    ) -> Result<Vec<(usize, StructArray, usize)>> {
        let mut args = vec![ident(KEY), ident(&self.spec.response)];
        args.extend(self.spec.features.iter().map(ident));
        let aggregated = frame.aggregate(vec![ident(KEY)], vec![udaf.call(args).alias("stats")])?;
        let batches: Vec<RecordBatch> = aggregated.collect().await?;
        let index: HashMap<&str, usize> = self
            .keys
            .iter()
            .enumerate()
            .map(|(j, k)| (k.as_str(), j))
            .collect();
        let mut out = Vec::new();
        for batch in batches {
            let keys = as_string_array(batch.column(0))?;
            let stats = batch
                .column(1)
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| RoseError::Engine("aggregate did not return a struct".into()))?
                .clone();
            for row in 0..batch.num_rows() {
                if keys.is_null(row) {
                    return Err(RoseError::InvalidData {
                        machine: "<null>".into(),
                        column: self.machine_column_name(),
                        message: "rows without a machine id; fill the column or drop those rows"
                            .into(),
                    });
                }
                if let Some(&j) = index.get(keys.value(row)) {
                    out.push((j, stats.clone(), row));
                }
            }
        }
        Ok(out)
    }

    fn machine_column_name(&self) -> String {
        match &self.discovery.layout {
            Layout::Column(c) => c.clone(),
            Layout::Hive => HIVE_KEY.to_string(),
            Layout::Flat => "file".to_string(),
        }
    }

    /// Runs a per-machine aggregate over every machine. Machines of a path layout are
    /// queried in small groups, a few at a time, so that memory grows with the rows of the
    /// groups in flight rather than with the whole directory.
    async fn all_machines(&self, udaf: AggregateUDF) -> Result<Vec<(usize, StructArray, usize)>> {
        if let Layout::Column(_) = self.discovery.layout {
            return self.per_machine(udaf, None).await;
        }
        let m = self.ids.len();
        let group = m.div_ceil(MAX_GROUPS).max(1);
        let chunks: Vec<Vec<usize>> = (0..m)
            .collect::<Vec<_>>()
            .chunks(group)
            .map(<[usize]>::to_vec)
            .collect();
        let in_flight = self.ctx.state().config().target_partitions().max(1);
        let results: Vec<Vec<(usize, StructArray, usize)>> = futures::stream::iter(chunks)
            .map(|chunk| {
                let udaf = udaf.clone();
                async move {
                    match self.chunk_frame(&chunk)? {
                        Some(frame) => self.aggregate_frame(frame, udaf).await,
                        None => Ok(Vec::new()),
                    }
                }
            })
            .buffer_unordered(in_flight)
            .try_collect()
            .await?;
        Ok(results.into_iter().flatten().collect())
    }

    /// Round 1: every machine's local fit, in machine order. Machines without rows get a
    /// failed fit.
    pub async fn local_fits(&self) -> Result<Vec<LocalFit>> {
        let udaf = AggregateUDF::from(LocalFitUdaf::new(
            self.spec.clone(),
            self.newton,
            self.progress.clone(),
        ));
        let mut fits: Vec<Option<LocalFit>> = vec![None; self.ids.len()];
        let rows = self.all_machines(udaf).await?;
        for (j, stats, row) in rows {
            fits[j] = Some(LocalFitUdaf::decode(&stats, row)?);
        }
        Ok(fits
            .into_iter()
            .map(|f| {
                f.unwrap_or(LocalFit {
                    rows: 0,
                    estimate: Vec::new(),
                    variance: Vec::new(),
                    converged: false,
                    iterations: 0,
                    failure: Some("has no rows".to_string()),
                    dropped: 0,
                })
            })
            .collect())
    }

    async fn derivatives(
        &self,
        theta: &[f64],
        machine: Option<usize>,
    ) -> Result<Vec<Option<LocalDerivatives>>> {
        let udaf = AggregateUDF::from(DerivativesUdaf::new(
            self.spec.clone(),
            theta.to_vec(),
            if machine.is_none() {
                self.progress.clone()
            } else {
                None
            },
        ));
        let mut out: Vec<Option<LocalDerivatives>> = vec![None; self.ids.len()];
        let rows = match machine {
            None => self.all_machines(udaf).await?,
            Some(_) => self.per_machine(udaf, machine).await?,
        };
        for (j, stats, row) in rows {
            let d = DerivativesUdaf::decode(&stats, row)?;
            out[j] = (d.rows > 0).then_some(d);
        }
        Ok(out)
    }

    /// Runs the whole estimate: round 1, the coordinator and its second round.
    pub async fn fit(&self, options: EstimatorOptions) -> Result<FitReport> {
        let fits = self.local_fits().await?;
        let estimation = estimator::estimate(&options, &self.ids, fits.clone(), self).await?;
        Ok(FitReport {
            family: self.spec.family,
            names: self.parameter_names(),
            machine_ids: self.ids.clone(),
            central: options.central,
            fits,
            estimation,
            options,
        })
    }
}

impl DerivativeSource for Dataset {
    async fn all_derivatives(&self, theta: &[f64]) -> Result<Vec<Option<LocalDerivatives>>> {
        self.derivatives(theta, None).await
    }

    async fn machine_derivatives(
        &self,
        theta: &[f64],
        machine: usize,
    ) -> Result<Option<LocalDerivatives>> {
        Ok(self
            .derivatives(theta, Some(machine))
            .await?
            .swap_remove(machine))
    }
}

/// The path string that `input_file_name()` returns for a local file: the absolute path
/// without its leading `/`.
fn object_store_key(path: &Path) -> String {
    absolute_path(path)
        .to_string_lossy()
        .trim_start_matches('/')
        .to_string()
}

fn register_table(ctx: &SessionContext, discovery: &Discovery, spec: &ModelSpec) -> Result<()> {
    let files: Vec<&ParquetFile> = discovery.files.iter().filter(|f| f.rows > 0).collect();
    if files.is_empty() {
        return Err(RoseError::Directory {
            path: discovery.root.clone(),
            message: format!(
                "all {} Parquet files have no rows; there is nothing to fit",
                discovery.files.len()
            ),
        });
    }
    let table = listing_table(discovery, spec, &files)?;
    ctx.register_table(TABLE, Arc::new(table))?;
    Ok(())
}

/// Builds a listing table over `files`, which must not be empty.
///
/// The files are listed one by one rather than by directory, so that DataFusion reads
/// exactly the files that discovery accepted (no hidden `.` or `_` files).
fn listing_table(
    discovery: &Discovery,
    spec: &ModelSpec,
    files: &[&ParquetFile],
) -> Result<ListingTable> {
    // Declare the model columns as Float64 so files that store them as integers (or as
    // float32) read alike; DataFusion casts each file to this schema.
    let mut fields = vec![Field::new(&spec.response, DataType::Float64, true)];
    fields.extend(
        spec.features
            .iter()
            .map(|f| Field::new(f, DataType::Float64, true)),
    );
    if let Layout::Column(column) = &discovery.layout {
        let original = discovery
            .files
            .iter()
            .find_map(|f| {
                f.schema
                    .field_with_name(column)
                    .ok()
                    .map(|x| x.data_type().clone())
            })
            .unwrap_or(DataType::Utf8);
        fields.push(Field::new(column, original, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let urls = files
        .iter()
        .map(|f| ListingTableUrl::parse(absolute_path(&f.path).to_string_lossy()))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let listing =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(listing)
        .with_schema(schema);
    Ok(ListingTable::try_new(config)?)
}

fn absolute_path(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

async fn distinct_keys(ctx: &SessionContext, column: &str) -> Result<Vec<String>> {
    let df = ctx
        .table(TABLE)
        .await?
        .select(vec![cast(ident(column), DataType::Utf8).alias(KEY)])?
        .distinct()?;
    let mut keys = Vec::new();
    for batch in df.collect().await? {
        let array = as_string_array(batch.column(0))?;
        for i in 0..array.len() {
            if array.is_valid(i) {
                keys.push(array.value(i).to_string());
            }
        }
    }
    keys.sort_by(|a, b| natural_cmp(a, b));
    Ok(keys)
}

/// Registers a Parquet directory as the SQL table `name`, with a Utf8 column `machine`
/// that contains each row's machine id (hive or flat layout), followed by the files' columns.
pub async fn register_directory(ctx: &SessionContext, name: &str, dir: &Path) -> Result<()> {
    let discovery = discover(dir, None)?;
    let files: Vec<&ParquetFile> = discovery.files.iter().filter(|f| f.rows > 0).collect();
    let Some(first) = files.first() else {
        return Err(RoseError::Directory {
            path: dir.to_path_buf(),
            message: "all Parquet files have no rows".to_string(),
        });
    };
    let schema = Arc::new(first.schema.clone());
    let urls = files
        .iter()
        .map(|f| ListingTableUrl::parse(absolute_path(&f.path).to_string_lossy()))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let listing =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(listing)
        .with_schema(schema.clone());
    let table = ListingTable::try_new(config)?;
    let file_machines: HashMap<String, String> = discovery
        .files
        .iter()
        .filter_map(|f| f.machine.clone().map(|id| (object_store_key(&f.path), id)))
        .collect();
    let machine = ScalarUDF::from(FileMachineUdf::new(file_machines));
    let mut columns = vec![machine.call(vec![input_file_name()]).alias(HIVE_KEY)];
    columns.extend(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != HIVE_KEY)
            .map(|f| ident(f.name())),
    );
    let view = ctx.read_table(Arc::new(table))?.select(columns)?;
    ctx.register_table(name, view.into_view())?;
    Ok(())
}
