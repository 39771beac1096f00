//! `segscore sql`'s tables: the session with segscore's functions, the `--table` arguments
//! registered, and the files a query names in place of a table (`FROM 'data/*.parquet'`,
//! `FROM 'labels.csv'`, as DuckDB reads them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::planner::ExprPlanner;
use datafusion::prelude::SessionContext;

use super::sql::{SqlOptions, TableArg};
use super::sql_formats::{other_table, text_error};
use crate::error::{Error, Result};
use crate::evaluate;
use crate::model::{ModelOptions, RewardModel, TextTokenizer};
use crate::source;
use crate::source::expand::OtherFormat;

/// A table of Parquet files given as NAME=PATH, or named by its path in the query (not hive
/// folders, not a segscore output), its files' footers and schema found once for every
/// registration of the table.
pub struct PlainTable {
    pub(super) name: TableReference,
    pub(super) files: crate::engine::tables::ParquetFiles,
}

impl PlainTable {
    /// The table over its files, declared sorted by `sort_keys` if any.
    pub(super) async fn provider(
        &self,
        ctx: &SessionContext,
        sort_keys: &[&str],
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
        self.files.table(ctx, sort_keys).await
    }
}

/// The tables a query reads, as [`context`] registered them.
#[derive(Default)]
pub struct Tables {
    /// The plain Parquet tables among them.
    pub plain: Vec<PlainTable>,
    /// The Parquet files read.
    pub parquet: Vec<PathBuf>,
    /// The CSV, JSON and Arrow files read ([`OtherFormat`]).
    pub text: Vec<PathBuf>,
    /// The tables whose binary columns are read as text (`binary_as_string = true`).
    pub binary_as_text: Vec<String>,
}

/// `ctx` with `s[i]` and `s[a:b]` of a text planned as DuckDB reads them, before DataFusion's
/// planners take a subscript as a list's ([`segscore_plan::subscripts`]).
fn with_text_subscripts(ctx: SessionContext) -> SessionContext {
    let state = ctx.state();
    let [element, slice] = crate::functions::text_subscript_udfs().map(Arc::new);
    let mut planners: Vec<Arc<dyn ExprPlanner>> = vec![Arc::new(segscore_plan::subscripts::TextSubscripts {
        element,
        slice,
    })];
    planners.extend(state.expr_planners().iter().cloned());
    SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state)
            .with_expr_planners(planners)
            .build(),
    )
}

