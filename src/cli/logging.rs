//! Logging on stderr with tracing: text for people or JSON lines for machines, the level from
//! `-q`/`-v` or `SEGSCORE_LOG`. Colour only when stderr is a terminal and `NO_COLOR` is unset
//! (or empty): scheduled jobs send their logs to files and pipes, which get plain text.

use std::io::IsTerminal;

/// The format of log lines.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Text for people.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// Whether log lines get ANSI colour: on a terminal, unless `NO_COLOR` is set to something
/// (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the process's log subscriber.
pub(crate) fn init_logging(quiet: bool, verbose: u8, format: LogFormat) {
    let default = match (quiet, verbose) {
        (true, _) => "error,ballista_core=off",
        // Ballista's client logs a failed job as its error's debug text: segscore reports it, readable.
        (false, 0) => {
            "segscore=info,ort=warn,ballista_scheduler=info,ballista_executor=info,ballista_core=off,warn"
        }
        (false, 1) => "segscore=debug,ort=info,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEGSCORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
