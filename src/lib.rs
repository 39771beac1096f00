//! segscore evaluates segment-level reward models offline.
//!
//! It reads scored generations from Parquet (one row per segment, with the cumulative score of
//! the text up to that segment), computes each segment's own score as the change in
//! cumulative score with a SQL window function in DataFusion, runs an ONNX reward model on
//! every segment through ONNX Runtime, and writes residuals, losses and metrics to Parquet.
//!
//! The modules follow the data, each importing only the ones listed before it:
//!
//! | module | job |
//! |---|---|
//! | [`error`], [`faults`] | the error type; fault injection for the crash tests |
//! | [`contract`] | column roles, output columns, reason codes: the shared vocabulary |
//! | [`store`] | object storage: `s3://` URLs, credentials, reads and uploads |
//! | [`engine`] | DataFusion as segscore uses it: session, footers, tables, queries |
//! | [`source`] | input files: expansion, checks, the `generations` view |
//! | [`model`] | the ONNX model: runtime, sessions, binding, token batches, SQL functions |
//! | [`validate`] | row checks and the quarantine of whole generations |
//! | [`loss`] | residuals, losses, gradients, moments |
//! | [`metrics`] | correlations and rank metrics, and their SQL aggregates |
//! | [`shard`] | shards: the unit of commitment |
//! | [`functions`] | every segscore SQL function, registered in one place |
//! | [`cluster`] | the job on a Ballista cluster: client session, scheduler, executors |
//! | [`sink`] | atomic files, Parquet writers, the output directory and its commit |
//! | [`evaluate`] | per-generation and overall metrics, the output as tables, `summary.json` |
//! | [`report`] | `report.html`, and the comparison of two runs |
//! | [`pipeline`] | the job: prepare, run the shards' streams, finish, commit |
//! | [`sample`] | the demo's data and model, benchmark datasets |
//! | [`cli`] | the command line, one file per command |
//!
//! [`pipeline::run`] is the whole job; ARCHITECTURE.md follows a batch through it.

#![warn(missing_docs)]

pub mod cli;
pub mod cluster;
pub mod contract;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod faults;
pub mod functions;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod panics;
pub mod pipeline;
pub mod report;
pub mod sample;
pub mod shard;
pub mod sink;
pub mod source;
pub mod store;
pub mod validate;

pub use error::{Error, Result};
pub use evaluate::Summary;
pub use loss::Loss;
pub use model::Provider;
pub use pipeline::{run, JobConfig};