/// A context with segscore's settings and functions, and the given tables registered, and the
/// files the query names in place of a table; with the tables registered and their files.
pub async fn context(opts: &SqlOptions) -> Result<(SessionContext, Tables)> {
    let mut tables = Tables::default();
    let ctx = with_text_subscripts(crate::engine::session_context(
        opts.threads,
        opts.memory_limit,
        None,
        true,
    )?);
    // NULLs sort last, ascending or descending, as in DuckDB: DataFusion (as PostgreSQL) put
    // them first in `ORDER BY x DESC`, so a top-10 by score began with the rows without one.
    // A script may SET it back (`'nulls_max'`).
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .sql_parser
        .default_null_ordering = "nulls_last".into();
    // `CAST(2.7 AS INT)` is 3, as in DuckDB and PostgreSQL (DataFusion truncated).
    ctx.add_analyzer_rule(Arc::new(segscore_plan::casts::RoundedCasts));
    // `ts::VARCHAR` is `2024-01-01 10:00:00.5` (arrow's ISO 8601 has a `T`), `x::VARCHAR` of a
    // float `1e-07`, as in DuckDB.
    ctx.add_analyzer_rule(Arc::new(segscore_plan::text_casts::TextCasts {
        text: Arc::new(crate::functions::duckdb_text_udf()),
    }));
    let tokenizer = opts
        .tokenizer
        .as_deref()
        .map(TextTokenizer::load)
        .transpose()?
        .map(Arc::new);
    crate::functions::register(&ctx, None, tokenizer.as_ref());
    if let Some(m) = &opts.model {
        let model = Arc::new(RewardModel::load(
            m,
            &ModelOptions {
                provider: opts.provider,
                batch_size: 256,
                max_tokens: 8192,
                sessions: opts.threads.max(1),
                intra_threads: 1,
                output: opts.model_output.clone(),
                score_label: opts.score_label,
                max_length: None,
            },
        )?);
        // With a tokenizer too, `reward_model_text` (the executors' generation stage).
        crate::functions::register(&ctx, Some(&model), tokenizer.as_ref());
    }
    let mut names = std::collections::HashSet::new();
    for name in opts.tables.iter().filter_map(|t| t.name.as_deref()) {
        // Unquoted names are folded to lower case.
        if !names.insert(name.to_lowercase()) {
            return Err(Error::Usage(format!(
                "--table {name}: a table of that name is given twice"
            )));
        }
    }
    // `--table`'s names are SQL (`Data` is `data`); a path in the query is the table's name as
    // written, `.` and all. The paths are looked for once the `--table`s are registered (and
    // the output directories' tables): a name one of those took is that table.
    for t in &opts.tables {
        let name = t.name.as_deref().map(TableReference::from);
        register(&ctx, t, name, false, &mut tables).await?;
    }
    // The statements before the query run in order, each once the files it names are tables.
    let mut named_in_query = Vec::new();
    let count = opts.setup.len() + 1;
    for (i, statement) in opts.setup.iter().chain([&opts.query]).enumerate() {
        let named = files_named_in(&ctx, statement);
        for t in &named {
            let name = t.name.clone().map(TableReference::bare);
            register(&ctx, t, name, true, &mut tables).await?;
        }
        named_in_query.extend(named);
        if i + 1 < count {
            let ran = match segscore_plan::sql(&ctx, statement).await {
                Ok(df) => df.collect().await.map(drop),
                Err(e) => Err(e),
            };
            ran.map_err(|e| Error::Usage(format!("query: statement {} of {count}: {e}", i + 1)))?;
        }
    }
    if let Some(to) = &opts.to {
        // Output directories read as tables are patterns too: `--to` inside one is refused.
        let (remote, local): (Vec<String>, Vec<String>) = opts
            .tables
            .iter()
            .chain(&named_in_query)
            .flat_map(|t| t.read.paths(&t.path))
            .partition(|p| crate::store::is_remote(p));
        let why = "a query must not replace its input, nor write where its tables are read from";
        let read: Vec<PathBuf> = tables.parquet.iter().chain(&tables.text).cloned().collect();
        source::expand::output_apart(opts.to_label, why, &local, &read, to)?;
        source::expand::object_apart(opts.to_label, why, &remote, &read, to)?;
    }
    Ok((ctx, tables))
}

/// Registers table `t` in `ctx` as `name` (a segscore output directory as its tables; CSV,
/// JSON or Arrow files by their names, [`OtherFormat`]), adding it and the files it reads to
/// `tables`. `in_query`: named in the query rather than by `--table`.
async fn register(
    ctx: &SessionContext,
    t: &TableArg,
    name: Option<TableReference>,
    in_query: bool,
    tables: &mut Tables,
) -> Result<()> {
    let plain = tables.plain.len();
    register_files(ctx, t, name.clone(), in_query, tables).await?;
    if let (true, Some(name)) = (t.read.binary_as_string, name) {
        // Not read again as sorted, which would register the files in place of the view.
        tables.plain.truncate(plain);
        tables.binary_as_text.push(name.to_string());
        binary_as_string(ctx, name).await?;
    }
    Ok(())
}

/// DuckDB's `binary_as_string = true`: table `name`'s binary columns as text, as legacy
/// writers (older Hive, Impala) store strings without Parquet's UTF8 annotation; a value that
/// is not UTF-8 is an error when read. The table is replaced by a view that casts them.
async fn binary_as_string(ctx: &SessionContext, name: TableReference) -> Result<()> {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::Column;
    use datafusion::prelude::{cast, Expr};
    let df = ctx.read_table(ctx.table_provider(name.clone()).await?)?;
    let columns: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let c = Expr::Column(Column::new_unqualified(f.name()));
            match f.data_type() {
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                    cast(c, DataType::Utf8).alias(f.name())
                }
                _ => c,
            }
        })
        .collect();
    let view = df.select(columns)?.into_view();
    ctx.deregister_table(name.clone())?;
    ctx.register_table(name, view)?;
    Ok(())
}

