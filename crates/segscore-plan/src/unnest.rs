//! Keys do not survive an UNNEST. DataFusion's `Unnest` node keeps its input's functional
//! dependencies ("we can use the existing functional dependencies"), but a list's elements
//! each become a row, so a key of the input (a GROUP BY's keys) repeats in the output. The
//! optimizer then trusts a key that is none: `GROUP BY g, x` over `SELECT g, unnest(l) AS x
//! FROM (... GROUP BY g)` grouped by `g` alone (`optimize_projections` dropped `x`, as `g`
//! "determines" it), `ORDER BY g, x` sorted by `g` alone (`eliminate_duplicated_expr`), a
//! `DISTINCT` could be dropped and a join eliminated, all without a word. DuckDB and PostgreSQL
//! give the rows the query asks for.
//!
//! [`UnnestKeys`] clears the dependencies of every `Unnest` (and recomputes the schemas above
//! it); [`guarded`] puts it before each optimizer rule that reads dependencies, since any rule
//! that rebuilds an `Unnest` copies its input's again.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{DFSchema, FunctionalDependencies};
use datafusion::error::Result;
use datafusion::logical_expr::{LogicalPlan, Unnest};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The optimizer rules that read functional dependencies.
const READERS: [&str; 4] = [
    "replace_distinct_aggregate",
    "eliminate_join",
    "eliminate_duplicated_expr",
    "optimize_projections",
];

/// `rules` with [`UnnestKeys`] before each rule that reads functional dependencies.
pub fn guarded(
    rules: Vec<Arc<dyn OptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut out: Vec<Arc<dyn OptimizerRule + Send + Sync>> = Vec::with_capacity(rules.len() + READERS.len());
    for rule in rules {
        if READERS.contains(&rule.name()) {
            out.push(Arc::new(UnnestKeys));
        }
        out.push(rule);
    }
    out
}

/// DataFusion's optimizer rules, [`guarded`].
pub fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    guarded(datafusion::optimizer::Optimizer::new().rules)
}

/// Clears the functional dependencies of every `Unnest` in a plan.
#[derive(Debug, Default)]
pub struct UnnestKeys;

/// Whether `plan` is an `Unnest` that claims a dependency.
fn claims(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Unnest(u) if !u.schema.functional_dependencies().is_empty())
}

impl OptimizerRule for UnnestKeys {
    fn name(&self) -> &str {
        "segscore_unnest_keys"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let mut found = false;
        plan.apply_with_subqueries(|p| {
            found = claims(p);
            Ok(match found {
                true => TreeNodeRecursion::Stop,
                false => TreeNodeRecursion::Continue,
            })
        })?;
        if !found {
            return Ok(Transformed::no(plan));
        }
        // Every node above an `Unnest` derives its dependencies from its inputs' again.
        let rewritten = plan.transform_up_with_subqueries(|p| {
            let p = p.recompute_schema()?;
            Ok(Transformed::yes(match p {
                LogicalPlan::Unnest(u) if !u.schema.functional_dependencies().is_empty() => {
                    let schema = DFSchema::clone(&u.schema)
                        .with_functional_dependencies(FunctionalDependencies::empty())?;
                    LogicalPlan::Unnest(Unnest {
                        schema: Arc::new(schema),
                        ..u
                    })
                }
                p => p,
            }))
        })?;
        Ok(Transformed::yes(rewritten.data))
    }
}
