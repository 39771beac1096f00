//! Fault injection for the tests: named points in the code where a test can make the process
//! abort, as a kill at that moment would, or hold it until the test has acted, and a log of
//! the points reached, in order. Nothing happens unless the environment asks for it.
//!
//! - `SEGSCORE_CRASH_AT=NAME` or `NAME:N` aborts the process the first (or N-th) time the
//!   point NAME is reached.
//! - `SEGSCORE_FAULT_DIR=DIR` appends the name of every point reached to `DIR/events`, one per
//!   line, and, with `SEGSCORE_HOLD_AT=NAME`, makes the first arrival at NAME create
//!   `DIR/NAME.held` and wait until `DIR/NAME.release` exists or its work is cancelled: a
//!   readiness signal a test can wait for before it signals, kills or releases the process.
//!
//! Points: `batch-written` (a partition's writer task wrote a batch), `part-closed` (a part file was
//! renamed into place), `writer-started` and `writer-exited` (a partition's writer task),
//! `partition-failed` (a shard's pass saw its first error; holdable, before the error is explained), `shard-committed` (after a shard's
//! record), `evaluation-started` (the shards are done: the key checks and metrics after them begin), `aborted` (a failed run removed its uncommitted work), `commit-begun` (after the
//! `COMMITTING` marker), `commit-moved` (after the first output is moved into place), `job-model` (a cluster
//! executor's model call, before it takes the job's model), `sql-batch-written` (`segscore sql`
//! wrote a batch of its result).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// What the environment asked for, read once.
struct Faults {
    crash: Option<(String, u64)>,
    hold: Option<String>,
    dir: Option<PathBuf>,
    reached: Mutex<HashMap<String, u64>>,
    held: AtomicBool,
}

fn faults() -> &'static Faults {
    static FAULTS: OnceLock<Faults> = OnceLock::new();
    FAULTS.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let crash = var("SEGSCORE_CRASH_AT").map(|v| match v.rsplit_once(':') {
            Some((name, n)) if n.parse::<u64>().is_ok() => (name.to_string(), n.parse().unwrap_or(1)),
            _ => (v, 1),
        });
        Faults {
            crash,
            hold: var("SEGSCORE_HOLD_AT"),
            dir: var("SEGSCORE_FAULT_DIR").map(PathBuf::from),
            reached: Mutex::new(HashMap::new()),
            held: AtomicBool::new(false),
        }
    })
}

impl Faults {
    fn active(&self) -> bool {
        self.crash.is_some() || self.dir.is_some()
    }

    /// Logs the point and aborts if it is the crash point; returns whether to hold here.
    fn reach(&self, name: &str) -> bool {
        let n = {
            let mut reached = self.reached.lock().unwrap_or_else(|e| e.into_inner());
            let n = reached.entry(name.to_string()).or_insert(0);
            *n += 1;
            if let Some(dir) = &self.dir {
                // Under the lock: lines in the order the points were reached.
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("events"))
                {
                    let _ = writeln!(f, "{name}");
                }
            }
            *n
        };
        if let Some((crash, at)) = &self.crash {
            if crash == name && *at == n {
                eprintln!("SEGSCORE_CRASH_AT={name}:{n}: aborting");
                std::process::abort();
            }
        }
        self.hold.as_deref() == Some(name) && self.dir.is_some() && !self.held.swap(true, Ordering::SeqCst)
    }

    /// Marks the hold as reached and returns the release file.
    fn held_at(&self, name: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let _ = std::fs::write(dir.join(format!("{name}.held")), b"");
        Some(dir.join(format!("{name}.release")))
    }
}

/// A point that may abort the process (`SEGSCORE_CRASH_AT`); logged with `SEGSCORE_FAULT_DIR`.
pub fn point(name: &str) {
    let f = faults();
    if f.active() && f.reach(name) {
        // A hold at a point that cannot wait is released at once.
        f.held_at(name);
    }
}

/// A point in blocking code (a cluster executor's model call): as [`point`], and where `SEGSCORE_HOLD_AT`
/// names it, waits until the test releases it or `cancelled` becomes true.
pub fn point_blocking(name: &str, cancelled: &AtomicBool) {
    let f = faults();
    if !(f.active() && f.reach(name)) {
        return;
    }
    if let Some(release) = f.held_at(name) {
        while !release.exists() && !cancelled.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A point in async code: as [`point`], and where `SEGSCORE_HOLD_AT` names it, waits (without
/// blocking a thread, so signals are still handled) until the test releases it.
pub async fn point_async(name: &str) {
    point_async_until(name, &AtomicBool::new(false)).await
}

/// As [`point_async`], and the wait also ends when `cancelled` becomes true (a writer task held
/// at a point lets go when its partition is cancelled).
pub async fn point_async_until(name: &str, cancelled: &AtomicBool) {
    let f = faults();
    if !(f.active() && f.reach(name)) {
        return;
    }
    if let Some(release) = f.held_at(name) {
        while !release.exists() && !cancelled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
