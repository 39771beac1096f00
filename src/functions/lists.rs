//! DuckDB's list aggregates: `list_aggregate(l, 'name' [, arg, ...])` (`list_aggr`,
//! `array_aggregate`, `array_aggr`) gives, for each row, the aggregate function `name` of the
//! list's elements (`list_aggregate(input_ids, 'median')`, `list_aggregate(words,
//! 'string_agg', ' ')`), and `list_<name>(l)` the same for the aggregates that DuckDB names so
//! and DataFusion has no list function for (`list_count`, `list_median`, `list_mode`,
//! `list_stddev_samp`, `list_string_agg`, ...). Any aggregate a query can call is taken, by
//! DuckDB's names too (`first`, `last`, `variance`); the integer `sum` is segscore's, which
//! refuses a sum past its type's range. A NULL list gives NULL; an empty one what the aggregate
//! gives for no rows (`count` 0, most others NULL).
//!
//! The aggregate runs once over all the rows' elements, each row a group of its own, where it
//! computes groups side by side (DataFusion's `GroupsAccumulator`: `sum`, `count`, `avg`,
//! `min`, `stddev`, ...); other aggregates run once per row.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{cast, interleave, is_null, nullif};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, EmitTo, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::PhysicalExpr;

/// DuckDB's `list_<name>` functions of this module: the aggregates DuckDB has a list function
/// for, where DataFusion has none of that name (its `list_sum`, `list_avg`, `list_max`,
/// `list_product`, `list_any_value` stay DataFusion's; `list_min` is `array_min`).
pub const LIST_AGGREGATES: [&str; 20] = [
    "approx_count_distinct",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "count",
    "entropy",
    "first",
    "histogram",
    "kurtosis",
    "last",
    "median",
    "mode",
    "skewness",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "var_pop",
    "var_samp",
];

/// The aggregate functions a list aggregate may name, by every name a query may call them by.
pub(super) type Aggregates = Arc<HashMap<String, Arc<AggregateUDF>>>;

/// A list aggregate: `list_aggregate(l, 'name', ...)` (`fixed` None) or `list_<name>(l, ...)`.
#[derive(Debug)]
struct ListAggregate {
    name: String,
    aliases: Vec<String>,
    fixed: Option<String>,
    aggregates: Aggregates,
    signature: Signature,
}

impl PartialEq for ListAggregate {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.fixed == other.fixed
    }
}
impl Eq for ListAggregate {}
impl std::hash::Hash for ListAggregate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.name, &self.fixed).hash(state);
    }
}

impl ListAggregate {
    /// How many arguments come before the aggregate's own extra ones: the list, and the name.
    fn leading(&self) -> usize {
        if self.fixed.is_some() {
            1
        } else {
            2
        }
    }

    /// The aggregate this call names, from its name argument's value where it takes one; of a
    /// list of integers, `sum` is segscore's `checked_sum`.
    fn aggregate(
        &self,
        name_arg: Option<&ScalarValue>,
        list: &DataType,
    ) -> Result<(String, Arc<AggregateUDF>)> {
        let name = match (&self.fixed, name_arg) {
            (Some(name), _) => name.clone(),
            (
                None,
                Some(
                    ScalarValue::Utf8(Some(n))
                    | ScalarValue::LargeUtf8(Some(n))
                    | ScalarValue::Utf8View(Some(n)),
                ),
            ) => n.to_lowercase(),
            (None, _) => {
                return plan_err!(
                    "{}(list, name): the aggregate's name is a text written in the query ('median')",
                    self.name
                )
            }
        };
        let integers =
            matches!(list, DataType::List(e) | DataType::LargeList(e) if e.data_type().is_integer());
        let found = match name.as_str() {
            "sum" if integers => self.aggregates.get("checked_sum"),
            _ => self.aggregates.get(&name),
        };
        match found {
            Some(f) => Ok((name, Arc::clone(f))),
            None => plan_err!("{}: no aggregate function is named '{name}'", self.name),
        }
    }

