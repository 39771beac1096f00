//! The library's error type: every variant names what is at fault (file, column, row or
//! generation, model input), so a user can act on the message alone.

use std::path::PathBuf;

/// Errors from segscore's library. Displayed with `{}` they read as one sentence that names
/// the file, column, value or model input at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input path, directory or glob matched no file.
    #[error("input {pattern}: no Parquet files found{hint}")]
    NoInputFiles {
        /// The path or glob the user gave.
        pattern: String,
        /// What the search passed over, if anything: files without the `.parquet` extension.
        hint: String,
    },

    /// A file could not be opened or read as Parquet.
    #[error("input file {path}: not a readable Parquet file: {reason}")]
    NotParquet {
        /// The file.
        path: PathBuf,
        /// What the Parquet reader said.
        reason: String,
    },

    /// A path segscore must read through DataFusion is not valid UTF-8.
    #[error("{path:?}: the path is not valid UTF-8; segscore reads its inputs and outputs by URL, which needs UTF-8 paths: rename it")]
    PathNotUtf8 {
        /// The path, shown with its invalid bytes escaped.
        path: PathBuf,
    },

    /// A Parquet input file holds no rows.
    #[error("input file {path}: contains no rows, and neither does any other input file ({files} in all): nothing to score")]
    EmptyInput {
        /// The first file.
        path: PathBuf,
        /// Input files, all empty.
        files: usize,
    },

    /// A required column is absent from an input file.
    #[error("input file {path}: missing column `{column}` (the {role} column; found: {found}){hint}")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column name looked for.
        column: String,
        /// What the column is for, e.g. "generation id".
        role: &'static str,
        /// The columns the file does have.
        found: String,
        /// Where the file's path holds the column as a folder level, what to do.
        hint: String,
    },

    /// A column has a type segscore cannot use.
    #[error("input file {path}: column `{column}` has type {found}, expected {expected}")]
    WrongColumnType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The type it has.
        found: String,
        /// The types allowed.
        expected: String,
    },

    /// A file has two columns of one name (pyarrow writes such files).
    #[error("input file {path}: more than one column is named `{column}`; a table reads one column per name: rename or drop the others (pyarrow writes such files, DuckDB and polars refuse to)")]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The name.
        column: String,
    },

    /// A column that must not hold nulls does, found from the file's footer statistics.
    #[error("input file {path}: column `{column}` has {count} null value(s) in row group {row_group} (rows {first_row}..{end_row})")]
    NullsInFile {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Number of nulls in that row group.
        count: u64,
        /// Row group index.
        row_group: usize,
        /// First row of the row group in the file.
        first_row: u64,
        /// One past the last row of the row group.
        end_row: u64,
    },

    /// A value in a row is invalid (a null key or score, an empty token list, ...).
    #[error("invalid input: column `{column}` is {problem} at generation_id={generation_id}, segment_index={segment_index}")]
    InvalidValue {
        /// The column.
        column: String,
        /// What is wrong, e.g. "null".
        problem: String,
        /// The generation of the row, as text.
        generation_id: String,
        /// The segment index of the row, as text.
        segment_index: String,
    },

    /// Two rows share (generation_id, segment_index).
    #[error("invalid input: duplicate segment: generation_id={generation_id} has segment_index={segment_index} more than once")]
    DuplicateSegment {
        /// The generation, as text.
        generation_id: String,
        /// The repeated segment index.
        segment_index: String,
    },

    /// Input declared sorted (`--sorted` or `sorting_columns`) is not.
    #[error("invalid input: the input is declared sorted by (generation_id, segment_index) (--sorted, or the files' sorting_columns), but generation_id={generation_id}, segment_index={segment_index} comes after generation_id={prev_generation_id}, segment_index={prev_segment_index}; sort the files or run without --sorted")]
    NotSorted {
        /// The out-of-order row's generation.
        generation_id: String,
        /// The out-of-order row's segment index.
        segment_index: String,
        /// The row before it: generation.
        prev_generation_id: String,
        /// The row before it: segment index.
        prev_segment_index: String,
    },

    /// Sorted input cut into key ranges by its footers' statistics
    /// ([`crate::engine::ranges`]) has a row outside the range its row groups' statistics gave.
    #[error("invalid input: the input was cut into generation-id ranges by its files' row-group statistics (footer min/max), but generation_id={generation_id} was read in the range {range}: the statistics are wrong; rewrite the files, or run without --sorted")]
    OutsideKeyRange {
        /// The row's generation.
        generation_id: String,
        /// The range it was read in.
        range: String,
    },

    /// DataFusion's operators needed more memory than `--memory-limit` allows.
    #[error("out of memory under --memory-limit {limit}: {detail}. Raise --memory-limit (a run needs a few tens of MiB at least)")]
    MemoryLimit {
        /// The limit, human-readable.
        limit: String,
        /// DataFusion's message.
        detail: String,
    },

    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("{0}")]
    OrtLibrary(String),

    /// The model file cannot be read.
    #[error("model {path}: {reason}")]
    ModelFile {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The tokenizer file cannot be used.
    #[error("tokenizer {path}: {reason}")]
    Tokenizer {
        /// The tokenizer.json file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A model is not causal, so one pass over a generation does not give each segment's
    /// score.
    #[error("model {model}: one pass over a generation does not give the scores of per-prefix calls ({detail}): the model is not causal (a later token changes an earlier position's score). Run it with --pass segment (one call per segment prefix)")]
    NotCausal {
        /// The model file.
        model: String,
        /// Where and by how much the scores differ.
        detail: String,
    },

    /// A model input has no column or rule to bind it to, or a model output is unusable.
    #[error("model {model}: {reason}")]
    ModelBinding {
        /// The model file name.
        model: String,
        /// What cannot be bound.
        reason: String,
    },

    /// The requested execution provider cannot be used.
    #[error("execution provider {provider}: {reason}")]
    Provider {
        /// The provider asked for.
        provider: String,
        /// Why it failed.
        reason: String,
    },

    /// The output directory cannot be used.
    #[error("output {path}: {reason}")]
    Output {
        /// The output directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A row-level input error ([`Error::InvalidValue`], [`Error::DuplicateSegment`],
    /// [`Error::NotSorted`], [`Error::OutsideKeyRange`]) with the input rows that hold its key
    /// ([`crate::source::locate`]).
    #[error("{error} ({rows})")]
    AtRows {
        /// The error.
        error: Box<Error>,
        /// Where: "input row 3 of /in/a.parquet, counting from 0".
        rows: String,
    },

    /// Input data the model cannot take (e.g. token type ids that do not match the token ids).
    #[error("invalid input: {0}")]
    InvalidData(String),

    /// More rows were invalid than `--max-invalid-fraction` allows.
    #[error("invalid data: {rejected} of {input_rows} input rows ({:.4}%) are invalid, above --max-invalid-fraction {max} ({by_reason}); nothing was committed. Raise the threshold to see them in rejected/", fraction * 100.0)]
    TooManyInvalid {
        /// Rows rejected when the job stopped.
        rejected: u64,
        /// Rows in the input.
        input_rows: u64,
        /// rejected / input_rows.
        fraction: f64,
        /// The threshold.
        max: f64,
        /// Rejected rows by reason.
        by_reason: String,
    },

    /// The run was stopped by a signal: in-flight work was abandoned, committed shards kept.
    #[error("stopped by {signal}: the run was abandoned, nothing is complete under a final name{}", if *committed > 0 { format!("; {committed} committed shard(s) are kept: rerun with --resume to finish") } else { String::new() })]
    Interrupted {
        /// SIGINT or SIGTERM.
        signal: &'static str,
        /// Shards committed before the stop (kept for `--resume`).
        committed: usize,
    },

    /// The system refused a resource segscore needs (threads, say).
    #[error("{0}")]
    System(String),

    /// A worker thread or task failed unexpectedly (a bug: please report it).
    #[error("internal error: {0}")]
    Internal(String),

    /// A task of the job panicked with `message`: arrow's Parquet decoder does on some corrupt
    /// pages (the job then scans the inputs one by one to name the file), else a bug.
    #[error("internal error: {what} panicked: {message}{}", at.as_ref().map(|at| format!(" (at {at})")).unwrap_or_default())]
    Panicked {
        /// What panicked: "a worker task", "the query".
        what: String,
        /// The panic's message.
        message: String,
        /// Where (`file:line:column`), if the quiet panic hook noted it.
        at: Option<String>,
    },

    /// A user-supplied query or option is unusable.
    #[error("{0}")]
    Usage(String),

    /// An object-store error, with the URL it concerns (never a credential).
    #[error("{url}: {reason}")]
    Store {
        /// The `s3://` URL being read or written.
        url: String,
        /// What went wrong, in words.
        reason: String,
    },

    /// A cluster (Ballista scheduler or executor) error, with the scheduler's URL (or, from a
    /// cluster process itself, that process: `scheduler 127.0.0.1:50050`).
    #[error("cluster {url}: {reason}")]
    Cluster {
        /// The scheduler's `df://HOST:PORT` URL, or the failing process.
        url: String,
        /// What went wrong, in words.
        reason: String,
    },

    /// A file-system error, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// An error from DataFusion (planning or executing the SQL).
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// An error from Arrow.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    /// An error from the Parquet reader or writer.
    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),

    /// An error from ONNX Runtime.
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),

    /// A JSON encoding error.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// segscore's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// [`Error::MissingColumn`]: `column` (for `role`) is not among `schema`'s, which it lists.
    pub fn missing_column(
        path: impl Into<PathBuf>,
        column: &str,
        role: &'static str,
        schema: &datafusion::arrow::datatypes::Schema,
    ) -> Self {
        let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let path: PathBuf = path.into();
        // A hive folder level of that name (`generation_id=7/`): a column of the folder's
        // table, not of the file, where role columns are read from.
        let level = path.ancestors().skip(1).find(|a| {
            a.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.split_once('=').is_some_and(|(k, _)| k == column))
        });
        let hint = match level.and_then(|l| Some((l.file_name()?.to_str()?, l.parent()?))) {
            Some((level, folder)) => format!(
                "; `{column}` is a folder level here (`{level}/`), and role columns are read from the files: write it into them, as `segscore sql \"COPY (FROM '{}') TO 'flat.parquet'\"` does (it reads the level as a column)",
                folder.display()
            ),
            None => String::new(),
        };
        Error::MissingColumn {
            path,
            column: column.to_string(),
            role,
            found: found.join(", "),
            hint,
        }
    }

    /// Attach a path to an I/O error.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Converts to a DataFusion error so it can cross a UDF or stream boundary, keeping the
    /// original error (and its message) inside.
    pub fn into_datafusion(self) -> datafusion::error::DataFusionError {
        match self {
            Error::DataFusion(e) => e,
            other => datafusion::error::DataFusionError::External(Box::new(other)),
        }
    }

    /// Recovers a segscore error that crossed DataFusion as an external error, so the user
    /// sees the original message without DataFusion's wrapping.
    pub fn from_datafusion(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        match e {
            D::External(b) => match b.downcast::<Error>() {
                Ok(inner) => *inner,
                Err(b) => Error::DataFusion(D::External(b)),
            },
            D::Context(ctx, inner) => match Error::from_datafusion(*inner) {
                Error::DataFusion(inner) => Error::DataFusion(D::Context(ctx, Box::new(inner))),
                found => found,
            },
            D::Shared(arc) => match std::sync::Arc::try_unwrap(arc) {
                Ok(inner) => Error::from_datafusion(inner),
                Err(arc) => Error::DataFusion(D::Shared(arc)),
            },
            other => Error::DataFusion(other),
        }
    }
}

