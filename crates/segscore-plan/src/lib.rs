//! segscore's calls into DataFusion's planner, each behind one non-generic function that
//! returns a boxed future.
//!
//! An `async fn` of an upstream crate is compiled in the crate that awaits it, together with
//! every generic it reaches: awaiting `SessionContext::sql` or
//! `DataFrame::create_physical_plan` from segscore compiled DataFusion's SQL planner, optimizer
//! and physical planner a second time, at segscore's optimization level and on the build's
//! critical path (`cargo build --release --timings`, issue 13: segscore's crate took 125 s of a
//! clean build before, 72 s after). This crate is built at opt-level 0 (the release profile in
//! the workspace's `Cargo.toml`), where rustc links the copies DataFusion's crates already
//! built instead of compiling them again: it builds in under a second, and planning runs for
//! milliseconds per query. Execution does not pass through here: the streams these return are
//! DataFusion's own operators, compiled with full optimization in their crates.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::listing::ListingTableConfig;
use datafusion::error::Result;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SQLOptions, SessionContext};
use futures::future::BoxFuture;

/// Plans `sql` in `ctx` (`SessionContext::sql`): a query, or a statement such as `SET`. DuckDB's
/// `ORDER BY ALL` sorts by every column of the result, left to right ([`order_by_all`]).
pub fn sql<'a>(ctx: &'a SessionContext, sql: &'a str) -> BoxFuture<'a, Result<DataFrame>> {
    Box::pin(planned(ctx, sql, SQLOptions::new()))
}

/// Plans `sql` as [`sql`] does, refusing what writes (`INSERT`, `COPY`, DataFusion's
/// "DML not supported"): a query's result goes only where segscore writes it.
pub fn read_only<'a>(ctx: &'a SessionContext, sql: &'a str) -> BoxFuture<'a, Result<DataFrame>> {
    Box::pin(planned(ctx, sql, SQLOptions::new().with_allow_dml(false)))
}

/// `SessionContext::sql_with_options`, with [`order_by_all`] between parsing and planning.
async fn planned(ctx: &SessionContext, sql: &str, options: SQLOptions) -> Result<DataFrame> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(sql, &dialect)?;
    if let datafusion::sql::parser::Statement::Statement(s) = &mut statement {
        order_by_all(s);
    }
    let plan = state.statement_to_plan(statement).await?;
    options.verify_plan(&plan)?;
    ctx.execute_logical_plan(plan).await
}

/// DuckDB's `ORDER BY ALL [ASC|DESC] [NULLS FIRST|LAST]`, which DataFusion's default dialect
/// parses as a column named `all` ("No field named all"): where the select lists its columns,
/// their positions (`ORDER BY 1, 2, ...`, which sorts by any expression: an aggregate, a
/// `GROUP BY ALL`'s result); after a `*`, DataFusion's own ORDER BY ALL, which sorts by the
/// columns it expands to. A column named `all` is sorted by when quoted (`ORDER BY "all"`), as in
/// DuckDB.
pub fn order_by_all(statement: &mut datafusion::sql::sqlparser::ast::Statement) {
    use std::ops::ControlFlow;

    use datafusion::sql::sqlparser::ast::{
        Expr, OrderByExpr, OrderByKind, Query, Select, SelectItem, SetExpr, Value, VisitMut, VisitorMut,
    };
    struct All;
    /// The select whose columns a query's result has: its body's leftmost.
    fn first_select(body: &SetExpr) -> Option<&Select> {
        match body {
            SetExpr::Select(s) => Some(s),
            SetExpr::SetOperation { left, .. } => first_select(left),
            SetExpr::Query(q) => first_select(&q.body),
            _ => None,
        }
    }
    impl VisitorMut for All {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            let Some(order) = &mut query.order_by else {
                return ControlFlow::Continue(());
            };
            let OrderByKind::Expressions(exprs) = &order.kind else {
                return ControlFlow::Continue(());
            };
            let [OrderByExpr {
                expr: Expr::Identifier(all),
                options,
                with_fill: None,
            }] = exprs.as_slice()
            else {
                return ControlFlow::Continue(());
            };
            if all.quote_style.is_some() || !all.value.eq_ignore_ascii_case("all") {
                return ControlFlow::Continue(());
            }
            let options = *options;
            let columns = first_select(&query.body).and_then(|s| {
                let starred = s
                    .projection
                    .iter()
                    .any(|item| matches!(item, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)));
                (!starred).then_some(s.projection.len())
            });
            order.kind = match columns {
                Some(n) => OrderByKind::Expressions(
                    (1..=n)
                        .map(|i| OrderByExpr {
                            expr: Expr::value(Value::Number(i.to_string(), false)),
                            options,
                            with_fill: None,
                        })
                        .collect(),
                ),
                None => OrderByKind::All(options),
            };
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut All);
}

