//! LAG over input sorted by its partitions, a batch at a time: [`SortedLagRule`] puts
//! [`SortedLagExec`] where DataFusion planned a `BoundedWindowAggExec` in `Sorted` mode whose
//! every function is a plain `LAG` (a constant offset from 1 to 8192, a constant default or
//! none, no `IGNORE NULLS`).
//!
//! DataFusion's operator keeps a state per PARTITION BY key, slices each batch into one
//! record batch per key and evaluates the function row by row through `ScalarValue`s: with a
//! generation of about ten segments per key, that cost 8-12% of a job's CPU time (`perf`,
//! issue 13). In sorted input a partition is a run of adjacent rows, so here each batch is cut
//! into its runs with Arrow's `partition` kernel, each LAG is one `take` over the batch's
//! values (with the last `offset` values of the run the batch before ended with), the default
//! one `zip`, and the batch goes out as it came in with the new columns. The same SQL, the same
//! plan properties (schema, order, partitioning, requirements: those of the replaced
//! operator), the same values; anything else (other functions, frames, `IGNORE NULLS`, input
//! not sorted by its partitions) stays with DataFusion.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, Scalar, UInt32Array};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{concat, partition, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Result, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::window::{StandardWindowExpr, StandardWindowFunctionExpr, WindowExpr};
use datafusion::physical_expr::{OrderingRequirements, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowUDFExpr};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, InputOrderMode,
    PlanProperties, SendableRecordBatchStream,
};

/// The name [`SortedLagRule`] goes by in a session's physical optimizer rules.
pub const RULE_NAME: &str = "segscore_sorted_lag";

/// Replaces each `BoundedWindowAggExec` that [`SortedLagExec`] can run by one (see the
/// module's text). Runs after DataFusion's own rules, so the plan's order and partitioning
/// are settled.
#[derive(Debug, Default)]
pub struct SortedLagRule;

