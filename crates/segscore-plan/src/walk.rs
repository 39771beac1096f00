//! What the SQL rewrites share: a text parsed as an expression, a call's plain arguments, and a
//! walk over an expression's own parts, leaving out the subqueries in it (their names are their
//! own scope's).

use std::ops::ControlFlow;

use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Query, Visit,
    VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `text` parsed as an expression.
pub(crate) fn parsed(text: &str) -> Result<Expr> {
    Ok(Parser::new(&GenericDialect {}).try_with_sql(text)?.parse_expr()?)
}

/// `f`'s arguments where they are plain expressions in a list (no DISTINCT, no ORDER BY or other
/// clause inside the parentheses, no named argument).
pub(crate) fn plain_args(f: &Function) -> Option<Vec<&Expr>> {
    match args_distinct(f)? {
        (args, false) => Some(args),
        (_, true) => None,
    }
}

/// `f`'s arguments as [`plain_args`] takes them, or after DISTINCT, and whether they were
/// (`count_if(DISTINCT x)`).
pub(crate) fn args_distinct(f: &Function) -> Option<(Vec<&Expr>, bool)> {
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let distinct = match list.duplicate_treatment {
        None => false,
        Some(DuplicateTreatment::Distinct) => true,
        Some(DuplicateTreatment::All) => return None,
    };
    if !list.clauses.is_empty() {
        return None;
    }
    let args: Option<Vec<&Expr>> = (list.args.iter())
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    Some((args?, distinct))
}

/// Calls `f` on each part of `e` outside its subqueries, from the leaves up.
pub(crate) fn each_outside_subqueries(e: &mut Expr, f: &mut dyn FnMut(&mut Expr)) {
    struct Parts<'a> {
        f: &'a mut dyn FnMut(&mut Expr),
        depth: usize,
    }
    impl VisitorMut for Parts<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.depth == 0 {
                (self.f)(e);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = e.visit(&mut Parts { f, depth: 0 });
}

/// Whether `found` holds for a part of `v` outside its subqueries.
pub(crate) fn any_outside_subqueries(v: &impl Visit, found: &dyn Fn(&Expr) -> bool) -> bool {
    struct Parts<'a> {
        found: &'a dyn Fn(&Expr) -> bool,
        depth: usize,
    }
    impl Visitor for Parts<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match self.depth == 0 && (self.found)(e) {
                true => ControlFlow::Break(()),
                false => ControlFlow::Continue(()),
            }
        }
    }
    v.visit(&mut Parts { found, depth: 0 }).is_break()
}
