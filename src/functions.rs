//! Every segscore SQL function, registered in one place: the metrics' aggregates
//! ([`crate::metrics::udaf`]), `segscore_shard` and `segscore_sample` ([`crate::shard`]), and,
//! when a model is loaded, `reward_model` and `reward_model_input_problem`
//! ([`crate::model::udf`]), and with a tokenizer `tokenize` ([`crate::model::text`]), and
//! DuckDB's `len` and names for DataFusion's functions ([`DUCKDB_NAMES`]). The
//! job, the evaluation, `segscore sql`, `report` and `compare` all register them here, so
//! every context segscore makes knows the same names; a cluster's scheduler and executors
//! get the same names from [`served`], with the model's functions taking the job's files
//! from each query's settings ([`crate::model::shared`]).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

use crate::model::{RewardModel, TextTokenizer};

/// The functions of a job: with `model` and `tokenizer` loaded here, or (both `None` and
/// `served`) the job's, named by each query's settings.
fn functions(
    model: Option<&Arc<RewardModel>>,
    tokenizer: Option<&Arc<TextTokenizer>>,
    served: bool,
) -> (Vec<ScalarUDF>, Vec<AggregateUDF>) {
    let mut scalar = vec![crate::shard::udf(), crate::shard::sample_udf(), len_udf()];
    if let Some(m) = model {
        scalar.extend([m.udf(), m.problem_udf()]);
    } else if served {
        scalar.extend(crate::model::udf::job_udfs());
        scalar.push(crate::model::shared::executor_udf());
    }
    if let Some(t) = tokenizer {
        scalar.push(t.udf());
    } else if served {
        scalar.push(crate::model::text::job_tokenize_udf());
    }
    (scalar, crate::metrics::udaf::all())
}

/// Registers every segscore function with `ctx` (the model's only when one is given, and
/// `tokenize` with a tokenizer).
pub fn register(
    ctx: &SessionContext,
    model: Option<&Arc<RewardModel>>,
    tokenizer: Option<&Arc<TextTokenizer>>,
) {
    let (scalar, aggregate) = functions(model, tokenizer, false);
    for f in aggregate {
        ctx.register_udaf(f);
    }
    for f in scalar {
        ctx.register_udf(f);
    }
    register_duckdb_names(ctx);
}

/// DuckDB's names for DataFusion functions that compute the same (as DuckDB's documentation
/// defines them): `list(x)` is `array_agg(x)`, nulls kept; `first`, `last` the first and last
/// value, nulls included; `approx_quantile`, `approx_count_distinct` the t-digest and
/// HyperLogLog estimates; `strlen` the length in bytes; `regexp_matches(s, p)` whether `p`
/// matches a part of `s`; `prefix`, `suffix` whether `s` starts or ends with the text;
/// `list_value` a list of its arguments. DuckDB's aggregates DataFusion has no function for
/// (`arg_max`, `count_if`, ...) are written as DataFusion expressions before a query is planned
/// ([`segscore_plan::duckdb`]).
pub const DUCKDB_NAMES: [(&str, &str); 10] = [
    ("list", "array_agg"),
    ("first", "first_value"),
    ("last", "last_value"),
    ("approx_quantile", "approx_percentile_cont"),
    ("approx_count_distinct", "approx_distinct"),
    ("strlen", "octet_length"),
    ("regexp_matches", "regexp_like"),
    ("prefix", "starts_with"),
    ("suffix", "ends_with"),
    ("list_value", "make_array"),
];

/// Registers [`DUCKDB_NAMES`] in `ctx` as aliases of DataFusion's functions, where `ctx` has
/// no function of that name already.
fn register_duckdb_names(ctx: &SessionContext) {
    for (alias, name) in DUCKDB_NAMES {
        if ctx.udaf(alias).is_ok() || ctx.udf(alias).is_ok() {
            continue;
        }
        if let Ok(f) = ctx.udaf(name) {
            ctx.register_udaf(f.as_ref().clone().with_aliases([alias]));
        } else if let Ok(f) = ctx.udf(name) {
            ctx.register_udf(f.as_ref().clone().with_aliases([alias]));
        }
    }
}

/// Every segscore function, for a process that serves jobs it did not plan (a cluster's
/// scheduler and executors): `reward_model`, `reward_model_input_problem` and `tokenize` load
/// the job's files as its queries name them.
pub fn served() -> (Vec<ScalarUDF>, Vec<AggregateUDF>) {
    functions(None, None, true)
}

/// Registers [`served`] with a registry (a session state, say).
pub fn register_served(registry: &mut dyn FunctionRegistry) -> datafusion::error::Result<()> {
    let (scalar, aggregate) = served();
    for f in scalar {
        registry.register_udf(Arc::new(f))?;
    }
    for f in aggregate {
        registry.register_udaf(Arc::new(f))?;
    }
    Ok(())
}

/// DuckDB's `len(x)`: a text's length in characters, or a list's in elements (`len(input_ids)`:
/// a segment's tokens), as BIGINT; NULL for NULL. DataFusion has one function for each
/// (`character_length`, `array_length`), none for both.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Len {
    signature: datafusion::logical_expr::Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for Len {
    fn name(&self) -> &str {
        "len"
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Null] => Ok(DataType::Int64),
            [other] => datafusion::common::plan_err!("len(x) takes a text or a list, not {other}"),
            _ => datafusion::common::plan_err!("len(x) takes one argument"),
        }
    }
    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, Int64Array};
        let array = args.args[0].to_array(args.number_rows)?;
        let chars = |texts: &mut dyn Iterator<Item = Option<&str>>| -> Int64Array {
            texts.map(|t| t.map(|t| t.chars().count() as i64)).collect()
        };
        let lengths: Int64Array = match array.data_type() {
            DataType::Utf8 => chars(&mut array.as_string::<i32>().iter()),
            DataType::LargeUtf8 => chars(&mut array.as_string::<i64>().iter()),
            DataType::Utf8View => chars(&mut array.as_string_view().iter()),
            DataType::Null => Int64Array::new_null(array.len()),
            _ => {
                let counts = datafusion::arrow::compute::kernels::length::length(&array)?;
                datafusion::arrow::compute::cast(&counts, &DataType::Int64)?
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .clone()
            }
        };
        Ok(datafusion::logical_expr::ColumnarValue::Array(Arc::new(lengths)))
    }
}

/// The `len` function.
fn len_udf() -> ScalarUDF {
    ScalarUDF::from(Len {
        signature: datafusion::logical_expr::Signature::any(
            1,
            datafusion::logical_expr::Volatility::Immutable,
        ),
    })
}
