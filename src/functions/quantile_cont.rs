//! `quantile_cont(x, q)` (`percentile_cont`), which interpolates between two of a column's
//! values, exactly, in place of DataFusion's (which cut the fraction to 6 decimals and panicked
//! over as many groups as rows), of numbers and of dates and times, as DuckDB's; its quantiles
//! are read as `quantile_disc`'s (`quantile.rs`). `median(x)`, DuckDB's, is this at 0.5 for
//! dates and times, `quantile_disc`'s for other types that are not numbers, and DataFusion's
//! for numbers.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, TimeUnit};
use datafusion::common::{plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::quantile::{listed, quantile_type, quantiles, Values};
use crate::engine::sums::kept;

/// `quantile_cont(x, q)`, DuckDB's, and the SQL standard's `percentile_cont(q) WITHIN GROUP
/// (ORDER BY x [DESC])`: of the `n` non-null values in order, the one at 0-based position
/// `r = q·(n − 1)`, or, where `r` falls between two, `lo + (hi − lo)·(r − floor(r))`, as
/// DuckDB, PostgreSQL and numpy interpolate. DataFusion's cut the fraction to 6 decimals, so a
/// quantile between two values 21 apart was 2.1e-5 off. `x` is a number (a DOUBLE result), or
/// a timestamp, date or time, interpolated to the microsecond as DuckDB does (a timestamp,
/// with its zone, for a timestamp or a date; a time for a time); `q` a constant from 0 to 1, or
/// a list of them, which gives a list; `DISTINCT` takes each value once. NULL where every value
/// is NULL.
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
        let x = match value_type(t) {
            Some(x) => x,
            None => {
                return plan_err!(
                    "quantile_cont: x is a number, a date or a time, not {t} (quantile_disc takes any type)"
                )
            }
        };
        Ok(vec![x, quantile_type("quantile_cont", q)?])
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match args {
            [x, q] if listed(q) => DataType::new_list(x.clone(), true),
            [x, ..] => x.clone(),
            [] => return plan_err!("quantile_cont(x, quantile) takes two arguments"),
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

/// The type `quantile_cont` reads `t`'s values in, and gives its result in (`None` where it
/// takes no such values): DOUBLE for a number; for a timestamp of any unit or a date, a
/// timestamp in microseconds (with the zone), and a time in microseconds for a time, as DuckDB
/// interpolates them.
fn value_type(t: &DataType) -> Option<DataType> {
    Some(match crate::engine::types::value_type(t) {
        t if t.is_numeric() || *t == DataType::Null => DataType::Float64,
        DataType::Timestamp(_, zone) => DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
        DataType::Date32 | DataType::Date64 => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Time32(_) | DataType::Time64(_) => DataType::Time64(TimeUnit::Microsecond),
        _ => return None,
    })
}

/// The values of `array` (DOUBLE, or microseconds of a time) as DOUBLE: the microseconds are
/// exact below 2^53 (some 285,000 years from 1970).
fn as_doubles(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(match array.data_type() {
        DataType::Float64 => array.clone(),
        _ => cast(&cast(array, &DataType::Int64)?, &DataType::Float64)?,
    })
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
    /// The time type of the values (read as their microseconds), `None` for numbers.
    time: Option<DataType>,
}

impl At {
    fn of(args: &AccumulatorArgs) -> Result<At> {
        let (quantiles, list) = quantiles("quantile_cont", args)?;
        Ok(At::new(args, quantiles, list))
    }

    /// The call's place at `quantiles` (a list where `list`).
    fn new(args: &AccumulatorArgs, quantiles: Vec<f64>, list: bool) -> At {
        let t = args.expr_fields[0].data_type();
        At {
            quantiles,
            list,
            descending: args.order_bys.first().is_some_and(|o| o.options.descending),
            distinct: args.is_distinct,
            time: (*t != DataType::Float64).then(|| t.clone()),
        }
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
                let offset = (b - a) * (r - r.floor());
                // A time's microseconds: the first value's and the offset from it to the
                // nearest microsecond (a half away from zero), as DuckDB 2.0.1 answers.
                a + if self.time.is_some() {
                    offset.round()
                } else {
                    offset
                }
            });
        }
        true
    }

    /// The call's result for each of `groups`' values: a DOUBLE (or the time), or a list where
    /// the quantiles were one (NULL where a group has no value).
    fn results(&self, groups: impl ExactSizeIterator<Item = impl AsMut<[f64]>>) -> Result<ArrayRef> {
        let mut out = Vec::with_capacity(groups.len() * self.quantiles.len());
        let held: Vec<bool> = groups
            .map(|mut values| self.pick(values.as_mut(), &mut out))
            .collect();
        // A time's microseconds (whole: `pick` rounds them) as the time.
        let values = |values: Float64Array| -> Result<(ArrayRef, DataType)> {
            Ok(match &self.time {
                None => (Arc::new(values), DataType::Float64),
                Some(t) => (cast(&cast(&values, &DataType::Int64)?, t)?, t.clone()),
            })
        };
        Ok(match self.list {
            false => {
                let mut out = out.into_iter();
                let each = held.iter().map(|&h| if h { out.next() } else { None });
                values(each.collect())?.0
            }
            true => {
                let lengths = held.iter().map(|&h| if h { self.quantiles.len() } else { 0 });
                let offsets = OffsetBuffer::from_lengths(lengths);
                let (values, t) = values(Float64Array::from(out))?;
                let field = Arc::new(Field::new_list_field(t, true));
                Arc::new(ListArray::new(
                    field,
                    offsets,
                    values,
                    Some(NullBuffer::from(held)),
                ))
            }
        })
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
        self.values
            .extend(doubles(&as_doubles(&values[0])?).map(|(_, v)| v));
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
        ScalarValue::try_from_array(&self.at.results(std::iter::once(&mut self.values[..]))?, 0)
    }

    /// A value leaving a window's frame (one of each, the same bits).
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for (_, v) in doubles(&as_doubles(&values[0])?) {
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
        let values = as_doubles(&values[0])?;
        let rows = doubles(&values).map(|(i, v)| (i, std::iter::once(v)));
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
        let values = as_doubles(&values[0])?;
        let array = values.as_primitive::<Float64Type>();
        let taken = |row: usize| array.is_valid(row) && kept(opt_filter, row);
        let lengths = (0..array.len()).map(|row| usize::from(taken(row)));
        let values = (0..array.len())
            .filter(|&row| taken(row))
            .map(|row| array.value(row));
        Ok(vec![list_array(lengths, values.collect())])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to);
        self.at.results(taken.into_iter())
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

