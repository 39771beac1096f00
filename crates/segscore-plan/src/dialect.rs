//! The SQL dialect segscore parses: DataFusion's generic one, with DuckDB's list lambdas
//! (`list_transform(l, lambda x: x * 2)`, DuckDB 2's syntax, and `list_filter(l, x -> x > 1)`,
//! its older one), which the generic dialect refused (`lambda x: ...` a syntax error, `x -> ...`
//! read as a JSON arrow: "No field named x"). DataFusion plans them (its `list_transform`,
//! `list_filter`, `array_first`, `array_any_match`). DuckDB's own dialect in sqlparser parses
//! them too, but not `s ^@ prefix` nor ClickHouse's `PREWHERE`, which segscore takes; so this is
//! the generic dialect, every one of its choices kept, lambdas added. A JSON arrow (`j -> 'a'`)
//! was refused before as after ("Operator -> is not yet supported"; now `segscore sql` says
//! that a lambda is a list function's argument only, and JSON arrows are not taken).

use std::any::TypeId;

use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};

/// The dialect ([module docs](self)).
#[derive(Debug, Default)]
pub struct Segscore(GenericDialect);

/// The generic dialect's answer to each of these questions.
macro_rules! generic {
    ($($f:ident),* $(,)?) => {
        $(fn $f(&self) -> bool {
            self.0.$f()
        })*
    };
}

impl Dialect for Segscore {
    /// The parser's checks of which dialect it parses (`dialect_of!`) take this for the
    /// generic one.
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.0.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.0.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.0.is_identifier_part(ch)
    }

    fn supports_lambda_functions(&self) -> bool {
        true
    }

    generic!(
        supports_unicode_string_literal,
        supports_partition_by_after_order_by,
        supports_array_join_syntax,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_limit_comma,
        supports_update_order_by,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_multiline_comment_hints,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
        supports_key_column_option,
        supports_comma_separated_trim,
        supports_cte_without_as,
        supports_select_item_multi_column_alias,
        supports_xml_expressions
    );
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::Segscore;

    /// Queries the generic dialect takes parse the same in segscore's, which only adds
    /// lambdas: a sqlparser release whose generic dialect answers a new question would show
    /// here if the wrapper missed it.
    #[test]
    fn the_generic_dialects_queries_parse_alike() {
        let queries = [
            "SELECT s ^@ 'x', a // b, {'k': 1}, [1, 2][1:2], x::INT FROM t PREWHERE a > 1 WHERE b < 2",
            "SELECT * EXCLUDE (a) REPLACE (b * 2 AS b) FROM t GROUP BY ALL ORDER BY ALL",
            "SELECT count(*) FILTER (WHERE a) OVER w FROM t WINDOW w AS (PARTITION BY g ORDER BY i)",
            "FROM t SELECT a, b LIMIT 1, 2",
            "SELECT a FROM t CONNECT BY PRIOR a = b START WITH a = 1",
            "SELECT j -> 'a', j ->> 'b', 1 << 2, 'a' || 'b', TIMESTAMP '2024-01-01' + INTERVAL 1 DAY",
        ];
        for q in queries {
            let generic = Parser::parse_sql(&GenericDialect {}, q).map_err(|e| e.to_string());
            let ours = Parser::parse_sql(&Segscore::default(), q).map_err(|e| e.to_string());
            if q.contains("->") {
                // `j -> 'a'` is a lambda to segscore's dialect (a JSON arrow to the generic one).
                assert!(ours.is_ok(), "{q}: {ours:?}");
                continue;
            }
            assert_eq!(generic, ours, "{q}");
        }
        let lambda = Parser::parse_sql(&Segscore::default(), "SELECT list_transform(l, lambda x: x + 1)");
        assert!(lambda.is_ok(), "{lambda:?}");
        assert!(Parser::parse_sql(&GenericDialect {}, "SELECT list_transform(l, lambda x: x + 1)").is_err());
    }
}
