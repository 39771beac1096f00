//! Every segscore SQL function, registered in one place: the metrics' aggregates
//! ([`crate::metrics::udaf`]), `segscore_shard` and `segscore_sample` ([`crate::shard`]), and,
//! when a model is loaded, `reward_model` and `reward_model_input_problem`
//! ([`crate::model::udf`]), and with a tokenizer `tokenize` ([`crate::model::text`]), and
//! DuckDB's functions DataFusion lacks (`len`, `regexp_extract` and `regexp_extract_all` in
//! `text.rs`, `strftime` and `strptime` in `time.rs`, `year`, `date_diff`, ... in `dates.rs`,
//! `age` and `date_sub` in `age.rs`, `make_timestamp`, `make_time` (and `to_timestamp` of a
//! float) in `make.rs`, an interval times a number in `intervals.rs`, `mode`, `histogram` and
//! `entropy` in `counts.rs`, `skewness`, `kurtosis`, `isinf`, `divide` in `numbers.rs`,
//! `quantile_disc` and `percentile_disc` in `quantile.rs`, an exact `quantile_cont` and
//! DuckDB's `median` in `quantile_cont.rs`, `typeof` in `type_names.rs`),
//! DataFusion's `approx_distinct` of floats too (`counts.rs`) and `array_agg` with DISTINCT
//! in the order asked (`array_agg.rs`), `checked_sum` ([`crate::engine::sums`]) and DuckDB's
//! names for DataFusion's functions ([`DUCKDB_NAMES`]). The
//! job, the evaluation, `segscore sql`, `report` and `compare` all register them here, so
//! every context segscore makes knows the same names; a cluster's scheduler and executors
//! get the same names from [`served`], with the model's functions taking the job's files
//! from each query's settings ([`crate::model::shared`]).

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ColumnarValue, ScalarUDF};
use datafusion::prelude::SessionContext;

use crate::model::{RewardModel, TextTokenizer};
pub use duckdb_text::udf as duckdb_text_udf;
pub use subscripts::udfs as text_subscript_udfs;
pub use type_names::sql_name as sql_type_name;

mod age;
mod array_agg;
mod buckets;
mod counts;
mod dates;
mod duckdb_text;
mod format;
mod intervals;
mod lists;
mod make;
mod numbers;
mod quantile;
mod quantile_cont;
mod subscripts;
mod text;
mod time;
mod type_names;

/// A function's `result`: one value where every argument was one (`scalar`: `result` holds its
/// one row), else the column.
fn columnar(result: ArrayRef, scalar: bool) -> datafusion::error::Result<ColumnarValue> {
    Ok(match scalar {
        true => ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&result, 0)?),
        false => ColumnarValue::Array(result),
    })
}

/// The functions of a job: with `model` and `tokenizer` loaded here, or (both `None` and
/// `served`) the job's, named by each query's settings.
fn functions(
    model: Option<&Arc<RewardModel>>,
    tokenizer: Option<&Arc<TextTokenizer>>,
    served: bool,
) -> (Vec<ScalarUDF>, Vec<AggregateUDF>) {
    let mut scalar = vec![
        crate::shard::udf(),
        crate::shard::sample_udf(),
        text::len_udf(),
        type_names::udf(),
    ];
    scalar.extend(text::regexp_extract_udfs());
    scalar.extend(text::split_udfs());
    scalar.extend(time::udfs());
    scalar.extend(dates::udfs());
    scalar.extend(age::udfs());
    scalar.extend(make::udfs());
    scalar.extend(numbers::udfs());
    scalar.push(numbers::divide_udf());
    scalar.extend(segscore_plan::arithmetic::udfs());
    scalar.push(segscore_plan::named_casts::udf());
    scalar.push(segscore_plan::rint::udf());
    scalar.push(duckdb_text::udf());
    scalar.extend(format::udfs());
    scalar.push(buckets::udf());
    scalar.extend(intervals::udfs());
    scalar.extend(subscripts::udfs());
    scalar.extend(model_functions(model, tokenizer));
    if served {
        if model.is_none() {
            scalar.extend(crate::model::udf::job_udfs());
            scalar.push(crate::model::shared::executor_udf());
        }
        if tokenizer.is_none() {
            scalar.push(crate::model::text::job_tokenize_udf());
        }
        if model.is_none() && tokenizer.is_none() {
            scalar.push(crate::model::text_udf::job_udf());
        }
    }
    let mut aggregate = crate::metrics::udaf::all();
    aggregate.extend(counts::udafs());
    aggregate.push(counts::approx_distinct_udaf());
    aggregate.push(array_agg::udaf());
    aggregate.extend(numbers::udafs());
    aggregate.extend(quantile::udafs());
    aggregate.push(quantile_cont::udaf());
    aggregate.push(quantile_cont::median_udaf());
    aggregate.push(crate::engine::sums::udaf());
    scalar.extend(lists::udfs(&lists::aggregates(&aggregate)));
    (scalar, aggregate)
}

