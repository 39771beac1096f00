//! The generation stage as a SQL function, for a cluster's executors (text input): a cluster's
//! client receives the rows once they are scored, so the model must run in the plan, where the
//! job's rows are grouped by generation and unnested back with their reads beside them
//! (`pipeline/score.rs`). `reward_model_text(segment_indexes, texts, prompt, separator, pass)`,
//! over one row per generation (its segments' indexes and texts aggregated in segment order,
//! its first segment's prompt), tokenizes and scores each generation exactly as the local stage
//! does ([`super::sequences`]: the same sequences, batched across the generations of its
//! input), and gives for each of its segments, in the lists' order, the model's read and the
//! row's problem (`{read, problem}`).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, StringArray, StructArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{Error, Result};
use crate::model::sequences::{reads_by_row, run_pass, tokenize_runs, Pass, TextInput};
use crate::model::shared::{self, Shared};
use crate::model::{RewardModel, TextTokenizer};

/// The SQL name of the function.
pub const TEXT_UDF_NAME: &str = "reward_model_text";

/// `reward_model_text` with a model and tokenizer loaded here (a client plans with it).
pub fn udf(model: &Arc<RewardModel>, tokenizer: &Arc<TextTokenizer>) -> ScalarUDF {
    function(
        Shared::Loaded(Arc::clone(model)),
        Shared::Loaded(Arc::clone(tokenizer)),
    )
}

/// `reward_model_text` for a process that serves jobs (an executor): the job's model and
/// tokenizer, named by each query's settings.
pub fn job_udf() -> ScalarUDF {
    function(Shared::FromJob, Shared::FromJob)
}

fn function(model: Shared<RewardModel>, tokenizer: Shared<TextTokenizer>) -> ScalarUDF {
    ScalarUDF::from(TextReads {
        model,
        tokenizer,
        signature: Signature::any(5, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TextReads {
    model: Shared<RewardModel>,
    tokenizer: Shared<TextTokenizer>,
    signature: Signature,
}

/// The item type of a list type.
fn items(t: &DataType) -> Option<&DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) => Some(f.data_type()),
        _ => None,
    }
}

fn entry_fields() -> Fields {
    Fields::from(vec![
        Field::new("read", DataType::Float64, true),
        Field::new("problem", DataType::Utf8, true),
    ])
}

impl ScalarUDFImpl for TextReads {
    fn name(&self) -> &str {
        TEXT_UDF_NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        if items(&args[0]).filter(|t| t.is_integer()).is_none() {
            return plan_err!(
                "{TEXT_UDF_NAME}: the segment indexes must be a list of integers, got {}",
                args[0]
            );
        };
        if !items(&args[1]).is_some_and(crate::engine::types::is_text) {
            return plan_err!(
                "{TEXT_UDF_NAME}: the texts must be a list of texts, got {}",
                args[1]
            );
        }
        let entry = Field::new("item", DataType::Struct(entry_fields()), true);
        Ok(DataType::List(Arc::new(entry)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let constant = |i: usize, what: &str| match &args.args[i] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))) => Ok(s.clone()),
            _ => exec_err!("{TEXT_UDF_NAME}: the {what} must be a text constant"),
        };
        let separator = constant(3, "separator")?;
        let pass: Pass = constant(4, "pass")?
            .parse()
            .map_err(|e: String| datafusion::error::DataFusionError::Execution(e))?;
        let model = shared::model(&self.model, &args.config_options).map_err(Error::into_datafusion)?;
        let tokenizer =
            shared::tokenizer(&self.tokenizer, &args.config_options).map_err(Error::into_datafusion)?;
        let arrays = ColumnarValue::values_to_arrays(&args.args[..3])?;
        let out = reads(&model, tokenizer, &separator, pass, &arrays).map_err(Error::into_datafusion)?;
        Ok(ColumnarValue::Array(out))
    }
}

/// A list column as a `List` of `items` (a `LargeList`, or items of another type, cast).
fn list_of(a: &ArrayRef, items: &DataType) -> Result<ListArray> {
    let t = DataType::List(Arc::new(Field::new("item", items.clone(), true)));
    Ok(cast(a, &t)?.as_list::<i32>().clone())
}

/// The reads of one batch of generations: `arrays` are each generation's segment indexes and
/// texts (lists, in segment order) and its prompt.
fn reads(
    model: &RewardModel,
    tokenizer: Arc<TextTokenizer>,
    separator: &str,
    pass: Pass,
    arrays: &[ArrayRef],
) -> Result<ArrayRef> {
    let index_type = items(arrays[0].data_type()).cloned().unwrap_or(DataType::Int64);
    let indexes = list_of(&arrays[0], &index_type)?;
    let texts = list_of(&arrays[1], &DataType::Utf8)?;
    let prompts = cast(&arrays[2], &DataType::Utf8)?;
    let prompts = prompts.as_string::<i32>();
    if let Some(g) = (0..indexes.len()).find(|&g| indexes.value_length(g) != texts.value_length(g)) {
        return Err(Error::Usage(format!(
            "{TEXT_UDF_NAME}: row {g} of its input has {} segment indexes and {} texts; give each generation's lists of the same rows, as `list(segment_index ORDER BY segment_index)` and `list(text ORDER BY segment_index)` are",
            indexes.value_length(g),
            texts.value_length(g)
        )));
    }
    // Each generation's rows, in the texts' values; every row of one carries its prompt.
    let offsets = texts.value_offsets();
    let runs: Vec<std::ops::Range<usize>> = offsets
        .windows(2)
        .map(|w| w[0] as usize..w[1] as usize)
        .filter(|r| !r.is_empty())
        .collect();
    let text_values = texts.values().as_string::<i32>();
    let mut row_prompts: Vec<Option<&str>> = vec![None; text_values.len()];
    for (g, w) in offsets.windows(2).enumerate() {
        let prompt = prompts.is_valid(g).then(|| prompts.value(g));
        row_prompts[w[0] as usize..w[1] as usize].fill(prompt);
    }
    let row_prompts = StringArray::from(row_prompts);
    let text = TextInput::new(tokenizer, Some(separator).filter(|s| !s.is_empty()))?;
    let (generations, problems) =
        tokenize_runs(model, &text, text_values, &row_prompts, &runs, &AtomicU64::new(0))?;
    let scored: Vec<_> = generations.iter().filter(|g| g.scored()).collect();
    let values = run_pass(model, &scored, pass)?;
    let read = reads_by_row(&scored, &values, text_values.len());
    // One entry per row, in the lists' order.
    let entries = StructArray::try_new(
        entry_fields(),
        vec![
            Arc::new(Float64Array::from(read)),
            Arc::new(StringArray::from(problems)),
        ],
        None,
    )?;
    let field = Arc::new(Field::new("item", entries.data_type().clone(), true));
    Ok(Arc::new(ListArray::try_new(
        field,
        texts.offsets().clone(),
        Arc::new(entries),
        None,
    )?))
}
