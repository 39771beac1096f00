//! Logging on stderr with tracing: text for people or JSON lines for machines, the level from
//! `-q`/`-v` or `SEGSCORE_LOG`.

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

pub(crate) fn init_logging(quiet: bool, verbose: u8, format: LogFormat) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "segscore=info,ort=warn,warn",
        (false, 1) => "segscore=debug,ort=info,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEGSCORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