    /// The fields the aggregate takes its arguments as (coerced to its signature): the list's
    /// elements', then the extra arguments'.
    fn aggregate_fields(&self, f: &AggregateUDF, arg_fields: &[FieldRef]) -> Result<Vec<FieldRef>> {
        let element = match arg_fields.first().map(|f| f.data_type()) {
            // `checked_sum` takes 64 bits, as the session's `sum` gives an integer's sum.
            Some(DataType::List(e) | DataType::LargeList(e)) if f.name() == "checked_sum" => {
                let t = match e.data_type().is_unsigned_integer() {
                    true => DataType::UInt64,
                    false => DataType::Int64,
                };
                Arc::new(Field::new("x", t, true))
            }
            Some(DataType::List(e) | DataType::LargeList(e)) => {
                Arc::new(Field::new("x", e.data_type().clone(), true))
            }
            Some(t) => return plan_err!("{} takes a list, not {t}", self.name),
            None => return plan_err!("{} takes a list", self.name),
        };
        let extras = &arg_fields[self.leading().min(arg_fields.len())..];
        let defaults = defaults(f, extras.len());
        let given: Vec<FieldRef> = std::iter::once(element)
            .chain(
                defaults
                    .iter()
                    .map(|v| Arc::new(Field::new("default", v.data_type(), false))),
            )
            .chain(extras.iter().cloned())
            .collect();
        fields_with_udf(&given, f)
    }
}

impl ScalarUDFImpl for ListAggregate {
    fn name(&self) -> &str {
        &self.name
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let mut types = args.to_vec();
        match args.first() {
            Some(DataType::List(_) | DataType::LargeList(_)) => {}
            Some(DataType::FixedSizeList(e, _) | DataType::ListView(e) | DataType::LargeListView(e)) => {
                types[0] = DataType::List(Arc::clone(e))
            }
            Some(t) => return plan_err!("{} takes a list, not {t}", self.name),
            None => return plan_err!("{} takes a list", self.name),
        }
        if self.fixed.is_none() && !args.get(1).is_some_and(|t| t.is_string() || t.is_null()) {
            return plan_err!("{}(list, name): the name is a text ('median')", self.name);
        }
        Ok(types)
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        plan_err!("{}: the type comes from its arguments' fields", self.name)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let list = args
            .arg_fields
            .first()
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Null);
        let (name, f) = self.aggregate(args.scalar_arguments.get(1).copied().flatten(), &list)?;
        let fields = self.aggregate_fields(&f, args.arg_fields)?;
        let out = f.return_field(&fields)?;
        Ok(Arc::new(Field::new(name, out.data_type().clone(), true)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name_arg = match (&self.fixed, args.args.get(1)) {
            (None, Some(ColumnarValue::Scalar(s))) => Some(s),
            _ => None,
        };
        let (agg_name, f) = self.aggregate(name_arg, &args.args[0].data_type())?;
        let fields = self.aggregate_fields(&f, &args.arg_fields)?;
        let mut extras = defaults(&f, args.args.len().saturating_sub(self.leading()));
        for a in args.args.iter().skip(self.leading()) {
            match a {
                ColumnarValue::Scalar(s) => extras.push(s.clone()),
                ColumnarValue::Array(_) => {
                    return exec_err!(
                        "{}: an aggregate's further arguments are values written in the query",
                        self.name
                    )
                }
            }
        }
        let rows = args.number_rows;
        let lists = args.args[0].to_array(rows)?;
        let (offsets, values): (Vec<usize>, ArrayRef) = match lists.data_type() {
            DataType::List(_) => {
                let l = lists.as_list::<i32>();
                (
                    l.offsets().iter().map(|&o| o as usize).collect(),
                    Arc::clone(l.values()),
                )
            }
            DataType::LargeList(_) => {
                let l = lists.as_list::<i64>();
                (
                    l.offsets().iter().map(|&o| o as usize).collect(),
                    Arc::clone(l.values()),
                )
            }
            t => return exec_err!("{} takes a list, not {t}", self.name),
        };
        let (first, last) = (offsets[0], offsets[rows]);
        let values = cast(&values.slice(first, last - first), fields[0].data_type())?;
        let schema = Schema::new(fields.to_vec());
        // The extra arguments in the types the aggregate takes them in, cast once.
        let extras = (extras.iter().zip(&fields[1..]))
            .map(|(s, field)| s.cast_to(field.data_type()))
            .collect::<Result<Vec<ScalarValue>>>()?;
        let mut exprs: Vec<Arc<dyn PhysicalExpr>> = vec![Arc::new(Column::new("x", 0))];
        exprs.extend(
            extras
                .iter()
                .map(|s| Arc::new(Literal::new(s.clone())) as Arc<dyn PhysicalExpr>),
        );
        let acc_args = AccumulatorArgs {
            return_field: f.return_field(&fields)?,
            schema: &schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: &agg_name,
            is_distinct: false,
            exprs: &exprs,
            expr_fields: &fields,
        };
        // The update's inputs for the elements `at`: the values, then each extra argument's.
        let inputs = |at: ArrayRef| -> Result<Vec<ArrayRef>> {
            let n = at.len();
            let mut v = vec![at];
            for s in &extras {
                v.push(s.to_array_of_size(n)?);
            }
            Ok(v)
        };
        let result = if f.groups_accumulator_supported(acc_args.clone()) {
            // Each list with elements is a group (DataFusion's groups accumulators take every
            // group they are told of as one that saw rows); an empty list gives the aggregate
            // of no rows.
            let mut groups = f.create_groups_accumulator(acc_args.clone())?;
            let mut group_of = Vec::with_capacity(values.len());
            let mut from = Vec::with_capacity(rows);
            for r in 0..rows {
                match offsets[r + 1] - offsets[r] {
                    0 => from.push((1, 0)),
                    n => {
                        from.push((0, group_of.last().map_or(0, |&g: &usize| g + 1)));
                        group_of.extend(std::iter::repeat_n(from[r].1, n));
                    }
                }
            }
            let groups_seen = group_of.last().map_or(0, |g| g + 1);
            groups.update_batch(&inputs(values)?, &group_of, None, groups_seen)?;
            let of_groups = groups.evaluate(EmitTo::All)?;
            let of_none = f.accumulator(acc_args)?.evaluate()?.to_array()?;
            let of_none = cast(&of_none, of_groups.data_type())?;
            interleave(&[of_groups.as_ref(), of_none.as_ref()], &from)?
        } else {
            let mut out = Vec::with_capacity(rows);
            for r in 0..rows {
                let mut acc = f.accumulator(acc_args.clone())?;
                acc.update_batch(&inputs(
                    values.slice(offsets[r] - first, offsets[r + 1] - offsets[r]),
                )?)?;
                out.push(acc.evaluate()?);
            }
            ScalarValue::iter_to_array(out)?
        };
        let result = cast(&result, args.return_field.data_type())?;
        let result = nullif(&result, &is_null(&lists)?)?;
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        super::columnar(result, scalar)
    }
}

/// The arguments DuckDB's form of aggregate `f` takes by default where a call gives `given`
/// of its own: `string_agg`'s separator, `,`, as `string_agg(x)` has it.
fn defaults(f: &AggregateUDF, given: usize) -> Vec<ScalarValue> {
    match (f.name(), given) {
        ("string_agg", 0) => vec![ScalarValue::Utf8(Some(",".into()))],
        _ => vec![],
    }
}

/// Every aggregate a query may call, by each of its names: DataFusion's, segscore's (which take
/// the place of DataFusion's of the same name) and DuckDB's names for them ([`super::DUCKDB_NAMES`]).
pub(super) fn aggregates(segscore: &[AggregateUDF]) -> Aggregates {
    let mut by_name = HashMap::new();
    let all = datafusion::functions_aggregate::all_default_aggregate_functions()
        .into_iter()
        .chain(segscore.iter().cloned().map(Arc::new));
    for f in all {
        for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)) {
            by_name.insert(name.to_string(), Arc::clone(&f));
        }
    }
    for (alias, name) in super::DUCKDB_NAMES {
        if let Some(f) = by_name.get(name).cloned() {
            by_name.entry(alias.to_string()).or_insert(f);
        }
    }
    Arc::new(by_name)
}

