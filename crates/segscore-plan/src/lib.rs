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
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SQLOptions, SessionContext};
use futures::future::BoxFuture;

mod aliases;
pub mod arithmetic;
mod calls;
pub mod casts;
pub mod dates;
pub mod dialect;
pub mod division;
pub mod duckdb;
mod exists;
pub mod named_casts;
pub mod names;
mod passed_over;
pub mod pivot;
mod power;
pub mod rint;
pub mod setops;
pub mod subscripts;
pub mod text_casts;
pub mod timestamps;
pub mod unnest;
mod using;
mod walk;

/// Plans `sql` in `ctx` (`SessionContext::sql`): a query, or a statement such as `SET`, with
/// DuckDB's SQL that DataFusion reads otherwise or lacks written as DataFusion's ([`duckdb`]).
pub fn sql<'a>(ctx: &'a SessionContext, sql: &'a str) -> BoxFuture<'a, Result<DataFrame>> {
    Box::pin(planned(ctx, sql, SQLOptions::new()))
}

/// Plans `sql` as [`sql`] does, refusing what writes (`INSERT`, `COPY`, DataFusion's
/// "DML not supported"): a query's result goes only where segscore writes it.
pub fn read_only<'a>(ctx: &'a SessionContext, sql: &'a str) -> BoxFuture<'a, Result<DataFrame>> {
    Box::pin(planned(ctx, sql, SQLOptions::new().with_allow_dml(false)))
}

/// Plans `sql` as [`read_only`] does, refusing also the statements DataFusion runs as it plans
/// them (`CREATE TABLE ... AS`, `CREATE VIEW`, `SET`): a job's query, one query whose rows the
/// job runs (its model's functions are bound once the plan is made).
pub fn query_only<'a>(ctx: &'a SessionContext, sql: &'a str) -> BoxFuture<'a, Result<DataFrame>> {
    let options = SQLOptions::new()
        .with_allow_dml(false)
        .with_allow_ddl(false)
        .with_allow_statements(false);
    Box::pin(planned(ctx, sql, options))
}

/// `SessionContext::sql_with_options`, with [`duckdb::rewrite`] between parsing and planning.
async fn planned(ctx: &SessionContext, sql: &str, options: SQLOptions) -> Result<DataFrame> {
    let state = ctx.state();
    let mut statement = parse(&state, sql)?;
    duckdb::rewrite(&mut statement, &state)?;
    let plan = plan_of(&state, statement).await?;
    options.verify_plan(&plan)?;
    ctx.execute_logical_plan(plan).await
}

/// `sql`, one statement, parsed in segscore's dialect ([`dialect`]) where the session's is
/// DataFusion's default (generic) one, else in the session's (`SET
/// datafusion.sql_parser.dialect = ...`), as `SessionState::sql_to_statement` parses it.
fn parse(state: &SessionState, sql: &str) -> Result<datafusion::sql::parser::Statement> {
    use datafusion::common::config::Dialect;
    let options = &state.config().options().sql_parser;
    if options.dialect != Dialect::Generic {
        return state.sql_to_statement(sql, &options.dialect);
    }
    let mut statements = datafusion::sql::parser::DFParserBuilder::new(sql)
        .with_dialect(&dialect::Segscore::default())
        .with_recursion_limit(options.recursion_limit.get())
        .build()?
        .parse_statements()?;
    if statements.len() > 1 {
        return datafusion::common::not_impl_err!(
            "The context currently only supports a single SQL statement"
        );
    }
    statements.pop_front().ok_or_else(|| {
        datafusion::common::plan_datafusion_err!("No SQL statements were provided in the query string")
    })
}

/// `statement`'s plan; where it fails for a name no table has that a select gives one of its
/// columns, with that select reading the column there (DuckDB's lateral aliases, `aliases.rs`);
/// where two of its expressions have one name for their casts (`max(y)`, `max(y::INT)`), with
/// its casts named apart (`named_casts.rs`).
async fn plan_of(
    state: &SessionState,
    mut statement: datafusion::sql::parser::Statement,
) -> Result<LogicalPlan> {
    let mut read = Vec::new();
    let mut casts_named = false;
    loop {
        let e = match state.statement_to_plan(statement.clone()).await {
            Ok(plan) if casts_named || !named_casts::grouped_twice(&plan) => return Ok(plan),
            Ok(plan) => {
                casts_named = true;
                if name_casts(&mut statement) {
                    continue;
                }
                return Ok(plan);
            }
            Err(e) => e,
        };
        if !casts_named && named_casts::clash(&e) {
            casts_named = true;
            if name_casts(&mut statement) {
                continue;
            }
            return Err(e);
        }
        let Some(name) = aliases::missing(&e).filter(|n| !read.contains(n)) else {
            return Err(e);
        };
        let Some(s) = query_of(&mut statement) else {
            return Err(e);
        };
        if !aliases::lateral(s, &name) {
            return Err(e);
        }
        read.push(name);
    }
}

/// The statement `statement` plans (an `EXPLAIN [ANALYZE]`'s, its query's), where it is SQL's.
fn query_of(
    statement: &mut datafusion::sql::parser::Statement,
) -> Option<&mut datafusion::sql::sqlparser::ast::Statement> {
    use datafusion::sql::parser::Statement;
    let mut inner = statement;
    while let Statement::Explain(explain) = inner {
        inner = explain.statement.as_mut();
    }
    match inner {
        Statement::Statement(s) => Some(s.as_mut()),
        _ => None,
    }
}

/// Names `statement`'s casts apart ([`named_casts`]); false where it is not SQL's.
fn name_casts(statement: &mut datafusion::sql::parser::Statement) -> bool {
    match query_of(statement) {
        Some(s) => {
            named_casts::name_casts(s);
            true
        }
        None => false,
    }
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
    let statement = parse(&state, sql)?;
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
