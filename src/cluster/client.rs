//! The client's session on a cluster: segscore's local session upgraded by Ballista, its
//! queries carrying the job's model and tokenizer as `segscore.*` settings, and segscore's
//! functions registered after the upgrade.

use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::SessionContextExt;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::model::shared::{JobModel, JobSettings};
use crate::model::{RewardModel, TextTokenizer};

/// How long the client waits for the scheduler to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks that the scheduler at `url` accepts connections, within [`CONNECT_TIMEOUT`]: an
/// unreachable scheduler is a clear error at once, not a gRPC retry loop.
pub async fn check_reachable(url: &str) -> Result<()> {
    let (host, port) = super::scheduler_address(url)?;
    let unreachable = |reason: String| Error::Cluster {
        url: url.to_string(),
        reason: format!("cannot reach the Ballista scheduler: {reason}"),
    };
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// `ctx` (a session from [`crate::engine::session_context`]) as a client of the scheduler at
/// `url`: its queries run on the cluster and carry `job`; segscore's functions with the
/// loaded `model` and `tokenizer` are registered after Ballista's upgrade.
pub async fn client_context(
    url: &str,
    ctx: SessionContext,
    job: JobModel,
    model: &Arc<RewardModel>,
    tokenizer: Option<&Arc<TextTokenizer>>,
) -> Result<SessionContext> {
    check_reachable(url).await?;
    let (host, port) = super::scheduler_address(url)?;
    let state = ctx.state();
    let mut config = state.config().clone().with_option_extension(JobSettings(job));
    // Byte-range scans: a single file's row groups spread over the executors (the plan sorts
    // each shard's rows after the shuffle, so the files' order is not needed).
    config.options_mut().optimizer.repartition_file_scans = true;
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build();
    let ctx = SessionContext::remote_with_state(&format!("df://{host}:{port}"), state)
        .await
        .map_err(|e| Error::Cluster {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    crate::functions::register(&ctx, Some(model), tokenizer);
    // The `generations` view then names the executor that reads each row.
    ctx.register_udf(crate::model::shared::executor_udf());
    Ok(ctx)
}

/// A cluster job's failure, with what to check when it says a file cannot be found.
pub fn job_error(url: &str, e: Error) -> Error {
    let text = e.to_string();
    if !text.contains("Job ") && !text.contains("ballista") && !text.contains("Ballista") {
        return e;
    }
    let hint = if text.contains("No such file") || text.contains("not found") || text.contains("os error 2") {
        "; on a cluster the inputs, the model and the tokenizer must be at the same path on the scheduler and every executor (a shared filesystem)"
    } else {
        ""
    };
    Error::Cluster {
        url: url.to_string(),
        reason: format!("the job failed on the cluster: {text}{hint}"),
    }
}