/// `list_aggregate` and DuckDB's `list_<name>` ([`LIST_AGGREGATES`]) over `aggregates`.
pub(super) fn udfs(aggregates: &Aggregates) -> Vec<ScalarUDF> {
    let generic = ListAggregate {
        name: "list_aggregate".into(),
        aliases: ["list_aggr", "array_aggregate", "array_aggr"]
            .map(String::from)
            .to_vec(),
        fixed: None,
        aggregates: Arc::clone(aggregates),
        signature: Signature::user_defined(Volatility::Immutable),
    };
    let fixed = LIST_AGGREGATES
        .iter()
        .filter(|n| aggregates.contains_key(**n))
        .map(|n| ListAggregate {
            name: format!("list_{n}"),
            aliases: vec![],
            fixed: Some(n.to_string()),
            aggregates: Arc::clone(aggregates),
            signature: Signature::user_defined(Volatility::Immutable),
        });
    std::iter::once(generic)
        .chain(fixed)
        .map(ScalarUDF::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdbs_list_aggregates_take_no_name_datafusion_has() {
        let taken: Vec<String> = datafusion::functions_nested::all_default_nested_functions()
            .iter()
            .flat_map(|f| std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned()))
            .collect();
        for name in LIST_AGGREGATES {
            let list = format!("list_{name}");
            assert!(!taken.contains(&list), "{list} is DataFusion's");
        }
        // Each names an aggregate a query can call.
        let aggregates = aggregates(&super::super::functions(None, None, false).1);
        for name in LIST_AGGREGATES {
            assert!(aggregates.contains_key(name), "{name}");
        }
    }
}
