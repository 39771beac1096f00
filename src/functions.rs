//! Every segscore SQL function, registered in one place: the metrics' aggregates
//! ([`crate::metrics::udaf`]), `segscore_shard` ([`crate::shard`]), and, when a model is
//! loaded, `reward_model` and `reward_model_input_problem` ([`crate::model::udf`]), and with a
//! tokenizer `tokenize` ([`crate::model::text`]). The job,
//! the evaluation, `segscore sql`, `report` and `compare` all register them here, so every
//! context segscore makes knows the same names.

use std::sync::Arc;

use datafusion::prelude::SessionContext;

use crate::model::{RewardModel, TextTokenizer};

/// Registers every segscore function with `ctx` (the model's only when one is given, and
/// `tokenize` with a tokenizer).
pub fn register(
    ctx: &SessionContext,
    model: Option<&Arc<RewardModel>>,
    tokenizer: Option<&Arc<TextTokenizer>>,
) {
    for f in crate::metrics::udaf::all() {
        ctx.register_udaf(f);
    }
    ctx.register_udf(crate::shard::udf());
    ctx.register_udf(crate::shard::sample_udf());
    if let Some(m) = model {
        ctx.register_udf(m.udf());
        ctx.register_udf(m.problem_udf());
    }
    if let Some(t) = tokenizer {
        ctx.register_udf(t.udf());
    }
}
