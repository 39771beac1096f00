//! Past one machine: segscore's job on an Apache DataFusion Ballista cluster.
//!
//! The job is already a DataFusion plan with the model inside it as a function, so Ballista
//! runs it as it is: the client plans the job and sends the plan, the scheduler splits it
//! into stages (the scan and the model; the window, after a shuffle by generation; a merge
//! into key order) and the executors run them. The client writes the output directory as a
//! local run does ([`crate::pipeline`]).
//!
//! Functions cross the wire by name, so every process registers the same names: the client
//! its loaded model's ([`crate::functions::register`]), after Ballista upgrades its context
//! (the upgrade replaces the function lists); the scheduler and the executors the served ones
//! ([`crate::functions::served`]), which take the job's model and tokenizer from each query's
//! `segscore.*` settings ([`crate::model::shared::JobModel`]).
//!
//! - [`client`]: the client's session; [`serve`]: the scheduler and executor processes.
//!
//! Both come with the `cluster` Cargo feature, on in the default build; a build without it
//! (`--no-default-features`) fails the commands that need them with [`not_built`]'s error.

#[cfg(feature = "cluster")]
pub mod client;
#[cfg(feature = "cluster")]
pub mod serve;

#[cfg(feature = "cluster")]
use std::sync::Arc;

#[cfg(feature = "cluster")]
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
#[cfg(feature = "cluster")]
use datafusion::prelude::SessionConfig;

use crate::error::{Error, Result};
#[cfg(feature = "cluster")]
use crate::model::shared::JobSettings;

/// The error of `what` (`--cluster`, `segscore cluster`) in a segscore built without the
/// `cluster` feature.
pub fn not_built(what: &str) -> Error {
    Error::Usage(format!(
        "{what} needs a segscore built with the `cluster` feature (Ballista), which the default build has: cargo build --release"
    ))
}

/// A scheduler's address, `HOST:PORT`, from a `df://HOST:PORT` URL or `HOST:PORT`.
pub fn scheduler_address(url: &str) -> Result<(String, u16)> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "--cluster {url}: {why}; expected df://HOST:PORT, the scheduler's address"
        ))
    };
    let rest = match url.split_once("://") {
        Some(("df", rest)) => rest,
        Some((scheme, _)) => return Err(bad(&format!("`{scheme}://` is not a cluster URL"))),
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(&format!("`{port}` is not a port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(bad("no host"));
    }
    Ok((host.to_string(), port))
}

#[cfg(feature = "cluster")]
/// The settings of a scheduler's or executor's sessions: Ballista's, with segscore's
/// `segscore.*` settings known (unknown keys would be dropped) and the job's choices
/// arriving with each query.
pub fn config_producer() -> SessionConfig {
    use ballista_core::extension::SessionConfigExt;
    SessionConfig::new_with_ballista().with_option_extension(JobSettings::default())
}

#[cfg(feature = "cluster")]
/// A runtime that reads `s3://` URLs as a local run does ([`crate::store::Registry`]).
pub fn runtime(temp_dir: Option<&str>) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let mut b =
        RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(crate::store::Registry::default()));
    if let Some(dir) = temp_dir {
        b = b.with_temp_file_path(dir);
    }
    b.build_arc()
}
