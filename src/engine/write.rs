//! Writing machines' rows as a Parquet directory in the `machine=<id>/` layout.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;

use crate::error::{Result, RoseError};
use crate::simulate::MachineData;

/// Writes machine `j`'s rows to `dir/machine=<ids[j]>/part-0.parquet`, with float64
/// columns `features` and `y`.
pub fn write_hive(
    dir: &Path,
    ids: &[String],
    features: &[String],
    machines: &[MachineData],
) -> Result<()> {
    assert_eq!(ids.len(), machines.len(), "one id per machine");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RoseError::Io { path, source }
    };
    let mut fields: Vec<Field> = features
        .iter()
        .map(|f| Field::new(f, DataType::Float64, false))
        .collect();
    fields.push(Field::new("y", DataType::Float64, false));
    let schema = Arc::new(Schema::new(fields));
    let p = features.len();
    reject_stale_machines(dir, ids)?;

    for (id, data) in ids.iter().zip(machines) {
        let machine_dir = dir.join(format!("machine={id}"));
        fs::create_dir_all(&machine_dir).map_err(io(&machine_dir))?;
        let n = data.y.len();
        let mut columns: Vec<ArrayRef> = (0..p)
            .map(|l| {
                let column: Float64Array = (0..n).map(|i| data.x[i * p + l]).collect();
                Arc::new(column) as ArrayRef
            })
            .collect();
        columns.push(Arc::new(Float64Array::from(data.y.clone())));
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| RoseError::Engine(e.to_string()))?;
        let path = machine_dir.join("part-0.parquet");
        let file = fs::File::create(&path).map_err(io(&path))?;
        let mut writer = ArrowWriter::try_new(file, schema.clone(), None)
            .map_err(|e| RoseError::Engine(format!("{}: {e}", path.display())))?;
        writer
            .write(&batch)
            .and_then(|_| writer.close().map(|_| ()))
            .map_err(|e| RoseError::Engine(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// Rejects a directory that already contains `machine=<id>` folders outside `ids`,
/// because readers would count them as machines of the new data set.
fn reject_stale_machines(dir: &Path, ids: &[String]) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_prefix("machine=")
            && !ids.iter().any(|i| i == id)
        {
            return Err(RoseError::option(
                "output directory",
                format!(
                    "{} already contains {name} from an earlier run, which would be read as an \
                     extra machine; remove it or choose an empty directory",
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}