/// The files of `t` registered as `name` ([`register`] without `binary_as_string`).
async fn register_files(
    ctx: &SessionContext,
    t: &TableArg,
    name: Option<TableReference>,
    in_query: bool,
    tables: &mut Tables,
) -> Result<()> {
    // A DuckDB reader's list of paths reads them all (`read_parquet(['a', 'b'])`).
    let patterns = t.read.paths(&t.path);
    for p in &patterns {
        if let Some(why) = crate::store::foreign_url(p) {
            return Err(Error::Usage(format!("table '{p}' in the query: {why}")));
        }
    }
    let output_in_query = |p: &str| {
        Error::Usage(format!(
            "table '{p}' in the query: is a segscore output directory; give it as --table {p} (tables segments, generations) and read those"
        ))
    };
    let path = Path::new(&t.path);
    // A bare s3:// URL is an output (read by its manifest, or an error saying it is not a
    // complete one); a local path is one when it has segments/.
    let bare_remote = t.name.is_none() && crate::store::remote(path).is_some();
    if bare_remote || crate::sink::committed::is_output(path)? {
        if in_query {
            return Err(output_in_query(&t.path));
        }
        let names = evaluate::register_output(ctx, path, t.name.as_deref()).await?;
        tracing::debug!(tables = ?names, dir = %path.display(), "registered a segscore output");
        return Ok(());
    }
    for p in &patterns[1..] {
        if crate::sink::committed::is_output(Path::new(p))? {
            return Err(output_in_query(p));
        }
    }
    let name = name.ok_or_else(|| {
        Error::Usage(format!(
            "--table {}: name Parquet tables as NAME=PATH (a bare PATH is for segscore output directories)",
            t.path
        ))
    })?;
    let other = t.read.format.or_else(|| OtherFormat::of(&t.path));
    if t.read.format.is_none() {
        if let Some(p) = patterns.iter().find(|p| OtherFormat::of(p) != other) {
            return Err(Error::Usage(format!(
                "table '{}' in the query: {} and {p} are files of different formats; read each as a table of its own and join or UNION them",
                t.path, t.path
            )));
        }
    }
    let files = source::expand_inputs(&patterns, false).map_err(|e| match e {
        // A glob of CSV, JSON or Arrow files that matches none: no files, not no Parquet.
        Error::NoInputFiles { pattern, .. } if other.is_some() => Error::io(
            Path::new(&pattern),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no files match"),
        ),
        e => e,
    })?;
    if t.read.filename {
        ctx.register_table(name, with_filenames(ctx, &files, other, &t.read).await?)?;
        match other {
            Some(_) => tables.text.extend(files),
            None => tables.parquet.extend(files),
        }
        return Ok(());
    }
    if let Some(format) = other {
        let table = other_table(format, ctx, &files, &t.read)
            .await
            .map_err(|e| text_error(e, &files))?;
        ctx.register_table(name, table)?;
        tables.text.extend(files);
        return Ok(());
    }
    let stamped = crate::engine::footer::read_stamped_footers(&files)?;
    let schemas: Vec<_> = files
        .iter()
        .zip(&stamped)
        .map(|(f, (m, _))| (f.as_path(), m.schema().as_ref()))
        .collect();
    let hive = source::hive::detect(
        &patterns,
        &files,
        match t.read.no_hive {
            true => source::hive::HiveMode::Off,
            false => source::hive::HiveMode::Auto,
        },
        &[],
        &schemas,
    )?;
    match hive {
        // key=value folders: their levels are columns, and filters on them prune.
        Some(h) => {
            // The footers just read, where the scan looks before reading them again.
            crate::engine::tables::seed_stamped(ctx, &files, &stamped)?;
            let (safe, schema) = crate::engine::tables::read_as(&files, &stamped, &[])?;
            ctx.register_table(name, h.table(ctx, &[], safe, schema).await?)?;
            tables.parquet.extend(files);
        }
        None => {
            tables.parquet.extend(files.iter().cloned());
            let t = PlainTable {
                name,
                files: crate::engine::tables::ParquetFiles::new(files, stamped)?,
            };
            ctx.register_table(t.name.clone(), t.provider(ctx, &[]).await?)?;
            tables.plain.push(t);
        }
    }
    Ok(())
}

