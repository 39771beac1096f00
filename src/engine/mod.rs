//! The engine: DataFusion as segscore uses it, below every stage. A session context with
//! segscore's settings ([`context`]), Parquet footers read safely ([`footer`]), key order across batches ([`keys`]), listing tables
//! over Parquet files ([`tables`]), a column's type across files ([`types`]), query helpers ([`mod@query`]), and memory: the default limit and
//! the error for running out of it ([`memory`]); the integer `sum` of its sessions ([`sums`]);
//! DISTINCT for the aggregates that take every row they are given ([`distinct`]);
//! scans over object storage reading ahead ([`ahead`]).

pub mod ahead;
pub mod context;
pub mod distinct;
pub mod footer;
pub mod keys;
pub mod memory;
pub mod query;
pub mod ranges;
pub mod sums;
pub mod tables;
pub mod types;
pub mod units;
pub mod window;

pub use context::{default_threads, session_context};
pub use memory::{default_memory_limit, memory_error};
pub use query::query;
