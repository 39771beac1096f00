//! Standard output for results and reports. `print!` panics when stdout fails (a reader that
//! closed the pipe, `segscore sql ... | head`; a full disk); here a closed pipe ends the
//! command quietly, with exit code 0 (as `rg` and `git log` do), and another failure is an
//! error naming stdout.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;

/// Set when stdout's reader has closed it.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// stdout, noting a broken pipe ([`closed`]).
pub(crate) struct Stdout(io::Stdout);

impl Stdout {
    /// The process's stdout.
    pub(crate) fn new() -> Self {
        Stdout(io::stdout())
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).inspect_err(note)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().inspect_err(note)
    }
}

fn note(e: &io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CLOSED.store(true, Ordering::SeqCst);
    }
}

/// Whether stdout's reader has closed it: a command that then fails stopped because nobody
/// reads its output any more (the writers that wrap stdout, such as the CSV one, keep only
/// the message of the error, so this is a flag rather than a look at the error).
pub(crate) fn closed() -> bool {
    CLOSED.load(Ordering::SeqCst)
}

/// Writes `text` to stdout and flushes it.
pub(crate) fn print(text: &str) -> Result<(), Error> {
    let mut out = Stdout::new();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("<stdout>", e))
}
