//! Sink: the output directory contract and crash-safe writes.
//!
//! Everything a run writes goes to a hidden work folder inside the output directory
//! (`.segscore-staging/`), each Parquet part under a `.inprogress` name until it is closed,
//! synced and renamed. Work is committed shard by shard (see [`crate::shard`]): a shard's
//! record is renamed into `shards/` after its files. When every shard is done, the summary is
//! written into the work folder, a `COMMITTING` marker names the outputs produced, the
//! outputs are renamed into place one by one, and `_SUCCESS` is written last. Killed at any
//! moment, the directory therefore holds either a complete output with `_SUCCESS`, or no
//! `_SUCCESS` and only whole files under final names; `--resume` picks up from the committed
//! shards (or finishes an interrupted commit), and an `--overwrite` run that fails leaves
//! the previous complete output as it was until its own commit.
//!
//! - [`atomic`]: files written under a temporary name, synced and renamed ([`AtomicFile`]);
//! - [`parquet`]: Parquet part files and the writers that roll them ([`RollingWriter`]);
//! - [`output_dir`]: the output directory, its work folder, and the commit protocol;
//! - [`remote`]: an `s3://` output, committed without rename (a manifest, then `_SUCCESS`);
//! - [`committed`]: a committed output's files and tables as readers find them.

pub mod atomic;
pub mod committed;
pub mod output_dir;
pub mod parquet;
pub mod remote;

pub use atomic::{inprogress_name, read_if_exists, write_atomic, AtomicFile};
pub use output_dir::{abandon, Found, OutputDir, JOB_FILE, OUTPUTS, SHARDS_DIR, SUCCESS, WORK_DIR};
pub use parquet::{write_empty_part, writer_properties, PartClosed, PartWriter, RollingWriter};