/// A table of `files` (of format `other`, or Parquet) with a column `filename` naming each
/// row's file, as DuckDB's `filename = true` gives it: each file's table with its name, the
/// tables united by column name. Hive folders' levels are not columns here.
async fn with_filenames(
    ctx: &SessionContext,
    files: &[PathBuf],
    other: Option<OtherFormat>,
    read: &super::sql_calls::ReadCall,
) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    let mut united: Option<datafusion::prelude::DataFrame> = None;
    for f in files {
        let one = std::slice::from_ref(f);
        let table = match other {
            Some(format) => other_table(format, ctx, one, read)
                .await
                .map_err(|e| text_error(e, one))?,
            None => {
                let stamped = crate::engine::footer::read_stamped_footers(one)?;
                crate::engine::tables::ParquetFiles::new(one.to_vec(), stamped)?
                    .table(ctx, &[])
                    .await?
            }
        };
        let named = ctx
            .read_table(table)?
            .with_column("filename", datafusion::prelude::lit(f.display().to_string()))?;
        united = Some(match united {
            None => named,
            Some(u) => u.union_by_name(named)?,
        });
    }
    match united {
        Some(u) => Ok(u.into_view()),
        None => Err(Error::Internal("a table of no files".into())),
    }
}

/// The tables `query` names that are files rather than tables (`FROM 'data/x.parquet'`,
/// `FROM 's3://bucket/prefix/'`, `FROM 'runs/*/segments/*.parquet'`, `FROM 'labels.csv'`): an
/// unqualified name that is no table of `ctx` and holds a `/` or a glob's `*`, ends in
/// `.parquet` or another format's name ([`OtherFormat`]), or is a file or folder here. A query
/// that does not parse names none (its error comes when it is planned).
fn files_named_in(ctx: &SessionContext, query: &str) -> Vec<TableArg> {
    let Ok(references) = segscore_plan::table_references(ctx, query) else {
        return Vec::new();
    };
    let mut tables: Vec<TableArg> = Vec::new();
    for r in references {
        let TableReference::Bare { table } = r else {
            continue;
        };
        // A DuckDB reader's call with a list or options, as `duckdb_sql` named it.
        let call = super::sql_calls::call_table(&table);
        let files = call.is_some()
            || table.contains(['/', '*'])
            || table.to_ascii_lowercase().ends_with(".parquet")
            || OtherFormat::of(&table).is_some()
            || Path::new(table.as_ref()).exists();
        let t = call.unwrap_or_else(|| TableArg {
            name: Some(table.to_string()),
            path: table.to_string(),
            read: Default::default(),
        });
        let taken = ctx
            .table_exist(TableReference::bare(table.clone()))
            .unwrap_or(true);
        if files && !taken && !tables.contains(&t) {
            tables.push(t);
        }
    }
    tables
}

