//! A scalar function that maps a row's source file to its machine id.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

type DfResult<T> = datafusion::common::Result<T>;

/// `rose_file_machine(input_file_name())`: the machine id of the file a row came from.
///
/// A hash lookup per row, so the cost does not grow with the number of machines. Paths
/// that are not in the map give NULL.
#[derive(Debug)]
pub struct FileMachineUdf {
    map: Arc<HashMap<String, String>>,
    signature: Signature,
}

impl FileMachineUdf {
    /// Creates the function from a map of object-store paths to machine ids.
    pub fn new(map: HashMap<String, String>) -> Self {
        FileMachineUdf {
            map: Arc::new(map),
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl PartialEq for FileMachineUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.map, &other.map) || *self.map == *other.map
    }
}

impl Eq for FileMachineUdf {}

impl Hash for FileMachineUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.map.len().hash(state);
    }
}

impl ScalarUDFImpl for FileMachineUdf {
    fn name(&self) -> &str {
        "rose_file_machine"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        match &args.args[..] {
            [ColumnarValue::Scalar(ScalarValue::Utf8(path))] => {
                let id = path.as_ref().and_then(|p| self.map.get(p)).cloned();
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(id)))
            }
            [ColumnarValue::Array(array)] => {
                let paths = as_string_array(array)?;
                let ids: StringArray = (0..paths.len())
                    .map(|i| {
                        paths
                            .is_valid(i)
                            .then(|| self.map.get(paths.value(i)).map(String::as_str))
                            .flatten()
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(ids)))
            }
            other => Err(DataFusionError::Internal(format!(
                "rose_file_machine expects one Utf8 argument, got {other:?}"
            ))),
        }
    }
}