/// The functions of a model loaded here (`reward_model`, `reward_model_input_problem`) and of
/// a tokenizer (`tokenize`).
pub fn model_functions(
    model: Option<&Arc<RewardModel>>,
    tokenizer: Option<&Arc<TextTokenizer>>,
) -> Vec<ScalarUDF> {
    let text = model
        .zip(tokenizer)
        .map(|(m, t)| crate::model::text_udf::udf(m, t));
    let model = model.into_iter().flat_map(|m| [m.udf(), m.problem_udf()]);
    model.chain(tokenizer.map(|t| t.udf())).chain(text).collect()
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
    // `i * n` and `i / n` of an interval `i` as `interval_mul` and `interval_div`.
    if let (Ok(mul), Ok(div)) = (ctx.udf("interval_mul"), ctx.udf("interval_div")) {
        let planner = segscore_plan::timestamps::IntervalScaling { mul, div };
        // Registering a planner cannot fail.
        let _ = ctx.state_ref().write().register_expr_planner(Arc::new(planner));
    }
}

/// DuckDB's names for DataFusion functions that compute the same (as DuckDB's documentation
/// defines them): `list(x)` is `array_agg(x)`, nulls kept; `first`, `last` the first and last
/// value, nulls included; `approx_quantile`, `approx_count_distinct` the t-digest and
/// HyperLogLog estimates; `strlen` the length in bytes; `regexp_matches(s, p)` whether `p`
/// matches a part of `s`; `prefix`, `suffix` whether `s` starts or ends with the text;
/// `list_value` a list of its arguments; `gen_random_uuid` a random UUID (`uuid`);
/// `list_min` a list's least element (`array_min`, whose `list_max` DataFusion names);
/// `struct_extract(s, 'field')` a struct's field (`get_field`); `list_inner_product`,
/// `list_dot_product` (and `array_...`) two lists' inner product, `list_cosine_distance`
/// their cosine distance;
/// `variance` the sample variance (`var_samp`); `sign` -1, 0 or 1 (`signum`, as DOUBLE where
/// DuckDB gives TINYINT). DuckDB's
/// aggregates DataFusion has no function for (`arg_max`, `count_if`, ...) are written as
/// DataFusion expressions before a query is planned ([`segscore_plan::duckdb`]).
pub const DUCKDB_NAMES: [(&str, &str); 21] = [
    ("list", "array_agg"),
    ("list_min", "array_min"),
    ("struct_extract", "get_field"),
    ("list_inner_product", "inner_product"),
    ("array_inner_product", "inner_product"),
    ("list_dot_product", "inner_product"),
    ("array_dot_product", "inner_product"),
    ("list_cosine_distance", "cosine_distance"),
    ("array_cosine_distance", "cosine_distance"),
    ("first", "first_value"),
    ("last", "last_value"),
    ("approx_quantile", "approx_percentile_cont"),
    ("approx_count_distinct", "approx_distinct"),
    ("strlen", "octet_length"),
    ("regexp_matches", "regexp_like"),
    ("prefix", "starts_with"),
    ("suffix", "ends_with"),
    ("list_value", "make_array"),
    ("gen_random_uuid", "uuid"),
    ("variance", "var_samp"),
    ("sign", "signum"),
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
