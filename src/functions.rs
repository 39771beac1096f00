//! Every segscore SQL function, registered in one place: the metrics' aggregates
//! ([`crate::metrics::udaf`]), `segscore_shard` ([`crate::shard`]), and, when a model is
//! loaded, `reward_model` and `reward_model_input_problem` ([`crate::model::udf`]). The job,
//! the evaluation, `segscore sql`, `report` and `compare` all register them here, so every
//! context segscore makes knows the same names.

use std::sync::Arc;

use datafusion::prelude::SessionContext;

use crate::model::RewardModel;

/// Registers every segscore function with `ctx` (the model's only when one is given).
pub fn register(ctx: &SessionContext, model: Option<&Arc<RewardModel>>) {
    for f in crate::metrics::udaf::all() {
        ctx.register_udaf(f);
    }
    ctx.register_udf(crate::shard::udf());
    if let Some(m) = model {
        ctx.register_udf(m.udf());
        ctx.register_udf(m.problem_udf());
    }
}
