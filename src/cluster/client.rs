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
/// unreachable scheduler is a clear error at once, not a gRPC retry loop. Returns its host and
/// port.
pub async fn check_reachable(url: &str) -> Result<(String, u16)> {
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
        Ok(Ok(_)) => Ok((host, port)),
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
    let (host, port) = check_reachable(url).await?;
    let state = ctx.state();
    let mut config = state.config().clone().with_option_extension(JobSettings(job));
    // Byte-range scans: a single file's row groups spread over the executors (the plan sorts
    // each shard's rows after the shuffle, so the files' order is not needed).
    config.options_mut().optimizer.repartition_file_scans = true;
    // The scheduler plans the physical side with its own rules; segscore's local operator
    // ([`crate::engine::window::SortedLagExec`]) has no wire form, so the client leaves it out.
    let rules = state
        .physical_optimizers()
        .iter()
        .filter(|r| r.name() != crate::engine::window::RULE_NAME)
        .cloned()
        .collect();
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .with_physical_optimizer_rules(rules)
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

/// A cluster job's failure (Ballista's `Job ... failed`), as the cluster's error: the
/// executor's own message, and what to check when a file cannot be found. Other errors are
/// returned as they are.
pub fn job_error(url: &str, e: Error) -> Error {
    let text = e.to_string();
    let Some(at) = text.find("Job ") else {
        return e;
    };
    let text = &text[at..];
    let hint = if !text.contains("same path on every executor")
        && (text.contains("No such file") || text.contains("not found") || text.contains("os error 2"))
    {
        "; on a cluster the inputs, the model and the tokenizer must be at the same path on the scheduler and every executor (a shared filesystem)"
    } else {
        ""
    };
    Error::Cluster {
        url: url.to_string(),
        reason: format!("{}{hint}", executor_message(text)),
    }
}

/// Ballista passes an executor's error on as its debug text
/// (`...execution error: DataFusionError(Shared(External(ModelFile { path: "P", reason: "R" })))`):
/// the wrappers go, and segscore's file errors read as they would locally (`model P: R`).
fn executor_message(text: &str) -> String {
    const AT: &str = "execution error: ";
    let Some(at) = text.find(AT) else {
        return text.to_string();
    };
    let (head, mut inner) = (&text[..at + AT.len()], &text[at + AT.len()..]);
    // `Ident(` wrappers, their closing parentheses and the quotes of a wrapped string.
    while let Some(open) = inner.find('(') {
        if open == 0 || !inner[..open].chars().all(char::is_alphanumeric) {
            break;
        }
        inner = &inner[open + 1..];
    }
    let inner = inner.trim_start_matches('"').trim_end_matches([')', '"']);
    for (variant, what) in [
        ("ModelFile { path: \"", "model"),
        ("Tokenizer { path: \"", "tokenizer"),
    ] {
        let Some(rest) = inner.strip_prefix(variant) else {
            continue;
        };
        if let Some((path, reason)) = rest.split_once("\", reason: \"") {
            let reason = reason.trim_end_matches([' ', '}', '"']).replace("\\\"", "\"");
            return format!("{head}{what} {path}: {reason}");
        }
    }
    format!("{head}{}", inner.replace("\\\"", "\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_executors_file_error_reads_as_it_would_locally() {
        let ballista = r#"Execution error: Job 038H215DR0000 failed: Job failed due to stage 0 failed: Task failed due to runtime execution error: DataFusionError(Shared(External(ModelFile { path: "/d/model.onnx", reason: "executor 127.0.0.1:4 sees another file: sha256 9c, the job's model has sha256 3a" })))"#;
        let e = job_error("df://h:1", Error::Internal(ballista.into()));
        assert_eq!(
            e.to_string(),
            "cluster df://h:1: Job 038H215DR0000 failed: Job failed due to stage 0 failed: Task failed due to runtime execution error: model /d/model.onnx: executor 127.0.0.1:4 sees another file: sha256 9c, the job's model has sha256 3a"
        );
        // A missing input names what every executor needs.
        let e = job_error(
            "df://h:1",
            Error::Internal("Job 1 failed: Object at location /x.parquet not found".into()),
        );
        assert!(
            e.to_string().ends_with(
                "must be at the same path on the scheduler and every executor (a shared filesystem)"
            ),
            "{e}"
        );
        // Not a job's failure: unchanged.
        let e = job_error("df://h:1", Error::Usage("--threads 0".into()));
        assert!(matches!(e, Error::Usage(_)));
    }
}