impl Error {
    /// [`Error::NoInputFiles`] for `pattern`, saying what its search passed over for their
    /// names: `count` files or objects (`what`) without the `.parquet` extension, `first` named
    /// (Hive and Flink name theirs `000000_0`), and `how` to read them.
    pub fn no_parquet_files(
        pattern: &str,
        what: &str,
        count: usize,
        first: Option<&str>,
        how: &str,
    ) -> Error {
        let hint = match first {
            Some(first) => format!(
                " (it holds {count} {what}{} without the .parquet extension, such as {first}: {how})",
                if count == 1 { "" } else { "s" },
            ),
            None => String::new(),
        };
        Error::NoInputFiles {
            pattern: pattern.to_string(),
            hint,
        }
    }

    /// This error as `segscore sql` logs it when a table it read as sorted was not: a row out of
    /// order ([`Error::NotSorted`]) named by its first two keys (one where the plan sorts by
    /// one), not in the run's terms (`--sorted`, `segment_index`); a planning error by its
    /// message alone (no "Error during planning:": the query goes on); another as it is.
    pub fn in_table_terms(&self) -> String {
        let keys = |a: &str, b: &str| match b {
            "" => a.to_string(),
            b => format!("({a}, {b})"),
        };
        match self {
            Error::NotSorted {
                generation_id,
                segment_index,
                prev_generation_id,
                prev_segment_index,
            } => format!(
                "{} comes after {} in the order the plan sorts the table by",
                keys(generation_id, segment_index),
                keys(prev_generation_id, prev_segment_index)
            ),
            Error::DataFusion(d) => match d.find_root() {
                datafusion::error::DataFusionError::Plan(m) => m.clone(),
                _ => self.to_string(),
            },
            e => e.to_string(),
        }
    }

