//! segscore's metrics as DataFusion aggregate functions, usable in any query that segscore
//! runs (`queries/*.sql`, `--query-file`, `segscore sql`):
//!
//! | function | result |
//! |---|---|
//! | `pearson(pred, target)` | Pearson's correlation |
//! | `spearman(pred, target)` | Spearman's rank correlation (average ranks for ties) |
//! | `kendall_tau(pred, target)` | Kendall's tau-b |
//! | `pairwise_order_accuracy(pred, target)` | share of pairs ordered alike, ties excluded |
//! | `top_segment_match(pred, target)` | is the row with the (unique) top prediction a top-target row |
//! | `rank_metrics(pred, target)` | struct of spearman, kendall_tau, pairwise_order_accuracy |
//! | `loss_share_top(loss, fraction)` | share of the sum carried by the top `fraction` of rows |
//!
//! Rows where an argument is NULL are skipped, as SQL aggregates do. Undefined results are NULL
//! (see [`crate::metrics`]). Each group keeps its values (8 bytes per value and argument) until
//! it is evaluated; that memory is reported to DataFusion's pool, so `--memory-limit` bounds it.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::{plan_err, Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

use crate::engine::distinct;
use crate::engine::sums::kept;
use crate::metrics;

/// Which metric an aggregate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `pearson(pred, target)`
    Pearson,
    /// `spearman(pred, target)`
    Spearman,
    /// `kendall_tau(pred, target)`
    KendallTau,
    /// `pairwise_order_accuracy(pred, target)`
    PairwiseOrderAccuracy,
    /// `top_segment_match(pred, target)`
    TopSegmentMatch,
    /// `rank_metrics(pred, target)`: the three rank metrics from one copy of the values.
    RankMetrics,
    /// `loss_share_top(loss, fraction)`
    LossShareTop,
}

impl Metric {
    /// Every metric, in the order of the table above.
    pub const ALL: [Metric; 7] = [
        Metric::Pearson,
        Metric::Spearman,
        Metric::KendallTau,
        Metric::PairwiseOrderAccuracy,
        Metric::TopSegmentMatch,
        Metric::RankMetrics,
        Metric::LossShareTop,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Pearson => "pearson",
            Metric::Spearman => "spearman",
            Metric::KendallTau => "kendall_tau",
            Metric::PairwiseOrderAccuracy => "pairwise_order_accuracy",
            Metric::TopSegmentMatch => "top_segment_match",
            Metric::RankMetrics => "rank_metrics",
            Metric::LossShareTop => "loss_share_top",
        }
    }

    fn rank_fields() -> Fields {
        ["spearman", "kendall_tau", "pairwise_order_accuracy"]
            .map(|n| Field::new(n, DataType::Float64, true))
            .to_vec()
            .into()
    }

    fn return_type(self) -> DataType {
        match self {
            Metric::TopSegmentMatch => DataType::Boolean,
            Metric::RankMetrics => DataType::Struct(Self::rank_fields()),
            _ => DataType::Float64,
        }
    }
}

/// One of segscore's aggregate functions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MetricUdaf {
    metric: Metric,
    signature: Signature,
}

