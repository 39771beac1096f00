//! Every segscore SQL function, registered in one place: the metrics' aggregates
//! ([`crate::metrics::udaf`]), `segscore_shard` and `segscore_sample` ([`crate::shard`]), and,
//! when a model is loaded, `reward_model` and `reward_model_input_problem`
//! ([`crate::model::udf`]), and with a tokenizer `tokenize` ([`crate::model::text`]). The
//! job, the evaluation, `segscore sql`, `report` and `compare` all register them here, so
//! every context segscore makes knows the same names; a cluster's scheduler and executors
//! get the same names from [`served`], with the model's functions taking the job's files
//! from each query's settings ([`crate::model::shared`]).

use std::sync::Arc;

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
    let mut scalar = vec![crate::shard::udf(), crate::shard::sample_udf()];
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
