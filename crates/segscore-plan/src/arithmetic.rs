//! Integer `+`, `-` and `*` (and `-x`, as `0 - x`) give the right number or an error, never a
//! wrapped one.
//! DataFusion's kernels wrap on overflow, without a word: two UINT8 columns' 197 + 197 was 138,
//! two INT32 token counts' product past 2^31 negative, a BIGINT product past 2^63 negative.
//! DuckDB and PostgreSQL stop the query there ("Overflow in addition of INT8"). Two analyzer
//! rules: before DataFusion's type coercion, [`WideIntegers`] computes an integer `+`, `-` or
//! `*` of operands narrower than 64 bits in BIGINT, where it cannot overflow (bar UINTEGER
//! products past 9.2e18); after it, [`CheckedArithmetic`] makes every integer `+`, `-`, `*`
//! arrow's checked kernel, whose overflow is an error naming the operation. A column keeps the
//! name it was planned with. An integer `sum` (DataFusion's wrapped too) adds as 128-bit
//! integers and gives its BIGINT (or UBIGINT), or an error where the sum is past that type's
//! range ([`CheckedSums`]; DuckDB's `sum` widens to HUGEINT instead).

use std::sync::Arc;

use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{plan_err, DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::{BinaryExpr, ScalarFunction};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    cast, lit, AggregateUDF, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility, WindowFunctionDefinition,
};
use datafusion::optimizer::AnalyzerRule;

/// Integer arithmetic of narrow operands in BIGINT ([module docs](self)); every session
/// segscore makes runs it before type coercion, which gives the plan its new types.
#[derive(Debug, Default)]
pub struct WideIntegers;

impl AnalyzerRule for WideIntegers {
    fn name(&self) -> &str {
        "segscore_wide_integers"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_integer_arithmetic(plan, |(left, l), kind, (right, r)| {
            let narrow = |t: &DataType| !matches!(t, DataType::Int64 | DataType::UInt64);
            let wide = |e: Box<Expr>, t: &DataType| {
                if narrow(t) {
                    Box::new(cast(*e, DataType::Int64))
                } else {
                    e
                }
            };
            let widened = narrow(&l) || narrow(&r);
            let e = Expr::BinaryExpr(BinaryExpr::new(wide(left, &l), kind.operator(), wide(right, &r)));
            Transformed::new_transformed(e, widened)
        })
    }
}

/// Integer arithmetic in arrow's checked kernels ([module docs](self)); every session segscore
/// makes runs it after type coercion.
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

impl AnalyzerRule for CheckedArithmetic {
    fn name(&self) -> &str {
        "segscore_checked_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_integer_arithmetic(plan, |(left, _), kind, (right, _)| {
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(checked(kind)),
                vec![*left, *right],
            )))
        })
    }
}

/// Integer sums that give the right number or an error ([module docs](self)): a `sum` of BIGINT
/// or UBIGINT (DataFusion's `sum` widens narrower integers to these; not a `sum(DISTINCT x)`),
/// as an aggregate or a window function, is computed by [`CheckedSums::sum`], a function that
/// adds the values as 128-bit integers and refuses a sum past the type's range (segscore's
/// `checked_sum`), under the `sum`'s name. Every session segscore makes runs it after type
/// coercion.
#[derive(Debug)]
pub struct CheckedSums {
    /// The function that computes an integer sum.
    pub sum: Arc<AggregateUDF>,
}

impl AnalyzerRule for CheckedSums {
    fn name(&self) -> &str {
        "segscore_checked_sums"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        crate::casts::rewrite_named(plan, |e, schema| Ok(self.checked_sum(e, schema)))
    }
}

impl CheckedSums {
    /// `e` computed by the checked sum, where it is a `sum` of BIGINT or UBIGINT.
    fn checked_sum(&self, e: Expr, schema: &DFSchema) -> Transformed<Expr> {
        let integer = |args: &[Expr], distinct: bool| match args {
            [arg] if !distinct => matches!(arg.get_type(schema), Ok(DataType::Int64 | DataType::UInt64)),
            _ => false,
        };
        match e {
            Expr::AggregateFunction(mut f)
                if f.func.name() == "sum" && integer(&f.params.args, f.params.distinct) =>
            {
                f.func = Arc::clone(&self.sum);
                Transformed::yes(Expr::AggregateFunction(f))
            }
            Expr::WindowFunction(mut w)
                if matches!(&w.fun, WindowFunctionDefinition::AggregateUDF(f) if f.name() == "sum")
                    && integer(&w.params.args, w.params.distinct) =>
            {
                w.fun = WindowFunctionDefinition::AggregateUDF(Arc::clone(&self.sum));
                Transformed::yes(Expr::WindowFunction(w))
            }
            e => Transformed::no(e),
        }
    }
}

