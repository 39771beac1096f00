//! `quantile_cont(x, q)` (`percentile_cont`), which interpolates between two of a column's
//! values, exactly, in place of DataFusion's (which cut the fraction to 6 decimals and panicked
//! over as many groups as rows); its quantiles are read as `quantile_disc`'s (`quantile.rs`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::quantile::{listed, quantile_type, quantiles};
use crate::engine::sums::kept;

/// `quantile_cont(x, q)`, DuckDB's, and the SQL standard's `percentile_cont(q) WITHIN GROUP
/// (ORDER BY x [DESC])`: of the `n` non-null values in order, the one at 0-based position
/// `r = q·(n − 1)`, or, where `r` falls between two, `lo + (hi − lo)·(r − floor(r))`, as
/// DuckDB, PostgreSQL and numpy interpolate. DataFusion's cut the fraction to 6 decimals, so a
/// quantile between two values 21 apart was 2.1e-5 off. `x` is a number (a DOUBLE result);
/// `q` a constant from 0 to 1, or a list of them, which gives a list; `DISTINCT` takes each
/// value once. NULL where every value is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct QuantileCont {
    signature: Signature,
    aliases: Vec<String>,
}

impl AggregateUDFImpl for QuantileCont {
    fn name(&self) -> &str {
        "quantile_cont"
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [t, q] = args else {
            return plan_err!("quantile_cont(x, quantile) takes two arguments");
        };
        let number = match t {
            DataType::Dictionary(_, values) => values.is_numeric(),
            t => t.is_numeric() || *t == DataType::Null,
        };
        if !number {
            return plan_err!("quantile_cont: x is a number, not {t} (quantile_disc takes any type)");
        }
        Ok(vec![DataType::Float64, quantile_type("quantile_cont", q)?])
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match args {
            [_, q] if listed(q) => DataType::new_list(DataType::Float64, true),
            _ => DataType::Float64,
        })
    }
    fn supports_within_group_clause(&self) -> bool {
        true
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Continuous {
            at: At::of(&args)?,
            values: vec![],
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new_list(
            format_state_name(args.name, "values"),
            Field::new_list_field(DataType::Float64, true),
            true,
        ))])
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(ContinuousGroups {
            at: At::of(&args)?,
            groups: vec![],
            held: 0,
        }))
    }
}

/// Where a continuous quantile is read: the quantiles, the order and whether values count once.
#[derive(Debug)]
struct At {
    quantiles: Vec<f64>,
    /// The quantiles were a list: the result is one.
    list: bool,
    /// `WITHIN GROUP (ORDER BY x DESC)`: the position is counted from the greatest.
    descending: bool,
    distinct: bool,
}

impl At {
    fn of(args: &AccumulatorArgs) -> Result<At> {
        let (quantiles, list) = quantiles("quantile_cont", args)?;
        Ok(At {
            quantiles,
            list,
            descending: args.order_bys.first().is_some_and(|o| o.options.descending),
            distinct: args.is_distinct,
        })
    }

    /// Appends the quantiles of `values` (which it reorders, the same values in them) to
    /// `out`, one per quantile; none, and false, where `values` is empty.
    fn pick(&self, values: &mut [f64], out: &mut Vec<f64>) -> bool {
        // NaN is the greatest, as DuckDB sorts it.
        let descending = self.descending;
        let order = move |a: &f64, b: &f64| match descending {
            false => a.total_cmp(b),
            true => b.total_cmp(a),
        };
        let mut once;
        let sorted = self.distinct || self.quantiles.len() > 1;
        let values = match self.distinct {
            // A copy: a window's frame keeps every value, to take them back one by one.
            true => {
                once = values.to_vec();
                once.sort_unstable_by(order);
                once.dedup_by(|a, b| a == b || (a.is_nan() && b.is_nan()));
                &mut once[..]
            }
            false if sorted => {
                values.sort_unstable_by(order);
                values
            }
            false => values,
        };
        let n = values.len();
        if n == 0 {
            return false;
        }
        for &q in &self.quantiles {
            let r = q * (n - 1) as f64;
            let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
            let (a, b) = match sorted {
                true => (values[lo], values[hi]),
                // One quantile: the value at `lo` in order, and the least after it (O(n)).
                false => {
                    let (_, a, after) = values.select_nth_unstable_by(lo, order);
                    let a = *a;
                    let b = match hi > lo {
                        true => after.iter().copied().min_by(order).unwrap_or(a),
                        false => a,
                    };
                    (a, b)
                }
            };
            out.push(if hi == lo {
                a
            } else {
                a + (b - a) * (r - r.floor())
            });
        }
        true
    }

    /// The call's result for each of `groups`' values: a DOUBLE, or a list where the quantiles
    /// were one (NULL where a group has no value).
    fn results(&self, groups: impl ExactSizeIterator<Item = impl AsMut<[f64]>>) -> ArrayRef {
        let mut out = Vec::with_capacity(groups.len() * self.quantiles.len());
        let held: Vec<bool> = groups
            .map(|mut values| self.pick(values.as_mut(), &mut out))
            .collect();
        match self.list {
            false => {
                let mut out = out.into_iter();
                let values = held.iter().map(|&h| if h { out.next() } else { None });
                Arc::new(values.collect::<Float64Array>())
            }
            true => {
                let lengths = held.iter().map(|&h| if h { self.quantiles.len() } else { 0 });
                let offsets = OffsetBuffer::from_lengths(lengths);
                let field = Arc::new(Field::new_list_field(DataType::Float64, true));
                let values = Arc::new(Float64Array::from(out));
                Arc::new(ListArray::new(
                    field,
                    offsets,
                    values,
                    Some(NullBuffer::from(held)),
                ))
            }
        }
    }
}

