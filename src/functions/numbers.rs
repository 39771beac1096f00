//! DuckDB's number functions that DataFusion has none for: `skewness(x)`, `kurtosis(x)` and
//! `kurtosis_pop(x)` (a residual's shape beside its mean and deviation), `isinf(x)`,
//! `isfinite(x)`, and `divide(x, y)`, the integer division (`x // y` is planned as it:
//! [`segscore_plan::division`]). The moments are running central moments, merged across partitions by
//! Pébay's formulas, not the power sums DuckDB keeps, which lose digits to cancellation when
//! the mean is large against the spread.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

use crate::engine::distinct;

/// Which moment statistic.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    /// The sample skewness (the adjusted Fisher-Pearson coefficient, as DuckDB, Excel and
    /// pandas compute it): NULL for 2 values or fewer.
    Skewness,
    /// The sample excess kurtosis (DuckDB's, pandas'): NULL for 3 values or fewer.
    Kurtosis,
    /// The population excess kurtosis: NULL for no value.
    KurtosisPop,
}

/// `skewness`, `kurtosis` or `kurtosis_pop` of a column's non-null values (cast to DOUBLE);
/// NaN where every value is the same, as in DuckDB.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Shape {
    kind: Kind,
    signature: Signature,
}

impl AggregateUDFImpl for Shape {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Skewness => "skewness",
            Kind::Kurtosis => "kurtosis",
            Kind::KurtosisPop => "kurtosis_pop",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let plain = Box::new(MomentsOf {
            kind: self.kind,
            m: Moments::default(),
        });
        distinct::or_plain(&args, plain)
    }
    /// Over a sliding window frame ([`FrameMoments`]).
    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct {
            return self.accumulator(args);
        }
        Ok(Box::new(FrameMoments {
            kind: self.kind,
            values: VecDeque::new(),
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if args.is_distinct {
            return Ok(distinct::state_fields(&args));
        }
        let mut fields = vec![Arc::new(Field::new(
            format_state_name(args.name, "n"),
            DataType::UInt64,
            true,
        ))];
        for m in ["mean", "m2", "m3", "m4"] {
            fields.push(Arc::new(Field::new(
                format_state_name(args.name, m),
                DataType::Float64,
                true,
            )));
        }
        Ok(fields)
    }
}

/// Count, mean and the sums of the 2nd to 4th powers of the deviations from the mean.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
    m3: f64,
    m4: f64,
}

impl Moments {
    /// With one more value (Welford's update, to the fourth moment).
    fn add(&mut self, x: f64) {
        let n1 = self.n as f64;
        self.n += 1;
        let n = self.n as f64;
        let delta = x - self.mean;
        let delta_n = delta / n;
        let delta_n2 = delta_n * delta_n;
        let term = delta * delta_n * n1;
        self.mean += delta_n;
        self.m4 +=
            term * delta_n2 * (n * n - 3.0 * n + 3.0) + 6.0 * delta_n2 * self.m2 - 4.0 * delta_n * self.m3;
        self.m3 += term * delta_n * (n - 2.0) - 3.0 * delta_n * self.m2;
        self.m2 += term;
    }