    /// Whether a failed query's error may come from reading a file (and names none): a
    /// reader's error or panic; not a planning error, which comes before any file is read.
    pub fn may_come_from_a_reader(&self) -> bool {
        use datafusion::error::DataFusionError as D;
        match self {
            Error::Arrow(_) | Error::Parquet(_) => true,
            Error::Panicked { .. } => self.panicked_in_a_reader(),
            Error::DataFusion(d) => matches!(
                d.find_root(),
                D::ArrowError(..) | D::ParquetError(_) | D::IoError(_) | D::External(_)
            ),
            _ => false,
        }
    }

    /// A task that did not finish: [`Error::Panicked`] with its message if it panicked, else
    /// [`Error::Internal`]. `what` names the task.
    pub fn from_join(what: &str, e: tokio::task::JoinError) -> Error {
        match e.try_into_panic() {
            Ok(panic) => Error::from_panic(what, panic.as_ref()),
            Err(e) => Error::Internal(format!("{what} failed: {e}")),
        }
    }

    /// [`Error::Panicked`]: `what` panicked with this payload, with where, if the quiet panic
    /// hook noted it.
    pub fn from_panic(what: &str, panic: &(dyn std::any::Any + Send)) -> Error {
        Error::Panicked {
            what: what.to_string(),
            message: crate::panics::panic_message(panic),
            at: crate::panics::take_quiet_panic(),
        }
    }

