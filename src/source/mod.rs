//! Source: finds the input Parquet files, checks each one against the data contract from its
//! footer alone (readable, non-empty, required columns present with usable types, no nulls in
//! key and score columns where the statistics tell), and registers them with DataFusion.
//!
//! Tables registered:
//! - `input_files`: the files as they are;
//! - `generations`: a view with the contract's canonical column names (`generation_id`,
//!   `segment_index`, `cumulative_score` as DOUBLE, `input_ids`, `base_score` as DOUBLE,
//!   `token_type_ids` when given) followed by every other column, carried unchanged.

//!
//! - [`expand`]: paths, directories and globs into a list of files;
//! - [`check`]: each file's footer against the data contract ([`crate::contract`]);
//! - [`hive`]: `key=value` folder levels as partition columns;
//! - [`locate`]: the files and rows that hold a key, named by row-level errors;
//! - [`mod@register`]: the tables and the `generations` view.

use std::path::PathBuf;

use crate::engine::footer::RowGroupKeys;
use datafusion::arrow::datatypes::SchemaRef;

pub mod check;
#[cfg(feature = "delta")]
pub mod delta;
pub mod expand;
pub mod hive;
pub mod locate;
pub mod register;

pub use check::{check_file, check_inputs, check_metadata};
pub use expand::expand_inputs;
pub use register::{quote_ident, register, register_view};

/// One checked input file.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Absolute path.
    pub path: PathBuf,
    /// Rows, from the footer.
    pub rows: u64,
    /// Arrow schema.
    pub schema: SchemaRef,
    /// Whether every row group declares (`sorting_columns`) that it is sorted by
    /// (generation id, segment index), ascending.
    pub sorted: bool,
    /// Whether the footer's statistics prove the rows are not in generation-id order
    /// ([`crate::engine::footer::keys_out_of_order`]).
    pub out_of_order: bool,
    /// Whether a float column's statistics have min == max ([`crate::engine::footer::float_stats_constant`]).
    pub float_stats_constant: bool,
    /// Each row group's generation-id range from the footer's statistics
    /// ([`crate::engine::footer::row_group_keys`]).
    pub key_ranges: Vec<Option<RowGroupKeys>>,
    /// Each date, timestamp and duration's (a column, or one inside a column:
    /// [`crate::engine::units::time_leaves`]) least and greatest value in nanoseconds, from the
    /// footer ([`crate::engine::footer::time_bounds`]).
    pub time_bounds: crate::engine::units::TimeBounds,
    /// Its size and last-modified time (nanoseconds since the epoch) as its check found them
    /// (an object's listing or HEAD, a file's metadata): `--resume`'s stamp of it, with no request or
    /// look of its own.
    pub stamp: (u64, u128),
    /// Its footer, page index included, as its check read it: for DataFusion's scan (its
    /// metadata cache, [`crate::engine::tables::seed_metadata_cache`]) and the key-range cuts,
    /// so neither reads it again. None for a file without rows, and past
    /// [`check::FOOTERS_KEPT_BYTES`] of footers kept (the rest are read again where needed).
    pub footer: Option<datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata>,
}

/// The checked input files.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The files with rows, in a stable order.
    pub files: Vec<InputFile>,
    /// The files with no rows: skipped.
    pub empty: Vec<PathBuf>,
    /// The table's schema where it is not the first file's: each column in the one type that
    /// holds every file's values ([`check::table_schema`]).
    pub schema: Option<datafusion::arrow::datatypes::SchemaRef>,
}

impl Inputs {
    /// Whether DataFusion may take the files' statistics at their word: false when a float
    /// column of some file looks constant ([`crate::engine::footer::float_stats_constant`]).
    pub fn statistics_safe(&self) -> bool {
        !self.files.iter().any(|f| f.float_stats_constant)
    }

    /// Whether every file declares itself sorted by (generation id, segment index).
    pub fn all_sorted(&self) -> bool {
        !self.files.is_empty() && self.files.iter().all(|f| f.sorted)
    }

    /// Whether no file's footer proves its rows out of generation-id order: then the job
    /// streams as if the input were sorted, checking the order as rows come.
    pub fn may_be_sorted(&self) -> bool {
        !self.files.is_empty() && !self.files.iter().any(|f| f.out_of_order)
    }

    /// Total rows over all files.
    pub fn total_rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}
