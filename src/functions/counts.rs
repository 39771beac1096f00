//! DuckDB's `mode(x)` (the most frequent value), `histogram(x)` (a map of each value to its
//! count) and `entropy(x)` (the values' Shannon entropy, in bits): aggregates DataFusion has none for, over one count per distinct value. Values are
//! kept in arrow's row format, whose bytes order as the values do, so any type arrow can sort
//! is counted and the order of ties and of the map's keys needs no comparison of its own.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, MapArray, StructArray, UInt64Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, UInt64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};

use crate::engine::distinct;

/// What a [`Counted`] aggregate gives of the counts.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    Mode,
    Histogram,
    Entropy,
}

/// `mode`, `histogram` or `entropy`: DuckDB's aggregates of the count of each distinct non-null
/// value.
/// `mode(x)` is the value with the greatest count (of several, the least of them: DuckDB takes
/// the first it read, which depends on the order rows arrive in), NULL where every value is
/// NULL. `histogram(x)` is a MAP of each value, in ascending order, to its count (UBIGINT),
/// NULL where every value is NULL. `entropy(x)` is `−Σ p·log2(p)` over the values' shares `p`
/// of the non-null rows, 0 where there are none.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Counted {
    kind: Kind,
    signature: Signature,
}

/// The type a value of `t` is counted in: a dictionary's (categorical column's) values' type.
fn counted_type(t: &DataType) -> DataType {
    match t {
        DataType::Dictionary(_, values) => counted_type(values),
        t => t.clone(),
    }
}

/// `histogram`'s result type for values of `t`: a MAP of `t` to UBIGINT, as DataFusion's `map`
/// names its fields.
fn map_type(t: &DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entry_fields(t)), false)),
        false,
    )
}

fn entry_fields(t: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("key", t.clone(), false),
        Field::new("value", DataType::UInt64, true),
    ])
}

impl AggregateUDFImpl for Counted {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Mode => "mode",
            Kind::Histogram => "histogram",
            Kind::Entropy => "entropy",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [t] => Ok(vec![counted_type(t)]),
            _ => plan_err!("{}(x) takes one argument", self.name()),
        }
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let [t] = args else {
            return plan_err!("{}(x) takes one argument", self.name());
        };
        Ok(match self.kind {
            Kind::Mode => t.clone(),
            Kind::Histogram => map_type(t),
            Kind::Entropy => DataType::Float64,
        })
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let value_type = args.expr_fields[0].data_type().clone();
        let converter = RowConverter::new(vec![SortField::new(value_type.clone())])?;
        let plain = Box::new(Counts {
            kind: self.kind,
            value_type,
            converter,
            counts: HashMap::new(),
            key_bytes: 0,
        });
        distinct::or_plain(&args, plain)
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if args.is_distinct {
            return Ok(distinct::state_fields(&args));
        }
        let value_type = args.input_fields[0].data_type();
        Ok(vec![
            Arc::new(Field::new_list(
                format_state_name(args.name, "values"),
                Field::new_list_field(value_type.clone(), true),
                true,
            )),
            Arc::new(Field::new_list(
                format_state_name(args.name, "counts"),
                Field::new_list_field(DataType::UInt64, true),
                true,
            )),
        ])
    }
}

/// One group's counts, by the value's row-format bytes.
#[derive(Debug)]
struct Counts {
    kind: Kind,
    value_type: DataType,
    converter: RowConverter,
    counts: HashMap<Box<[u8]>, u64>,
    /// The bytes of the keys of `counts`, for [`Accumulator::size`].
    key_bytes: usize,
}

impl Counts {
    /// Adds `counts[i]` (1 where `None`) for each non-null value `values[i]`.
    fn add(&mut self, values: &ArrayRef, counts: Option<&UInt64Array>) -> Result<()> {
        let rows = self.converter.convert_columns(std::slice::from_ref(values))?;
        for i in 0..values.len() {
            if values.is_null(i) {
                continue;
            }
            let n = counts.map_or(1, |c| c.value(i));
            let key = rows.row(i);
            if let Some(count) = self.counts.get_mut(key.as_ref()) {
                *count += n;
            } else {
                self.key_bytes += key.as_ref().len();
                self.counts.insert(key.as_ref().into(), n);
            }
        }
        Ok(())
    }