/// The frame with DataFusion's analyzer run over its plan (type coercion among its rules), so
/// that its schema is the one its batches will have. A frame from [`sql`] holds the plan as
/// written, and there a `CASE WHEN c THEN CAST(i AS INT) ELSE 1 END` is Int32 while its arrays,
/// once coerced, are Int64. The analyzer runs again when the frame runs: it changes nothing.
pub fn analyzed(df: DataFrame) -> Result<DataFrame> {
    let (state, plan) = df.into_parts();
    let plan = state
        .analyzer()
        .execute_and_check(plan, state.config_options(), |_, _| {})?;
    Ok(DataFrame::new(state, plan))
}

/// The tables `sql` reads (`SessionState::resolve_table_references`: its CTEs left out), as
/// the planner will look them up; an error when `sql` is not one statement.
pub fn table_references(ctx: &SessionContext, sql: &str) -> Result<Vec<TableReference>> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state.sql_to_statement(sql, &dialect)?;
    state.resolve_table_references(&statement)
}

/// The registered table `name` as a frame (`SessionContext::table`).
pub fn table<'a>(ctx: &'a SessionContext, name: &'a str) -> BoxFuture<'a, Result<DataFrame>> {
    Box::pin(ctx.table(name))
}

/// The frame's optimized physical plan (`DataFrame::create_physical_plan`).
pub fn physical_plan(df: DataFrame) -> BoxFuture<'static, Result<Arc<dyn ExecutionPlan>>> {
    Box::pin(async move { df.create_physical_plan().await })
}

/// The frame's rows as one stream (`DataFrame::execute_stream`).
pub fn execute_stream(df: DataFrame) -> BoxFuture<'static, Result<SendableRecordBatchStream>> {
    Box::pin(df.execute_stream())
}

/// The frame's rows, all in memory (`DataFrame::collect`).
pub fn collect(df: DataFrame) -> BoxFuture<'static, Result<Vec<RecordBatch>>> {
    Box::pin(df.collect())
}

/// `config` with the schema of its files (`ListingTableConfig::infer_schema`).
pub fn infer_schema(
    config: ListingTableConfig,
    state: &SessionState,
) -> BoxFuture<'_, Result<ListingTableConfig>> {
    Box::pin(config.infer_schema(state))
}

/// The Ballista cluster's processes (feature `cluster`): their start-up and serving loops are
/// generic over the plan codecs or are `async fn`s, so they too would be compiled in the crate
/// that awaits them. They run per task, not per row.
#[cfg(feature = "cluster")]
pub mod cluster {
    use std::sync::Arc;

    use ballista_core::error::Result;
    use ballista_executor::executor_process::ExecutorProcessConfig;
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    use ballista_scheduler::scheduler_server::SchedulerServer;
    use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
    use futures::future::BoxFuture;

    /// A scheduler whose plans cross the wire as DataFusion's protobuf.
    pub type Scheduler = SchedulerServer<LogicalPlanNode, PhysicalPlanNode>;

    /// The scheduler's cluster state (`BallistaCluster::new_from_config`).
    pub fn cluster_state(config: &SchedulerConfig) -> BoxFuture<'_, Result<BallistaCluster>> {
        Box::pin(BallistaCluster::new_from_config(config))
    }

    /// The scheduler, initialized but not yet serving
    /// (`ballista_scheduler::scheduler_process::create_scheduler`).
    pub fn create_scheduler(
        cluster: BallistaCluster,
        config: Arc<SchedulerConfig>,
    ) -> BoxFuture<'static, Result<Scheduler>> {
        Box::pin(ballista_scheduler::scheduler_process::create_scheduler(
            cluster, config,
        ))
    }

    /// Serves `scheduler`'s gRPC on `listener` until it fails
    /// (`start_grpc_service_with_listener`).
    pub fn serve_scheduler(
        listener: tokio::net::TcpListener,
        scheduler: Scheduler,
    ) -> BoxFuture<'static, Result<()>> {
        Box::pin(ballista_scheduler::scheduler_process::start_grpc_service_with_listener(listener, scheduler))
    }

    /// Runs an executor until it stops (`start_executor_process`).
    pub fn run_executor(config: Arc<ExecutorProcessConfig>) -> BoxFuture<'static, Result<()>> {
        Box::pin(ballista_executor::executor_process::start_executor_process(
            config,
        ))
    }
}