/// The non-null values of `array` (DOUBLE), with their rows.
fn doubles(array: &ArrayRef) -> impl Iterator<Item = (usize, f64)> + '_ {
    let array = array.as_primitive::<Float64Type>();
    (0..array.len())
        .filter(|&i| array.is_valid(i))
        .map(|i| (i, array.value(i)))
}

/// The non-null lists of `lists` (lists of DOUBLE: a state), with their rows, each as its
/// non-null values (read from the lists' values in place: a slice per row costs more than
/// the row).
fn listed_doubles(lists: &ArrayRef) -> impl Iterator<Item = (usize, impl Iterator<Item = f64> + '_)> + '_ {
    let lists = lists.as_list::<i32>();
    let items = lists.values().as_primitive::<Float64Type>();
    let offsets = lists.value_offsets();
    (0..lists.len()).filter(|&r| lists.is_valid(r)).map(move |r| {
        let (start, end) = (offsets[r] as usize, offsets[r + 1] as usize);
        let values = (start..end)
            .filter(|&i| items.is_valid(i))
            .map(|i| items.value(i));
        (r, values)
    })
}

/// A list array of lists of these lengths, of `values` in turn (a state).
fn list_array(lengths: impl IntoIterator<Item = usize>, values: Vec<f64>) -> ArrayRef {
    Arc::new(ListArray::new(
        Arc::new(Field::new_list_field(DataType::Float64, true)),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(Float64Array::from(values)),
        None,
    ))
}

/// A list array of `lists` (a state).
fn list_of(lists: Vec<Vec<f64>>) -> ArrayRef {
    let lengths: Vec<usize> = lists.iter().map(Vec::len).collect();
    list_array(lengths, lists.into_iter().flatten().collect())
}

/// One group's (or window frame's) non-null values.
#[derive(Debug)]
struct Continuous {
    at: At,
    values: Vec<f64>,
}

impl Accumulator for Continuous {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.values.extend(doubles(&values[0]).map(|(_, v)| v));
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for (_, values) in listed_doubles(&states[0]) {
            self.values.extend(values);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = list_of(vec![self.values.clone()]);
        Ok(vec![ScalarValue::List(Arc::new(list.as_list::<i32>().clone()))])
    }

    /// A window evaluates its frame again and again: the values stay, in any order.
    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&self.at.results(std::iter::once(&mut self.values[..])), 0)
    }

    /// A value leaving a window's frame (one of each, the same bits).
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for (_, v) in doubles(&values[0]) {
            if let Some(i) = self.values.iter().position(|x| x.to_bits() == v.to_bits()) {
                self.values.swap_remove(i);
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn size(&self) -> usize {
        size_of_val(self) + (self.values.capacity() + self.at.quantiles.capacity()) * 8
    }
}

/// Every group's non-null values, by group index, and how many there are in all.
struct ContinuousGroups {
    at: At,
    groups: Vec<Vec<f64>>,
    held: usize,
}

impl ContinuousGroups {
    /// Adds the values of `rows` to their groups, where `filter` keeps the row.
    fn add<V: IntoIterator<Item = f64>>(
        &mut self,
        rows: impl Iterator<Item = (usize, V)>,
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) {
        self.groups.resize_with(total_num_groups, Vec::new);
        for (row, values) in rows {
            if kept(filter, row) {
                let group = &mut self.groups[group_indices[row]];
                let before = group.len();
                group.extend(values);
                self.held += group.len() - before;
            }
        }
    }

    /// The groups `emit_to` gives up.
    fn take(&mut self, emit_to: EmitTo) -> Vec<Vec<f64>> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.held -= taken.iter().map(Vec::len).sum::<usize>();
        taken
    }
}

impl GroupsAccumulator for ContinuousGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let rows = doubles(&values[0]).map(|(i, v)| (i, std::iter::once(v)));
        self.add(rows, group_indices, opt_filter, total_num_groups);
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.add(listed_doubles(&values[0]), group_indices, None, total_num_groups);
        Ok(())
    }

    /// Each row as a group of its own: a list of its value (none where it is null or the
    /// filter leaves it out).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let array = values[0].as_primitive::<Float64Type>();
        let taken = |row: usize| array.is_valid(row) && kept(opt_filter, row);
        let lengths = (0..array.len()).map(|row| usize::from(taken(row)));
        let values = (0..array.len())
            .filter(|&row| taken(row))
            .map(|row| array.value(row));
        Ok(vec![list_array(lengths, values.collect())])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to);
        Ok(self.at.results(taken.into_iter()))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![list_of(self.take(emit_to))])
    }

    /// An estimate in O(1), as DataFusion asks: the values held, and a list per group.
    fn size(&self) -> usize {
        size_of_val(self) + self.groups.capacity() * size_of::<Vec<f64>>() + self.held * 8
    }
}

/// `quantile_cont` and its name `percentile_cont`.
pub(super) fn udaf() -> AggregateUDF {
    AggregateUDF::from(QuantileCont {
        signature: Signature::user_defined(Volatility::Immutable),
        aliases: vec!["percentile_cont".into()],
    })
}