impl MetricUdaf {
    /// The aggregate for `metric`; both arguments are coerced to DOUBLE.
    pub fn new(metric: Metric) -> Self {
        MetricUdaf {
            metric,
            signature: Signature::uniform(2, vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl MetricUdaf {
    fn fraction(&self, args: &AccumulatorArgs) -> DfResult<f64> {
        if self.metric != Metric::LossShareTop {
            return Ok(0.0);
        }
        let value = args.exprs[1]
            .downcast_ref::<Literal>()
            .map(|l| l.value().clone())
            .and_then(|v| v.cast_to(&DataType::Float64).ok());
        match value {
            Some(ScalarValue::Float64(Some(f))) if f > 0.0 && f <= 1.0 => Ok(f),
            _ => plan_err!(
                "loss_share_top(values, fraction): fraction must be a number literal in (0, 1], e.g. 0.01"
            ),
        }
    }

    fn groups(&self, args: &AccumulatorArgs) -> DfResult<Groups> {
        Ok(Groups {
            metric: self.metric,
            fraction: self.fraction(args)?,
            x: Vec::new(),
            y: Vec::new(),
            bytes: 0,
        })
    }
}

impl AggregateUDFImpl for MetricUdaf {
    fn name(&self) -> &str {
        self.metric.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.metric.return_type())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let plain = Box::new(Single::new(self.groups(&args)?));
        distinct::or_plain(&args, plain)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(self.groups(&args)?))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        if args.is_distinct {
            return Ok(distinct::state_fields(&args));
        }
        Ok(["x", "y"]
            .map(|s| {
                Arc::new(Field::new_list(
                    format_state_name(args.name, s),
                    Field::new_list_field(DataType::Float64, true),
                    true,
                ))
            })
            .to_vec())
    }
}

/// Every segscore aggregate function.
pub fn all() -> Vec<AggregateUDF> {
    Metric::ALL
        .iter()
        .map(|&m| AggregateUDF::from(MetricUdaf::new(m)))
        .collect()
}

/// Every group's values: `x[g]` (and `y[g]` where the metric is over pairs). This is the one
/// implementation; [`Single`] serves it as a plain accumulator (one group).
#[derive(Debug)]
struct Groups {
    metric: Metric,
    fraction: f64,
    x: Vec<Vec<f64>>,
    y: Vec<Vec<f64>>,
    /// Values held, for [`GroupsAccumulator::size`].
    bytes: usize,
}

impl Groups {
    fn pairs(&self) -> bool {
        self.metric != Metric::LossShareTop
    }

    fn grow(&mut self, total: usize) {
        if self.x.len() < total {
            self.x.resize_with(total, Vec::new);
            self.y.resize_with(total, Vec::new);
        }
    }

    /// Adds row `i` of `x` (and `y`) to group `g`, skipping NULLs.
    #[inline]
    fn push(&mut self, g: usize, x: &Float64Array, y: &Float64Array, i: usize) {
        if x.is_null(i) {
            return;
        }
        if self.pairs() {
            if y.is_null(i) {
                return;
            }
            self.y[g].push(y.value(i));
        }
        self.x[g].push(x.value(i));
        self.bytes += if self.pairs() { 16 } else { 8 };
    }

    fn take(&mut self, emit_to: EmitTo) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let x = emit_to.take_needed(&mut self.x);
        let y = emit_to.take_needed(&mut self.y);
        let taken: usize = x.iter().chain(&y).map(|v| v.len() * 8).sum();
        self.bytes = self.bytes.saturating_sub(taken);
        (x, y)
    }
}

/// A metric over (predictions, targets).
type PairMetricFn = dyn Fn(&[f64], &[f64]) -> Option<f64>;

/// Groups' values as one list array (one list per group).
fn lists(groups: Vec<Vec<f64>>) -> ArrayRef {
    let offsets = OffsetBuffer::from_lengths(groups.iter().map(Vec::len));
    let values: Vec<f64> = groups.into_iter().flatten().collect();
    Arc::new(ListArray::new(
        Arc::new(Field::new_list_field(DataType::Float64, true)),
        offsets,
        Arc::new(Float64Array::from(values)),
        None,
    ))
}

/// The metric of each group, from its values (borrowed: evaluating never consumes a group).
fn results<'a>(
    metric: Metric,
    fraction: f64,
    groups: impl Iterator<Item = (&'a [f64], &'a [f64])>,
) -> ArrayRef {
    let groups: Vec<(&[f64], &[f64])> = groups.collect();
    let f64s = |f: &PairMetricFn| -> ArrayRef {
        Arc::new(groups.iter().map(|(a, b)| f(a, b)).collect::<Float64Array>())
    };
    match metric {
        Metric::Pearson => f64s(&metrics::pearson),
        Metric::Spearman => f64s(&metrics::spearman),
        Metric::KendallTau => f64s(&metrics::kendall_tau),
        Metric::PairwiseOrderAccuracy => f64s(&metrics::pairwise_order_accuracy),
        Metric::TopSegmentMatch => Arc::new(
            groups
                .iter()
                .map(|(a, b)| metrics::top_segment_match(a, b))
                .collect::<BooleanArray>(),
        ),
        // top_share sorts its values: it gets a copy.
        Metric::LossShareTop => Arc::new(
            groups
                .iter()
                .map(|(a, _)| metrics::top_share(&mut a.to_vec(), fraction))
                .collect::<Float64Array>(),
        ),
        Metric::RankMetrics => {
            // One sort and one merge sort per group give all three (buffers kept between groups).
            let mut ranker = metrics::Ranker::default();
            let mut cols: [Vec<Option<f64>>; 3] = Default::default();
            for (a, b) in &groups {
                let m = ranker.rank(a, b);
                cols[0].push(m.spearman);
                cols[1].push(m.counts.and_then(|c| c.kendall_tau_b()));
                cols[2].push(m.counts.and_then(|c| c.order_accuracy()));
            }
            let columns: Vec<ArrayRef> = cols
                .into_iter()
                .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef)
                .collect();
            Arc::new(StructArray::new(Metric::rank_fields(), columns, None))
        }
    }
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.grow(total_num_groups);
        let x = values[0].as_primitive::<Float64Type>();
        let y = values[1].as_primitive::<Float64Type>();
        for (i, &g) in group_indices.iter().enumerate() {
            if !kept(opt_filter, i) {
                continue;
            }
            self.push(g, x, y, i);
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.grow(total_num_groups);
        let (xs, ys) = (values[0].as_list::<i32>(), values[1].as_list::<i32>());
        for (row, &g) in group_indices.iter().enumerate() {
            if xs.is_null(row) {
                continue;
            }
            let (x, y) = (xs.value(row), ys.value(row));
            let (x, y) = (x.as_primitive::<Float64Type>(), y.as_primitive::<Float64Type>());
            for i in 0..x.len() {
                self.push(g, x, y, i);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        // Each row its own group.
        let mut rows = Groups {
            metric: self.metric,
            fraction: self.fraction,
            x: Vec::new(),
            y: Vec::new(),
            bytes: 0,
        };
        let n = values[0].len();
        rows.update_batch(values, &(0..n).collect::<Vec<_>>(), opt_filter, n)?;
        rows.state(EmitTo::All)
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let (x, y) = self.take(emit_to);
        Ok(vec![lists(x), lists(y)])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let (x, y) = self.take(emit_to);
        let groups = x.iter().zip(&y).map(|(a, b)| (a.as_slice(), b.as_slice()));
        Ok(results(self.metric, self.fraction, groups))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + (self.x.capacity() + self.y.capacity()) * std::mem::size_of::<Vec<f64>>()
            + self.bytes
    }
}

/// The plain accumulator (no GROUP BY, window use): one group of [`Groups`], whose first
/// `start` values were retracted (a sliding window frame moved past them).
///
/// As a window function DataFusion evaluates it after every row or frame move, so evaluating
/// reads the values without taking them; frames that drop rows from the front retract them.
#[derive(Debug)]
struct Single {
    groups: Groups,
    start: usize,
}

impl Single {
    fn new(mut groups: Groups) -> Self {
        groups.grow(1);
        Single { groups, start: 0 }
    }

    /// The values still in the frame.
    fn live(&self) -> (&[f64], &[f64]) {
        let g = &self.groups;
        let y = if g.pairs() { &g.y[0][self.start..] } else { &[][..] };
        (&g.x[0][self.start..], y)
    }
}

impl Accumulator for Single {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let n = values[0].len();
        self.groups.update_batch(values, &vec![0; n], None, 1)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let n = states[0].len();
        self.groups.merge_batch(states, &vec![0; n], 1)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let (x, y) = self.live();
        [lists(vec![x.to_vec()]), lists(vec![y.to_vec()])]
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let result = results(
            self.groups.metric,
            self.groups.fraction,
            std::iter::once(self.live()),
        );
        ScalarValue::try_from_array(&result, 0)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    /// Drops the oldest values: a window frame retracts rows in the order it added them, and
    /// the rows skipped when added (a NULL argument) are skipped here too.
    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let x = values[0].as_primitive::<Float64Type>();
        let y = values[1].as_primitive::<Float64Type>();
        let pairs = self.groups.pairs();
        let held = self.groups.x[0].len();
        for i in 0..x.len() {
            if x.is_valid(i) && (!pairs || y.is_valid(i)) {
                self.start = (self.start + 1).min(held);
            }
        }
        // Forget retracted values once they are half of what is held.
        if self.start > 64 && self.start * 2 > held {
            let g = &mut self.groups;
            g.x[0].drain(..self.start);
            if pairs {
                g.y[0].drain(..self.start);
            }
            g.bytes = g.bytes.saturating_sub(self.start * if pairs { 16 } else { 8 });
            self.start = 0;
        }
        Ok(())
    }

    fn size(&self) -> usize {
        self.groups.size()
    }
}
