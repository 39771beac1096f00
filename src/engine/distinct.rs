//! `f(DISTINCT x [, y])` for segscore's aggregates, whose accumulators take every row they are
//! given: DataFusion leaves DISTINCT to each function, and they counted every row without a
//! word (`entropy(DISTINCT x)` was `entropy(x)`). [`Distinct`] gives its accumulator each
//! distinct row of the arguments once, as DuckDB counts them (a row of several arguments is
//! distinct as a whole: `corr(DISTINCT x, y)` takes each `(x, y)` pair once).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{Field, FieldRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::Accumulator;

/// An accumulator that `inner` counts each distinct row of its arguments in once. Its state
/// between partitions is the distinct rows (one list per argument), so a row two partitions
/// both saw still counts once.
#[derive(Debug)]
pub struct Distinct {
    inner: Box<dyn Accumulator>,
    /// The arguments' rows as arrow's row format, which compares them as a whole.
    converter: RowConverter,
    /// The rows given to `inner` so far, in that format.
    seen: HashSet<Box<[u8]>>,
    seen_bytes: usize,
}

impl Distinct {
    /// `inner` (the call's accumulator without DISTINCT), given each distinct row of the call's
    /// arguments once.
    fn new(args: &AccumulatorArgs, inner: Box<dyn Accumulator>) -> Result<Distinct> {
        let fields = args
            .expr_fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()));
        Ok(Distinct {
            inner,
            converter: RowConverter::new(fields.collect())?,
            seen: HashSet::new(),
            seen_bytes: 0,
        })
    }
}

/// The accumulator of a call: `plain` (the function's own), given each distinct row once where
/// the call says DISTINCT.
pub fn or_plain(args: &AccumulatorArgs, plain: Box<dyn Accumulator>) -> Result<Box<dyn Accumulator>> {
    Ok(match args.is_distinct {
        true => Box::new(Distinct::new(args, plain)?),
        false => plain,
    })
}

/// The state of a DISTINCT call: its distinct rows, a list of each argument's values.
pub fn state_fields(args: &StateFieldsArgs) -> Vec<FieldRef> {
    (args.input_fields.iter().enumerate())
        .map(|(i, f)| {
            let item = Field::new_list_field(f.data_type().clone(), true);
            Arc::new(Field::new_list(
                format_state_name(args.name, &format!("distinct_{i}")),
                item,
                true,
            ))
        })
        .collect()
}

impl Accumulator for Distinct {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = self.converter.convert_columns(values)?;
        let mut fresh = vec![];
        for (i, row) in rows.iter().enumerate() {
            if !self.seen.contains(row.as_ref()) {
                self.seen_bytes += row.as_ref().len();
                self.seen.insert(row.as_ref().into());
                fresh.push(i as u32);
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let fresh = UInt32Array::from(fresh);
        let values: Vec<ArrayRef> = (values.iter())
            .map(|v| take(v, &fresh, None))
            .collect::<std::result::Result<_, _>>()?;
        self.inner.update_batch(&values)
    }

    /// Other partitions' distinct rows, each list row one partition's.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists: Vec<_> = states.iter().map(|s| s.as_list::<i32>()).collect();
        for row in 0..lists.first().map_or(0, |l| l.len()) {
            if lists.iter().any(|l| l.is_null(row)) {
                continue;
            }
            let values: Vec<ArrayRef> = lists.iter().map(|l| l.value(row)).collect();
            self.update_batch(&values)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let parser = self.converter.parser();
        let columns = (self.converter).convert_rows(self.seen.iter().map(|row| parser.parse(row)))?;
        Ok(columns
            .into_iter()
            .map(|c| SingleRowListArrayBuilder::new(c).build_list_scalar())
            .collect())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.inner.size()
            + self.converter.size()
            + self.seen_bytes
            + self.seen.capacity() * size_of::<Box<[u8]>>()
    }
}