/// Where the query's plan sorts a plain table's rows by its own columns (ascending, nulls
/// last), and the files' footers do not disprove that order: re-registers that table read as
/// sorted, cut into key ranges that check the order as rows come ([`crate::engine::ranges`]),
/// and returns it. The query then runs without that sort; a row out of order fails it.
pub(super) async fn stream_sorted<'a>(
    ctx: &SessionContext,
    query: &str,
    plain: &'a [PlainTable],
) -> Result<Option<&'a PlainTable>> {
    use crate::engine::footer::row_group_keys;
    if plain.is_empty() {
        return Ok(None);
    }
    let planned = match segscore_plan::read_only(ctx, query).await {
        Ok(df) => segscore_plan::physical_plan(df).await.ok(),
        Err(_) => None,
    };
    let Some(keys) = planned.as_deref().and_then(sort_keys) else {
        return Ok(None);
    };
    let mut owners = Vec::new();
    for t in plain {
        let schema = ctx.table_provider(t.name.clone()).await?.schema();
        if keys.iter().all(|k| schema.index_of(k).is_ok()) {
            owners.push(t);
        }
    }
    let [t] = owners.as_slice() else {
        return Ok(None);
    };
    let ranges: Vec<_> = t
        .files
        .footers()
        .map(|m| row_group_keys(m.metadata(), &keys[0]))
        .collect();
    let files: Vec<(&Path, &[_])> = t
        .files
        .files
        .iter()
        .map(PathBuf::as_path)
        .zip(ranges.iter().map(Vec::as_slice))
        .collect();
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    let listing = t.provider(ctx, &names).await?;
    let footers = t.files.footers().cloned().map(Some).collect();
    let Some(ranged) = crate::engine::ranges::key_range_table(ctx, listing, &files, footers, keys.clone())?
    else {
        return Ok(None);
    };
    ctx.deregister_table(t.name.clone())?;
    ctx.register_table(t.name.clone(), Arc::new(ranged.strict()))?;
    tracing::info!(table = %t.name, keys = ?keys, "the plan sorts this table by these columns and its footers do not disprove that order: it is read as sorted, checked as rows come");
    Ok(Some(t))
}

/// The columns of the first sort in `plan` when all are plain columns, ascending, nulls last.
fn sort_keys(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> Option<Vec<String>> {
    use datafusion::physical_expr::expressions::Column;
    use datafusion::physical_plan::sorts::sort::SortExec;
    if let Some(sort) = plan.downcast_ref::<SortExec>() {
        return sort
            .expr()
            .iter()
            .map(|e| {
                let ascending = !e.options.descending && !e.options.nulls_first;
                e.expr
                    .downcast_ref::<Column>()
                    .filter(|_| ascending)
                    .map(|c| c.name().to_string())
            })
            .collect();
    }
    plan.children().into_iter().find_map(|c| sort_keys(c.as_ref()))
}

/// What a query that calls segscore's model or tokenizer functions without the flags that
/// provide them needs (DataFusion only says "Invalid function"), what a query that writes into
/// a table can do instead, and how a table is given when the query names one that is not there.
pub(super) fn missing_function_hint(error: &str, opts: &SqlOptions) -> String {
    let calls = |f: &str| error.contains(&format!("Invalid function '{f}'"));
    // DuckDB's aggregate that segscore computes, called with another number of arguments.
    let duckdb = error
        .split_once("Invalid function '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .and_then(|(name, _)| Some((name, segscore_plan::duckdb::arity(name)?)));
    let needs = |f: &str, flags: &str| format!(" ({f} needs {flags})");
    if calls(crate::model::text_udf::TEXT_UDF_NAME) {
        needs("reward_model_text", "--model FILE and --tokenizer FILE")
    } else if opts.model.is_none() && (calls("reward_model") || calls("reward_model_input_problem")) {
        needs("reward_model", "--model FILE")
    } else if opts.tokenizer.is_none() && calls("tokenize") {
        needs("tokenize", "--tokenizer FILE")
    } else if let Some((name, arity)) = duckdb {
        format!(
            " ({name} takes {arity} argument{} here)",
            if arity == 1 { "" } else { "s" }
        )
    } else if error.contains("argument types 'sum(Boolean)'")
        || error.contains("argument types 'avg(Boolean)'")
    {
        " (a column of booleans: count_if(x), or sum(x::BIGINT) and avg(x::DOUBLE))".into()
    } else if error.contains("DML not supported") {
        " (segscore sql reads its tables and never writes into them: write a result with --to FILE or COPY (query) TO 'file')".into()
    } else if error.contains("table '") && error.ends_with("' not found") {
        " (give tables with --table NAME=PATH, or name Parquet files in quotes: FROM 'data/*.parquet')".into()
    } else {
        String::new()
    }
}
