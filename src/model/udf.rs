//! The model as DataFusion scalar functions: `reward_model(input_ids [, token_type_ids])`
//! (the score, NULL where the model cannot take the row) and
//! `reward_model_input_problem(input_ids [, token_type_ids])` (why, as `code: detail`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::contract::{problem_text, Reason};
use crate::error::Error;
use crate::model::shared::{self, Shared};
use crate::model::tokens::{widened_ids, NULL_LIST};
use crate::model::RewardModel;

/// The SQL name of the model function.
pub const UDF_NAME: &str = "reward_model";

/// The SQL name of the function that says why the model cannot take a row.
pub const PROBLEM_UDF_NAME: &str = "reward_model_input_problem";

impl RewardModel {
    /// The model as a DataFusion scalar function named [`UDF_NAME`].
    pub fn udf(self: &Arc<Self>) -> ScalarUDF {
        self.function(UdfKind::Score)
    }

    /// The function named [`PROBLEM_UDF_NAME`]: why the model cannot take a row, or NULL.
    pub fn problem_udf(self: &Arc<Self>) -> ScalarUDF {
        self.function(UdfKind::Problem)
    }

    fn function(self: &Arc<Self>, kind: UdfKind) -> ScalarUDF {
        udf(Shared::Loaded(Arc::clone(self)), kind)
    }
}

/// `reward_model` and `reward_model_input_problem` for a process that has not loaded the
/// model: each call takes the job's model from its `segscore.*` settings
/// ([`shared::JobModel`]), loaded once per sha256 ([`shared::model`]).
pub fn job_udfs() -> [ScalarUDF; 2] {
    [
        udf(Shared::FromJob, UdfKind::Score),
        udf(Shared::FromJob, UdfKind::Problem),
    ]
}

/// `reward_model` and `reward_model_input_problem` of a model this process is loading: each
/// call takes the model set in `cell` (a job plans its query while its model loads).
pub fn pending_udfs(cell: &Arc<std::sync::OnceLock<Arc<RewardModel>>>) -> [ScalarUDF; 2] {
    [UdfKind::Score, UdfKind::Problem].map(|kind| udf(Shared::Pending(Arc::clone(cell)), kind))
}

fn udf(model: Shared<RewardModel>, kind: UdfKind) -> ScalarUDF {
    ScalarUDF::from(RewardModelUdf {
        model,
        kind,
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum UdfKind {
    /// `reward_model`: the score.
    Score,
    /// `reward_model_input_problem`: why there is no score.
    Problem,
}

/// `reward_model(input_ids [, token_type_ids])` or
/// `reward_model_input_problem(input_ids [, token_type_ids])` as a DataFusion scalar function.
#[derive(Debug)]
struct RewardModelUdf {
    model: Shared<RewardModel>,
    kind: UdfKind,
    signature: Signature,
}

impl PartialEq for RewardModelUdf {
    fn eq(&self, other: &Self) -> bool {
        self.model == other.model && self.kind == other.kind
    }
}
impl Eq for RewardModelUdf {}
impl std::hash::Hash for RewardModelUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.model.hash(state);
        self.kind.hash(state);
    }
}

impl ScalarUDFImpl for RewardModelUdf {
    fn name(&self) -> &str {
        match self.kind {
            UdfKind::Score => UDF_NAME,
            UdfKind::Problem => PROBLEM_UDF_NAME,
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        if arg_types.is_empty() || arg_types.len() > 2 {
            return plan_err!(
                "{UDF_NAME}(input_ids [, token_type_ids]) takes 1 or 2 arguments, got {}",
                arg_types.len()
            );
        }
        for t in arg_types {
            if !matches!(
                t,
                DataType::List(_)
                    | DataType::LargeList(_)
                    | DataType::FixedSizeList(..)
                    | DataType::ListView(_)
                    | DataType::LargeListView(_)
                    | DataType::Null
            ) {
                return plan_err!("{UDF_NAME} takes lists of token ids, got {t}");
            }
        }
        Ok(match self.kind {
            UdfKind::Score => DataType::Float64,
            UdfKind::Problem => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(ids) = arrays.first() else {
            return exec_err!("{UDF_NAME} needs input_ids");
        };
        if ids.data_type() == &DataType::Null {
            return Ok(ColumnarValue::Array(match self.kind {
                UdfKind::Score => Arc::new(Float64Array::from(vec![None::<f64>; n])),
                UdfKind::Problem => Arc::new(datafusion::arrow::array::StringArray::from(vec![
                    Some(
                        problem_text(Reason::NullInputIds, NULL_LIST)
                    );
                    n
                ])),
            }));
        }
        let model = shared::model(&self.model, &args.config_options).map_err(Error::into_datafusion)?;
        let ids = widened_ids(ids).map_err(Error::into_datafusion)?;
        // token_type_ids only reach a model that asks for them; NULL means zeros.
        let given = arrays.get(1).is_some_and(|a| a.data_type() != &DataType::Null);
        if given && !model.signature.wants_token_type_ids() {
            // As `run` warns for --token-type-ids-col; once, not per batch.
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "{UDF_NAME}: the model takes no token_type_ids: the second argument is not read"
                )
            });
        }
        let types = arrays
            .get(1)
            .filter(|a| a.data_type() != &DataType::Null && model.signature.wants_token_type_ids())
            .map(widened_ids)
            .transpose()
            .map_err(Error::into_datafusion)?;
        let types = types.as_deref();
        let out: ArrayRef = match self.kind {
            UdfKind::Score => model
                .predict(ids.as_ref(), types)
                .map(|a| Arc::new(a) as ArrayRef),
            UdfKind::Problem => model
                .input_problems(ids.as_ref(), types)
                .map(|a| Arc::new(a) as ArrayRef),
        }
        .map_err(Error::into_datafusion)?;
        Ok(ColumnarValue::Array(out))
    }
}