    /// The counted values (in ascending order when `sorted`) and their counts.
    fn entries(&self, sorted: bool) -> Result<(ArrayRef, UInt64Array)> {
        let mut entries: Vec<(&[u8], u64)> = self.counts.iter().map(|(k, &c)| (&**k, c)).collect();
        if sorted {
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        let parser = self.converter.parser();
        let values = self
            .converter
            .convert_rows(entries.iter().map(|(k, _)| parser.parse(k)))?;
        let counts = entries.iter().map(|&(_, c)| c).collect();
        Ok((values.into_iter().next().expect("one column"), counts))
    }
}

impl Accumulator for Counts {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], None)
    }

    /// Values leaving a window's frame: one count each.
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = self.converter.convert_columns(values)?;
        for i in 0..values[0].len() {
            if values[0].is_null(i) {
                continue;
            }
            let key = rows.row(i);
            if let Some(count) = self.counts.get_mut(key.as_ref()) {
                *count -= 1;
                if *count == 0 {
                    self.counts.remove(key.as_ref());
                    self.key_bytes -= key.as_ref().len();
                }
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (values, counts) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for i in 0..values.len() {
            if values.is_null(i) {
                continue;
            }
            let c = counts.value(i);
            self.add(&values.value(i), Some(c.as_primitive::<UInt64Type>()))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (values, counts) = self.entries(false)?;
        Ok(vec![
            SingleRowListArrayBuilder::new(values).build_list_scalar(),
            SingleRowListArrayBuilder::new(Arc::new(counts)).build_list_scalar(),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match (self.kind, self.counts.is_empty()) {
            (Kind::Entropy, _) => {
                let n: u64 = self.counts.values().sum();
                // Summed in the counts' order, not the map's (which differs run to run, and
                // with it the last bits of the sum).
                let mut counts: Vec<u64> = self.counts.values().copied().collect();
                counts.sort_unstable();
                let bits = (counts.iter())
                    .map(|&c| {
                        let p = c as f64 / n as f64;
                        -p * p.log2()
                    })
                    .sum::<f64>();
                // A single value: 0, not −0.
                return Ok(ScalarValue::Float64(Some(bits + 0.0)));
            }
            (Kind::Histogram, true) => return ScalarValue::try_from(&map_type(&self.value_type)),
            (Kind::Mode, true) => return ScalarValue::try_from(&self.value_type),
            (Kind::Mode, false) => {
                // The greatest count; of several, the least value (its row format's bytes order
                // as the values do).
                let (key, _) = (self.counts.iter())
                    .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                    .expect("counts is not empty");
                let parser = self.converter.parser();
                let value = self.converter.convert_rows([parser.parse(key)])?;
                return ScalarValue::try_from_array(&value[0], 0);
            }
            (Kind::Histogram, false) => {}
        }
        let (values, counts) = self.entries(true)?;
        let fields = entry_fields(&self.value_type);
        let entries = StructArray::try_new(fields.clone(), vec![values, Arc::new(counts)], None)?;
        let DataType::Map(field, _) = map_type(&self.value_type) else {
            unreachable!("map_type is a map")
        };
        let map = MapArray::try_new(
            field,
            OffsetBuffer::from_lengths([entries.len()]),
            entries,
            None,
            false,
        )?;
        Ok(ScalarValue::Map(Arc::new(map)))
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.key_bytes
            + self.counts.capacity() * (size_of::<(Box<[u8]>, u64)>() + 1)
            + self.converter.size()
    }
}

/// `mode`, `histogram` and `entropy`.
pub(super) fn udafs() -> [AggregateUDF; 3] {
    [Kind::Mode, Kind::Histogram, Kind::Entropy].map(|kind| {
        AggregateUDF::from(Counted {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    })
}

/// DataFusion's `approx_distinct(x)` (DuckDB's `approx_count_distinct`), of floats too: they
/// are counted by their text (one text per value, `-0` and `0` apart), where DataFusion's
/// refused them ("Support for 'approx_distinct' for data type Float64 is not implemented").
#[derive(Debug, PartialEq, Eq, Hash)]
struct ApproxDistinct {
    signature: Signature,
}

/// DataFusion's `approx_distinct`.
fn approx_distinct() -> Arc<AggregateUDF> {
    datafusion::functions_aggregate::approx_distinct::approx_distinct_udaf()
}

impl AggregateUDFImpl for ApproxDistinct {
    fn name(&self) -> &str {
        "approx_distinct"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [t] = args else {
            return plan_err!("approx_distinct(x) takes one argument");
        };
        Ok(vec![match crate::engine::types::value_type(t).is_floating() {
            true => DataType::Utf8,
            false => t.clone(),
        }])
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        approx_distinct().inner().return_type(args)
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        approx_distinct().inner().accumulator(args)
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        approx_distinct().inner().state_fields(args)
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        approx_distinct().inner().groups_accumulator_supported(args)
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
        approx_distinct().inner().create_groups_accumulator(args)
    }
    fn default_value(&self, t: &DataType) -> Result<ScalarValue> {
        approx_distinct().inner().default_value(t)
    }
    fn is_nullable(&self) -> bool {
        approx_distinct().inner().is_nullable()
    }
}

/// `approx_distinct` of any type DataFusion's takes, and floats.
pub(super) fn approx_distinct_udaf() -> AggregateUDF {
    AggregateUDF::from(ApproxDistinct {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}
