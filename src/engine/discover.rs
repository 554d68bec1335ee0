//! Discovery of the machines of a Parquet directory and validation of file schemas.

use std::fs;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Result, RoseError};

/// Assignment of rows to machines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `DIR/machine=<id>/*.parquet`: the id comes from the directory name.
    Hive,
    /// `DIR/*.parquet`: each file is one machine, the id is the file stem.
    Flat,
    /// Any Parquet files under `DIR`; the id is the value of this column.
    Column(String),
}

/// One Parquet file with the facts read from its footer.
#[derive(Clone, Debug)]
pub struct ParquetFile {
    /// Path on disk.
    pub path: PathBuf,
    /// Machine id from the path (hive and flat layouts); `None` in the column layout.
    pub machine: Option<String>,
    /// Row count from the footer.
    pub rows: u64,
    /// Arrow schema of the file.
    pub schema: Schema,
}

/// The files of a directory and their layout.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// Directory scanned.
    pub root: PathBuf,
    /// Machine assignment.
    pub layout: Layout,
    /// Files in natural order of machine id, then path.
    pub files: Vec<ParquetFile>,
}

/// Name of the hive partition key that identifies a machine.
pub const HIVE_KEY: &str = "machine";

/// Lists the Parquet files of `root` and decides the layout.
pub fn discover(root: &Path, machine_column: Option<&str>) -> Result<Discovery> {
    let metadata = fs::metadata(root).map_err(|e| RoseError::Directory {
        path: root.to_path_buf(),
        message: e.to_string(),
    })?;
    if !metadata.is_dir() {
        return Err(RoseError::Directory {
            path: root.to_path_buf(),
            message: "not a directory; pass the directory that contains the Parquet files"
                .to_string(),
        });
    }

    let mut found = Vec::new();
    let layout = if let Some(column) = machine_column {
        collect_parquet(root, true, &mut found)?;
        found.iter_mut().for_each(|(_, id)| *id = None);
        Layout::Column(column.to_string())
    } else {
        let hive_dirs = hive_directories(root)?;
        if hive_dirs.is_empty() {
            collect_parquet(root, false, &mut found)?;
            for (path, id) in found.iter_mut() {
                *id = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            }
            Layout::Flat
        } else {
            let mut loose = Vec::new();
            collect_parquet(root, false, &mut loose)?;
            if let Some((path, _)) = loose.first() {
                return Err(RoseError::Schema {
                    file: path.clone(),
                    message: format!(
                        "the directory mixes layouts: it has machine=<id>/ directories and {} Parquet file(s) beside them; \
                         move the files into machine=<id>/ directories or into a directory of their own",
                        loose.len()
                    ),
                });
            }
            for (dir, id) in hive_dirs {
                let mut inner = Vec::new();
                collect_parquet(&dir, true, &mut inner)?;
                found.extend(inner.into_iter().map(|(p, _)| (p, Some(id.clone()))));
            }
            Layout::Hive
        }
    };
    if found.is_empty() {
        let mut nested = Vec::new();
        collect_parquet(root, true, &mut nested)?;
        if let Some((path, _)) = nested.first() {
            return Err(RoseError::Schema {
                file: path.clone(),
                message: format!(
                    "{} Parquet file(s) sit in nested directories, which are not a machine layout; \
                     point rose at the directory that holds the machine=<id>/ directories or the files, \
                     or name the machine with --machine-column",
                    nested.len()
                ),
            });
        }
        return Err(RoseError::NoParquetFiles {
            path: root.to_path_buf(),
        });
    }

    let mut files = Vec::with_capacity(found.len());
    for (path, machine) in found {
        let file = fs::File::open(&path).map_err(|source| RoseError::Io {
            path: path.clone(),
            source,
        })?;
        let (rows, schema) = if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            (0, Schema::empty())
        } else {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| RoseError::Schema {
                    file: path.clone(),
                    message: format!("not a readable Parquet file: {e}"),
                })?;
            let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
            (rows, builder.schema().as_ref().clone())
        };
        files.push(ParquetFile {
            path,
            machine,
            rows,
            schema,
        });
    }
    for (i, file) in files.iter().enumerate() {
        let canonical = fs::canonicalize(&file.path).unwrap_or_else(|_| file.path.clone());
        if let Some(other) = files[..i]
            .iter()
            .find(|o| fs::canonicalize(&o.path).unwrap_or_else(|_| o.path.clone()) == canonical)
        {
            return Err(RoseError::Schema {
                file: file.path.clone(),
                message: format!(
                    "this is the same file as {} (a link); each file may belong to one machine only",
                    other.path.display()
                ),
            });
        }
        let names: Vec<&String> = file.schema.fields().iter().map(|f| f.name()).collect();
        if let Some(dup) = names
            .iter()
            .enumerate()
            .find(|(k, n)| names[..*k].contains(n))
        {
            return Err(RoseError::Schema {
                file: file.path.clone(),
                message: format!(
                    "the file has two columns named '{}'; rename one of them",
                    dup.1
                ),
            });
        }
    }
    files.sort_by(|a, b| {
        natural_cmp(
            a.machine.as_deref().unwrap_or(""),
            b.machine.as_deref().unwrap_or(""),
        )
        .then_with(|| a.path.cmp(&b.path))
    });
    Ok(Discovery {
        root: root.to_path_buf(),
        layout,
        files,
    })
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(|e| RoseError::Directory {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

fn hive_directories(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for path in read_dir_sorted(root)? {
        let name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(id) = name.strip_prefix(&format!("{HIVE_KEY}="))
            && path.is_dir()
        {
            out.push((path.clone(), percent_decode(id)));
        }
    }
    for (i, (path, id)) in out.iter().enumerate() {
        if let Some((other, _)) = out[..i].iter().find(|(_, other_id)| other_id == id) {
            return Err(RoseError::Schema {
                file: path.clone(),
                message: format!(
                    "directories {} and {} both name machine '{id}' once percent-escapes are decoded; merge or rename them",
                    other.display(),
                    path.display()
                ),
            });
        }
    }
    Ok(out)
}

/// Decodes `%XX` escapes, as Hive and Spark write them in partition directory names
/// (`machine=a%2Cb` is machine `a,b`). Invalid escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

fn is_parquet(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    !name.starts_with('.') && !name.starts_with('_') && name.ends_with(".parquet")
}

fn collect_parquet(
    dir: &Path,
    recursive: bool,
    out: &mut Vec<(PathBuf, Option<String>)>,
) -> Result<()> {
    for path in read_dir_sorted(dir)? {
        if path.is_dir() {
            if recursive {
                collect_parquet(&path, true, out)?;
            }
        } else if is_parquet(&path) {
            out.push((path, None));
        }
    }
    Ok(())
}

/// Compares strings so that embedded numbers order by value: `m2 < m10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na
                    .len()
                    .cmp(&nb.len())
                    .then_with(|| na.cmp(nb))
                    .then(da.cmp(&db));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}

/// Lists a schema's column names for an error message, shortened for wide files.
fn column_list(schema: &Schema) -> String {
    const SHOWN: usize = 20;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!(
            "{}, ... ({} columns in all)",
            names[..SHOWN].join(", "),
            names.len()
        )
    }
}

