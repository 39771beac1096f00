//! segscore's integration tests: one binary, every test through the real `segscore` binary
//! and the real ONNX Runtime (fetched by `scripts/fetch-ort.sh`), no mocks.

// The cluster's tests need a segscore built with it (the default build).
#[cfg(feature = "cluster")]
mod cluster;
mod common;
mod contract;
mod crash;
mod errors;
mod evaluation;
mod layout;
mod models;
mod order;
mod properties;
mod review;
mod s3;
mod scale;
mod single_pass;
mod text;
mod validation;
mod widening;
mod writers;