/// DuckDB's `median(x)`: DataFusion's (exact) for numbers; for a timestamp, date or time the
/// `quantile_cont(x, 0.5)` above (the midpoint of the two middle values, a timestamp for
/// dates); for the other types arrow sorts (text, booleans, lists) `quantile_disc(x, 0.5)`, the
/// lower of the two middle values, as DuckDB answers. DataFusion's took numbers alone, and
/// refused a date with "Internal error ... likely caused by a bug in DataFusion's code".
#[derive(Debug, PartialEq, Eq, Hash)]
struct Median {
    signature: Signature,
}

/// How `median` computes a type (the argument's, as [`Median`] coerces it).
#[derive(PartialEq)]
enum Middle {
    /// DataFusion's `median`.
    Number,
    /// `quantile_cont(x, 0.5)`.
    Time,
    /// `quantile_disc(x, 0.5)`.
    Value,
}

fn middle(t: &DataType) -> Middle {
    match value_type(t) {
        Some(DataType::Float64) => Middle::Number,
        Some(_) => Middle::Time,
        None => Middle::Value,
    }
}

/// DataFusion's `median`.
fn numbers() -> Arc<AggregateUDF> {
    datafusion::functions_aggregate::median::median_udaf()
}

impl AggregateUDFImpl for Median {
    fn name(&self) -> &str {
        "median"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [t] = args else {
            return plan_err!("median(x) takes one argument");
        };
        let t = crate::engine::types::value_type(t);
        Ok(vec![match value_type(t) {
            // As DataFusion's takes them: integers as DOUBLE, floats and decimals as they are.
            Some(DataType::Float64) if t.is_floating() || t.is_decimal() => t.clone(),
            Some(x) => x,
            None => t.clone(),
        }])
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [t] => Ok(t.clone()),
            _ => plan_err!("median(x) takes one argument"),
        }
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(match middle(args.expr_fields[0].data_type()) {
            Middle::Number => return numbers().inner().accumulator(args),
            Middle::Time => Box::new(Continuous {
                at: At::new(&args, vec![0.5], false),
                values: vec![],
            }),
            Middle::Value => Box::new(Values::new(&args, vec![0.5], false)),
        })
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = args.input_fields[0].data_type();
        let held = match middle(t) {
            Middle::Number => return numbers().inner().state_fields(args),
            Middle::Time => DataType::Float64,
            Middle::Value => t.clone(),
        };
        Ok(vec![Arc::new(Field::new_list(
            format_state_name(args.name, "values"),
            Field::new_list_field(held, true),
            true,
        ))])
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match middle(args.expr_fields[0].data_type()) {
            Middle::Number => numbers().inner().groups_accumulator_supported(args),
            Middle::Time => true,
            Middle::Value => false,
        }
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        match middle(args.expr_fields[0].data_type()) {
            Middle::Number => numbers().inner().create_groups_accumulator(args),
            _ => Ok(Box::new(ContinuousGroups {
                at: At::new(&args, vec![0.5], false),
                groups: vec![],
                held: 0,
            })),
        }
    }
}

/// DuckDB's `median`, for any type arrow sorts.
pub(super) fn median_udaf() -> AggregateUDF {
    AggregateUDF::from(Median {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}
