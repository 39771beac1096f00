//! Text to token ids: a Hugging Face `tokenizer.json` loaded with the `tokenizers` crate (no
//! hub download), with the file's own padding and truncation turned off: segscore pads by
//! itself and never cuts a sequence. The token sequence of segment k of a generation is
//!
//! ```text
//! ids(prompt, with the tokenizer's special tokens for one sequence)
//!   + for each j <= k: ids(text of segment j, no special tokens) + ids(separator, no special tokens)
//! ```
//!
//! and the SQL function `tokenize(text [, add_special_tokens])` gives the ids of one text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Builder, ListBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::shared::{self, Shared};

/// The SQL name of the tokenizer function.
pub const TOKENIZE_UDF_NAME: &str = "tokenize";

/// A loaded tokenizer.
pub struct TextTokenizer {
    path: PathBuf,
    sha256: String,
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl TextTokenizer {
    /// Loads a `tokenizer.json`; a missing file, one that is not JSON, or JSON that is not a
    /// tokenizer is an error naming the file and saying which.
    pub fn load(path: &Path) -> Result<Self> {
        let err = |reason: String| Error::Tokenizer {
            path: path.to_path_buf(),
            reason,
        };
        // An export folder holds tokenizer.json beside tokenizer_config.json and the model.
        let bytes = match crate::store::read_object(path) {
            Some(object) => object?,
            None if path.is_dir() && path.join("tokenizer.json").is_file() => {
                return Err(err(format!(
                    "is a folder; give the tokenizer file in it: {}",
                    path.join("tokenizer.json").display()
                )))
            }
            None => std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?,
        };
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            return Err(err(format!("not a JSON file ({e})")));
        }
        let mut inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
            let beside = path.with_file_name("tokenizer.json");
            let hint = match path.file_name().and_then(|n| n.to_str()) {
                Some("tokenizer_config.json") if beside.is_file() => {
                    format!("; the tokenizer is {}", beside.display())
                }
                _ => String::new(),
            };
            err(format!("not a Hugging Face tokenizer.json ({e}){hint}"))
        })?;
        // Real tokenizer.json files often pad (to 128, say) or truncate: segscore does neither.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| err(format!("cannot turn truncation off ({e})")))?;
        let tokenizer = TextTokenizer {
            path: path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            inner,
        };
        // A file the library reads can still fail on every text: a post-processor template
        // naming a special token the file does not define panics in `tokenizers` 0.23 ("no
        // entry found for key"). One text each way tells, before the job.
        for special in [true, false] {
            tokenizer.ids("a", special)?;
        }
        Ok(tokenizer)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// sha256 of the file, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The ids of `text`, with the tokenizer's special tokens for one sequence when
    /// `special` (a prompt), without (a segment, a separator).
    /// A panic in the library (on a malformed file) is an error naming the file.
    pub fn ids(&self, text: &str, special: bool) -> Result<Vec<i64>> {
        let err = |reason: String| Error::Tokenizer {
            path: self.path.clone(),
            reason,
        };
        let enc = crate::panics::quietly(|| self.inner.encode_fast(text, special))
            .map_err(|panic| {
                err(format!(
                    "the tokenizers library panicked encoding a text{} ({panic}): is the file complete?",
                    if special { " with special tokens" } else { "" }
                ))
            })?
            .map_err(|e| err(format!("cannot encode a text ({e})")))?;
        Ok(enc.get_ids().iter().map(|&id| id as i64).collect())
    }

    /// `tokenize(text [, add_special_tokens])` as a DataFusion function.
    pub fn udf(self: &Arc<Self>) -> ScalarUDF {
        tokenize_udf(Shared::Loaded(Arc::clone(self)))
    }
}

/// `tokenize` for a process that has not loaded the tokenizer: each call takes the job's
/// from its `segscore.*` settings ([`shared::JobModel`]).
pub fn job_tokenize_udf() -> ScalarUDF {
    tokenize_udf(Shared::FromJob)
}

/// `tokenize` of a tokenizer this process is loading: each call takes the one set in `cell`.
pub fn pending_tokenize_udf(cell: &Arc<std::sync::OnceLock<Arc<TextTokenizer>>>) -> ScalarUDF {
    tokenize_udf(Shared::Pending(Arc::clone(cell)))
}

fn tokenize_udf(tokenizer: Shared<TextTokenizer>) -> ScalarUDF {
    ScalarUDF::from(TokenizeUdf {
        tokenizer,
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

/// `tokenize(text [, add_special_tokens])`: the token ids (list of int32) of each text; NULL
/// for a NULL text.
#[derive(Debug)]
struct TokenizeUdf {
    tokenizer: Shared<TextTokenizer>,
    signature: Signature,
}

impl PartialEq for TokenizeUdf {
    fn eq(&self, other: &Self) -> bool {
        self.tokenizer == other.tokenizer
    }
}
impl Eq for TokenizeUdf {}
impl std::hash::Hash for TokenizeUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.tokenizer.hash(state);
    }
}

impl ScalarUDFImpl for TokenizeUdf {
    fn name(&self) -> &str {
        TOKENIZE_UDF_NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [t] | [t, DataType::Boolean | DataType::Null]
                if t.is_null() || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) =>
            {
                Ok(DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))))
            }
            _ => plan_err!("{TOKENIZE_UDF_NAME}(text [, add_special_tokens]) takes a string and an optional boolean, got {args:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let n = args.number_rows;
        let tokenizer =
            shared::tokenizer(&self.tokenizer, &args.config_options).map_err(Error::into_datafusion)?;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = cast(&arrays[0], &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        // A NULL flag (typed Null) is no flag: as false.
        let special = arrays.get(1).map(|a| cast(a, &DataType::Boolean)).transpose()?;
        let special: Option<&BooleanArray> = special.as_ref().map(|a| a.as_boolean());
        let mut out = ListBuilder::new(Int32Builder::new());
        for i in 0..n {
            if text.is_null(i) {
                out.append(false);
                continue;
            }
            let with_special = special.is_some_and(|s| s.is_valid(i) && s.value(i));
            let ids = tokenizer
                .ids(text.value(i), with_special)
                .map_err(Error::into_datafusion)?;
            for id in ids {
                let Ok(id) = i32::try_from(id) else {
                    return exec_err!("{TOKENIZE_UDF_NAME}: token id {id} does not fit int32");
                };
                out.values().append_value(id);
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}