    /// Both sets of values' moments (Pébay 2008).
    fn merge(&mut self, b: Moments) {
        if b.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = b;
            return;
        }
        let a = *self;
        let (na, nb) = (a.n as f64, b.n as f64);
        let n = na + nb;
        let delta = b.mean - a.mean;
        let (d2, d3, d4) = (
            delta * delta,
            delta * delta * delta,
            delta * delta * delta * delta,
        );
        self.n = a.n + b.n;
        self.mean = a.mean + delta * nb / n;
        self.m2 = a.m2 + b.m2 + d2 * na * nb / n;
        self.m3 =
            a.m3 + b.m3 + d3 * na * nb * (na - nb) / (n * n) + 3.0 * delta * (na * b.m2 - nb * a.m2) / n;
        self.m4 = a.m4
            + b.m4
            + d4 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
            + 6.0 * d2 * (na * na * b.m2 + nb * nb * a.m2) / (n * n)
            + 4.0 * delta * (na * b.m3 - nb * a.m3) / n;
    }

    /// The statistic, `None` (NULL) where there are too few values or they do not vary, as in
    /// DuckDB 2.0.1 (a variance below the rounding of the mean is none).
    fn statistic(&self, kind: Kind) -> Option<f64> {
        let n = self.n as f64;
        // The population's central moments.
        let (m2, m3, m4) = (self.m2 / n, self.m3 / n, self.m4 / n);
        if m2 <= (f64::EPSILON * self.mean).powi(2) {
            return None;
        }
        match kind {
            Kind::Skewness if self.n > 2 => Some((n * (n - 1.0)).sqrt() / (n - 2.0) * m3 / m2.powf(1.5)),
            Kind::Kurtosis if self.n > 3 => {
                Some((n - 1.0) * ((n + 1.0) * m4 / (m2 * m2) - 3.0 * (n - 1.0)) / ((n - 2.0) * (n - 3.0)))
            }
            Kind::KurtosisPop if self.n > 0 => Some(m4 / (m2 * m2) - 3.0),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct MomentsOf {
    kind: Kind,
    m: Moments,
}

impl Accumulator for MomentsOf {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for x in values[0].as_primitive::<Float64Type>().iter().flatten() {
            self.m.add(x);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states[0].as_primitive::<UInt64Type>();
        let f = |i: usize| states[i].as_primitive::<Float64Type>();
        let (mean, m2, m3, m4) = (f(1), f(2), f(3), f(4));
        for row in 0..n.len() {
            self.m.merge(Moments {
                n: n.value(row),
                mean: mean.value(row),
                m2: m2.value(row),
                m3: m3.value(row),
                m4: m4.value(row),
            });
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let m = self.m;
        Ok(vec![
            ScalarValue::UInt64(Some(m.n)),
            ScalarValue::Float64(Some(m.mean)),
            ScalarValue::Float64(Some(m.m2)),
            ScalarValue::Float64(Some(m.m3)),
            ScalarValue::Float64(Some(m.m4)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.m.statistic(self.kind)))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// The statistic over a sliding window's frame: the frame's values, first to last, and their
/// moments computed afresh at each evaluation. Undoing one value's update of the running
/// moments instead lost every digit where a value far larger than the others left the frame
/// (1e10 beside 1 to 5: the skewness of 1, 2, 3 came out as 4.9e13).
#[derive(Debug)]
struct FrameMoments {
    kind: Kind,
    values: VecDeque<f64>,
}

impl FrameMoments {
    fn moments(&self) -> Moments {
        let mut m = Moments::default();
        self.values.iter().for_each(|&x| m.add(x));
        m
    }
}

impl Accumulator for FrameMoments {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        (self.values).extend(values[0].as_primitive::<Float64Type>().iter().flatten());
        Ok(())
    }

    /// Values leaving the frame: its first ones.
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let leaving = values[0].len() - values[0].null_count();
        self.values.drain(..leaving.min(self.values.len()));
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    /// A window's frame is not merged; its moments are its state all the same.
    fn merge_batch(&mut self, _states: &[ArrayRef]) -> Result<()> {
        exec_err!("{:?} over a window's frame takes no other state", self.kind)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        MomentsOf {
            kind: self.kind,
            m: self.moments(),
        }
        .state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.moments().statistic(self.kind)))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.capacity() * 8
    }
}

/// DuckDB's `isinf(x)` and `isfinite(x)` of a number (cast to DOUBLE); NULL for NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Finite {
    /// `isfinite`, else `isinf`.
    finite: bool,
    signature: Signature,
}

impl ScalarUDFImpl for Finite {
    fn name(&self) -> &str {
        if self.finite {
            "isfinite"
        } else {
            "isinf"
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = args.args[0].to_array(args.number_rows)?;
        let values = values.as_primitive::<Float64Type>();
        let out: BooleanArray = (values.iter())
            .map(|x| {
                x.map(|x| {
                    if self.finite {
                        x.is_finite()
                    } else {
                        x.is_infinite()
                    }
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// DuckDB's `divide(x, y)`, `x // y`: of two integers their quotient toward zero, in the
/// type both are coerced to for `/` (`7 // 2` is 3, `-7 // 2` is -3); of other numbers (a
/// float, a decimal), the quotient as DOUBLE (`7.5 // 2` is 3.75, as in DuckDB). A division by
/// zero of integers is an error, as in DuckDB; NULL for NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Divide {
    signature: Signature,
}

impl ScalarUDFImpl for Divide {
    fn name(&self) -> &str {
        "divide"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [a, b] = args else {
            return plan_err!("divide(x, y) (x // y) takes two numbers, not {}", args.len());
        };
        let numeric = |t: &DataType| t.is_numeric() || t.is_null();
        if !numeric(a) || !numeric(b) {
            return plan_err!("x // y (divide) takes two numbers, not {a} and {b}");
        }
        let integer = |t: &DataType| t.is_integer() || t.is_null();
        if integer(a) && integer(b) {
            let (a, b) = BinaryTypeCoercer::new(a, &Operator::Divide, b).get_input_types()?;
            return Ok(vec![a, b]);
        }
        Ok(vec![DataType::Float64, DataType::Float64])
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [a, b] = ColumnarValue::values_to_arrays(&args.args)?
            .try_into()
            .map_err(|_| DataFusionError::Internal("divide takes two arguments".into()))?;
        let quotient = numeric::div(&a, &b).map_err(|e| match e {
            ArrowError::DivideByZero => {
                DataFusionError::Execution("x // y (divide): a division by zero".into())
            }
            e => DataFusionError::Execution(format!("x // y (divide): {e}")),
        })?;
        Ok(ColumnarValue::Array(quotient))
    }
}

/// `divide` (`x // y`).
pub(super) fn divide_udf() -> ScalarUDF {
    ScalarUDF::from(Divide {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// `skewness`, `kurtosis`, `kurtosis_pop`.
pub(super) fn udafs() -> [AggregateUDF; 3] {
    [Kind::Skewness, Kind::Kurtosis, Kind::KurtosisPop].map(|kind| {
        AggregateUDF::from(Shape {
            kind,
            signature: Signature::uniform(1, vec![DataType::Float64], Volatility::Immutable),
        })
    })
}

/// `isinf`, `isfinite`.
pub(super) fn udfs() -> [ScalarUDF; 2] {
    [false, true].map(|finite| {
        ScalarUDF::from(Finite {
            finite,
            signature: Signature::uniform(1, vec![DataType::Float64], Volatility::Immutable),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::{Kind, Moments};

    fn of(values: &[f64]) -> Moments {
        let mut m = Moments::default();
        values.iter().for_each(|&x| m.add(x));
        m
    }

    #[test]
    fn moments_merge_as_one_pass_and_match_the_textbook() {
        let values = [1.0, 2.0, 4.0, 8.0, 16.0, 3.0];
        let whole = of(&values);
        let mut parts = of(&values[..2]);
        parts.merge(of(&values[2..]));
        parts.merge(Moments::default());
        for kind in [Kind::Skewness, Kind::Kurtosis, Kind::KurtosisPop] {
            let (a, b) = (whole.statistic(kind).unwrap(), parts.statistic(kind).unwrap());
            assert!((a - b).abs() < 1e-12, "{kind:?}: {a} {b}");
        }
        // pandas: Series([1, 2, 4, 8, 16, 3]).skew() and .kurt().
        assert!((whole.statistic(Kind::Skewness).unwrap() - 1.600262011136485).abs() < 1e-12);
        assert!((whole.statistic(Kind::Kurtosis).unwrap() - 2.3356704251651847).abs() < 1e-12);
        assert_eq!(of(&[1.0, 2.0]).statistic(Kind::Skewness), None);
        // No spread: NULL, as DuckDB 2.0.1 gives (pandas gives NaN).
        assert_eq!(of(&[5.0; 4]).statistic(Kind::Kurtosis), None);
        assert_eq!(of(&[5.0]).statistic(Kind::KurtosisPop), None);
        // A large mean against the spread: power sums lose every digit here.
        let shifted: Vec<f64> = values.iter().map(|x| x + 1e9).collect();
        let s = of(&shifted).statistic(Kind::Skewness).unwrap();
        assert!((s - 1.600262011136485).abs() < 1e-6, "{s}");
    }
}