/// An operand and its type.
type Typed = (Box<Expr>, DataType);

/// `plan` with each integer `+`, `-`, `*` (of two operands of integer types) as `rewrite` gives
/// it, names kept ([`crate::casts::rewrite_named`]). A type that cannot be told (an expression
/// of another scope) leaves its operation as it is.
fn rewrite_integer_arithmetic(
    plan: LogicalPlan,
    rewrite: impl Fn(Typed, Kind, Typed) -> Transformed<Expr>,
) -> Result<LogicalPlan> {
    crate::casts::rewrite_named(plan, |e, schema| Ok(integer_arithmetic(e, schema, &rewrite)))
}

/// `e` as `rewrite` gives it, where it is an integer `+`, `-` or `*`.
fn integer_arithmetic(
    e: Expr,
    schema: &DFSchema,
    rewrite: impl Fn(Typed, Kind, Typed) -> Transformed<Expr>,
) -> Transformed<Expr> {
    let typed = |e: &Expr| e.get_type(schema).ok().filter(DataType::is_integer);
    // `-x` of a signed integer is `0 - x`, which wrapped too (`-x` of TINYINT -128 was -128).
    let e = match e {
        Expr::Negative(x) => match typed(&x).filter(DataType::is_signed_integer) {
            Some(t) => match ScalarValue::new_zero(&t) {
                Ok(zero) => Expr::BinaryExpr(BinaryExpr::new(Box::new(lit(zero)), Operator::Minus, x)),
                Err(_) => return Transformed::no(Expr::Negative(x)),
            },
            None => return Transformed::no(Expr::Negative(x)),
        },
        e => e,
    };
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return Transformed::no(e);
    };
    match (Kind::of(op), typed(&left), typed(&right)) {
        (Some(kind), Some(l), Some(r)) => rewrite((left, l), kind, (right, r)),
        _ => Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
    }
}

/// Which operation.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    Add,
    Subtract,
    Multiply,
}

impl Kind {
    fn of(op: Operator) -> Option<Kind> {
        match op {
            Operator::Plus => Some(Kind::Add),
            Operator::Minus => Some(Kind::Subtract),
            Operator::Multiply => Some(Kind::Multiply),
            _ => None,
        }
    }

    fn operator(self) -> Operator {
        match self {
            Kind::Add => Operator::Plus,
            Kind::Subtract => Operator::Minus,
            Kind::Multiply => Operator::Multiply,
        }
    }
}

/// `checked_add(a, b)` (`checked_subtract`, `checked_multiply`): arrow's checked kernel.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Add => "checked_add",
            Kind::Subtract => "checked_subtract",
            Kind::Multiply => "checked_multiply",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [a, b] = args else {
            return plan_err!("{} takes two integers, not {} arguments", self.name(), args.len());
        };
        let (a, b) = BinaryTypeCoercer::new(a, &self.kind.operator(), b).get_input_types()?;
        Ok(vec![a, b])
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [a, b] = ColumnarValue::values_to_arrays(&args.args)?
            .try_into()
            .map_err(|_| DataFusionError::Internal(format!("{} takes two arguments", self.name())))?;
        let out = match self.kind {
            Kind::Add => numeric::add(&a, &b),
            Kind::Subtract => numeric::sub(&a, &b),
            Kind::Multiply => numeric::mul(&a, &b),
        };
        out.map(ColumnarValue::Array).map_err(|e| match e {
            ArrowError::ArithmeticOverflow(what) => DataFusionError::Execution(format!(
                "integer overflow: {} ({}): the result does not fit in {}; compute it in \
                 DOUBLE or DECIMAL(38, 0) (x::DOUBLE {} y)",
                what.trim_start_matches("Overflow happened on: "),
                a.data_type(),
                a.data_type(),
                self.kind.operator(),
            )),
            e => DataFusionError::ArrowError(Box::new(e), None),
        })
    }
}

/// The checked function for `kind`.
fn checked(kind: Kind) -> ScalarUDF {
    ScalarUDF::from(Checked {
        kind,
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// `checked_add`, `checked_subtract`, `checked_multiply`, for a registry (a cluster's
/// executors find them by name).
pub fn udfs() -> [ScalarUDF; 3] {
    [Kind::Add, Kind::Subtract, Kind::Multiply].map(checked)
}
