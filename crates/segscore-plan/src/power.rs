//! `x ^ y` is `x` to the power `y`, as in DuckDB and PostgreSQL: DataFusion's default dialect
//! parses `^` as a bitwise XOR, at a precedence below `+` and `*`, so `2 ^ 3` was 1 and
//! `avg((p - t) ^ 2)` no mean of squares, without a word. Each run of arithmetic that holds a
//! `^` (the operands and operators between parentheses, in their written order) is read again
//! with PostgreSQL's precedence, `^` above `*`, `/`, `%`, those above `+`, `-`, those above
//! `<<`, `>>`, `&`, every level left to right, and each `^` becomes `power(x, y)`. DuckDB's
//! `xor(x, y)` is DataFusion's bitwise XOR, and its `mod(x, y)` DataFusion's `%`.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    Ident, ObjectName,
};

/// The precedence of `op` among the operators a run holds (higher binds tighter), as
/// PostgreSQL and DuckDB give it; `None` for an operator that bounds a run (comparisons, `|`,
/// `AND`, ...), which binds looser than `^` in both dialects.
fn precedence(op: &BinaryOperator) -> Option<u8> {
    use BinaryOperator as B;
    Some(match op {
        B::BitwiseXor => 3,
        B::Multiply | B::Divide | B::DuckIntegerDivide | B::Modulo => 2,
        B::Plus | B::Minus => 1,
        B::PGBitwiseShiftLeft | B::PGBitwiseShiftRight | B::BitwiseAnd => 0,
        _ => return None,
    })
}

/// `expr` with `^` as power, where it is a run of arithmetic holding one (see the module docs);
/// the run's operands, each its own expression, are left for the caller's visit.
pub(crate) fn rewrite(expr: &mut Expr) {
    /// Whether the run `e` holds a `^`.
    fn caret(e: &Expr) -> bool {
        match e {
            Expr::BinaryOp { left, op, right } if precedence(op).is_some() => {
                *op == BinaryOperator::BitwiseXor || caret(left) || caret(right)
            }
            _ => false,
        }
    }
    // A run without one keeps the grouping it was parsed with.
    if !caret(expr) {
        return;
    }
    let mut operands = vec![];
    let mut operators = vec![];
    let run = std::mem::replace(expr, Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
    flatten(run, &mut operands, &mut operators);
    let mut operands = operands.into_iter();
    let mut operators = operators.into_iter().peekable();
    let first = operands.next().expect("a run has an operand");
    *expr = climb(first, 0, &mut operands, &mut operators);
}

/// The operands and operators of the run `e`, in written order (the parser's tree holds them
/// in order, whatever precedence it gave them).
fn flatten(e: Expr, operands: &mut Vec<Expr>, operators: &mut Vec<BinaryOperator>) {
    match e {
        Expr::BinaryOp { left, op, right } if precedence(&op).is_some() => {
            flatten(*left, operands, operators);
            operators.push(op);
            flatten(*right, operands, operators);
        }
        operand => operands.push(operand),
    }
}

/// Precedence climbing: `left` and what follows, as long as the next operator binds at least
/// as tight as `min`; every level is left-associative.
fn climb(
    mut left: Expr,
    min: u8,
    operands: &mut impl Iterator<Item = Expr>,
    operators: &mut std::iter::Peekable<impl Iterator<Item = BinaryOperator>>,
) -> Expr {
    while let Some(level) = operators.peek().and_then(precedence).filter(|&p| p >= min) {
        let op = operators.next().expect("peeked");
        let mut right = operands.next().expect("an operand follows each operator");
        while operators.peek().and_then(precedence).is_some_and(|p| p > level) {
            let tighter = precedence(operators.peek().expect("peeked")).expect("an operator of a run");
            right = climb(right, tighter, operands, operators);
        }
        left = match op {
            BinaryOperator::BitwiseXor => call("power", vec![left, right]),
            op => Expr::BinaryOp {
                left: Box::new(left),
                op,
                right: Box::new(right),
            },
        };
    }
    left
}

/// `name(args)`.
pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// DuckDB's `x // y` (its integer division, which DataFusion cannot plan: "Operator DIV is not
/// yet supported") as the call `divide(x, y)` ([`crate::division`]), where `e` is one.
pub(crate) fn integer_division(e: &mut Expr) {
    if let Expr::BinaryOp {
        op: BinaryOperator::DuckIntegerDivide,
        ..
    } = e
    {
        let Expr::BinaryOp { left, right, .. } =
            std::mem::replace(e, Expr::value(datafusion::sql::sqlparser::ast::Value::Null))
        else {
            unreachable!("matched above")
        };
        *e = call("divide", vec![*left, *right]);
    }
}

/// DuckDB's functions for an operator, as the operator, where `f` is such a call: `xor(x, y)`
/// DataFusion's bitwise XOR, `mod(x, y)` its `%` (DataFusion has no `mod`: "Invalid function").
pub(crate) fn operator_call(f: &Function) -> Option<Expr> {
    let op = [
        ("xor", BinaryOperator::BitwiseXor),
        ("mod", BinaryOperator::Modulo),
    ]
    .into_iter()
    .find(|(name, _)| crate::duckdb::calls(f, name))?
    .1;
    if f.over.is_some() {
        return None;
    }
    let args = crate::walk::plain_args(f)?;
    let [a, b] = args[..] else {
        return None;
    };
    Some(Expr::BinaryOp {
        left: Box::new(Expr::Nested(Box::new(a.clone()))),
        op,
        right: Box::new(Expr::Nested(Box::new(b.clone()))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut e = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap();
        rewrite(&mut e);
        e.to_string()
    }

    #[test]
    fn caret_is_power_at_postgresqls_precedence() {
        assert_eq!(rewritten("2 ^ 3"), "power(2, 3)");
        assert_eq!(rewritten("a - b ^ c - d"), "a - power(b, c) - d");
        assert_eq!(rewritten("a * b ^ 2 / c"), "a * power(b, 2) / c");
        assert_eq!(rewritten("2 ^ 3 ^ 2"), "power(power(2, 3), 2)");
        assert_eq!(
            rewritten("1 + 2 * 3 ^ 2 ^ 1 - 4"),
            "1 + 2 * power(power(3, 2), 1) - 4"
        );
        assert_eq!(rewritten("(p - t) ^ 2"), "power((p - t), 2)");
        assert_eq!(rewritten("a & b ^ c"), "a & power(b, c)");
        assert_eq!(rewritten("a // b ^ 2 * c"), "a // power(b, 2) * c");
        assert_eq!(rewritten("x < y ^ 2"), "x < y ^ 2");
        // A run without `^` is left as it was parsed.
        assert_eq!(rewritten("a - b - c * d"), "a - b - c * d");
    }
}
