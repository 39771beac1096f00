//! `rint(x)`: `x` rounded to an integer, a tie to the even neighbour (`rint(2.5)` is 2,
//! `rint(3.5)` 4, `rint(-2.5)` -2), as C's `rint`, Java's `Math.rint` and Spark's `rint` round;
//! `round(x)` takes a tie away from zero. A float stays a float of its width; any other number
//! is read as a DOUBLE. It is how a cast of a float to an integer rounds ([`crate::casts`]), as
//! in DuckDB and PostgreSQL, whose casts use C's `rint`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::kernels::arity::unary;
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The function's name.
const NAME: &str = "rint";

/// `rint` ([module docs](self)).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Rint {
    signature: Signature,
}

impl ScalarUDFImpl for Rint {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [t @ (DataType::Float32 | DataType::Float64)] => Ok(vec![t.clone()]),
            [t] if t.is_numeric() || t.is_null() => Ok(vec![DataType::Float64]),
            [t] => plan_err!("{NAME}(x) takes a number, not {t}"),
            _ => plan_err!("{NAME}(x) takes one number, not {} arguments", args.len()),
        }
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [x] = args.args.as_slice() else {
            return exec_err!("{NAME}(x) takes one number");
        };
        let scalar = matches!(x, ColumnarValue::Scalar(_));
        let x = x.to_array(1)?;
        let rounded: ArrayRef = match x.data_type() {
            DataType::Float64 => Arc::new(unary::<Float64Type, _, Float64Type>(
                x.as_primitive(),
                f64::round_ties_even,
            )),
            DataType::Float32 => Arc::new(unary::<Float32Type, _, Float32Type>(
                x.as_primitive(),
                f32::round_ties_even,
            )),
            t => return exec_err!("{NAME}(x) takes a float, not {t}"),
        };
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&rounded, 0)?)
        } else {
            ColumnarValue::Array(rounded)
        })
    }
}

/// `rint`, for a registry (a cluster's executors find it by name).
pub fn udf() -> ScalarUDF {
    ScalarUDF::from(Rint {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}
