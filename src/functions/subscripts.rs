//! A text's subscripts, as DuckDB reads them (`segscore sql` plans `s[i]` and `s[a:b]` of a
//! text as these, [`segscore_plan::subscripts`]): `segscore_text_element(s, i)`, the `i`-th
//! character (from 1; a negative `i` counts from the end; `''` past either end, and for 0), and
//! `segscore_text_slice(s, a, b)`, the characters from the `a`-th to the `b`-th, both included,
//! counted as a list's slice counts them (`s[2:3]` of `héllo` is `él`, `s[-3:]` `llo`, `s[:-1]`
//! all of it). DataFusion took subscripts of lists alone ("array_element(array, index)").

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// A text subscript: one character, or a slice.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Subscript {
    name: &'static str,
    /// How many positions it takes: 1 (`s[i]`) or 2 (`s[a:b]`).
    positions: usize,
    signature: Signature,
}

impl ScalarUDFImpl for Subscript {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name;
        if args.len() != 1 + self.positions {
            return plan_err!("{name} takes a text and {} positions", self.positions);
        }
        for t in &args[1..] {
            if !(t.is_integer() || t.is_null()) {
                return plan_err!("a text's subscript is a whole number of characters, not {t}");
            }
        }
        let mut types = vec![DataType::Utf8];
        types.resize(args.len(), DataType::Int64);
        Ok(types)
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let texts = cast(&arrays[0], &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let positions = (arrays[1..].iter())
            .map(|a| Ok(cast(a, &DataType::Int64)?.as_primitive().clone()))
            .collect::<Result<Vec<Int64Array>>>()?;
        let mut out = StringBuilder::with_capacity(texts.len(), texts.value_data().len());
        for i in 0..texts.len() {
            if texts.is_null(i) || positions.iter().any(|p| p.is_null(i)) {
                out.append_null();
                continue;
            }
            let s = texts.value(i);
            let chars = s.chars().count() as i64;
            let (first, last) = match positions.as_slice() {
                [at] => {
                    let at = positions_from_end(at.value(i), chars);
                    (at.max(1), at)
                }
                [a, b] => (
                    positions_from_end(a.value(i), chars).max(1),
                    positions_from_end(b.value(i), chars),
                ),
                _ => return exec_err!("{} takes a text and {} positions", self.name, self.positions),
            };
            let last = last.min(chars);
            match last >= first {
                true => {
                    let start = byte_at(s, first - 1);
                    out.append_value(&s[start..start + byte_at(&s[start..], last - first + 1)]);
                }
                false => out.append_value(""),
            }
        }
        let text: ArrayRef = Arc::new(out.finish());
        super::columnar(text, scalar)
    }
}

/// Position `p` of a text of `chars` characters counted from its start (1 is the first): a
/// negative one counts from the end (-1 is the last).
fn positions_from_end(p: i64, chars: i64) -> i64 {
    match p < 0 {
        true => chars.saturating_add(p).saturating_add(1),
        false => p,
    }
}

/// The byte offset of character `n` (from 0) of `s`, or its length past its end.
fn byte_at(s: &str, n: i64) -> usize {
    s.char_indices().nth(n as usize).map_or(s.len(), |(at, _)| at)
}

/// `segscore_text_element(s, i)` and `segscore_text_slice(s, a, b)`, as the module says.
pub fn udfs() -> [ScalarUDF; 2] {
    [("segscore_text_element", 1), ("segscore_text_slice", 2)].map(|(name, positions)| {
        ScalarUDF::from(Subscript {
            name,
            positions,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    })
}
