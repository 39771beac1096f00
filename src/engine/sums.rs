//! `checked_sum(x)`: the sum of BIGINT (or UBIGINT) values, added as 128-bit integers and given
//! back in their type, an error where the sum is past the type's range. DataFusion's `sum`
//! wrapped there without a word; [`segscore_plan::arithmetic::CheckedSums`] plans an integer
//! `sum`, an aggregate or a window function, as this one (under the `sum`'s name). A group, a
//! table or a window's frame of no non-null value sums to NULL, as `sum` does.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Decimal128Array, Int64Array, PrimitiveArray,
    UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type, UInt64Type};
use datafusion::common::{plan_err, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// The sum's state between partitions: a 128-bit integer, NULL before any value.
const STATE: DataType = DataType::Decimal128(38, 0);

/// The function ([module docs](self)).
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedSum {
    signature: Signature,
}

impl AggregateUDFImpl for CheckedSum {
    fn name(&self) -> &str {
        "checked_sum"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [t @ (DataType::Int64 | DataType::UInt64)] => Ok(vec![t.clone()]),
            _ => plan_err!("checked_sum(x) takes one BIGINT or UBIGINT, not {args:?}"),
        }
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "sum"),
            STATE,
            true,
        ))])
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Sum {
            to: args.return_field.data_type().clone(),
            sum: 0,
            count: 0,
        }))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(GroupSums {
            to: args.return_field.data_type().clone(),
            sums: vec![],
            seen: vec![],
        }))
    }
}

/// `f` of `values` (BIGINT, UBIGINT or the state's DECIMAL) as the arrow array of its type,
/// whose values are 128-bit integers at most: one loop per type, compiled for it.
fn with_values<R>(values: &ArrayRef, f: impl Wide<R>) -> Result<R> {
    Ok(match values.data_type() {
        DataType::Int64 => f.apply(values.as_primitive::<Int64Type>()),
        DataType::UInt64 => f.apply(values.as_primitive::<UInt64Type>()),
        DataType::Decimal128(..) => f.apply(values.as_primitive::<Decimal128Type>()),
        t => return Err(DataFusionError::Internal(format!("checked_sum of {t}"))),
    })
}

/// A computation over an array of integers that fit in 128 bits.
trait Wide<R> {
    fn apply<T>(self, values: &PrimitiveArray<T>) -> R
    where
        T: ArrowPrimitiveType,
        T::Native: Into<i128>;
}

/// Whether `row` passes `filter` (every row without one): a groups accumulator's FILTER test.
pub(crate) fn kept(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// `sums` (NULL where `nulls` says) in `to`, or the error for the first one past its range.
fn narrowed(sums: &[i128], nulls: Option<NullBuffer>, to: &DataType) -> Result<ArrayRef> {
    let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
    if let Some((_, &s)) = sums.iter().enumerate().find(|&(i, &s)| valid(i) && !fits(s, to)) {
        return Err(past(s, to));
    }
    // Past the check, every valid sum fits; a NULL one's slot holds a 0.
    Ok(match to {
        DataType::UInt64 => Arc::new(UInt64Array::new(
            sums.iter().map(|&s| u64::try_from(s).unwrap_or(0)).collect(),
            nulls,
        )),
        _ => Arc::new(Int64Array::new(
            sums.iter().map(|&s| i64::try_from(s).unwrap_or(0)).collect(),
            nulls,
        )),
    })
}

/// The error for a sum past `to`'s range.
fn past(sum: i128, to: &DataType) -> DataFusionError {
    DataFusionError::Execution(format!(
        "integer overflow: a sum is {sum}, past {to}'s range; sum(x::DECIMAL(38, 0)) gives it"
    ))
}

/// Whether `sum` fits `to` (BIGINT or UBIGINT).
fn fits(sum: i128, to: &DataType) -> bool {
    match to {
        DataType::UInt64 => u64::try_from(sum).is_ok(),
        _ => i64::try_from(sum).is_ok(),
    }
}

/// One sum (an aggregate without groups, or a window's frame), and how many values it holds
/// (a window's frame takes values back as it slides; none is NULL).
#[derive(Debug)]
struct Sum {
    to: DataType,
    sum: i128,
    count: u64,
}

impl Sum {
    /// The values' sum and count, added (`sign` 1) or taken back (-1).
    fn add(&mut self, values: &ArrayRef, sign: i128) -> Result<()> {
        /// The values' sum and count.
        struct Total;
        impl Wide<(i128, u64)> for Total {
            fn apply<T>(self, values: &PrimitiveArray<T>) -> (i128, u64)
            where
                T: ArrowPrimitiveType,
                T::Native: Into<i128>,
            {
                // An i128 holds the sum of 2^63 values of 2^64 at most: more rows than a table has.
                let count = (values.len() - values.null_count()) as u64;
                match values.nulls() {
                    None => (values.values().iter().map(|&v| v.into()).sum(), count),
                    Some(_) => (values.iter().flatten().map(Into::into).sum(), count),
                }
            }
        }
        let (total, count) = with_values(values, Total)?;
        self.sum += sign * total;
        self.count = if sign > 0 {
            self.count + count
        } else {
            self.count.saturating_sub(count)
        };
        Ok(())
    }
}

impl Accumulator for Sum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], 1)
    }
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], -1)
    }
    fn supports_retract_batch(&self) -> bool {
        true
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let sum = (self.count > 0).then_some(self.sum);
        Ok(vec![ScalarValue::Decimal128(sum, 38, 0)])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        // Once per row of a window: a scalar, no array.
        if self.count == 0 {
            return ScalarValue::try_from(&self.to);
        }
        if !fits(self.sum, &self.to) {
            return Err(past(self.sum, &self.to));
        }
        Ok(match self.to {
            DataType::UInt64 => ScalarValue::UInt64(Some(self.sum as u64)),
            _ => ScalarValue::Int64(Some(self.sum as i64)),
        })
    }
    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// A sum per group, and whether the group has had a value.
