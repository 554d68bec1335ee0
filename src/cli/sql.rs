//! `rose sql`: run SQL with rose's functions over Parquet directories.

use std::path::{Path, PathBuf};

use clap::Args;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;

use rose::engine::register_directory;
use rose::engine::sql::register_functions;
use rose::{Result, RoseError};

use super::Format;

#[derive(Args)]
pub struct SqlArgs {
    /// Query to run; several statements are separated by semicolons.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    query: Option<String>,

    /// Read the query from a file.
    #[arg(short, long)]
    file: Option<PathBuf>,

    /// Register a Parquet directory as a table: NAME=DIR. The directories under data/
    /// are registered by default under their names.
    #[arg(long, value_name = "NAME=DIR")]
    table: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,

    /// Write the output to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,

    /// Print only errors.
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn run_sql(args: SqlArgs) -> Result<()> {
    let text = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|source| RoseError::Io {
            path: path.clone(),
            source,
        })?,
        (None, None) => unreachable!("clap requires a query or a file"),
    };
    let ctx = SessionContext::new();
    register_functions(&ctx);
    register_data_directories(&ctx).await;
    for spec in &args.table {
        let (name, dir) = spec.split_once('=').ok_or_else(|| {
            RoseError::option("--table", format!("'{spec}' is not of the form NAME=DIR"))
        })?;
        register_directory(&ctx, name.trim(), Path::new(dir.trim())).await?;
    }

    let mut output = String::new();
    for statement in split_statements(&text) {
        let frame = ctx.sql(&statement).await?;
        // Statements such as SET return no columns; only queries produce output.
        let has_columns = !frame.schema().fields().is_empty();
        let batches = frame.collect().await?;
        if has_columns {
            output.push_str(&render(&batches, args.format)?);
        }
    }
    super::write_output(args.output.as_deref(), &output)?;
    Ok(())
}

/// Registers every directory under `data/` that rose can read, under its own name and,
/// when the name has hyphens, under the same name with underscores.
async fn register_data_directories(ctx: &SessionContext) {
    let Ok(entries) = std::fs::read_dir("data") else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if register_directory(ctx, &name, &dir).await.is_err() {
            continue;
        }
        if name.contains('-') {
            let _ = register_directory(ctx, &name.replace('-', "_"), &dir).await;
        }
    }
}

/// Splits a script into statements at semicolons that end a line, dropping empty ones
/// and comment-only ones.
fn split_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            statements.push(std::mem::take(&mut current));
        }
    }
    statements.push(current);
    statements
        .into_iter()
        .map(|s| s.trim().trim_end_matches(';').trim().to_string())
        .filter(|s| {
            s.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        })
        .collect()
}

fn render(batches: &[RecordBatch], format: Format) -> Result<String> {
    let engine = |e: datafusion::arrow::error::ArrowError| RoseError::Engine(e.to_string());
    match format {
        Format::Table => Ok(format!(
            "{}\n",
            pretty_format_batches(batches).map_err(engine)?
        )),
        Format::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs).map_err(engine)?;
            writer.finish().map_err(engine)?;
            let mut text = String::from_utf8(writer.into_inner()).expect("JSON is UTF-8");
            if text.is_empty() {
                text.push_str("[]");
            }
            text.push('\n');
            Ok(text)
        }
        Format::Csv => {
            let mut out = String::new();
            let Some(first) = batches.first() else {
                return Ok(out);
            };
            let header: Vec<String> = first
                .schema()
                .fields()
                .iter()
                .map(|f| rose::report::csv_field(f.name()))
                .collect();
            out.push_str(&header.join(","));
            out.push('\n');
            let options = FormatOptions::default();
            for batch in batches {
                let formatters = batch
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(engine)?;
                for row in 0..batch.num_rows() {
                    let cells: Vec<String> = formatters
                        .iter()
                        .map(|f| rose::report::csv_field(&f.value(row).to_string()))
                        .collect();
                    out.push_str(&cells.join(","));
                    out.push('\n');
                }
            }
            Ok(out)
        }
    }
}