impl PhysicalOptimizerRule for SortedLagRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(window) = node.downcast_ref::<BoundedWindowAggExec>() else {
                return Ok(Transformed::no(node));
            };
            Ok(match SortedLagExec::try_new(Arc::new(window.clone())) {
                Some(exec) => Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        RULE_NAME
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The largest LAG offset [`SortedLagExec`] takes: it keeps up to this many values of the
/// open run from one batch to the next and copies them before the next batch's values. Larger
/// offsets (rows that far back) stay with DataFusion.
const MAX_OFFSET: usize = 8192;

/// One `LAG(value, offset, default)`.
#[derive(Debug, Clone)]
struct Lag {
    value: Arc<dyn PhysicalExpr>,
    offset: usize,
    /// The default as one value of the output's type; None for none (null).
    default: Option<ArrayRef>,
}

impl Lag {
    /// The LAG a window function is, if it is a plain one (see the module's text).
    fn of(expr: &Arc<dyn WindowExpr>, input: &SchemaRef) -> Option<Lag> {
        let standard = expr.as_any().downcast_ref::<StandardWindowExpr>()?;
        let udf = standard
            .get_standard_func_expr()
            .as_any()
            .downcast_ref::<WindowUDFExpr>()?;
        if udf.fun().name() != "lag" {
            return None;
        }
        let literal = |i: usize| -> Option<Option<ScalarValue>> {
            match udf.args().get(i) {
                None => Some(None),
                Some(e) => Some(Some(e.downcast_ref::<Literal>()?.value().clone())),
            }
        };
        let offset = match literal(1)? {
            None => 1,
            Some(v) => match v.cast_to(&datafusion::arrow::datatypes::DataType::Int64).ok()? {
                ScalarValue::Int64(Some(k)) if (1..=MAX_OFFSET as i64).contains(&k) => k as usize,
                _ => return None,
            },
        };
        // The evaluator DataFusion would run reads rows idx - offset ..= idx: not IGNORE NULLS
        // (from the partition's start) nor a reversed LEAD.
        let probe = usize::MAX / 2;
        let range = udf.create_evaluator().ok()?.get_range(probe, probe + 1).ok()?;
        if range != (probe.checked_sub(offset)?..probe + 1) {
            return None;
        }
        let out = expr.field().ok()?;
        let args = expr.expressions();
        let value = args.first()?;
        if args.len() != 1 || value.data_type(input).ok()? != *out.data_type() {
            return None;
        }
        let default = match literal(2)? {
            Some(v) if !v.is_null() => Some(v.cast_to(out.data_type()).ok()?.to_array_of_size(1).ok()?),
            _ => None,
        };
        Some(Lag {
            value: Arc::clone(value),
            offset,
            default,
        })
    }
}

/// `LAG` over input sorted by its partitions, a batch at a time (see the module's text). Holds
/// the `BoundedWindowAggExec` it replaces for its plan properties and requirements.
#[derive(Debug)]
pub struct SortedLagExec {
    window: Arc<BoundedWindowAggExec>,
    lags: Vec<Lag>,
    metrics: ExecutionPlanMetricsSet,
}

impl SortedLagExec {
    /// The operator for `window`, if it can run it: `Sorted` mode and plain LAGs only.
    pub fn try_new(window: Arc<BoundedWindowAggExec>) -> Option<Self> {
        // An observer of the per-key states (none in segscore's plans) needs DataFusion's.
        if window.input_order_mode != InputOrderMode::Sorted || window.state_observer().is_some() {
            return None;
        }
        let input = window.input().schema();
        let lags = window
            .window_expr()
            .iter()
            .map(|e| Lag::of(e, &input))
            .collect::<Option<Vec<_>>>()?;
        if lags.is_empty() {
            return None;
        }
        Some(SortedLagExec {
            window,
            lags,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for SortedLagExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = self.window.window_expr().iter().map(|e| e.name()).collect();
        write!(f, "SortedLagExec: wdw=[{}]", names.join(", "))
    }
}

impl ExecutionPlan for SortedLagExec {
    fn name(&self) -> &str {
        "SortedLagExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.window.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.window.input()]
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.window.input_distribution_requirements()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.window.required_input_ordering()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.window.apply_expressions(f)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let window = Arc::clone(&self.window).with_new_children(children)?;
        match window
            .downcast_ref::<BoundedWindowAggExec>()
            .cloned()
            .map(Arc::new)
        {
            Some(w) => match SortedLagExec::try_new(Arc::clone(&w)) {
                Some(exec) => Ok(Arc::new(exec)),
                None => Ok(w),
            },
            None => internal_err!("SortedLagExec's window is no longer a BoundedWindowAggExec"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        use futures::StreamExt;
        let input = self.window.input().execute(partition, context)?;
        let schema = self.window.schema();
        let keys = self.window.window_expr()[0].partition_by().to_vec();
        let mut state = LagState::new(keys, self.lags.clone());
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let out_schema = Arc::clone(&schema);
        let stream = input.map(move |batch| {
            let _timer = metrics.elapsed_compute().timer();
            let out = state.next(&batch?, &out_schema)?;
            metrics.record_output(out.num_rows());
            Ok(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One partition's stream: the key of the last row seen, and for each LAG the last values (up
/// to its offset) of the run of rows with that key.
struct LagState {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    lags: Vec<Lag>,
    /// The last row's key columns, one row each; None before the first row.
    last_key: Option<Vec<ArrayRef>>,
    /// Per LAG: the last values of the open run, at most its offset.
    history: Vec<Option<ArrayRef>>,
}

impl LagState {
    fn new(keys: Vec<Arc<dyn PhysicalExpr>>, lags: Vec<Lag>) -> Self {
        let history = vec![None; lags.len()];
        LagState {
            keys,
            lags,
            last_key: None,
            history,
        }
    }

    /// `batch` with a column per LAG, as `schema` has them.
    fn next(&mut self, batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(RecordBatch::new_empty(Arc::clone(schema)));
        }
        let mut columns = batch.columns().to_vec();
        let keys = self
            .keys
            .iter()
            .map(|k| k.evaluate(batch)?.into_array(n))
            .collect::<Result<Vec<_>>>()?;
        // The batch's runs of equal keys, and whether the first continues the last batch's.
        let runs: Vec<Range<usize>> = if keys.is_empty() {
            std::iter::once(0..n).collect()
        } else {
            partition(&keys)?.ranges()
        };
        let continues = match &self.last_key {
            None => false,
            Some(last) => {
                let mut same = true;
                for (l, k) in last.iter().zip(&keys) {
                    same &= !distinct(l, &k.slice(0, 1))?.value(0);
                }
                same
            }
        };
        for (lag, history) in self.lags.iter().zip(&mut self.history) {
            let values = lag.value.evaluate(batch)?.into_array(n)?;
            let carried = history.take().filter(|_| continues);
            let h = carried.as_ref().map_or(0, |c| c.len());
            // The values with the open run's last ones before them: row i is at h + i.
            let all = match &carried {
                Some(c) => concat(&[c.as_ref(), values.as_ref()])?,
                None => values,
            };
            let k = lag.offset;
            let mut index = Vec::with_capacity(n);
            let mut valid = Vec::with_capacity(n);
            for (r, run) in runs.iter().enumerate() {
                // Where the row's run starts among `all`.
                let start = if r == 0 { 0 } else { h + run.start };
                for i in run.clone() {
                    let from = (h + i).checked_sub(k).filter(|&f| f >= start);
                    index.push(from.unwrap_or(0) as u32);
                    valid.push(from.is_some());
                }
            }
            let valid = BooleanBuffer::from(valid);
            let index = UInt32Array::new(index.into(), Some(NullBuffer::new(valid.clone())));
            let taken = take(all.as_ref(), &index, None)?;
            columns.push(match &lag.default {
                None => taken,
                Some(d) => zip(&BooleanArray::new(valid, None), &taken, &Scalar::new(d))?,
            });
            // The last run's last values (up to the offset), copied out of the batch.
            let last = runs.last().map_or(0..0, |r| r.clone());
            let start = if runs.len() == 1 { 0 } else { h + last.start };
            let from = start.max((h + n).saturating_sub(k));
            *history = Some(compact(&all.slice(from, h + n - from))?);
        }
        self.last_key = Some(
            keys.iter()
                .map(|k| compact(&k.slice(n - 1, 1)))
                .collect::<Result<_>>()?,
        );
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}

/// `array` copied into buffers of its own (a slice would keep its whole batch alive).
fn compact(array: &ArrayRef) -> Result<ArrayRef> {
    let index = UInt32Array::from_iter_values(0..array.len() as u32);
    Ok(take(array.as_ref(), &index, None)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int32Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::logical_expr::{col, SortExpr};
    use datafusion::prelude::{SessionConfig, SessionContext};
    use proptest::prelude::*;

    /// A session with the rule (as segscore's) or without (DataFusion's own operator), over
    /// `batches` declared sorted by (g, h, s) as table `t`.
    async fn session(with_rule: bool, batches: Vec<RecordBatch>) -> SessionContext {
        let schema = batches[0].schema();
        let mut builder = datafusion::execution::SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(1))
            .with_default_features();
        if with_rule {
            builder = builder.with_physical_optimizer_rule(Arc::new(SortedLagRule));
        }
        let ctx = SessionContext::new_with_state(builder.build());
        let order: Vec<SortExpr> = ["g", "h", "s"].iter().map(|c| col(*c).sort(true, true)).collect();
        let table = MemTable::try_new(schema, vec![batches])
            .unwrap()
            .with_sort_order(vec![order]);
        ctx.register_table("t", Arc::new(table)).unwrap();
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> (Vec<RecordBatch>, String) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let shown = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        (df.collect().await.unwrap(), shown)
    }

    /// Rows sorted by (g, h, s), cut into batches at `cuts`: g a string key with nulls, h an
    /// integer, v values with nulls.
    fn table(rows: &[(Option<u8>, i64, Option<f64>)], cuts: &[usize]) -> Vec<RecordBatch> {
        let mut rows: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(s, r)| (r.0, r.1, s as i32, r.2))
            .collect();
        rows.sort_by_key(|a| (a.0, a.1, a.2));
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, true),
            Field::new("h", DataType::Int64, false),
            Field::new("s", DataType::Int32, false),
            Field::new("v", DataType::Float64, true),
        ]));
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (rows.len() + 1)).collect();
        bounds.extend([0, rows.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        bounds
            .windows(2)
            .map(|w| {
                let part = &rows[w[0]..w[1]];
                let g: StringArray = part.iter().map(|r| r.0.map(|g| format!("g{g}"))).collect();
                let h: Int64Array = part.iter().map(|r| Some(r.1)).collect();
                let s: Int32Array = part.iter().map(|r| Some(r.2)).collect();
                let v: Float64Array = part.iter().map(|r| r.3).collect();
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(g), Arc::new(h), Arc::new(s), Arc::new(v)],
                )
                .unwrap()
            })
            .collect()
    }

    const LAGS: &str = "SELECT g, h, s, v, \
        LAG(v) OVER w AS a, LAG(v, 2, -1.5) OVER w AS b, LAG(s, 3) OVER w AS c, \
        v - COALESCE(LAG(v, 1) OVER w, 0.0) AS d \
        FROM t WINDOW w AS (PARTITION BY g, h ORDER BY s)";

    /// `sql`'s rows with the rule and without, on the same batches; and the plan with it.
    async fn both(batches: &[RecordBatch], sql: &str) -> (RecordBatch, RecordBatch, String) {
        let (ours, plan) = run(&session(true, batches.to_vec()).await, sql).await;
        let (theirs, _) = run(&session(false, batches.to_vec()).await, sql).await;
        let concat =
            |b: &[RecordBatch]| datafusion::arrow::compute::concat_batches(&b[0].schema(), b).unwrap();
        (concat(&ours), concat(&theirs), plan)
    }

    #[tokio::test]
    async fn the_same_rows_as_datafusions_operator_across_batches() {
        let rows: Vec<(Option<u8>, i64, Option<f64>)> = (0..200)
            .map(|i| {
                let g = (i % 7 != 3).then_some((i / 11) as u8);
                let v = (i % 5 != 0).then_some(i as f64 * 0.25);
                (g, (i / 37) as i64, v)
            })
            .collect();
        let batches = table(&rows, &[1, 2, 3, 50, 51, 90, 133, 199]);
        let (ours, theirs, plan) = both(&batches, LAGS).await;
        assert!(
            plan.contains("SortedLagExec") && !plan.contains("BoundedWindowAggExec"),
            "{plan}"
        );
        assert_eq!(ours, theirs);
        // The first rows of the first partition (g null sorts first) take the default.
        let b = ours
            .column_by_name("b")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!((b.value(0), b.value(1)), (-1.5, -1.5));
        // Orders DataFusion sorts for first (the operator runs on the sort's output), and the
        // largest offset it takes, past every partition.
        for sql in [
            "SELECT g, s, LAG(v, 2) OVER (PARTITION BY g ORDER BY s DESC) AS a FROM t",
            "SELECT g, s, LAG(g) OVER (PARTITION BY v ORDER BY s) AS a FROM t",
            // An offset past every partition: the default throughout.
            "SELECT g, s, LAG(v, 8192, 7.0) OVER (PARTITION BY g ORDER BY s) AS a FROM t",
        ] {
            let (ours, theirs, plan) = both(&batches, sql).await;
            assert!(plan.contains("SortedLagExec"), "{plan}");
            assert_eq!(ours, theirs, "{sql}");
        }
    }

    #[tokio::test]
    async fn ignore_nulls_lead_and_other_functions_stay_with_datafusion() {
        let rows: Vec<_> = (0..20)
            .map(|i| (Some((i / 4) as u8), 0, Some(i as f64)))
            .collect();
        let ctx = session(true, table(&rows, &[5])).await;
        for sql in [
            "SELECT LAG(v) IGNORE NULLS OVER (PARTITION BY g ORDER BY s) FROM t",
            "SELECT LEAD(v) OVER (PARTITION BY g ORDER BY s) FROM t",
            "SELECT LAG(v, 0) OVER (PARTITION BY g ORDER BY s) FROM t",
            "SELECT LAG(v, 8193) OVER (PARTITION BY g ORDER BY s) FROM t",
            "SELECT LAG(v, 2000000000000) OVER (PARTITION BY g ORDER BY s) FROM t",
            "SELECT LAG(v) OVER w, ROW_NUMBER() OVER w FROM t WINDOW w AS (PARTITION BY g ORDER BY s)",
            "SELECT ROW_NUMBER() OVER (PARTITION BY g ORDER BY s) FROM t",
        ] {
            let (_, plan) = run(&ctx, sql).await;
            assert!(!plan.contains("SortedLagExec"), "{sql}: {plan}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_rows_and_batches_give_datafusions_values(
            rows in proptest::collection::vec(
                (proptest::option::weighted(0.9, 0u8..6), 0i64..3, proptest::option::weighted(0.8, -5.0f64..5.0)),
                1..120,
            ),
            cuts in proptest::collection::vec(0usize..130, 0..8),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let batches = table(&rows, &cuts);
            let (ours, theirs) = rt.block_on(async {
                let a = run(&session(true, batches.clone()).await, LAGS).await.0;
                let b = run(&session(false, batches).await, LAGS).await.0;
                (a, b)
            });
            let concat = |b: &[RecordBatch]| datafusion::arrow::compute::concat_batches(&b[0].schema(), b).unwrap();
            prop_assert_eq!(concat(&ours), concat(&theirs));
        }
    }
}
