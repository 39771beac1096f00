//! Progress reporting: a progress bar on stderr when it is a terminal, a periodic log line
//! otherwise, nothing when quiet. The total comes from the Parquet footers' row counts.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Notify;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar on a terminal, else a log line every `interval`.
    #[default]
    Auto,
    /// Nothing.
    Off,
}

/// A running progress reporter; rows are counted through [`Progress::counter`].
pub struct Progress {
    done: Arc<AtomicU64>,
    stop: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts reporting on the current tokio runtime.
    pub fn start(total: u64, mode: ProgressMode, log_interval: Duration) -> Self {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(Notify::new());
        let task = match mode {
            ProgressMode::Off => None,
            ProgressMode::Auto => {
                let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
                Some(tokio::spawn(async move {
                    if std::io::stderr().is_terminal() {
                        bar(total, done, stop).await
                    } else {
                        log_lines(total, done, stop, log_interval).await
                    }
                }))
            }
        };
        Progress { done, stop, task }
    }

    /// The shared count of rows done.
    pub fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.done)
    }

    /// Stops reporting (clearing the bar).
    pub async fn finish(mut self) {
        self.stop.notify_one();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn bar(total: u64, done: Arc<AtomicU64>, stop: Arc<Notify>) {
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} rows  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    loop {
        pb.set_position(done.load(Ordering::Relaxed));
        tokio::select! {
            _ = stop.notified() => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    pb.finish_and_clear();
}

async fn log_lines(total: u64, done: Arc<AtomicU64>, stop: Arc<Notify>, interval: Duration) {
    let started = Instant::now();
    loop {
        tokio::select! {
            _ = stop.notified() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let n = done.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let eta = if rate > 0.0 {
            total.saturating_sub(n) as f64 / rate
        } else {
            f64::NAN
        };
        tracing::info!(
            rows = n,
            total,
            percent = format!("{:.1}", 100.0 * n as f64 / total.max(1) as f64),
            rows_per_second = format!("{rate:.0}"),
            eta_seconds = format!("{eta:.0}"),
            "progress"
        );
    }
}