#[derive(Debug)]
struct GroupSums {
    to: DataType,
    sums: Vec<i128>,
    seen: Vec<bool>,
}

impl GroupSums {
    /// Adds `values` (of the input or the state) to their groups, where `filter` holds.
    fn add(
        &mut self,
        values: &ArrayRef,
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total: usize,
    ) -> Result<()> {
        /// The values added to the sums of their groups.
        struct Add<'a> {
            sums: &'a mut [i128],
            seen: &'a mut [bool],
            groups: &'a [usize],
            filter: Option<&'a BooleanArray>,
        }
        impl Wide<()> for Add<'_> {
            fn apply<T>(self, values: &PrimitiveArray<T>)
            where
                T: ArrowPrimitiveType,
                T::Native: Into<i128>,
            {
                if values.nulls().is_none() && self.filter.is_none() {
                    for (&g, &v) in self.groups.iter().zip(values.values()) {
                        self.sums[g] += v.into();
                        self.seen[g] = true;
                    }
                    return;
                }
                for (row, &g) in self.groups.iter().enumerate() {
                    if values.is_valid(row) && kept(self.filter, row) {
                        self.sums[g] += values.value(row).into();
                        self.seen[g] = true;
                    }
                }
            }
        }
        self.sums.resize(total, 0);
        self.seen.resize(total, false);
        let add = Add {
            sums: &mut self.sums,
            seen: &mut self.seen,
            groups,
            filter,
        };
        with_values(values, add)
    }

    /// The sums `emit_to` takes, and which of them have had no value (NULL).
    fn take(&mut self, emit_to: EmitTo) -> (Vec<i128>, Option<NullBuffer>) {
        let sums = emit_to.take_needed(&mut self.sums);
        let seen = emit_to.take_needed(&mut self.seen);
        let nulls = NullBuffer::from(seen);
        (sums, (nulls.null_count() > 0).then_some(nulls))
    }
}

impl GroupsAccumulator for GroupSums {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.add(&values[0], group_indices, opt_filter, total_num_groups)
    }
    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.add(&values[0], group_indices, None, total_num_groups)
    }
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        /// Each row its own group: its value, NULL where it is NULL or filtered out.
        struct States<'a>(Option<&'a BooleanArray>);
        impl Wide<Decimal128Array> for States<'_> {
            fn apply<T>(self, values: &PrimitiveArray<T>) -> Decimal128Array
            where
                T: ArrowPrimitiveType,
                T::Native: Into<i128>,
            {
                let nulls = (0..values.len()).map(|row| values.is_valid(row) && kept(self.0, row));
                let nulls = NullBuffer::from_iter(nulls);
                let nulls = (nulls.null_count() > 0).then_some(nulls);
                Decimal128Array::new(values.values().iter().map(|&v| v.into()).collect(), nulls)
            }
        }
        let state = with_values(&values[0], States(opt_filter))?;
        Ok(vec![Arc::new(state.with_precision_and_scale(38, 0)?)])
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (sums, nulls) = self.take(emit_to);
        narrowed(&sums, nulls, &self.to)
    }
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (sums, nulls) = self.take(emit_to);
        Ok(vec![Arc::new(
            Decimal128Array::new(sums.into(), nulls).with_precision_and_scale(38, 0)?,
        )])
    }
    fn size(&self) -> usize {
        self.sums.capacity() * 16 + self.seen.capacity()
    }
}

/// `checked_sum`: the session's integer `sum` ([`super::context::session_context`]), registered
/// with segscore's functions too (a cluster's executors find it by name).
pub fn udaf() -> AggregateUDF {
    AggregateUDF::from(CheckedSum {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_sums_add_past_bigint_and_refuse_what_does_not_fit() {
        let mut g = GroupSums {
            to: DataType::Int64,
            sums: vec![],
            seen: vec![],
        };
        let big: ArrayRef = Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(5), None, Some(-10)]));
        g.update_batch(&[big], &[0, 0, 1, 0], None, 3).unwrap();
        let out = g.evaluate(EmitTo::First(2)).unwrap();
        let out = out.as_primitive::<Int64Type>();
        assert_eq!(out.value(0), i64::MAX - 5);
        assert!(out.is_null(1));
        let one: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX, 1]));
        g.update_batch(&[one], &[0, 0], None, 1).unwrap();
        let e = g.evaluate(EmitTo::All).unwrap_err().to_string();
        assert!(
            e.contains("a sum is 9223372036854775808, past Int64's range"),
            "{e}"
        );
    }
}
