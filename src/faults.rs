//! Fault injection for the crash tests: named points in the code where a test can make the
//! process abort, as a kill at that moment would.
//!
//! `SEGSCORE_CRASH_AT=NAME` aborts at the first time the point NAME is reached. Points:
//! `shard-committed` (after a shard's record), `commit-begun` (after the `COMMITTING`
//! marker), `commit-moved` (after the first output is moved into place).

/// Aborts the process here when `SEGSCORE_CRASH_AT` names this point.
pub fn crash_point(name: &str) {
    if std::env::var_os("SEGSCORE_CRASH_AT").is_some_and(|v| v == name) {
        eprintln!("SEGSCORE_CRASH_AT={name}: aborting");
        std::process::abort();
    }
}
