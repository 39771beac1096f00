//! DuckDB's `quantile_disc(x, q)` (and its `quantile`): the value at a quantile of a column,
//! one of its own values, of any type arrow sorts (numbers, texts, dates), or a list of them for
//! a list of quantiles; and the SQL standard's `percentile_disc(q) WITHIN GROUP (ORDER BY x
//! [DESC])`, DuckDB's and PostgreSQL's spelling of it. `quantile_cont` is `quantile_cont.rs`.

use std::sync::Arc;

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{
    concat, filter, is_not_null, partition, sort_to_indices, take, SortOptions,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Schema};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Signature, Volatility,
};

/// `quantile_disc(x, q)`: of the `n` non-null values in ascending order, the one at 0-based
/// position `ceil(q·n) − 1` (at least 0), DuckDB's and PostgreSQL's `percentile_disc`: the
/// first value at or past the fraction `q` of the values. `q` is a constant from 0 to 1, or a
/// list of them (`[0.25, 0.5, 0.75]`), which gives a list; `DISTINCT` counts each value once.
/// NULL where every value is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct QuantileDisc {
    name: &'static str,
    signature: Signature,
}

/// Whether `t` is a list of quantiles.
pub(super) fn listed(t: &DataType) -> bool {
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
        let value = crate::engine::types::value_type(t).clone();
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
        Ok(Box::new(Values::new(&args, quantiles, list)))
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
pub(super) fn quantiles(name: &str, args: &AccumulatorArgs) -> Result<(Vec<f64>, bool)> {
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
pub(super) fn quantile_type(name: &str, q: &DataType) -> Result<DataType> {
    match q {
        q if q.is_numeric() => Ok(DataType::Float64),
        q if listed(q) => Ok(DataType::new_list(DataType::Float64, true)),
        q => plan_err!("{name}: the quantile is a number from 0 to 1 or a list of them, not {q}"),
    }
}

/// A group's non-null values, as the batches brought them.
#[derive(Debug)]
pub(super) struct Values {
    value_type: DataType,
    quantiles: Vec<f64>,
    /// The quantiles were a list: the result is one.
    list: bool,
    /// The values are counted in descending order.
    descending: bool,
    /// `DISTINCT`: each value counts once.
    distinct: bool,
    arrays: Vec<ArrayRef>,
}

impl Values {
    /// The accumulator of a call with these arguments, at these quantiles (a list where `list`).
    pub(super) fn new(args: &AccumulatorArgs, quantiles: Vec<f64>, list: bool) -> Values {
        Values {
            value_type: args.expr_fields[0].data_type().clone(),
            quantiles,
            list,
            // `WITHIN GROUP (ORDER BY x DESC)`: the fraction is counted from the greatest.
            descending: args.order_bys.first().is_some_and(|o| o.options.descending),
            distinct: args.is_distinct,
            arrays: vec![],
        }
    }

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

    /// Values leaving a window's frame: a frame's first rows leave it first, so its first
    /// non-null values held go (the frame is only a window's).
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let mut leaving = values[0].len() - values[0].null_count();
        while leaving > 0 && !self.arrays.is_empty() {
            let first = &self.arrays[0];
            if first.len() <= leaving {
                leaving -= first.len();
                self.arrays.remove(0);
            } else {
                self.arrays[0] = first.slice(leaving, first.len() - leaving);
                leaving = 0;
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
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
        if all.is_empty() {
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
        let sorted = take(&all, &sort_to_indices(&all, Some(options), None)?, None)?;
        // Each run of equal values, once (DataFusion leaves DISTINCT to the accumulator).
        let sorted = match self.distinct {
            true => {
                let runs = partition(std::slice::from_ref(&sorted))?.ranges();
                take(
                    &sorted,
                    &UInt32Array::from_iter_values(runs.iter().map(|r| r.start as u32)),
                    None,
                )?
            }
            false => sorted,
        };
        let n = sorted.len();
        let at = |q: f64| {
            // DuckDB's `max(1, n − floor(n − q·n)) − 1`, which is `ceil(q·n) − 1` done as it does.
            let n = n as f64;
            let position = (n - (n - q * n).floor()).max(1.0) as usize - 1;
            position.min(sorted.len() - 1)
        };
        let picked: Vec<ScalarValue> = (self.quantiles.iter())
            .map(|&q| ScalarValue::try_from_array(&sorted, at(q)))
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

/// `quantile_disc`, `quantile` and `percentile_disc`.
pub(super) fn udafs() -> [AggregateUDF; 3] {
    ["quantile_disc", "quantile", "percentile_disc"].map(|name| {
        AggregateUDF::from(QuantileDisc {
            name,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    })
}