/// Returns whether rose can read a column of this type as a number.
pub fn is_numeric(data_type: &DataType) -> bool {
    match data_type {
        DataType::Dictionary(_, value) => is_numeric(value),
        other => other.is_numeric() || matches!(other, DataType::Boolean),
    }
}

/// Returns whether a column of this type can identify machines.
fn is_key_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::Dictionary(_, value) => is_key_type(value),
        other => {
            other.is_integer()
                || matches!(
                    other,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
        }
    }
}

/// Column name rose reserves for the machine key inside its queries.
pub const RESERVED_COLUMN: &str = "__rose_machine";

impl Discovery {
    /// Resolves the model columns and checks them in every file.
    ///
    /// Returns the feature names: `features` if given, otherwise every numeric column of
    /// the first non-empty file except the response and the machine key.
    pub fn resolve_columns(
        &self,
        response: &str,
        features: Option<&[String]>,
    ) -> Result<Vec<String>> {
        let Some(first) = self.files.iter().find(|f| !f.schema.fields().is_empty()) else {
            return Err(RoseError::NoParquetFiles {
                path: self.root.clone(),
            });
        };
        let machine_key = match &self.layout {
            Layout::Column(c) => Some(c.as_str()),
            Layout::Hive => Some(HIVE_KEY),
            Layout::Flat => None,
        };
        let features: Vec<String> = match features {
            Some(list) => list.to_vec(),
            None => first
                .schema
                .fields()
                .iter()
                .filter(|f| f.name() != response && Some(f.name().as_str()) != machine_key)
                .filter(|f| is_numeric(f.data_type()))
                .map(|f| f.name().clone())
                .collect(),
        };
        if features.iter().any(|f| f.trim().is_empty()) {
            return Err(RoseError::option(
                "--features",
                "the list contains an empty name; separate names with single commas",
            ));
        }
        for name in features
            .iter()
            .chain(std::iter::once(&response.to_string()))
        {
            if name == RESERVED_COLUMN {
                return Err(RoseError::option(
                    "--features",
                    format!(
                        "column name '{RESERVED_COLUMN}' is reserved by rose; rename the column"
                    ),
                ));
            }
            if Some(name.as_str()) == machine_key && self.layout != Layout::Flat {
                return Err(RoseError::option(
                    "--features",
                    format!(
                        "'{name}' identifies the machines, so it cannot be the response or a feature"
                    ),
                ));
            }
        }
        if features.is_empty() {
            return Err(RoseError::Schema {
                file: first.path.clone(),
                message: format!(
                    "no numeric feature columns besides the response '{response}'; name them with --features"
                ),
            });
        }
        if let Some(dup) = features
            .iter()
            .enumerate()
            .find(|(i, f)| features[..*i].contains(f))
        {
            return Err(RoseError::option(
                "--features",
                format!("column '{}' is listed twice", dup.1),
            ));
        }
        if features.iter().any(|f| f == response) {
            return Err(RoseError::option(
                "--features",
                format!("the response '{response}' cannot also be a feature"),
            ));
        }

        let mut required: Vec<&str> = vec![response];
        required.extend(features.iter().map(String::as_str));
        for file in self.files.iter().filter(|f| !f.schema.fields().is_empty()) {
            for &name in &required {
                let Ok(field) = file.schema.field_with_name(name) else {
                    let available = column_list(&file.schema);
                    if std::ptr::eq(file, first) {
                        return Err(RoseError::MissingColumn {
                            column: name.to_string(),
                            file: file.path.clone(),
                            available,
                        });
                    }
                    return Err(RoseError::Schema {
                        file: file.path.clone(),
                        message: format!(
                            "column '{name}' is missing here but present in {}; all files must have the model's columns",
                            first.path.display()
                        ),
                    });
                };
                if !is_numeric(field.data_type()) {
                    return Err(RoseError::Schema {
                        file: file.path.clone(),
                        message: format!(
                            "column '{name}' has type {} but must be numeric",
                            field.data_type()
                        ),
                    });
                }
            }
            if let Layout::Column(key) = &self.layout {
                if let Ok(field) = file.schema.field_with_name(key) {
                    if !is_key_type(field.data_type()) {
                        return Err(RoseError::Schema {
                            file: file.path.clone(),
                            message: format!(
                                "machine column '{key}' has type {}; use an integer or string column",
                                field.data_type()
                            ),
                        });
                    }
                    let first_type = first
                        .schema
                        .field_with_name(key)
                        .map(|f| f.data_type().clone());
                    if let Ok(first_type) = first_type
                        && &first_type != field.data_type()
                    {
                        return Err(RoseError::Schema {
                            file: file.path.clone(),
                            message: format!(
                                "machine column '{key}' has type {} here but {first_type} in {}; store it with one type",
                                field.data_type(),
                                first.path.display()
                            ),
                        });
                    }
                }
                if file.schema.field_with_name(key).is_err() {
                    return Err(RoseError::MissingColumn {
                        column: key.clone(),
                        file: file.path.clone(),
                        available: column_list(&file.schema),
                    });
                }
            }
        }
        Ok(features)
    }

    /// Machine ids known from the paths, in natural order, with their row counts.
    pub fn path_machines(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for file in &self.files {
            let Some(id) = &file.machine else { continue };
            match out.last_mut() {
                Some((last, rows)) if last == id => *rows += file.rows,
                _ => out.push((id.clone(), file.rows)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode_like_hive() {
        assert_eq!(percent_decode("a%2Cb"), "a,b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("plain"), "plain");
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        let mut ids = vec!["m10", "m2", "m1", "a", "m02"];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(ids, vec!["a", "m1", "m2", "m02", "m10"]);
    }
}