    /// Whether this is a panic raised in arrow's or parquet's code (a reader's, on a corrupt
    /// file), or one that does not say where: a panic in segscore's own code is a bug, and no
    /// file is searched for it.
    pub fn panicked_in_a_reader(&self) -> bool {
        match self {
            Error::Panicked { at, .. } => at.as_deref().is_none_or(crate::panics::in_reader_code),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_logs_a_fallback_in_the_tables_terms() {
        let row = |g: &str, s: &str, pg: &str, ps: &str| Error::NotSorted {
            generation_id: g.into(),
            segment_index: s.into(),
            prev_generation_id: pg.into(),
            prev_segment_index: ps.into(),
        };
        assert_eq!(
            row("a", "1", "b", "0").in_table_terms(),
            "(a, 1) comes after (b, 0) in the order the plan sorts the table by"
        );
        // A table sorted by one key: its value alone.
        assert_eq!(
            row("3", "", "7", "").in_table_terms(),
            "3 comes after 7 in the order the plan sorts the table by"
        );
        let planning = Error::DataFusion(datafusion::error::DataFusionError::Plan(
            "the scan of at cannot be cut into the key ranges that check its order".into(),
        ));
        assert_eq!(
            planning.in_table_terms(),
            "the scan of at cannot be cut into the key ranges that check its order"
        );
        let other = Error::Usage("bad".into());
        assert_eq!(other.in_table_terms(), other.to_string());
    }

    #[test]
    fn a_panic_is_a_readers_when_arrow_or_parquet_code_raised_it_or_its_place_is_unknown() {
        let registry = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        let panicked = |at: Option<String>| Error::Panicked {
            what: "the query".into(),
            message: "offset + len out of bounds".into(),
            at,
        };
        let arrow = format!("{registry}/arrow-buffer-59.3.2/src/util/bit_chunk_iterator.rs:224:9");
        let parquet = format!("{registry}/parquet-59.3.2/src/file/serialized_reader.rs:649:47");
        for at in [Some(arrow.clone()), Some(parquet), None] {
            assert!(panicked(at.clone()).panicked_in_a_reader(), "{at:?}");
            assert!(panicked(at).may_come_from_a_reader());
        }
        let ours = panicked(Some("src/pipeline/partition.rs:12:5".into()));
        assert!(!ours.panicked_in_a_reader() && !ours.may_come_from_a_reader());
        assert!(!Error::Usage("bad".into()).may_come_from_a_reader());
        assert_eq!(
            panicked(Some(arrow)).to_string(),
            format!("internal error: the query panicked: offset + len out of bounds (at {registry}/arrow-buffer-59.3.2/src/util/bit_chunk_iterator.rs:224:9)")
        );
        assert_eq!(
            panicked(None).to_string(),
            "internal error: the query panicked: offset + len out of bounds"
        );
    }
}
