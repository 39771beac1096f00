//! DuckDB's `quantile_disc(x, q)` (and its `quantile`): the value at a quantile of a column,
//! one of its own values, of any type arrow sorts (numbers, texts, dates), or a list of them for
//! a list of quantiles; and the SQL standard's `percentile_disc(q) WITHIN GROUP (ORDER BY x
//! [DESC])`, DuckDB's and PostgreSQL's spelling of it. `quantile_cont` (`percentile_cont`), which
//! interpolates between two values, exactly, in place of DataFusion's (which cut the fraction to
//! 6 decimals).
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, RecordBatch,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::{concat, filter, is_not_null, sort_to_indices, SortOptions};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Schema};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator, Signature,
    Volatility,
};

/// `quantile_disc(x, q)`: of the `n` non-null values in ascending order, the one at 0-based
/// position `ceil(q·n) − 1` (at least 0), DuckDB's and PostgreSQL's `percentile_disc`: the
/// first value at or past the fraction `q` of the values. `q` is a constant from 0 to 1, or a
/// list of them (`[0.25, 0.5, 0.75]`), which gives a list. NULL where every value is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct QuantileDisc {
    name: &'static str,
    signature: Signature,
}

/// Whether `t` is a list of quantiles.
fn listed(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    )
}

impl AggregateUDFImpl for QuantileDisc {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [t, q] = args else {
            return plan_err!("{}(x, quantile) takes two arguments", self.name);
        };
        let value = match t {
            DataType::Dictionary(_, values) => values.as_ref().clone(),
            t => t.clone(),
        };
        let q = quantile_type(self.name, q)?;
        Ok(vec![value, q])
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match args {
            [t, q] if listed(q) => DataType::new_list(t.clone(), true),
            [t, ..] => t.clone(),
            [] => return plan_err!("{}(x, quantile) takes two arguments", self.name),
        })
    }
    fn supports_within_group_clause(&self) -> bool {
        true
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (quantiles, list) = quantiles(self.name, &args)?;
        Ok(Box::new(Values {
            value_type: args.expr_fields[0].data_type().clone(),
            quantiles,
            list,
            // `WITHIN GROUP (ORDER BY x DESC)`: the fraction is counted from the greatest.
            descending: args.order_bys.first().is_some_and(|o| o.options.descending),
            arrays: vec![],
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new_list(
            format_state_name(args.name, "values"),
            Field::new_list_field(args.input_fields[0].data_type().clone(), true),
            true,
        ))])
    }
}

/// The constant quantile (or list of them) of a call's second argument, and whether it was a
/// list; refused naming `name` when it is no constant from 0 to 1.
fn quantiles(name: &str, args: &AccumulatorArgs) -> Result<(Vec<f64>, bool)> {
    let constant = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let refuse = |what: String| {
        plan_err!("{name}: the quantile is a constant from 0 to 1 or a list of them, not {what}")
    };
    let q = match args.exprs[1].evaluate(&constant) {
        Ok(ColumnarValue::Scalar(q)) => q,
        _ => return refuse("a column".into()),
    };
    let (quantiles, list) = match q {
        ScalarValue::Float64(Some(q)) => (vec![q], false),
        ScalarValue::List(l) if l.len() == 1 && !l.is_null(0) => {
            let items = l.value(0);
            let items = items.as_primitive::<Float64Type>();
            if items.null_count() > 0 || items.is_empty() {
                return refuse("a list with a NULL or nothing in it".into());
            }
            (items.values().to_vec(), true)
        }
        other => return refuse(other.to_string()),
    };
    if let Some(q) = quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
        return refuse(q.to_string());
    }
    Ok((quantiles, list))
}

/// The quantile argument's type as the functions take it: DOUBLE, or a list of DOUBLE.
fn quantile_type(name: &str, q: &DataType) -> Result<DataType> {
    match q {
        q if q.is_numeric() => Ok(DataType::Float64),
        q if listed(q) => Ok(DataType::new_list(DataType::Float64, true)),
        q => plan_err!("{name}: the quantile is a number from 0 to 1 or a list of them, not {q}"),
    }
}

/// A group's non-null values, as the batches brought them.
#[derive(Debug)]
struct Values {
    value_type: DataType,
    quantiles: Vec<f64>,
    /// The quantiles were a list: the result is one.
    list: bool,
    /// The values are counted in descending order.
    descending: bool,
    arrays: Vec<ArrayRef>,
}

impl Values {
    fn add(&mut self, values: &ArrayRef) -> Result<()> {
        let kept = match values.null_count() {
            0 => values.clone(),
            _ => filter(values, &is_not_null(values)?)?,
        };
        if !kept.is_empty() {
            self.arrays.push(kept);
        }
        Ok(())
    }

    /// Every value in one array.
    fn all(&self) -> Result<ArrayRef> {
        let arrays: Vec<&dyn Array> = self.arrays.iter().map(|a| a.as_ref()).collect();
        Ok(match arrays.len() {
            0 => datafusion::arrow::array::new_empty_array(&self.value_type),
            _ => concat(&arrays)?,
        })
    }
}

impl Accumulator for Values {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for row in 0..lists.len() {
            if !lists.is_null(row) {
                self.add(&lists.value(row))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            SingleRowListArrayBuilder::new(self.all()?).build_list_scalar()
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let all = self.all()?;
        let n = all.len();
        if n == 0 {
            let t = match self.list {
                true => DataType::new_list(self.value_type.clone(), true),
                false => self.value_type.clone(),
            };
            return ScalarValue::try_from(&t);
        }
        let options = SortOptions {
            descending: self.descending,
            nulls_first: false,
        };
        let order = sort_to_indices(&all, Some(options), None)?;
        let at = |q: f64| {
            // DuckDB's `max(1, n − floor(n − q·n)) − 1`, which is `ceil(q·n) − 1` done as it does.
            let n = n as f64;
            let position = (n - (n - q * n).floor()).max(1.0) as usize - 1;
            order.value(position.min(all.len() - 1)) as usize
        };
        let picked: Vec<ScalarValue> = (self.quantiles.iter())
            .map(|&q| ScalarValue::try_from_array(&all, at(q)))
            .collect::<Result<_>>()?;
        Ok(match self.list {
            true => ScalarValue::List(ScalarValue::new_list_nullable(&picked, &self.value_type)),
            false => picked.into_iter().next().expect("one quantile"),
        })
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.quantiles.capacity() * 8
            + self
                .arrays
                .iter()
                .map(|a| a.get_array_memory_size())
                .sum::<usize>()
    }
}

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
            if filter.is_none_or(|f| f.is_valid(row) && f.value(row)) {
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
        let kept =
            |row: usize| array.is_valid(row) && opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
        let lengths = (0..array.len()).map(|row| usize::from(kept(row)));
        let values = (0..array.len())
            .filter(|&row| kept(row))
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

/// `quantile_disc`, `quantile`, `percentile_disc` and `quantile_cont` (`percentile_cont`).
pub(super) fn udafs() -> Vec<AggregateUDF> {
    let mut udafs: Vec<AggregateUDF> = ["quantile_disc", "quantile", "percentile_disc"]
        .into_iter()
        .map(|name| {
            AggregateUDF::from(QuantileDisc {
                name,
                signature: Signature::user_defined(Volatility::Immutable),
            })
        })
        .collect();
    udafs.push(AggregateUDF::from(QuantileCont {
        signature: Signature::user_defined(Volatility::Immutable),
        aliases: vec!["percentile_cont".into()],
    }));
    udafs
}
