//! DataFusion's `array_agg` (DuckDB's `list`), with `array_agg(DISTINCT x ORDER BY x)` in the
//! order it asks for. Where a select has two order-sensitive aggregates in opposite orders
//! (`array_agg(DISTINCT x ORDER BY x DESC), array_agg(DISTINCT x ORDER BY x)`), DataFusion sorts
//! the rows for the first and computes the second "reversed", its ORDER BY turned around and
//! the result to be turned back; its DISTINCT accumulator sorts by that turned ORDER BY and
//! turns nothing back, so both came out in the first one's order, without a word. This one
//! gives the DISTINCT accumulator the ORDER BY as written.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, GroupsAccumulator, ReversedUDAF, Signature,
};
use datafusion::physical_expr::PhysicalSortExpr;

/// DataFusion's `array_agg` ([module docs](self)).
#[derive(Debug)]
struct ArrayAgg {
    inner: Arc<dyn AggregateUDFImpl>,
}

impl PartialEq for ArrayAgg {
    fn eq(&self, other: &Self) -> bool {
        let other: &dyn std::any::Any = other.inner.as_ref();
        self.inner.dyn_eq(other)
    }
}

impl Eq for ArrayAgg {}

impl std::hash::Hash for ArrayAgg {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.dyn_hash(state);
    }
}

impl AggregateUDFImpl for ArrayAgg {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }
    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }
    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        let inner = Arc::clone(&self.inner).with_beneficial_ordering(beneficial)?;
        Ok(inner.map(|inner| Arc::new(ArrayAgg { inner }) as _))
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !(args.is_distinct && args.is_reversed) {
            return self.inner.accumulator(args);
        }
        // The DISTINCT accumulator sorts its values itself: by the ORDER BY as written.
        let written: Vec<PhysicalSortExpr> = args.order_bys.iter().map(|o| o.reverse()).collect();
        self.inner.accumulator(AccumulatorArgs {
            order_bys: &written,
            is_reversed: false,
            ..args
        })
    }
    fn reverse_expr(&self) -> ReversedUDAF {
        match self.inner.reverse_expr() {
            // Its reverse is DataFusion's `array_agg`: this one again.
            ReversedUDAF::Reversed(_) => ReversedUDAF::Reversed(Arc::new(udaf())),
            other => other,
        }
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }
    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }
    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }
    fn default_value(&self, t: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(t)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// `array_agg`, in place of DataFusion's.
pub(super) fn udaf() -> AggregateUDF {
    let inner = datafusion::functions_aggregate::array_agg::array_agg_udaf();
    AggregateUDF::new_from_impl(ArrayAgg {
        inner: Arc::clone(inner.inner()),
    })
}
