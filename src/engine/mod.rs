//! The engine: DataFusion as segscore uses it, below every stage. A session context with
//! segscore's settings ([`context`]), Parquet footers read safely ([`footer`]), listing tables
//! over Parquet files ([`tables`]) and query helpers ([`query`]).

pub mod context;
pub mod footer;
pub mod query;
pub mod tables;

pub use context::{default_memory_limit, default_threads, session_context};
pub use query::query;
